import json
import os
import re
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_ARGS, no_traceback, run_main, script

import keras_resnet  # noqa: F401  (registers the model classes for loading)
from keras_resnet import callbacks, config, distribute, registry, runs, training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"width": 4}


def tiny_config(tmp_path, **overrides):
    values = dict(model="resnet8", model_kwargs=TINY, epochs=2, batch_size=64, quiet=True,
                  run_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "exports"), backup_every_steps=5)
    values.update(overrides)
    return config.resolve_config(values)


def read_history(run_dir):
    return callbacks.read_history(os.path.join(run_dir, "history.csv"))


# --- the learning-rate schedule ------------------------------------------------------------------


def test_schedule_warmup_steps_and_cosine():
    step = training.WarmupSchedule(0.4, 100, warmup_steps=10, kind="step", boundaries=[50, 75], decay=0.1)
    values = [float(step(s)) for s in (0, 9, 10, 49, 50, 75, 99)]
    np.testing.assert_allclose(values, [0.04, 0.4, 0.4, 0.4, 0.04, 0.004, 0.004], rtol=1e-5)
    cosine = training.WarmupSchedule(1.0, 100, kind="cosine")
    np.testing.assert_allclose([float(cosine(s)) for s in (0, 50, 100)], [1.0, 0.5, 0.0], atol=1e-6)


def test_config_boundaries_become_steps_of_the_whole_run():
    """Fractions of training -> steps: 0.3 and 0.9 of 20 epochs x 10 steps are steps 60 and 180; the
    warm-up of 1.5 epochs is 15 steps; the peak scales with batch 256 / base 128."""
    cfg = config.resolve_config({"epochs": 20, "batch_size": 256, "lr_boundaries": [0.3, 0.9], "warmup_epochs": 1.5,
                                 "lr_decay": 0.5})
    schedule = training.make_schedule(cfg, steps_per_epoch=10)
    assert (schedule.boundaries, schedule.warmup_steps, schedule.total_steps) == ([60, 180], 15, 200)
    assert schedule.peak == pytest.approx(0.2)
    rates = {s: float(schedule(s)) for s in (14, 59, 60, 179, 180)}
    assert rates == pytest.approx({14: 0.2, 59: 0.2, 60: 0.1, 179: 0.1, 180: 0.05})


def test_learning_rate_scales_with_global_batch():
    cfg = config.resolve_config({"batch_size": 256})  # digits, cifar recipe: 0.1 at batch 128
    optimizer = training.make_optimizer(cfg, steps_per_epoch=10)
    assert float(optimizer.learning_rate) == pytest.approx(0.2)
    assert isinstance(training.make_optimizer(config.resolve_config({"optimizer": "adamw"}), 10), keras.optimizers.AdamW)


# --- a whole run ---------------------------------------------------------------------------------


