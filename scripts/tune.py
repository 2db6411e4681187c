"""Hyperparameter search with Keras Tuner over models, shortcuts and the training recipe.

    python scripts/tune.py --max-trials 10 --epochs 10                     # random search on digits
    python scripts/tune.py --tuner bayesian --space 'model=["resnet20","resnet56"]' \\
        --space 'learning_rate={"min":0.01,"max":0.5}' --space optimizer=sgd
    python scripts/tune.py --tuner hyperband --epochs 27 --strategy mirrored --dataset tfds:cifar10

Rerunning a command resumes its search from --directory/--project-name (finished trials are kept).
Distributed: start one chief (KERASTUNER_TUNER_ID=chief) and any number of workers (tuner0, tuner1,
...) with the same command and KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT. At the end the
chief's project folder gets trials.csv, trials.md and best_hyperparameters.json, and the best
model is exported as a SavedModel.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet.cli import run_cli  # noqa: E402


def parse_args(argv):
    from keras_resnet import tuning

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tuner", default="random", choices=tuning.TUNERS, help="search algorithm (random)")
    parser.add_argument("--max-trials", type=int, default=10, help="trials to run (random, bayesian)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (hyperband: the most per model)")
    parser.add_argument("--directory", default=os.path.join("runs", "tuning"), help="Keras Tuner directory")
    parser.add_argument("--project-name", help="project folder inside --directory (default: resnet-<dataset>)")
    parser.add_argument("--dataset", default="digits", help="any dataset of the training script (digits)")
    parser.add_argument("--data-dir", help="TensorFlow Datasets directory")
    parser.add_argument("--image-size", type=int, help="input size (default: the dataset's)")
    parser.add_argument("--objective", default="val_accuracy", help="metric to optimise (val_accuracy; *loss: min)")
    parser.add_argument("--strategy", default="auto", help="distribution strategy of each trial (auto|mirrored|...)")
    parser.add_argument("--cpu-devices", type=int, default=1, help="logical CPU devices (mirrored without GPUs)")
    parser.add_argument("--space", action="append", metavar="KEY=JSON", help="fix or narrow a search space entry")
    parser.add_argument("--space-file", help="JSON file with search space entries")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="builder argument for every trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-dir", default="saved_models", help="where the best model is exported")
    parser.add_argument("--no-export", action="store_true", help="do not export the best model")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from keras_resnet import distribute, experiments, tuning  # after the flags: --help stays fast

    if args.cpu_devices > 1:
        distribute.configure_cpu_devices(args.cpu_devices)
    space = tuning.parse_space_arguments(args.space, args.space_file)
    tuning.validate_space(space)  # before any data is loaded or trial runs
    if args.epochs < 1:
        raise ValueError(f"epochs must be a positive integer. Received: epochs={args.epochs}")
    strategy = distribute.get_strategy(args.strategy)

    from keras_resnet import data, export, training

    base = training.resolve_config({"dataset": args.dataset, "data_dir": args.data_dir, "image_size": args.image_size,
                                    "epochs": args.epochs, "seed": args.seed, "quiet": args.quiet,
                                    "model_kwargs": experiments.model_args(args.model_arg)})
    dataset = data.load_dataset(base.dataset, data_dir=base.data_dir, image_size=base.image_size, seed=base.seed)
    hypermodel = tuning.ResNetHyperModel(base, dataset, space)
    project = args.project_name or f"resnet-{args.dataset.replace(':', '-').replace('/', '_')}"
    tuner = tuning.make_tuner(args.tuner, hypermodel, objective=args.objective, max_trials=args.max_trials,
                              epochs=args.epochs, directory=args.directory, project_name=project, seed=args.seed,
                              distribution_strategy=strategy)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    worker = "KERASTUNER_ORACLE_IP" in os.environ and tuner_id != "chief"
    done_before = set() if worker else {t.trial_id for t in tuner.oracle.trials.values() if t.status == "COMPLETED"}
    tuner.search(verbose=0 if args.quiet else 1)
    print(f"{tuner_id} ran {hypermodel.trials_run} trial(s)")
    if worker:
        return  # the chief (the oracle) writes the results
    folder = os.path.join(args.directory, project)
    rows, best = tuning.write_results(tuner, folder)
    print(open(os.path.join(folder, "trials.md")).read())
    print(f"{len(rows)} trials ({len(rows) - len(done_before)} new); best hyperparameters: {json.dumps(best)}")
    if not args.no_export and best:
        model = tuner.get_best_models(1)[0]
        path = export.export_saved_model(model, args.export_dir, name=best["model"], class_names=dataset.class_names)
        print(f"best model exported to {path}")
    print(f"results in {folder}")


if __name__ == "__main__":
    run_cli(main)
