"""Throughput and memory measurements for scripts/benchmark.py.

Every figure is the median of `repeats` timed steps after `warmup` untimed ones, and every
comparison the script reports is a ratio of two figures measured in the same process, one after
the other: the machines are shared and noisy, so absolute numbers vary more than ratios.

Model throughput uses only Keras (`fit`/`predict` on NumPy arrays, per-batch callbacks for the
timing), so the same code measures under KERAS_BACKEND=jax on a GPU machine without TensorFlow;
the SavedModel and input-pipeline measurements need TensorFlow.
"""

import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time

import keras
import numpy as np


class StepTimer(keras.callbacks.Callback):
    """Wall time of every train or predict batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def _begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def _end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    on_train_batch_begin = on_predict_batch_begin = _begin
    on_train_batch_end = on_predict_batch_end = _end


def progress(message):
    """A progress line on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median_after_warmup(times, warmup):
    timed = times[warmup:] or times
    return statistics.median(timed)


def time_calls(function, inputs, warmup=2, repeats=5):
    """Median seconds of `function(inputs)` over `repeats` calls after `warmup` untimed ones."""
    times = []
    for _ in range(warmup + repeats):
        start = time.perf_counter()
        function(inputs)
        times.append(time.perf_counter() - start)
    return median_after_warmup(times, warmup)


def resident_memory():
    """(current, peak) resident memory of this process in bytes from /proc (Linux), else (None, None)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None, None


def reset_peak_memory():
    """Start a new peak (`resident_memory()[1]`) from the current resident memory (Linux >= 4.0), so a
    measurement's peak is its own and not the process's so far; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory():
    """Peak memory so far: process RSS in bytes on CPU; with JAX on a GPU, the device's peak too."""
    result = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":
            stats = device.memory_stats() or {}
            result["device_peak_bytes"] = stats.get("peak_bytes_in_use")
            result["device"] = device.device_kind
    return result


@contextlib.contextmanager
def precision_policy(precision):
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def synthetic_batch(batch_size, input_shape, num_classes, steps, seed=0):
    """`steps` batches of random raw-pixel images and one-hot labels as NumPy arrays."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch_size * steps, *input_shape)).astype("float32")
    y = np.eye(num_classes, dtype="float32")[rng.integers(0, num_classes, batch_size * steps)]
    return x, y


def measure_model(build, *, batch_size, input_shape, precision="float32", jit_compile=False,
                  strategy=None, warmup=2, repeats=5, train=True, infer=True):
    """Train and inference images/s of the model `build()` returns (built inside the strategy)."""
    steps = warmup + repeats
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    result = {}
    with precision_policy(precision), scope:
        model = build()
        x, y = synthetic_batch(batch_size, input_shape, model.output_shape[-1], steps)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="categorical_crossentropy",
                      jit_compile=jit_compile)
    if train:
        timer = StepTimer()
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
        step = median_after_warmup(timer.times, warmup)
        result.update(train_step_s=step, train_images_per_sec=batch_size / step)
    if infer:
        timer = StepTimer()
        model.predict(x, batch_size=batch_size, verbose=0, callbacks=[timer])
        step = median_after_warmup(timer.times, warmup)
        result.update(infer_step_s=step, infer_images_per_sec=batch_size / step)
    result.update(peak_memory())
    del model
    keras.backend.clear_session()
    return result


def measure_in_turn(builds, *, rounds=1, **timing):
    """`measure_model` for each of `builds` ({name: build}), taking turns for `rounds` rounds.

    A drift in the machine's speed (other jobs, clocks) then falls on every model alike, not on
    whichever was measured last. Each figure is the median over the rounds (peak memory: the maximum).
    A progress line per measurement goes to stderr.
    """
    runs = {name: [] for name in builds}
    total, step = rounds * len(builds), 0
    for round_ in range(rounds):
        for name, build in builds.items():
            step += 1
            progress(f"measurement {step}/{total}: {name}, round {round_ + 1}/{rounds} ...")
            result = measure_model(build, **timing)
            runs[name].append(result)
            figures = ", ".join(f"{key} {result[key]:.3g}" for key in ("train_images_per_sec", "infer_images_per_sec")
                                if key in result)
            progress(f"measurement {step}/{total}: {name}: {figures}")
    return {name: {key: _combine(key, [run[key] for run in results]) for key in results[-1]}
            for name, results in runs.items()}


def _combine(key, values):
    if not all(isinstance(value, (int, float)) for value in values):
        return values[-1]  # the device's name, or a peak the device did not report
    return max(values) if "peak" in key else statistics.median(values)


def keras_applications_builder(depth, input_shape, num_classes):
    """keras.applications.ResNet{depth} (weights=None): the reference we compare against."""
    constructor = getattr(keras.applications, f"ResNet{depth}")
    return lambda: constructor(weights=None, input_shape=input_shape, classes=num_classes)


def measure_saved_model(model, *, batch_sizes=(1, 32), warmup=2, repeats=5, fold=False):
    """Latency (s) and images/s of an exported SavedModel's serving_default, per batch size."""
    import tensorflow as tf

    from keras_resnet import export

    with tempfile.TemporaryDirectory() as folder:
        path = export.export_saved_model(model, folder, name="bench", fold_batchnorm=fold)
        signature = tf.saved_model.load(path).signatures["serving_default"]
        results = {}
        for batch in batch_sizes:
            progress(f"SavedModel ({'folded' if fold else 'unfolded'} batch norm), batch {batch} ...")
            x, _ = synthetic_batch(batch, model.input_shape[1:], 2, 1)
            images = tf.constant(x)
            times = []
            for _ in range(warmup + repeats):
                start = time.perf_counter()
                signature(images=images)["probabilities"].numpy()
                times.append(time.perf_counter() - start)
            latency = median_after_warmup(times, warmup)
            results[batch] = {"latency_s": latency, "images_per_sec": batch / latency}
    return results


def measure_pipeline(dataset, *, batch_size, image_size, augment, flip, batches=200, warmup=10):
    """Images/s that `data.make_pipeline` delivers for training (augmentation on), read alone."""
    from keras_resnet import data

    progress(f"input pipeline of {dataset.name}, {batches} batches of {batch_size} ...")
    pipeline = data.make_pipeline(dataset.train.repeat(), batch_size=batch_size, num_classes=dataset.num_classes,
                                  image_size=image_size, training=True, augment=augment, flip=flip, cache=False)
    iterator = iter(pipeline)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def synthetic_dataset(name, size, channels, count=5000, num_classes=10):
    """An in-memory uint8 dataset of `count` random images (CIFAR-sized data without a download)."""
    import tensorflow as tf

    from keras_resnet.data import Dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, size, size, channels), dtype=np.uint8)
    labels = rng.integers(0, num_classes, count).astype("int32")
    split = tf.data.Dataset.from_tensor_slices((images, labels))
    return Dataset(name=name, train=split, validation=split.take(100), test=split.take(100), num_classes=num_classes,
                   class_names=[str(i) for i in range(num_classes)], image_shape=(size, size, channels),
                   train_size=count, mean=[127.5] * channels, std=[73.9] * channels, augment="cifar", flip=True)


def env_summary():
    import platform

    return {"backend": keras.backend.backend(), "keras": keras.__version__, "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine()}
