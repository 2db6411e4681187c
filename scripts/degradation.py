"""The degradation problem (Section 4.1, Figures 4 and 6): plain against residual networks at
two or more depths, one recipe and one budget, as a Figure 6 style plot and a table.

    python scripts/degradation.py                                      # plain/ResNet 20 and 56 on digits
    python scripts/degradation.py --depths 20 32 44 56 --dataset tfds:cifar10 --data-dir ~/tensorflow_datasets

Each run is a training run directory inside the results folder (runs/degradation[-N]), which also
gets degradation.png (training and validation error per epoch) and results.md / results.csv.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import experiments, plots, registry  # noqa: E402
from keras_resnet.cli import run_cli  # noqa: E402

COLUMNS = ["model", "depth", "params", "train error", "validation error", "test error"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56], help="CIFAR depths 6n+2 (20 56)")
    parser.add_argument("--dataset", default="digits", help="any dataset of the training script (digits)")
    parser.add_argument("--data-dir", help="TensorFlow Datasets directory")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: the dataset's)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="builder argument for every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=os.path.join("runs", "degradation"), help="results folder base")
    args = parser.parse_args(argv)
    if len(args.depths) < 2:
        raise ValueError(f"depths needs two or more depths to compare. Received: depths={args.depths}")
    for depth in args.depths:
        registry.get_entry(f"plain{depth}")  # a clear error for a depth without a plain counterpart

    out = experiments.results_dir(args.out_dir)
    common = dict(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed, quiet=True,
                  model_kwargs=experiments.model_args(args.model_arg))
    if args.epochs:
        common["epochs"] = args.epochs
    histories, rows = {}, []
    for depth in args.depths:
        for kind in ("plain", "resnet"):
            name = f"{kind}{depth}"
            metrics, history = experiments.run(out, name, model=name, **common)
            histories[name] = history
            rows.append({"model": name, "depth": depth, "params": metrics["trainable_params"],
                         "train error": 1 - float(history[-1]["accuracy"]),
                         "validation error": 1 - float(history[-1]["val_accuracy"]),
                         "test error": 1 - metrics["test_accuracy"]})
            print(f"{name}: test error {rows[-1]['test error']:.4f}")
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
