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
