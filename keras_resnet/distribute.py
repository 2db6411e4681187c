"""Distribution strategies by name, and the Keras 3 multi-worker fix.

`get_strategy("auto")` picks MirroredStrategy over all GPUs when there are two or more,
a OneDeviceStrategy on a single GPU, and the default strategy on CPU.
`"multiworker"` builds TensorFlow's MultiWorkerMirroredStrategy from `TF_CONFIG`.

Keras 3 (through 3.15, keras-team/keras issue 20585) fails `model.fit` under
MultiWorkerMirroredStrategy with two or more workers: `_maybe_symbolic_build` reduces the
first batch across workers eagerly (only its shapes are needed), `reduce_per_replica`
reduces scalar metrics with `axis=0`, and `_multi_worker_concat` (used by predict) refers
to an undefined name. `apply_multiworker_fix` replaces exactly those three functions, and
only while the installed Keras still contains the faulty code.
"""

import inspect
import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multiworker", "tpu")


def configure_cpu_devices(count):
    """Split the CPU into `count` logical devices (to run MirroredStrategy without GPUs).

    Must run before TensorFlow initialises its devices (first op or device listing).
    """
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def _needs_multiworker_fix():
    from keras.src.backend.tensorflow import trainer

    if not keras.__version__.startswith("3."):
        return False
    source = inspect.getsource(trainer.TensorFlowTrainer._maybe_symbolic_build)
    return "distribute_strategy.reduce(" in source


def apply_multiworker_fix():
    """Patch the three Keras functions that break multi-worker `fit` (issue 20585).

    Returns True when the patch was applied (or already was), False when this Keras
    version no longer has the faulty code.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_keras_resnet_multiworker_fix", False):
        return True
    if not _needs_multiworker_fix():
        return False

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # As Keras', but the first batch's local replica value gives the shapes, instead
        # of an eager cross-worker reduce that fails in multi-worker mode.
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda x: self.distribute_strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues)
                    else x,
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return mean_over_replicas(values, strategy)
        return original_reduce(values, strategy, reduction)

    def _multi_worker_concat(v, strategy):
        # gather() already concatenates every replica's values in replica order.
        return strategy.gather(v, axis=0)

    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._multi_worker_concat = _multi_worker_concat
    trainer._keras_resnet_multiworker_fix = True
    return True


def mean_over_replicas(values, strategy):
    """Each metric (a scalar per replica) averaged over all replicas of all workers: what the Keras
    fix reports in the per-batch and epoch logs of a multi-worker run."""
    from keras.src import tree

    return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)


def task_info():
    """(task type, index, is_chief) from TF_CONFIG; ("worker", 0, True) without one."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in config.get("cluster", {})
    is_chief = kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
    return kind, index, is_chief


def get_strategy(name="auto"):
    """A tf.distribute strategy by name (see STRATEGIES)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "multiworker":
        # Before anything lists devices: collective ops must be configured at start-up.
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy='multiworker' needs the TF_CONFIG environment variable (cluster and task).")
        apply_multiworker_fix()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) >= 2:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.OneDeviceStrategy(gpus[0].name) if gpus else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        # Without GPUs, mirror over the logical CPUs (configure_cpu_devices), if several.
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
