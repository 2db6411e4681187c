"""Several training runs side by side, for the demonstration scripts (transfer, degradation,
shortcuts): each run is an ordinary `training.train` run directory inside one results folder,
and the results are written as markdown, CSV and PNG.
"""

import csv
import io
import os

from keras_resnet import training
from keras_resnet.analysis import markdown_table


def results_dir(base):
    """`base`, or `base-2`, `base-3`, ... : the first that does not exist (results are never overwritten)."""
    candidate, n = base, 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{base}-{n}"
    os.makedirs(candidate)
    return candidate


def run(out_dir, name, **overrides):
    """Train one configuration in `out_dir/name`; returns (metrics, history rows)."""
    config = training.resolve_config({"export": False, **overrides, "run_dir": os.path.join(out_dir, name)})
    metrics = training.train(config)
    with open(os.path.join(config.run_dir, "history.csv")) as f:
        history = list(csv.DictReader(f))
    return metrics, history


def write_table(rows, columns, path_stem, formats=None):
    """`rows` as `path_stem.md` (markdown) and `path_stem.csv`; returns the markdown."""
    table = markdown_table(rows, columns, formats)
    training.atomic_write(f"{path_stem}.md", table + "\n")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    training.atomic_write(f"{path_stem}.csv", out.getvalue())
    return table


def model_args(pairs):
    """`--model-arg key=value` strings -> dict (the training script's parser)."""
    return dict(map(training.parse_model_arg, pairs or []))
