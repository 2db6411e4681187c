"""The run directory: the one owner of its lifecycle.

A run directory becomes a run only when `open_run` takes it, after every setting has been
validated, the dataset loaded and the model built: a command that fails before that leaves
nothing behind, and one that fails before its first backup leaves nothing that blocks the
corrected command. Then:

- **Lock.** One process at a time: an exclusive `flock` on `.lock` (released by the kernel when
  the process dies, even by SIGKILL); a second process is refused with the holder's PID.
- **Atomic files.** Every file is written to a unique temporary name, fsync'd and renamed
  (`keras_resnet.files`); temporaries left by a killed process are removed when the lock is taken.
- **Phases.** `state.json` records which of `PHASES` are done: `epochs` (all planned epochs
  trained), `final` (final.keras), `evaluation` (test metrics), `export` (the SavedModel's
  path), `metrics` (metrics.json). A rerun after a kill or a failure at any point resumes the
  first unfinished phase and never trains finished epochs again.
- **Backups.** The weights and optimizer state every N steps and at every epoch end (.keras
  archives), in two generations: if the latest cannot be loaded, the previous one is. They are kept until
  metrics.json is written.
- **Config.** `config.json` is the resolved config. A run that has started training refuses a
  rerun with different settings, except `LATER_PHASE_FIELDS` (export, export_dir, export_name,
  quiet), which only affect later phases and may change.
"""

import contextlib
import fcntl
import glob
import os
import shutil
import time
import warnings

from keras_resnet import config as config_lib
from keras_resnet.files import (
    CorruptFileError,
    atomic_save,
    make_folders,
    read_json,
    remove_created,
    remove_quietly,
    write_json,
)

PHASES = ("epochs", "final", "evaluation", "export", "metrics")
BACKUP = "backup"
PAUSE_ENV = "KERAS_RESNET_PAUSE_AT"


class RunInUseError(ValueError):
    """Another process holds the run directory."""


def _finished(path):
    return os.path.exists(os.path.join(path, "metrics.json"))


