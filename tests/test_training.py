import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet  # noqa: F401  (registers the model classes for loading)
from keras_resnet import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
TINY = {"depth": 8, "width": 4}


def tiny_config(tmp_path, **overrides):
    values = dict(model="resnet20", model_kwargs=TINY, epochs=2, batch_size=64, quiet=True,
                  run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "exports"), backup_every_steps=5)
    values.update(overrides)
    return training.resolve_config(values)


def read_history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def run_script(args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, TRAIN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# --- configuration -------------------------------------------------------------------------


def test_config_precedence_recipe_then_dataset_then_overrides():
    default = training.resolve_config({})
    assert (default.model, default.dataset, default.epochs, default.batch_size) == ("resnet20", "digits", 30, 64)
    cifar = training.resolve_config({"dataset": "tfds:cifar10"})
    assert (cifar.epochs, cifar.batch_size, cifar.lr_boundaries, cifar.weight_decay) == (182, 128, [0.5, 0.75], 1e-4)
    imagenet = training.resolve_config({"dataset": "tfds:imagenet2012", "recipe": "imagenet", "epochs": 3})
    assert (imagenet.base_batch_size, imagenet.warmup_epochs, imagenet.epochs) == (256, 5.0, 3)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"epochs": -1}, "epochs=-1"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"recipe": "mnist"}, "recipe='mnist'"),
        ({"optimizer": "rmsprop"}, "optimizer='rmsprop'"),
        ({"model": "resnet21"}, "Unknown model name 'resnet21'"),
        ({"batch": 3}, r"Unknown config keys \['batch'\]"),
        ({"precision": "float8"}, "precision='float8'"),
    ],
)
def test_bad_config_values_are_named(overrides, match):
    with pytest.raises(ValueError, match=match):
        training.resolve_config(overrides)


def test_schedule_warmup_steps_and_cosine():
    step = training.WarmupSchedule(0.4, 100, warmup_steps=10, kind="step", boundaries=[50, 75], decay=0.1)
    values = [float(step(s)) for s in (0, 9, 10, 49, 50, 75, 99)]
    np.testing.assert_allclose(values, [0.04, 0.4, 0.4, 0.4, 0.04, 0.004, 0.004], rtol=1e-5)
    cosine = training.WarmupSchedule(1.0, 100, kind="cosine")
    np.testing.assert_allclose([float(cosine(s)) for s in (0, 50, 100)], [1.0, 0.5, 0.0], atol=1e-6)


def test_learning_rate_scales_with_global_batch():
    config = training.resolve_config({"batch_size": 256})  # digits, cifar recipe: 0.1 at batch 128
    optimizer = training.make_optimizer(config, steps_per_epoch=10)
    assert float(optimizer.learning_rate) == pytest.approx(0.2)
    assert isinstance(training.make_optimizer(training.resolve_config({"optimizer": "adamw"}), 10), keras.optimizers.AdamW)


# --- a whole run ---------------------------------------------------------------------------


def test_run_writes_everything_and_exports(tmp_path):
    metrics = training.train(tiny_config(tmp_path))
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == ["best.json", "best.keras", "config.json", "curves.png", "final.keras",
                                       "history.csv", "labels.txt", "logs", "metrics.json"]  # backup/ removed at the end
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2]
    assert json.load(open(run / "config.json"))["model_kwargs"] == TINY
    saved = json.load(open(run / "metrics.json"))
    assert saved == json.loads(json.dumps(metrics))
    for key in ("test_accuracy", "test_top5_accuracy", "params", "macs", "wall_time_s", "train_images_per_sec"):
        assert saved[key] > 0
    assert saved["export"] == str(tmp_path / "exports" / "resnet20" / "1")
    assert os.path.exists(os.path.join(saved["export"], "saved_model.pb"))
    assert open(os.path.join(saved["export"], "labels.txt")).read().split() == [str(i) for i in range(10)]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", saved["export"], "--tag_set", "serve", "--signature_def",
                            "serving_default"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "inputs['images']" in shown.stdout and "shape: (-1, -1, -1, 1)" in shown.stdout  # any size, gray
    assert "outputs['probabilities']" in shown.stdout and "shape: (-1, 10)" in shown.stdout
    best = keras.saving.load_model(run / "best.keras", safe_mode=True)
    assert best.get_layer("preprocessing") is not None  # raw 0-255 pixels in
    assert os.listdir(run / "logs")


