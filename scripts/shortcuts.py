"""Shortcut options A, B and C (Section 3.3, Table 3) at one depth: parameters, multiply-adds
and accuracy in one table, each trained with the same recipe and budget.

    python scripts/shortcuts.py                              # ResNet-20 on digits
    python scripts/shortcuts.py --model resnet32 --dataset tfds:cifar10 --data-dir ~/tensorflow_datasets

A: zero-padding identity shortcuts (no parameters); B: projections where dimensions change;
C: projections everywhere. The results folder (runs/shortcuts[-N]) gets results.md / results.csv.
Progress: one line per epoch of each run on stderr.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import config as config_lib, registry  # noqa: E402
from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402

OPTIONS = ("A", "B", "C")


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet20", help="a registered ResNet (default: resnet20)")
    config_lib.add_dataset_arguments(parser)
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: the dataset's: 30 on digits)")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), help="shortcut options (default: A B C)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="builder argument for every run")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    parser.add_argument("--out-dir", default=os.path.join("runs", "shortcuts"), help="results folder base (default: runs/shortcuts)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if registry.get_entry(args.model).family == "baseline" or args.model.startswith("plain"):
        raise ValueError(f"model must be a residual network (shortcuts). Received: model={args.model!r}")
    bad = [o for o in args.options if o not in OPTIONS]
    if bad or len(set(args.options)) != len(args.options):
        raise ValueError(f"options must be distinct among {OPTIONS}. Received: options={args.options}")
    from keras_resnet import analysis, experiments

    runs = []
    for option in args.options:
        overrides = dict(model=args.model, model_kwargs={**experiments.model_args(args.model_arg), "shortcut": option},
                         seed=args.seed, quiet=True, **config_lib.dataset_overrides(args))
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        runs.append((option, overrides))
    experiments.check_runs([overrides for _, overrides in runs])  # every value, before any training

    rows = []
    with experiments.results_dir(args.out_dir, vars(args)) as out:
        for step, (option, overrides) in enumerate(runs, start=1):
            metrics, _ = experiments.run(out, f"option-{option}", step=f"{step}/{len(runs)}", **overrides)
            rows.append({"shortcut": option, "params": metrics["trainable_params"], "macs": metrics["macs"],
                         "test accuracy": metrics["test_accuracy"], "test error": 1 - metrics["test_accuracy"]})
            print(f"option {option}: test accuracy {metrics['test_accuracy']:.4f}", flush=True)
        table = experiments.write_table(rows, ["shortcut", "params", "macs", "test accuracy", "test error"],
                                        os.path.join(out, "results"),
                                        {"params": "{:,}".format, "macs": analysis.format_count,
                                         "test accuracy": "{:.4f}".format, "test error": "{:.2%}".format})
    print(table)
    print(f"results in {out}")


if __name__ == "__main__":
    run_cli(main)
