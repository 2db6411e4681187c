"""The callback that records a training run in its run directory: history, best checkpoint, backups.

One callback owns the order, because the order is what makes a kill harmless. At every epoch end:

1. the epoch's row in history.csv (and curves.png),
2. best.keras / best.json when the monitored value improved (never for a non-finite loss),
3. the backup, which is what marks the epoch done.

A kill before step 3 makes the rerun redo that epoch from the previous backup (a step backup
inside it, or the previous epoch end), replacing its history row; a kill after step 3 resumes
at the next epoch. Either way every epoch's row is in history.csv exactly once. Step backups
(every `backup_every_steps` batches) bound the work a kill inside an epoch loses; Keras then
restarts that epoch from its first batch with the backed-up weights.
"""

import csv
import io
import json
import math
import os
import sys
import time

import keras

from keras_resnet import plots
from keras_resnet.files import CorruptFileError, atomic_write
from keras_resnet.runs import pause_point


def _finite(logs, key="loss"):
    value = (logs or {}).get(key)
    return value is not None and math.isfinite(float(value))


def read_history(path):
    """The rows of a history.csv (epoch as int, the rest as floats); a named error for a damaged file."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({k: int(v) if k == "epoch" else float(v) for k, v in row.items() if v not in (None, "")})
            except (TypeError, ValueError):
                raise CorruptFileError(f"{path} line {line} is not a history row ({row}); delete that line (the epoch "
                                       "is then missing from the history) or the file.") from None
    if rows and any("epoch" not in r for r in rows):
        raise CorruptFileError(f"{path} has rows without an epoch; delete the file.")
    return rows


class RunRecorder(keras.callbacks.Callback):
    """Restores a run at train begin and records it at every step interval and epoch end (module doc)."""

    def __init__(self, run, backup_every_steps=50, monitor="val_accuracy", title=None, verbose=True):
        super().__init__()
        self.run = run
        self.every = backup_every_steps
        self.monitor = monitor
        self.title = title
        self.verbose = verbose
        self.rows = []
        self.best = -math.inf
        self.epoch = 0
        self._steps = 0

    # --- start: restore ---------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        done = self.run.restore_backup(self.model)
        self.model._initial_epoch = done  # read by fit: continue after the backed-up epochs
        history = self.run.file("history.csv")
        if os.path.exists(history):
            self.rows = [r for r in read_history(history) if r["epoch"] <= done]
        if os.path.exists(self.run.file("best.json")):
            info = self.run.read_json("best.json", advice="delete best.json (the next improving epoch writes a new "
                                                          "best.keras)")
            self.best = float(info.get(self.monitor, -math.inf))
        if done:  # said even with --quiet: not a fresh start
            print(f"Resuming from the backup: {done} epoch(s) done, continuing at epoch {done + 1}.")

    # --- steps: backups ---------------------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self.every and self._steps % self.every == 0 and _finite(logs):
            self.run.save_backup(self.model, epoch=self.epoch, batch=batch)

    # --- epoch end: history, best, backup (in this order) -----------------------------------------

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        number = epoch + 1
        self._write_history_row(number, logs)
        pause_point(self.run.path, f"history:{number}")
        self._update_best(number, logs)
        pause_point(self.run.path, f"best:{number}")
        if _finite(logs):  # a diverged epoch never overwrites the last good backup
            self.run.save_backup(self.model, epoch=number, batch=-1)
        pause_point(self.run.path, f"backup:{number}")

    def _write_history_row(self, number, logs):
        row = {"epoch": number, **{k: float(v) for k, v in logs.items()}}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.rows = [r for r in self.rows if r["epoch"] < number] + [row]
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.run.file("history.csv"), out.getvalue())
        plots.plot_history(self.rows, self.run.file("curves.png"), self.title)

    def _update_best(self, number, logs):
        value = logs.get(self.monitor)
        if value is None or not _finite(logs) or not math.isfinite(value) or value <= self.best:
            return
        self.best = float(value)
        self.run.save_model("best.keras", self.model)
        atomic_write(self.run.file("best.json"), json.dumps({"epoch": number, self.monitor: self.best}) + "\n")


class EpochLine(keras.callbacks.Callback):
    """One progress line per epoch on stderr, `prefix` first: for scripts that run many trainings."""

    def __init__(self, prefix, keys=("loss", "accuracy", "val_loss", "val_accuracy")):
        super().__init__()
        self.prefix = prefix
        self.keys = keys

    def on_train_begin(self, logs=None):
        self.total = self.params.get("epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        values = ", ".join(f"{k} {float(logs[k]):.4f}" for k in self.keys if k in (logs or {}))
        print(f"{self.prefix} epoch {epoch + 1}/{self.total}: {values} ({time.time() - self.start:.1f} s)",
              file=sys.stderr, flush=True)
