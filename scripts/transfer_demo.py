"""Offline transfer-learning demonstration on the digits: pretrain, then transfer with few labels.

    python scripts/transfer_demo.py                       # ResNet-20, 5 labels per class, 3 seeds, about 4 minutes
    python scripts/transfer_demo.py --per-class 20 --epochs 40

ResNet-20 is pretrained on digits 0-4, then trained on digits 5-9 with only --per-class training
images per class, four ways: from scratch, and from the pretrained weights in each transfer mode
(full, partial from the last stage, head only), each with --seeds (few-label runs are noisy: the
table gives the mean and spread). All runs use one recipe and budget. The results folder
(runs/transfer-demo[-N]) gets the run directories, results.md / results.csv (test accuracy and
trainable parameters per way) and accuracy.png.
"""

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import experiments, plots  # noqa: E402
from keras_resnet.cli import run_cli  # noqa: E402

WAYS = {  # name: the transfer overrides
    "scratch": {},
    "full": {"transfer_mode": "full"},
    "partial": {"transfer_mode": "partial", "trainable_from": "stage4"},
    "head": {"transfer_mode": "head"},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="a CIFAR-family model (resnet20)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="extra builder argument")
    parser.add_argument("--source", default="digits:0-4", help="pretraining classes (digits:0-4)")
    parser.add_argument("--target", default="digits:5-9", help="transfer classes (digits:5-9)")
    parser.add_argument("--per-class", type=int, default=5, help="training images per target class (5)")
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="epochs on the source classes (30)")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of every target run (40)")
    parser.add_argument("--batch-size", type=int, default=10, help="batch size of the target runs (10)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the target runs (0 1 2)")
    parser.add_argument("--out-dir", default=os.path.join("runs", "transfer-demo"), help="results folder base")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        raise ValueError(f"per_class must be positive. Received: per_class={args.per_class}")

    out = experiments.results_dir(args.out_dir)
    common = dict(model=args.model, model_kwargs=experiments.model_args(args.model_arg), seed=0, quiet=True)
    pretrained, _ = experiments.run(out, "pretrain", dataset=args.source, epochs=args.pretrain_epochs, **common)
    print(f"pretrained on {args.source}: test accuracy {pretrained['test_accuracy']:.4f}")
    rows = []
    for way, overrides in WAYS.items():
        init = {"init_from": pretrained["run_dir"]} if overrides else {}
        accuracies = []
        for seed in args.seeds:
            metrics, _ = experiments.run(out, f"{way}-seed{seed}", dataset=args.target, train_per_class=args.per_class,
                                         epochs=args.epochs, batch_size=args.batch_size,
                                         **{**common, "seed": seed}, **init, **overrides)
            accuracies.append(metrics["test_accuracy"])
        rows.append({"way": way, "trainable params": metrics["trainable_params"],
                     "test accuracy": statistics.mean(accuracies),
                     "std": statistics.pstdev(accuracies), "runs": " ".join(f"{a:.3f}" for a in accuracies)})
        print(f"{way}: test accuracy {rows[-1]['test accuracy']:.4f} (seeds {args.seeds}: {rows[-1]['runs']})")
    table = experiments.write_table(rows, ["way", "trainable params", "test accuracy", "std", "runs"],
                                    os.path.join(out, "results"),
                                    {"trainable params": "{:,}".format, "test accuracy": "{:.4f}".format,
                                     "std": "{:.4f}".format})
    plots.plot_bars([r["way"] for r in rows], [r["test accuracy"] for r in rows], os.path.join(out, "accuracy.png"),
                    title=f"{args.target}, {args.per_class} labels per class ({args.model} pretrained on "
                          f"{args.source}; mean of {len(args.seeds)} seeds)",
                    ylabel="test accuracy", errors=[r["std"] for r in rows])
    print(table)
    print(f"results in {out}")


if __name__ == "__main__":
    run_cli(main)
