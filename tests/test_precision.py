"""bfloat16 training on CPUs (`--precision mixed_bfloat16`): the convolutions compute in bfloat16, while the
variables, the batch-norm statistics and the head stay float32; and it reaches the float32 run's accuracy."""

import json

import keras
import numpy as np
import pytest
from conftest import script

import keras_resnet as kr
from keras_resnet import checkpoints, config as config_lib, training


@pytest.fixture
def float32_afterwards():
    """training.train sets the global dtype policy (and keeps it): later tests must build float32 models."""
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_bfloat16_training_runs_with_float32_statistics_and_head(tmp_path, float32_afterwards):
    config = config_lib.resolve_config({"model": "resnet8", "model_kwargs": {"width": 8}, "epochs": 2,
                                        "precision": "mixed_bfloat16", "run_dir": str(tmp_path / "run"),
                                        "export": False, "quiet": True})
    metrics = training.train(config)
    assert 0.3 < metrics["test_accuracy"] <= 1 and np.isfinite(metrics["test_loss"])
    model = checkpoints.load_keras_model(str(tmp_path / "run" / "final.keras"))
    conv = model.get_layer("stage2_block1_conv1")
    assert (conv.compute_dtype, conv.variable_dtype, conv.kernel.dtype) == ("bfloat16", "float32", "float32")
    head = model.get_layer("predictions")
    assert head.compute_dtype == "float32" and model.output.dtype == "float32"
    batch_norms = [layer for layer in model.layers if isinstance(layer, kr.FastBatchNormalization)]
    assert batch_norms and all(bn.moving_mean.dtype == bn.moving_variance.dtype == "float32" for bn in batch_norms)
    # The fast training path under bfloat16: statistics from float32 inputs, output in bfloat16.
    bn = batch_norms[0]
    x = keras.ops.cast(np.random.default_rng(0).normal(3.0, 2.0, (16, 8, 8, bn.moving_mean.shape[0])), "bfloat16")
    before = bn.moving_mean.numpy().copy()
    out = bn(x, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    expected_mean = before * bn.momentum + np.asarray(keras.ops.cast(x, "float32")).mean((0, 1, 2)) * (1 - bn.momentum)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_default_digits_run_in_bfloat16_reaches_the_float32_accuracy(tmp_path):
    """The README's default run (ResNet-20 on the digits, its full schedule) under both precisions: test
    accuracy within 0.5 points. About a minute and a half each here."""
    accuracies = {}
    for precision in ("float32", "mixed_bfloat16"):
        run_dir = tmp_path / precision
        done = script("train.py", "--precision", precision, "--run-dir", run_dir, "--no-export", "--quiet",
                      timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        accuracies[precision] = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert abs(accuracies["mixed_bfloat16"] - accuracies["float32"]) <= 0.005, accuracies
    assert accuracies["float32"] > 0.95
