"""Several training runs side by side, for the demonstration scripts (transfer, degradation,
shortcuts): each run is an ordinary `training.train` run directory inside one results folder,
and the results are written as markdown, CSV and PNG.
"""

import contextlib
import csv
import io
import os
import sys

from keras_resnet import config as config_lib, training
from keras_resnet.analysis import markdown_table
from keras_resnet.files import atomic_write, make_folders, remove_created


@contextlib.contextmanager
def results_dir(base):
    """`base`, or `base-2`, `base-3`, ... : the first that does not exist (results are never overwritten).

    If the block fails before any run wrote into it, the folder is removed again.
    """
    candidate, n = base, 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{base}-{n}"
    top = make_folders(candidate)
    try:
        yield candidate
    except BaseException:
        if not os.listdir(candidate):
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
