"""Hyperparameter search with Keras Tuner over models, shortcuts and the training recipe.

    python scripts/tune.py --max-trials 10 --epochs 10                     # random search on digits
    python scripts/tune.py --tuner bayesian --space 'model=["resnet20","resnet56"]' \\
        --space 'learning_rate={"min":0.01,"max":0.5}' --space optimizer=sgd
    python scripts/tune.py --tuner hyperband --epochs 27 --strategy mirrored --dataset tfds:cifar10

Rerunning a command resumes its search from --directory/--project-name (finished trials are kept).
Distributed: start one chief (KERASTUNER_TUNER_ID=chief) and any number of workers (tuner0, tuner1,
...) with the same command and KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT. At the end the
chief's project folder gets trials.csv, trials.md and best_hyperparameters.json, and the best
model is exported as a SavedModel to <export-dir>/<best model>-<dataset>/<version>/ (a rerun that
adds no trial exports nothing new). A search whose trials all failed exits 1 and exports nothing.
"""

import json
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import config as config_lib, tuning  # noqa: E402
from keras_resnet.cli import ArgumentParser, ReportedError, run_cli  # noqa: E402
from keras_resnet.files import check_folder_name, check_writable_folder  # noqa: E402


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--tuner", default="random", choices=tuning.TUNERS, help="search algorithm (default: random)")
    parser.add_argument("--max-trials", type=int, default=10, help="trials to run (random, bayesian; default: 10)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs per trial (hyperband: the most per model; default: 10)")
    parser.add_argument("--directory", default=os.path.join("runs", "tuning"),
                        help="Keras Tuner directory (default: runs/tuning)")
    parser.add_argument("--project-name", help="project folder inside --directory (default: "
                                               "<tuner>-<dataset>-<hash of the search settings>)")
    config_lib.add_dataset_arguments(parser)
    parser.add_argument("--image-size", type=int, help="input size (default: the dataset's)")
    parser.add_argument("--objective", default="val_accuracy",
                        help="metric to optimise: loss, accuracy, top5_accuracy (more than 5 classes) or their val_ "
                             "forms; a name with loss is minimised (default: val_accuracy)")
    parser.add_argument("--strategy", default="auto", choices=config_lib.STRATEGIES,
                        help="distribution strategy of each trial (default: auto)")
    parser.add_argument("--cpu-devices", type=int, default=1,
                        help="logical CPU devices (mirrored without GPUs; default: 1)")
    parser.add_argument("--space", action="append", metavar="KEY=JSON", help="fix or narrow a search space entry")
    parser.add_argument("--space-file", help="JSON file with search space entries")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="builder argument for every trial")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search and the trials (default: 0)")
    parser.add_argument("--export-dir", default="saved_models", help="where the best model is exported "
                                                                     "(default: saved_models)")
    parser.add_argument("--no-export", action="store_true", help="do not export the best model")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def parse_args(argv):
    return build_parser().parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from keras_resnet import distribute, experiments

    space = tuning.parse_space_arguments(args.space, args.space_file)
    tuning.validate_space(space)  # before any data is loaded or trial runs
    # Every other value through the training config's checks (types and ranges): epochs, seed, ...
    base = config_lib.resolve_config({**config_lib.dataset_overrides(args), "image_size": args.image_size,
                                      "epochs": args.epochs, "seed": args.seed, "quiet": args.quiet,
                                      "cpu_devices": args.cpu_devices, "strategy": args.strategy,
                                      "export_dir": args.export_dir, "export": not args.no_export,
                                      "model_kwargs": experiments.model_args(args.model_arg)})
    if args.max_trials < 1:
        raise ValueError(f"max_trials must be a positive integer. Received: max_trials={args.max_trials}")
    check_writable_folder(args.directory, "directory")
    if base.export:
        check_writable_folder(base.export_dir, "export_dir")
    if base.cpu_devices > 1:
        distribute.configure_cpu_devices(base.cpu_devices)
    strategy = distribute.get_strategy(base.strategy)

    from keras_resnet import data, export

    dataset = data.load_dataset(base.dataset, data_dir=base.data_dir, download=base.download,
                                manual_dir=base.manual_dir, image_size=base.image_size, seed=base.seed)
    hypermodel = tuning.ResNetHyperModel(base, dataset, space)
    settings = tuning.search_settings(args.tuner, space, base, args.objective, args.epochs)
    tuning.check_objective(args.objective, dataset.num_classes)
    project = check_folder_name(args.project_name or tuning.default_project_name(settings), "project_name")
    tuning.claim_project(os.path.join(args.directory, project), settings)
    tuner = tuning.make_tuner(args.tuner, hypermodel, objective=args.objective, max_trials=args.max_trials,
                              epochs=args.epochs, directory=args.directory, project_name=project, seed=args.seed,
                              distribution_strategy=strategy)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    worker = "KERASTUNER_ORACLE_IP" in os.environ and tuner_id != "chief"
    done_before = set() if worker else {t.trial_id for t in tuner.oracle.trials.values() if t.status == "COMPLETED"}
    warnings.filterwarnings("ignore", message="All-NaN", category=RuntimeWarning)  # NaN scores of diverged trials
    try:
        tuner.search(verbose=0 if args.quiet else 1)
    except RuntimeError as error:  # Keras Tuner stops after 3 failed trials in a row
        stopped = f"the search stopped: {str(error).splitlines()[0]}"
    else:
        stopped = None
    print(f"{tuner_id} ran {hypermodel.trials_run} trial(s)")
    if worker:
        return  # the chief (the oracle) writes the results
    folder = os.path.join(args.directory, project)
    rows, best = tuning.write_results(tuner, folder)
    print(open(os.path.join(folder, "trials.md")).read())
    print(f"results in {folder}")
    completed = tuning.completed_trials(tuner)
    print(f"{len(rows)} trials ({len(rows) - len(done_before)} new, {len(completed)} completed); "
          f"best hyperparameters: {json.dumps(best) if completed else 'none'}")
    if stopped or not completed:
        raise ReportedError(f"{stopped or f'all {len(rows)} trials failed or diverged (a NaN score)'}; nothing is "
                            f"exported. trials.csv in {folder} lists the trials.")
    if not args.no_export:
        with warnings.catch_warnings():  # the checkpoint holds the trial's optimizer, the fresh model none
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = tuner.load_model(tuning.best_trial(tuner))  # ties: the earliest trial, every run
        name = config_lib.task_name(best["model"], args.dataset)
        before = export.existing_versions(os.path.join(args.export_dir, name))
        path = export.export_saved_model(model, args.export_dir, name=name, class_names=dataset.class_names,
                                         source=folder)
        unchanged = int(os.path.basename(path)) in before
        print(f"best model exported to {path}" + (" (unchanged: this version already holds it)" if unchanged else ""))


if __name__ == "__main__":
    run_cli(main)
