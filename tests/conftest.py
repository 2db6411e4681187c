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


# --- running the scripts as a user types them ---------------------------------------------------

import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

# The smallest ResNet of the CIFAR family (n = 1, width 4): epochs of the digits in a fraction of a second.
TINY_ARGS = ["--model", "resnet8", "--model-arg", "width=4"]


def script(name, *args, env=None, cwd=None, timeout=300):
    """Run scripts/<name> with `args` (str()-ed) in a fresh process; returns the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def start_script(name, *args, env=None, cwd=None):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", name), *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def kill_at(point, folder, name, *args, cwd=None, timeout=240):
    """Start a script that pauses at `point` (KERAS_RESNET_PAUSE_AT), wait for its marker file in
    `folder` to appear, then SIGKILL it. Returns the process's output."""
    process = start_script(name, *args, env={"KERAS_RESNET_PAUSE_AT": point}, cwd=cwd)
    marker = os.path.join(folder, f".paused-{point.replace(':', '-')}")
    deadline = time.time() + timeout
    while not os.path.exists(marker):
        if process.poll() is not None:
            raise AssertionError(f"ended before {point}: {process.stdout.read()[-3000:]}")
        if time.time() > deadline:
            process.kill()
            raise AssertionError(f"{point} not reached in {timeout} s")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0]
    os.remove(marker)
    return output


def no_traceback(result, code=2):
    """The script failed the promised way: exit `code`, one `error:` line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    assert sum(line.startswith("error: ") for line in lines) == 1, result.stderr[-2000:]
    return lines[-1]


def run_main(name, *args, cwd=None):
    """Run scripts/<name>'s main(args) in this process, as the shell would see it: returns a result with
    returncode, stdout and stderr, the exit code and one-line error decided by keras_resnet.cli (as
    run_cli does). Saves a TensorFlow start per call; `script` runs a real process where one is needed."""
    import contextlib
    import importlib.util
    import io
    import types

    import keras

    from keras_resnet import cli

    spec = importlib.util.spec_from_file_location(f"script_{name[:-3]}", os.path.join(ROOT, "scripts", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, err, code = io.StringIO(), io.StringIO(), 0
    previous = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                module.main([str(a) for a in args])
            except SystemExit as stop:  # argparse: --help, or a flag of the wrong type
                code = stop.code or 0
            except Exception as error:
                code = cli.exit_code(error)
                if code is None:
                    raise
                print(f"error: {cli.one_line(error)}", file=err)
    finally:
        os.chdir(previous)
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("float32")
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
