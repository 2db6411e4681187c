"""The run directory's lifecycle: kills at every point, the lock, failed starts, damaged state, full disks.

Kills are SIGKILLs at named points (KERAS_RESNET_PAUSE_AT makes the script pause there and write a
marker file; the test kills it when the file appears), never timed with sleeps.
"""

import json
import os
import shutil
import subprocess

import keras
import numpy as np
import pytest
from conftest import TINY_ARGS, kill_at, no_traceback, run_main, script, start_script

from keras_resnet import callbacks, config, runs, training
from keras_resnet.files import CorruptFileError

ARGS = [*TINY_ARGS, "--epochs", 5, "--batch-size", 32, "--backup-every-steps", 5, "--quiet"]


def history(run_dir):
    return callbacks.read_history(os.path.join(run_dir, "history.csv"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_kills_at_every_step_lose_nothing_and_redo_nothing_finished(tmp_path):
    """SIGKILL after each epoch-end step (history row, best checkpoint, backup) and in each later phase
    (final model, evaluation, export, metrics): every epoch's history row exactly once, finished epochs
    never trained again, one export, and the export folder may change before the export phase."""
    run = str(tmp_path / "run")
    args = [*ARGS, "--run-dir", run]
    ex1, ex2 = str(tmp_path / "ex1"), str(tmp_path / "ex2")

    kill_at("history:2", run, "train.py", *args, "--export-dir", ex1)
    assert [r["epoch"] for r in history(run)] == [1, 2]  # row 2 written, its backup not
    first_row = history(run)[0]
    output = kill_at("best:3", run, "train.py", *args, "--export-dir", ex1)
    assert "Resuming from the backup: 1 epoch(s) done, continuing at epoch 2." in output
    assert [r["epoch"] for r in history(run)] == [1, 2, 3] and history(run)[0] == first_row
    output = kill_at("backup:4", run, "train.py", *args, "--export-dir", ex1)
    assert "Resuming from the backup: 2 epoch(s) done, continuing at epoch 3." in output
    output = kill_at("phase:final", run, "train.py", *args, "--export-dir", ex1)
    assert "Resuming from the backup: 4 epoch(s) done, continuing at epoch 5." in output
    rows = read(os.path.join(run, "history.csv"))
    assert [r["epoch"] for r in history(run)] == [1, 2, 3, 4, 5]

    # After the last epoch: nothing is trained again, whatever is killed.
    (tmp_path / "run" / ".final.keras.stale.tmp.keras").write_bytes(b"half a file from a killed writer")
    output = kill_at("phase:export", run, "train.py", *args, "--export-dir", ex1)
    assert "Resuming" not in output and "Epoch" not in output
    assert os.path.exists(os.path.join(run, "final.keras")) and not os.path.exists(ex1)
    output = kill_at("phase:metrics", run, "train.py", *args, "--export-dir", ex2)  # a later-phase setting changed
    assert "Resuming" not in output
    done = script("train.py", *args, "--export-dir", ex2)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert read(os.path.join(run, "history.csv")) == rows  # the epochs were not trained again
    assert [r["epoch"] for r in history(run)] == [1, 2, 3, 4, 5]
    assert os.listdir(os.path.join(ex2, "resnet8-digits")) == ["1"] and not os.path.exists(ex1)
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["export"] == os.path.join(ex2, "resnet8-digits", "1") and metrics["history_rows"] == 5
    state = json.load(open(os.path.join(run, "state.json")))
    assert list(state["phases"]) == list(runs.PHASES)
    left = sorted(os.listdir(run))
    assert "backup" not in left and not [name for name in left if ".tmp" in name]  # kept until metrics.json
    keras.saving.load_model(os.path.join(run, "final.keras"), safe_mode=True)


def test_a_second_process_on_the_run_is_refused_with_the_holders_pid(tmp_path):
    run = str(tmp_path / "run")
    args = [*ARGS, "--epochs", 1, "--run-dir", run, "--no-export"]
    first = start_script("train.py", *args, env={"KERAS_RESNET_PAUSE_AT": "phase:final"})
    try:
        while not os.path.exists(os.path.join(run, ".paused-phase-final")):
            assert first.poll() is None, first.stdout.read()[-2000:]
        second = script("train.py", *args)
        line = no_traceback(second)
        assert f"is in use by process {first.pid}" in line and f"Received: run_dir='{run}'" in line
    finally:
        first.kill()
        first.wait()
    assert script("train.py", *args).returncode == 0  # the kernel released the lock with the process


def test_a_command_that_fails_validation_leaves_no_run_directory(tmp_path):
    bad = run_main("train.py", *TINY_ARGS, "--batch-size", 5000, "--quiet", cwd=tmp_path)
    assert "batch_size must not exceed the 1257 training images. Received: batch_size=5000" in no_traceback(bad)
    bad = run_main("train.py", *TINY_ARGS, "--init-from", "missing.keras", "--quiet", cwd=tmp_path)
    assert "init_from='missing.keras'" in no_traceback(bad)
    assert not os.path.exists(tmp_path / "runs") and not os.path.exists(tmp_path / "saved_models")
    good = run_main("train.py", *TINY_ARGS, "--epochs", 1, "--quiet", cwd=tmp_path)
    assert good.returncode == 0, good.stderr[-2000:]
    assert os.path.exists(tmp_path / "runs" / "resnet8-digits" / "metrics.json")


def _interrupted_run(tmp_path, monkeypatch, at="history:2", **overrides):
    """An unfinished run: training is interrupted in-process at `at` (a started run with a backup)."""
    def interrupt(folder, name):
        if name == at:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks, "pause_point", interrupt)
    values = dict(model="resnet8", model_kwargs={"width": 4}, epochs=3, batch_size=32, quiet=True, export=False,
                  run_dir=str(tmp_path / "run"), backup_every_steps=5)
    values.update(overrides)
    with pytest.raises(KeyboardInterrupt):
        training.train(config.resolve_config(values))
    monkeypatch.undo()
    return values


def test_only_later_phase_settings_may_change_on_a_rerun(tmp_path, monkeypatch):
    values = _interrupted_run(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=r"started run with a different config \(epochs, learning_rate\)"):
        training.train(config.resolve_config({**values, "epochs": 4, "learning_rate": 0.05}))
    metrics = training.train(config.resolve_config({**values, "export": True, "export_dir": str(tmp_path / "ex"),
                                                    "export_name": "digits-model"}))
    assert metrics["export"] == str(tmp_path / "ex" / "digits-model" / "1")


def test_a_run_that_never_started_takes_the_new_settings(tmp_path):
    path = str(tmp_path / "run")
    first = config.resolve_config({"epochs": 2, "run_dir": path})
    run = runs.Run(path)
    run.acquire()
    run.adopt_config(first)  # then the process died before training saved anything
    run.release()
    second = config.resolve_config({"epochs": 5, "run_dir": path})
    with runs.open_run(path, second) as opened:
        assert not opened.started
    assert json.load(open(os.path.join(path, "config.json")))["epochs"] == 5


def test_a_damaged_backup_falls_back_to_the_previous_one(tmp_path, monkeypatch):
    values = _interrupted_run(tmp_path, monkeypatch, at="backup:2")
    backup = tmp_path / "run" / "backup"
    state = json.loads((backup / "state.json").read_text())
    assert (state["latest"]["epoch"], state["previous"]["epoch"]) == (2, 1)  # an epoch end, a step in epoch 2
    latest = backup / state["latest"]["file"]
    latest.write_bytes(latest.read_bytes()[:2000])  # truncated, as by a crash of the disk
    with pytest.warns(UserWarning, match="could not be loaded; resumed from the previous backup \\(epoch 1\\)"):
        metrics = training.train(config.resolve_config(values))
    assert [r["epoch"] for r in history(str(tmp_path / "run"))] == [1, 2, 3]
    assert metrics["epochs_this_run"] == 2


def test_no_loadable_backup_is_one_clear_error(tmp_path, monkeypatch):
    values = _interrupted_run(tmp_path, monkeypatch, at="backup:2")
    backup = tmp_path / "run" / "backup"
    for name in os.listdir(backup):
        if name.endswith(".keras"):
            (backup / name).write_bytes(b"\x89HDF\r\n\x1a\n broken")
    with pytest.raises(CorruptFileError, match=r"No backup in .*backup can be loaded: .*weights-\d+.keras.*Delete"):
        training.train(config.resolve_config(values))


@pytest.mark.parametrize("name, content, match", [
    ("state.json", '{"phases": {"epo', r"state.json is not valid JSON"),
    ("config.json", "{", r"config.json is not valid JSON"),
    ("best.json", '{"epoch": 1, "val_acc', r"best.json is not valid JSON"),
    ("backup/state.json", "", r"backup/state.json is not valid JSON"),
    ("history.csv", "epoch,loss\n1,0.5\ngarbage,row\n", r"history.csv line 3 is not a history row"),
])
def test_damaged_state_files_are_named(tmp_path, monkeypatch, name, content, match):
    values = _interrupted_run(tmp_path, monkeypatch, at="backup:1")
    (tmp_path / "run" / name).write_text(content)
    with pytest.raises(CorruptFileError, match=match):
        training.train(config.resolve_config(values))


def test_damaged_state_is_one_line_from_the_script(tmp_path, monkeypatch):
    values = _interrupted_run(tmp_path, monkeypatch, at="backup:1")
    (tmp_path / "run" / "state.json").write_text("{")
    result = script("train.py", "--config", tmp_path / "run" / "config.json")
    assert f"{tmp_path / 'run' / 'state.json'} is not valid JSON" in no_traceback(result)
    assert values["epochs"] == 3


def _mount_tmpfs(folder, size):
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root (mount -t tmpfs)")
    os.makedirs(folder)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")


def test_a_full_disk_is_one_line_and_keeps_the_previous_backup(tmp_path):
    disk = str(tmp_path / "disk")
    _mount_tmpfs(disk, "400k")  # room for the config, logs and two backups of this model, not a third
    try:
        result = script("train.py", *ARGS, "--epochs", 30, "--run-dir", os.path.join(disk, "run"), "--no-export")
        line = no_traceback(result, code=1)  # not a crash (exit 139), not a traceback
        assert "No space left on device" in line and len(line) < 300
        backup = os.path.join(disk, "run", "backup")
        state = json.load(open(os.path.join(backup, "state.json")))
        names = sorted(os.listdir(backup))
        assert names == sorted(["state.json", state["latest"]["file"], state["previous"]["file"]])  # no temporary
        restored = runs.Run(os.path.join(disk, "run"))
        net = training.registry.get_model("resnet8", width=4, input_shape=(8, 8, 1))
        training.compile_model(net, config.resolve_config({"model": "resnet8"}), 39, 10)  # as the run compiled it
        assert restored.restore_backup(net) == state["latest"]["epoch"]
        assert all(np.all(np.isfinite(w)) for w in net.get_weights())
    finally:
        subprocess.run(["umount", disk])


def test_experiment_scripts_refuse_zero_epochs_and_leave_nothing(tmp_path):
    for name in ("degradation.py", "shortcuts.py"):
        result = run_main(name, "--epochs", 0, cwd=tmp_path)
        assert "epochs must be a positive integer. Received: epochs=0" in no_traceback(result)
    result = run_main("degradation.py", "--depths", 20, 21, cwd=tmp_path)
    assert "6n+2" in no_traceback(result) and "Received: depths=[20, 21]" in result.stderr
    result = run_main("degradation.py", "--dataset", "tfds:cifar10", "--data-dir", tmp_path / "tfds", cwd=tmp_path)
    assert "is not prepared" in no_traceback(result) and "--download" in result.stderr
    assert not os.path.exists(tmp_path / "runs")


def test_a_moved_run_directory_resumes_where_it_is(tmp_path, monkeypatch):
    values = _interrupted_run(tmp_path, monkeypatch, at="backup:2")
    shutil.move(str(tmp_path / "run"), str(tmp_path / "moved"))
    metrics = training.train(config.resolve_config({**values, "run_dir": str(tmp_path / "moved")}))
    assert metrics["epochs_this_run"] == 1 and [r["epoch"] for r in history(str(tmp_path / "moved"))] == [1, 2, 3]


def test_a_killed_experiment_resumes_and_keeps_its_finished_runs(tmp_path):
    """degradation.py killed in its second run: the rerun of the command continues the same results
    folder, keeps the first run, and finishes the rest."""
    out = tmp_path / "deg"
    args = ["--depths", 8, 20, "--epochs", 1, "--model-arg", "width=4", "--out-dir", out]
    kill_at("run:resnet8", str(out), "degradation.py", *args)
    first = (out / "plain8" / "metrics.json").read_text()
    done = run_main("degradation.py", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming the unfinished {out}" in done.stderr and "[1/4] plain8: finished already" in done.stderr
    assert (out / "plain8" / "metrics.json").read_text() == first and (out / "results.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deg"]  # no deg-2
    again = run_main("degradation.py", *args)  # finished: a new folder, as before
    assert again.returncode == 0 and (tmp_path / "deg-2" / "results.md").exists()
    assert "out_dir must be a folder name, not a file" in no_traceback(
        run_main("degradation.py", "--out-dir", out / "results.md"))
