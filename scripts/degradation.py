"""The degradation problem (Section 4.1, Figures 4 and 6): plain against residual networks at
two or more depths, one recipe and one budget, as a Figure 6 style plot and a table.

    python scripts/degradation.py                                      # plain/ResNet 20 and 56 on digits
    python scripts/degradation.py --depths 20 32 44 56 --dataset tfds:cifar10 --data-dir ~/tensorflow_datasets

Each run is a training run directory inside the results folder (runs/degradation[-N]), which also
gets degradation.png (training and validation error per epoch) and results.md / results.csv.
Progress: one line per epoch of each run on stderr.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import config as config_lib, registry  # noqa: E402
from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402

COLUMNS = ["model", "depth", "params", "train error", "validation error", "test error"]


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56],
                        help="CIFAR depths 6n+2 with a plain counterpart: "
                             f"{', '.join(map(str, registry.PLAIN_CIFAR_DEPTHS))} (default: 20 56)")
    config_lib.add_dataset_arguments(parser)
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: the dataset's: 30 on digits)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="builder argument for every run")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    parser.add_argument("--out-dir", default=os.path.join("runs", "degradation"), help="results folder base (default: runs/degradation)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    bad = [d for d in args.depths if d not in registry.PLAIN_CIFAR_DEPTHS]
    if len(args.depths) < 2 or bad:
        raise ValueError(f"depths needs two or more CIFAR depths of the form 6n+2 that have a plain counterpart "
                         f"({', '.join(map(str, registry.PLAIN_CIFAR_DEPTHS))}). Received: depths={args.depths}")
    from keras_resnet import experiments, plots

    common = dict(seed=args.seed, model_kwargs=experiments.model_args(args.model_arg), quiet=True,
                  **config_lib.dataset_overrides(args))
    if args.epochs is not None:
        common["epochs"] = args.epochs
    runs = [(f"{kind}{depth}", depth) for depth in args.depths for kind in ("plain", "resnet")]
    experiments.check_runs([{**common, "model": name} for name, _ in runs])  # every value, before any training

    histories, rows = {}, []
    with experiments.results_dir(args.out_dir, vars(args)) as out:
        for step, (name, depth) in enumerate(runs, start=1):
            metrics, history = experiments.run(out, name, step=f"{step}/{len(runs)}", model=name, **common)
            histories[name] = history
            rows.append({"model": name, "depth": depth, "params": metrics["trainable_params"],
                         "train error": 1 - float(history[-1]["accuracy"]),
                         "validation error": 1 - float(history[-1]["val_accuracy"]),
                         "test error": 1 - metrics["test_accuracy"]})
            print(f"{name}: test error {rows[-1]['test error']:.4f}", flush=True)
        percent = "{:.2%}".format
        table = experiments.write_table(rows, COLUMNS, os.path.join(out, "results"),
                                        {"params": "{:,}".format, "train error": percent,
                                         "validation error": percent, "test error": percent})
        plots.plot_degradation(histories, os.path.join(out, "degradation.png"),
                               title=f"Plain vs residual on {args.dataset}, {len(history)} epochs")
    print(table)
    print(f"results in {out}")


if __name__ == "__main__":
    run_cli(main)
