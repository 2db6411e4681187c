"""Offline transfer-learning demonstration on the digits: pretrain, then transfer with few labels.

    python scripts/transfer_demo.py                       # ResNet-20, 5 labels per class, 3 seeds, about 4 minutes
    python scripts/transfer_demo.py --per-class 20 --epochs 40

ResNet-20 is pretrained on digits 0-4, then trained on digits 5-9 with only --per-class training
images per class, four ways: from scratch, and from the pretrained weights in each transfer mode
(full, partial from the last stage, head only), each with --seeds (few-label runs are noisy: the
table gives the mean and spread). All runs use one recipe and budget. The results folder
(runs/transfer-demo[-N]) gets the run directories, results.md / results.csv (test accuracy and
trainable parameters per way) and accuracy.png. Progress: one line per epoch of each run on stderr.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402

WAYS = {  # name: the transfer overrides
    "scratch": {},
    "full": {"transfer_mode": "full"},
    "partial": {"transfer_mode": "partial", "trainable_from": "stage4"},
    "head": {"transfer_mode": "head"},
}


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet20", help="a CIFAR-family model (default: resnet20)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="extra builder argument")
    parser.add_argument("--source", default="digits:0-4", help="pretraining classes (default: digits:0-4)")
    parser.add_argument("--target", default="digits:5-9", help="transfer classes (default: digits:5-9)")
    parser.add_argument("--per-class", type=int, default=5, help="training images per target class (default: 5)")
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="epochs on the source classes (default: 30)")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of every target run (default: 40)")
    parser.add_argument("--batch-size", type=int, default=10, help="batch size of the target runs (default: 10)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the target runs (default: 0 1 2)")
    parser.add_argument("--out-dir", default=os.path.join("runs", "transfer-demo"), help="results folder base (default: runs/transfer-demo)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("per_class", "pretrain_epochs", "epochs", "batch_size"):  # named as the flags, not the config
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={getattr(args, name)}")
    from keras_resnet import experiments, plots

    common = dict(model=args.model, model_kwargs=experiments.model_args(args.model_arg), quiet=True)
    pretrain = dict(dataset=args.source, epochs=args.pretrain_epochs, seed=0, **common)
    targets = [(f"{way}-seed{seed}", way, dict(dataset=args.target, train_per_class=args.per_class, epochs=args.epochs,
                                               batch_size=args.batch_size, seed=seed, **common, **overrides))
               for way, overrides in WAYS.items() for seed in args.seeds]
    # Every value checked before the first run (init_from: the pretrained run, once it exists).
    experiments.check_runs([pretrain] + [{k: v for k, v in o.items() if k not in WAYS["partial"]}
                                         for _, _, o in targets])
    total = 1 + len(targets)
    with experiments.results_dir(args.out_dir, vars(args)) as out:
        pretrained, _ = experiments.run(out, "pretrain", step=f"1/{total}", **pretrain)
        print(f"pretrained on {args.source}: test accuracy {pretrained['test_accuracy']:.4f}", flush=True)
        accuracies, trainable = {way: [] for way in WAYS}, {}
        for step, (name, way, overrides) in enumerate(targets, start=2):
            init = {"init_from": pretrained["run_dir"]} if way != "scratch" else {}
            metrics, _ = experiments.run(out, name, step=f"{step}/{total}", **overrides, **init)
            accuracies[way].append(metrics["test_accuracy"])
            trainable[way] = metrics["trainable_params"]
            print(f"{name}: test accuracy {metrics['test_accuracy']:.4f}", flush=True)
        rows = [{"way": way, "trainable params": trainable[way], "test accuracy": statistics.mean(values),
                 "std": statistics.pstdev(values), "runs": " ".join(f"{a:.3f}" for a in values)}
                for way, values in accuracies.items()]
        table = experiments.write_table(rows, ["way", "trainable params", "test accuracy", "std", "runs"],
                                        os.path.join(out, "results"),
                                        {"trainable params": "{:,}".format, "test accuracy": "{:.4f}".format,
                                         "std": "{:.4f}".format})
        plots.plot_bars([r["way"] for r in rows], [r["test accuracy"] for r in rows], os.path.join(out, "accuracy.png"),
                        title=f"{args.target}, {args.per_class} labels per class ({args.model} pretrained on "
                              f"{args.source}; mean of {len(args.seeds)} seeds)",
                        ylabel="test accuracy", errors=[r["std"] for r in rows],
                        error_label=f"error bars: standard deviation over {len(args.seeds)} seeds")
    print(table)
    print(f"results in {out}")


if __name__ == "__main__":
    run_cli(main)
