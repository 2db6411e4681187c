"""Several training runs side by side, for the demonstration scripts (transfer, degradation,
shortcuts): each run is an ordinary `training.train` run directory inside one results folder,
and the results are written as markdown, CSV and PNG.
"""

import contextlib
import csv
import io
import json
import os
import sys

from keras_resnet import config as config_lib, training
from keras_resnet.analysis import markdown_table
from keras_resnet.files import atomic_write, make_folders, read_json, remove_created, write_json
from keras_resnet.runs import pause_point


@contextlib.contextmanager
def results_dir(base, settings):
    """The results folder of an experiment: `base`, or `base-2`, `base-3`, ...

    Finished results (results.md) are never overwritten: a rerun goes to the next free name. An
    unfinished folder of the same experiment (the same `settings`, recorded in experiment.json) is
    resumed instead: the rerun of a killed command continues it, and `run` skips its finished runs.
    If the block fails before any run wrote into a new folder, the folder is removed again.
    """
    if os.path.exists(base) and not os.path.isdir(base):
        raise NotADirectoryError(f"out_dir must be a folder name, not a file. Received: out_dir={base!r}")
    settings = json.loads(json.dumps(settings))
    candidate, n = base, 1
    while os.path.exists(candidate):
        recorded = os.path.join(candidate, "experiment.json")
        if (os.path.isdir(candidate) and not os.path.exists(os.path.join(candidate, "results.md"))
                and os.path.exists(recorded) and read_json(recorded, advice="delete it") == settings):
            print(f"resuming the unfinished {candidate} (finished runs are kept)", file=sys.stderr, flush=True)
            yield candidate
            return
        n += 1
        candidate = f"{base}-{n}"
    top = make_folders(candidate)
    try:
        write_json(os.path.join(candidate, "experiment.json"), settings)
        yield candidate
    except BaseException:
        if os.listdir(candidate) == ["experiment.json"]:
            remove_created(candidate, top)
        raise


def check_runs(configs):
    """Validate every run's overrides before the first one trains (a bad value fails at once)."""
    return [config_lib.resolve_config({"export": False, **overrides}) for overrides in configs]


def run(out_dir, name, *, step=None, **overrides):
    """Train one configuration in `out_dir/name`; returns (metrics, history rows).

    `step` ("2/4") numbers the run in the progress lines printed on stderr, one per epoch.
    """
    config = config_lib.resolve_config({"export": False, **overrides, "run_dir": os.path.join(out_dir, name)})
    prefix = f"[{step}] {name}" if step else name
    metrics_file = os.path.join(config.run_dir, "metrics.json")
    pause_point(out_dir, f"run:{name}")
    if os.path.exists(metrics_file):  # finished before a kill of the whole experiment
        print(f"{prefix}: finished already ({metrics_file})", file=sys.stderr, flush=True)
        metrics = read_json(metrics_file, advice=f"delete {config.run_dir} to train that run again")
    else:
        print(f"{prefix}: training {config.model} on {config.dataset}, {config.epochs} epochs", file=sys.stderr,
              flush=True)
        metrics = training.train(config, progress=prefix)
    with open(os.path.join(config.run_dir, "history.csv")) as f:
        history = list(csv.DictReader(f))
    return metrics, history


def write_table(rows, columns, path_stem, formats=None):
    """`rows` as `path_stem.md` (markdown) and `path_stem.csv`; returns the markdown."""
    table = markdown_table(rows, columns, formats)
    atomic_write(f"{path_stem}.md", table + "\n")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(f"{path_stem}.csv", out.getvalue())
    return table


def model_args(pairs):
    """`--model-arg key=value` strings -> dict (the training script's parser)."""
    return dict(config_lib.parse_model_arg(pair) for pair in pairs or [])