def test_run_writes_everything_and_exports(tmp_path):
    metrics = training.train(tiny_config(tmp_path))
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == [".lock", "best.json", "best.keras", "config.json", "curves.png", "final.keras",
                                       "history.csv", "labels.txt", "logs", "metrics.json",
                                       "state.json"]  # backup/ removed once metrics.json is written
    assert [r["epoch"] for r in read_history(run)] == [1, 2]
    assert set(read_history(run)[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert json.load(open(run / "config.json"))["model_kwargs"] == TINY
    saved = json.load(open(run / "metrics.json"))
    assert saved == json.loads(json.dumps(metrics))
    for key in ("test_accuracy", "test_top5_accuracy", "params", "macs", "wall_time_s", "train_images_per_sec"):
        assert saved[key] > 0
    assert saved["export"] == str(tmp_path / "exports" / "resnet8-digits" / "1")  # named by the task
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


def test_best_checkpoint_is_untouched_by_a_worse_epoch_and_survives_a_resume(tmp_path):
    """best.keras changes only for an epoch better than the best so far (finite loss), and a resumed
    run reads the best value back from best.json."""
    run = runs.Run(str(tmp_path / "run"))
    run.acquire()
    model = registry.get_model("resnet8", width=4, input_shape=(8, 8, 1))
    best = tmp_path / "run" / "best.keras"

    def record(recorder, epoch, loss, accuracy):
        for weight in model.trainable_weights:  # another model each epoch: a save would change the file
            weight.assign(weight + 0.01)
        recorder._update_best(epoch, {"loss": loss, "val_accuracy": accuracy})

    recorder = callbacks.RunRecorder(run)
    recorder.set_model(model)
    record(recorder, 1, 0.4, 0.6)
    saved = best.read_bytes()
    record(recorder, 2, 0.3, 0.55)  # worse
    record(recorder, 3, float("nan"), 0.9)  # diverged: never the best
    record(recorder, 4, 0.2, 0.6)  # equal: not better
    assert best.read_bytes() == saved
    assert json.load(open(tmp_path / "run" / "best.json")) == {"epoch": 1, "val_accuracy": 0.6}
    resumed = callbacks.RunRecorder(run)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert resumed.best == 0.6
    record(resumed, 5, 0.1, 0.59)
    assert best.read_bytes() == saved
    record(resumed, 6, 0.1, 0.7)
    assert best.read_bytes() != saved
    assert json.load(open(tmp_path / "run" / "best.json")) == {"epoch": 6, "val_accuracy": 0.7}
    run.release()


def test_deterministic_runs_with_one_seed_are_identical(tmp_path):
    histories = []
    for name in ("a", "b"):
        training.train(tiny_config(tmp_path, run_dir=str(tmp_path / name), export=False, deterministic=True, seed=7))
        histories.append([r["loss"] for r in read_history(tmp_path / name)])
    assert histories[0] == histories[1]


def test_mirrored_matches_one_device_for_the_same_global_batch(tmp_path):
    """Two replicas with half the batch each must follow the one-device trajectory.

    First the data: the distributed pipeline (augmented) gives both replicas together exactly the
    one-device batches. Then training, without augmentation: synchronized BN makes the batch
    statistics global. Weight decay is off because Keras reports only 1/replicas of the L2 penalty
    in the `loss` metric under a strategy (the gradient is right), which would offset the two curves
    by half the penalty. The baseline is OneDeviceStrategy: under any strategy Keras opens one extra
    iterator to build the model, which advances the per-epoch reshuffle, so both runs must have one.
    The runs differ only in float rounding (the order of the all-reduce sums), which training
    amplifies: measured after one step below 1e-6; after one epoch (19 steps) 1.8e-4 with the augmented
    digits and below 1e-4 without, 1.9e-4 after two; at lr 0.02, 3e-3 after two epochs.
    """
    from keras_resnet import data

    digits = data.load_digits_dataset()
    batches = {}
    for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        pipeline = data.make_pipeline(digits.train, batch_size=64, num_classes=10, image_size=8, training=True,
                                      augment="cifar", seed=1)  # a fresh one: each iterator is a new epoch
        iterator = iter(strategy.experimental_distribute_dataset(pipeline))
        batches[name] = [np.concatenate([v.numpy() for v in strategy.experimental_local_results(next(iterator)[0])])
                         for _ in range(3)]
    for a, b in zip(batches["one"], batches["two"]):
        np.testing.assert_array_equal(a, b)
    assert len(tf.config.list_logical_devices("CPU")) == 2
    kwargs = dict(export=False, seed=1, epochs=2, learning_rate=0.005, weight_decay=0.0, augment="none",
                  model_kwargs={**TINY, "bn_synchronized": True})
    one = training.train(tiny_config(tmp_path, run_dir=str(tmp_path / "one"), strategy="one_device", **kwargs))
    two = training.train(tiny_config(tmp_path, run_dir=str(tmp_path / "two"), strategy="mirrored", **kwargs))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for a, b in zip(read_history(tmp_path / "one"), read_history(tmp_path / "two")):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)
        np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-3)
    weights = [keras.saving.load_model(tmp_path / run / "final.keras", safe_mode=True).trainable_weights
               for run in ("one", "two")]
    for a, b in zip(*weights):  # measured: at most 1.9e-4 apart after the two epochs (weights of about 0.01-0.5)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=4e-4)