def test_deterministic_runs_with_one_seed_are_identical(tmp_path):
    histories = []
    for name in ("a", "b"):
        training.train(tiny_config(tmp_path, run_dir=str(tmp_path / name), export=False, deterministic=True, seed=7))
        histories.append([r["loss"] for r in read_history(tmp_path / name)])
    assert histories[0] == histories[1]


def test_mirrored_matches_one_device_for_the_same_global_batch(tmp_path):
    """Two replicas with half the batch each must follow the one-device trajectory.

    Synchronized BN makes the batch statistics global. Weight decay is off because Keras
    reports only 1/replicas of the L2 penalty in the `loss` metric under a strategy (the
    gradient is right), which would offset the two curves by half the penalty. The
    baseline is OneDeviceStrategy: under any strategy Keras opens one extra iterator to
    build the model, which advances the per-epoch reshuffle, so both runs must have one.
    The learning rate is small: the two runs differ only in float rounding (the order of the
    all-reduce sums), and at 0.02 this width-4 network amplifies that to 3e-3 in some epochs
    with some data orders (measured: 3e-7 after epoch 1, 3e-3 after epoch 2; at 0.005, 1e-7).
    """
    assert len(tf.config.list_logical_devices("CPU")) == 2
    kwargs = dict(export=False, seed=1, epochs=2, learning_rate=0.005, weight_decay=0.0,
                  model_kwargs={**TINY, "bn_synchronized": True})
    one = training.train(tiny_config(tmp_path, run_dir=str(tmp_path / "one"), strategy="one_device", **kwargs))
    two = training.train(tiny_config(tmp_path, run_dir=str(tmp_path / "two"), strategy="mirrored", **kwargs))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for a, b in zip(read_history(tmp_path / "one"), read_history(tmp_path / "two")):
        np.testing.assert_allclose(float(a["loss"]), float(b["loss"]), rtol=1e-4)
        np.testing.assert_allclose(float(a["val_loss"]), float(b["val_loss"]), rtol=1e-3)
    weights = [keras.saving.load_model(tmp_path / run / "final.keras", safe_mode=True).trainable_weights
               for run in ("one", "two")]
    for a, b in zip(*weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)


def test_batch_not_divisible_by_replicas_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="divisible by the 2 replicas. Received: batch_size=63"):
        training.train(tiny_config(tmp_path, strategy="mirrored", batch_size=63))


def test_config_of_unfinished_run_must_match_to_resume(tmp_path):
    training.prepare_run_dir(str(tmp_path / "run"), tiny_config(tmp_path))
    with pytest.raises(ValueError, match="different config \\(epochs\\)"):
        training.prepare_run_dir(str(tmp_path / "run"), tiny_config(tmp_path, epochs=5))