def resolve_run_dir(config):
    """The run directory: the given one, or runs/<model>-<dataset>[-N] (the first not finished)."""
    if config.run_dir:
        return config.run_dir
    base = os.path.join("runs", config_lib.task_name(config.model, config.dataset))
    candidate, n = base, 1
    while _finished(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def pause_point(folder, name):
    """Test hook for kills at exact points: with KERAS_RESNET_PAUSE_AT=`name`, write `.paused-<name>`
    in `folder` and wait (a test then sends SIGKILL). Does nothing otherwise."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    marker = os.path.join(folder, f".paused-{name.replace(':', '-')}")
    with open(marker, "w") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.05)


class Run:
    """An opened run directory (see the module doc); use `open_run`."""

    def __init__(self, path):
        self.path = path
        self.created = None  # the topmost folder acquire() created, if any
        self._lock_fd = None

    def file(self, *names):
        return os.path.join(self.path, *names)

    # --- lock ---------------------------------------------------------------------------------

    def acquire(self):
        self.created = make_folders(self.path)
        fd = os.open(self.file(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunInUseError(f"{self.path} is in use by process {holder} (another run holds its lock); wait "
                                f"for it to end or pass another --run-dir. Received: run_dir={self.path!r}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        for stale in glob.glob(self.file(".*.tmp*")) + glob.glob(self.file(BACKUP, ".*.tmp*")):
            remove_quietly(stale)  # left by a killed process: nobody else writes here while we hold the lock

    def release(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock file stays: deleting it would race with a waiting process
            self._lock_fd = None

    # --- phases -------------------------------------------------------------------------------

    @property
    def state(self):
        path = self.file("state.json")
        if not os.path.exists(path):
            return {"phases": {}}
        return read_json(path, advice=f"delete it and rerun (finished phases are then redone from the backup in "
                                      f"{self.file(BACKUP)})")

    def done(self, phase):
        return phase in self.state["phases"]

    def info(self, phase):
        return self.state["phases"].get(phase)

    def complete(self, phase, info=True):
        assert phase in PHASES, phase
        state = self.state
        state["phases"][phase] = info
        write_json(self.file("state.json"), state)

    @property
    def started(self):
        """True once training has saved anything: from then on the config is fixed."""
        return (os.path.exists(self.file(BACKUP, "state.json")) or os.path.exists(self.file("history.csv"))
                or bool(self.state["phases"]))

    @property
    def finished(self):
        return _finished(self.path)

    # --- config -------------------------------------------------------------------------------

    def adopt_config(self, config):
        """Write config.json, or check it against a started run's (only later-phase fields may change)."""
        import dataclasses
        import json

        path = self.file("config.json")
        resolved = dataclasses.asdict(config)
        if self.finished:
            raise FileExistsError(f"{self.path} holds a finished run; pass another --run-dir. "
                                  f"Received: run_dir={self.path!r}")
        if os.path.exists(path) and self.started:
            previous = read_json(path, advice="restore it, or pass another --run-dir")
            ignored = config_lib.LATER_PHASE_FIELDS + config_lib.LOCATION_FIELDS
            changed = sorted(k for k, v in resolved.items()
                             if k not in ignored and previous.get(k) != json.loads(json.dumps(v)))
            if changed:
                raise ValueError(
                    f"{self.path} holds a started run with a different config ({', '.join(changed)}); rerun with the "
                    f"same settings to resume it (only {', '.join(config_lib.LATER_PHASE_FIELDS)} may change), or pass "
                    f"another --run-dir."
                )
        write_json(path, resolved)

    # --- files --------------------------------------------------------------------------------

    def save_model(self, name, model):
        """model.save to `name` in the run directory, atomically."""
        return atomic_save(self.file(name), model.save)

    def read_json(self, name, advice):
        return read_json(self.file(name), advice=advice)

    # --- backups ------------------------------------------------------------------------------

    def _backup_state(self):
        path = self.file(BACKUP, "state.json")
        if not os.path.exists(path):
            return None
        return read_json(path, advice=f"delete {self.file(BACKUP)} to restart training from epoch 1 "
                                      "(history and best.keras are kept)")

    def backup_epoch(self):
        """Completed epochs according to the latest backup (0 without one)."""
        state = self._backup_state()
        return state["latest"]["epoch"] if state else 0

    def save_backup(self, model, epoch, batch):
        """Weights and optimizer state after `epoch` completed epochs (and `batch` batches of the next)."""
        folder = self.file(BACKUP)
        os.makedirs(folder, exist_ok=True)
        state = self._backup_state() or {"counter": 0, "latest": None}
        counter = state["counter"] + 1
        # A .keras archive, not .weights.h5: Keras builds its HDF5 part in memory and Python's zipfile writes
        # it, so a full disk is a clean OSError; HDF5 writing to a full disk itself corrupted its library
        # state, and the process crashed at exit (exit 139). load_weights reads both, optimizer included.
        name = f"weights-{counter}.keras"
        atomic_save(os.path.join(folder, name), model.save)
        new = {"counter": counter, "latest": {"file": name, "epoch": epoch, "batch": batch},
               "previous": state["latest"]}
        write_json(os.path.join(folder, "state.json"), new)
        keep = {"state.json", name, (state["latest"] or {}).get("file")}
        for old in os.listdir(folder):
            if old not in keep and not old.startswith("."):
                remove_quietly(os.path.join(folder, old))

    def restore_backup(self, model):
        """Load the latest loadable backup into `model`; returns its completed epochs (0 without one).

        A backup that does not load (truncated, corrupt) is reported and the previous one used; if
        none loads, a `CorruptFileError` names the files and says what to do.
        """
        state = self._backup_state()
        if not state:
            return 0
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        failures = []
        for key in ("latest", "previous"):
            entry = state.get(key)
            if not entry:
                continue
            path = self.file(BACKUP, entry["file"])
            try:
                model.load_weights(path)
            except Exception as error:  # h5py raises OSError, RuntimeError or KeyError for damaged files
                failures.append(f"{path} ({' '.join(str(error).split())[:200]})")
                continue
            if failures:
                warnings.warn(f"Backup {failures[0]} could not be loaded; resumed from the previous backup "
                              f"(epoch {entry['epoch']}).", stacklevel=2)
            return entry["epoch"]
        raise CorruptFileError(
            f"No backup in {self.file(BACKUP)} can be loaded: {'; '.join(failures)}. Delete {self.file(BACKUP)} "
            "to restart training from epoch 1 (history and best.keras are kept)."
        )

    def clear_backup(self):
        shutil.rmtree(self.file(BACKUP), ignore_errors=True)


@contextlib.contextmanager
def open_run(path, config):
    """Lock `path` and adopt `config` (see the module doc); yields the `Run`.

    If the block fails before training saved anything, a directory this call created is removed
    again, so the corrected command starts cleanly.
    """
    run = Run(path)
    run.acquire()
    try:
        run.adopt_config(config)
        yield run
    except BaseException:
        if run.created and not run.started:
            run.release()
            remove_created(path, run.created)
        raise
    finally:
        run.release()