def test_multiworker_metrics_are_averaged_over_replicas():
    """The reduction the Keras fix uses for logged metrics: the mean of the replicas' values (1 and 3 -> 2),
    not their sum (4) or the first replica's (1)."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    values = strategy.run(lambda: {"loss": tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group,
                                                   tf.float32) * 2.0 + 1.0})
    assert float(distribute.mean_over_replicas(values, strategy)["loss"]) == 2.0


def test_batch_not_divisible_by_replicas_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="divisible by the 2 replicas. Received: batch_size=63"):
        training.train(tiny_config(tmp_path, strategy="mirrored", batch_size=63))
    assert not os.path.exists(tmp_path / "run")


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


# --- through the script ----------------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_diverging_run_stops_clearly_and_keeps_best_checkpoint(tmp_path):
    # Epoch 1 at lr 0.01 gives a best checkpoint; epoch 2 runs at lr 0.01 * 1e8 = 1e6.
    result = script("train.py", *TINY_ARGS, "--epochs", 2, "--learning-rate", 0.01, "--lr-boundaries", 0.5,
                    "--lr-decay", 1e8, "--run-dir", tmp_path / "run", "--no-export", "--quiet")
    line = no_traceback(result, code=1)
    assert re.match(r"error: Training diverged: the loss became (nan|inf) in epoch 2\. ", line), line
    assert "best checkpoint" in line and "is intact" in line
    assert json.load(open(tmp_path / "run" / "best.json"))["epoch"] == 1
    best = keras.saving.load_model(tmp_path / "run" / "best.keras", safe_mode=True)
    assert all(np.all(np.isfinite(w)) for w in best.get_weights())
    backup = json.load(open(tmp_path / "run" / "backup" / "state.json"))
    assert backup["latest"]["epoch"] == 1  # the diverged epoch never replaced the last good backup


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "resnet21"], "Unknown model name 'resnet21'"),
        (["--dataset", "mnist"], "Unknown dataset 'mnist'"),
        (["--dataset", "tfds:cifar1"], "Unknown TensorFlow Datasets name 'cifar1'. Did you mean tfds:cifar10"),
        (["--dataset", "tfds:cifar10", "--data-dir", "{tmp}"], "tfds:cifar10 is not prepared"),
        (["--dataset", "tfds:imagenet2012", "--data-dir", "{tmp}"], "--manual-dir FOLDER --download"),
        (["--dataset", "folder:{tmp}"], "at least two class sub-folders"),
        (["--epochs", "-3"], "Received: epochs=-3"),
        (["--epochs", "x"], "argument --epochs: invalid integer value: 'x'"),
        (["--model-arg", "foo=1"], "foo is not an argument of the resnet8 builder"),
        (["--model", "resnet8", "--run-dir", "/proc/x/y"], "run_dir: cannot create folders in '/proc'"),
        (["--model-arg", "foo"], "--model-arg takes KEY=VALUE. Received: --model-arg 'foo'"),
        (["--init-from", "{tmp}/w.h5"], "init_from="),
        (["--init-from", "imagenet", "--transfer-mode", "partial", "--trainable-blocks", "-1"],
         "trainable_blocks must be >= 0. Received: trainable_blocks=-1"),
        (["--export-name", "../up"], "export_name must be a single folder name"),
        (["--export-dir", "/proc/keras-resnet"], "export_dir: cannot create folders in '/proc'"),
        (["--image-size", "64", "--model-arg", "shortcut=B"], "would crash TensorFlow 2.21 in training (a oneDNN bug"),
        (["--model-arg", "width=0"], "width must be a positive integer (the stem's filters). Received: width=0"),
        (["--strategy", "mirrored", "--cpu-devices", "2", "--batch-size", "33"], "divisible by the 2 replicas"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_value(tmp_path, args, match):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    model = [] if "--model" in args else TINY_ARGS
    run_dir = [] if "--run-dir" in args else ["--run-dir", tmp_path / "run"]
    line = no_traceback(run_main("train.py", *model, *args, *run_dir, "--quiet"))
    assert match in line
    assert "pass --download" not in line or "tfds:cifar10" in line  # advice only where it applies
    assert not os.path.exists(tmp_path / "run")


def test_two_workers_on_loopback_train_one_model(tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = ["--strategy", "multiworker", *TINY_ARGS, "--model-arg", "bn_synchronized=true", "--epochs", "2",
                "--batch-size", "64", "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "ex"),
                "--quiet"]
        processes.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=400)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    chief = keras.saving.load_model(tmp_path / "run" / "final.keras", safe_mode=True)
    worker = keras.saving.load_model(tmp_path / "run" / "worker-1" / "final.keras", safe_mode=True)
    # All weights agree, BN moving statistics too: with synchronized BN every worker sees
    # the statistics of the global batch.
    for a, b in zip(chief.weights, worker.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert json.load(open(tmp_path / "run" / "metrics.json"))["replicas"] == 2
    assert os.listdir(tmp_path / "ex" / "resnet8-digits") == ["1"]  # only the chief exports


@pytest.mark.slow
def test_default_command_trains_resnet20_on_digits(tmp_path):
    result = script("train.py", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "runs" / "resnet20-digits" / "metrics.json"))
    assert metrics["test_accuracy"] > 0.95
    assert os.path.exists(tmp_path / "saved_models" / "resnet20-digits" / "1" / "saved_model.pb")
