"""Shortcut options A, B and C (Section 3.3, Table 3) at one depth: parameters, multiply-adds
and accuracy in one table, each trained with the same recipe and budget.

    python scripts/shortcuts.py                              # ResNet-20 on digits
    python scripts/shortcuts.py --model resnet32 --dataset tfds:cifar10 --data-dir ~/tensorflow_datasets

A: zero-padding identity shortcuts (no parameters); B: projections where dimensions change;
C: projections everywhere. The results folder (runs/shortcuts[-N]) gets results.md / results.csv.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import analysis, experiments, registry  # noqa: E402
from keras_resnet.cli import run_cli  # noqa: E402

OPTIONS = ("A", "B", "C")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="a registered ResNet (resnet20)")
    parser.add_argument("--dataset", default="digits", help="any dataset of the training script (digits)")
    parser.add_argument("--data-dir", help="TensorFlow Datasets directory")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: the dataset's)")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), help="shortcut options (A B C)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="builder argument for every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=os.path.join("runs", "shortcuts"), help="results folder base")
    args = parser.parse_args(argv)
    if registry.get_entry(args.model).family == "baseline" or args.model.startswith("plain"):
        raise ValueError(f"model must be a residual network (shortcuts). Received: model={args.model!r}")
    bad = [o for o in args.options if o not in OPTIONS]
    if bad:
        raise ValueError(f"options must be among {OPTIONS}. Received: options={args.options}")

    out = experiments.results_dir(args.out_dir)
    rows = []
    for option in args.options:
        kwargs = {**experiments.model_args(args.model_arg), "shortcut": option}
        overrides = dict(model=args.model, model_kwargs=kwargs, dataset=args.dataset, data_dir=args.data_dir,
                         seed=args.seed, quiet=True)
        if args.epochs:
            overrides["epochs"] = args.epochs
        metrics, _ = experiments.run(out, f"option-{option}", **overrides)
        rows.append({"shortcut": option, "params": metrics["trainable_params"], "macs": metrics["macs"],
                     "test accuracy": metrics["test_accuracy"], "test error": 1 - metrics["test_accuracy"]})
        print(f"option {option}: test accuracy {metrics['test_accuracy']:.4f}")
    table = experiments.write_table(rows, ["shortcut", "params", "macs", "test accuracy", "test error"],
                                    os.path.join(out, "results"),
                                    {"params": "{:,}".format, "macs": analysis.format_count,
                                     "test accuracy": "{:.4f}".format, "test error": "{:.2%}".format})
    print(table)
    print(f"results in {out}")


if __name__ == "__main__":
    run_cli(main)