# --- through the script --------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigkill_during_epoch_2_then_rerun_resumes(tmp_path):
    args = ["--model-arg", "depth=8", "--model-arg", "width=4", "--epochs", "4", "--batch-size", "32",
            "--backup-every-steps", "5", "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "ex"),
            "--quiet"]
    process = subprocess.Popen([sys.executable, TRAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    history = tmp_path / "run" / "history.csv"
    deadline = time.time() + 240
    while not (history.exists() and len(read_history(tmp_path / "run")) >= 1):
        assert process.poll() is None and time.time() < deadline, "training ended before epoch 2"
        time.sleep(0.05)
    time.sleep(0.2)  # epoch 2 is under way (a tiny-model epoch takes about 0.3 s)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = read_history(tmp_path / "run")
    assert (tmp_path / "run" / "backup").exists() and (tmp_path / "run" / "best.keras").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()

    result = run_script(args)
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"Resuming from the backup: (\d) epoch\(s\) done, continuing at epoch (\d)\.", result.stdout)
    assert match, result.stdout[-2000:]
    done = int(match.group(1))
    assert 1 <= done <= len(before) and int(match.group(2)) == done + 1
    rows = read_history(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert rows[:done] == before[:done]  # completed epochs are not redone or lost
    metrics = json.load(open(tmp_path / "run" / "metrics.json"))
    assert metrics["epochs_this_run"] == 4 - done
    final = keras.saving.load_model(tmp_path / "run" / "final.keras", safe_mode=True)
    assert int(final.optimizer.iterations) >= 4 * 39  # optimizer state came back with the weights
    keras.saving.load_model(tmp_path / "run" / "best.keras", safe_mode=True)


def test_diverging_run_stops_clearly_and_keeps_best_checkpoint(tmp_path):
    # Epoch 1 at lr 0.01 gives a best checkpoint; epoch 2 runs at lr 0.01 * 1e8 = 1e6.
    args = ["--model-arg", "depth=8", "--model-arg", "width=4", "--epochs", "2", "--learning-rate", "0.01",
            "--lr-boundaries", "0.5", "--lr-decay", "1e8", "--run-dir", str(tmp_path / "run"), "--no-export",
            "--quiet"]
    result = run_script(args)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "error: Training diverged: the loss became nan in epoch 2" in result.stderr
    assert "best checkpoint" in result.stderr and "is intact" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.load(open(tmp_path / "run" / "best.json"))["epoch"] == 1
    best = keras.saving.load_model(tmp_path / "run" / "best.keras", safe_mode=True)
    assert all(np.all(np.isfinite(w)) for w in best.get_weights())


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "resnet21"], "Unknown model name 'resnet21'"),
        (["--dataset", "mnist"], "Unknown dataset 'mnist'"),
        (["--dataset", "tfds:cifar10", "--data-dir", "{tmp}"], "tfds:cifar10 is not prepared"),
        (["--dataset", "folder:{tmp}"], "at least two class sub-folders"),
        (["--epochs", "-3"], "epochs=-3"),
        (["--strategy", "mirrored", "--cpu-devices", "2", "--batch-size", "33"], "divisible by the 2 replicas"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(tmp_path, args, match):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_script([*args, "--run-dir", str(tmp_path / "run"), "--quiet"], timeout=120)
    assert result.returncode == 2
    assert match in result.stderr and "Traceback" not in result.stderr




def test_two_workers_on_loopback_train_one_model(tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = ["--strategy", "multiworker", "--model-arg", "depth=8", "--model-arg", "width=4",
                "--model-arg", "bn_synchronized=true", "--epochs", "2",
                "--batch-size", "64", "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "ex"),
                "--quiet"]
        processes.append(subprocess.Popen([sys.executable, TRAIN, *args], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=400)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    chief = keras.saving.load_model(tmp_path / "run" / "final.keras", safe_mode=True)
    worker = keras.saving.load_model(tmp_path / "run" / "worker-1" / "final.keras", safe_mode=True)
    # All weights agree, BN moving statistics too: with synchronized BN every worker sees
    # the statistics of the global batch.
    for a, b in zip(chief.weights, worker.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert json.load(open(tmp_path / "run" / "metrics.json"))["replicas"] == 2
    assert os.listdir(tmp_path / "ex" / "resnet20") == ["1"]  # only the chief exports


@pytest.mark.slow
def test_default_command_trains_resnet20_on_digits(tmp_path):
    result = run_script([], cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "runs" / "resnet20-digits" / "metrics.json"))
    assert metrics["test_accuracy"] > 0.95
    assert os.path.exists(tmp_path / "saved_models" / "resnet20" / "1" / "saved_model.pb")


def test_mixed_precision_keeps_softmax_in_float32_and_xla_compiles(tmp_path):
    try:
        metrics = training.train(tiny_config(tmp_path, precision="mixed_bfloat16", jit_compile=True, epochs=1,
                                             export=False))
        model = keras.saving.load_model(tmp_path / "run" / "final.keras", safe_mode=True)
        assert model.get_layer("stage2_block1_conv1").compute_dtype == "bfloat16"
        assert model.get_layer("predictions").compute_dtype == "float32"
        assert model.output.dtype == "float32" and np.isfinite(metrics["test_loss"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
