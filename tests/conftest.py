"""Test-process setup. Runs before TensorFlow initialises, so the logical-device split
that MirroredStrategy tests need can still be made here."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_resnet.distribute import configure_cpu_devices  # noqa: E402

# Two logical CPUs, so MirroredStrategy has two replicas; only possible before TF starts.
configure_cpu_devices(2)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def randomize_batchnorm(model, rng):
    """Give every BatchNormalization random gamma, beta and moving statistics, so that tests of
    inference (folding, weight conversion, freezing) cannot pass on the identity initialisation."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            values = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.normal(0, 0.2, n),
                      "moving_mean": rng.normal(0, 0.2, n), "moving_variance": rng.uniform(0.5, 2.0, n)}
            layer.set_weights([values[w.name] for w in layer.weights])
    return model
