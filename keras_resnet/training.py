"""Training with `model.fit` under a tf.distribute strategy, with the paper's recipes.

`train(config)` reads top to bottom: check everything that can be checked (the config, the
dataset, the model, the export target) before anything is written; then take the run directory
(`runs.open_run`: lock, config) and go through its phases, each skipped when a previous attempt
finished it: the epochs (`model.fit` with `callbacks.RunRecorder`), final.keras, the test
evaluation, the SavedModel export, metrics.json.
"""

import math
import os
import time
import warnings

import keras
import tensorflow as tf

from keras_resnet import analysis, blocks, config as config_lib, data, distribute, export, registry, transfer
from keras_resnet.callbacks import EpochLine, RunRecorder, read_history
from keras_resnet.cli import ReportedError
from keras_resnet.files import atomic_write, check_writable_folder, write_json
from keras_resnet.runs import open_run, pause_point, resolve_run_dir

# For scripts and notebooks that only import training.
TrainConfig = config_lib.TrainConfig
resolve_config = config_lib.resolve_config


class TrainingDivergedError(ReportedError):
    """The loss became NaN or infinite; the best checkpoint and the last good backup are left as they were."""


# --- learning rate schedule ------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_resnet")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then step decay at boundaries, cosine decay, or constant."""

    def __init__(self, peak, total_steps, warmup_steps=0, kind="step", boundaries=(), decay=0.1):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.boundaries = [int(b) for b in boundaries]
        self.decay = float(decay)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        if self.kind == "step":
            passed = sum(keras.ops.cast(step >= b, "float32") for b in self.boundaries) if self.boundaries else 0.0
            lr = self.peak * keras.ops.power(self.decay, passed)
        elif self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = keras.ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = 0.5 * self.peak * (1.0 + keras.ops.cos(math.pi * progress))
        else:
            lr = self.peak * keras.ops.ones_like(step)
        if self.warmup_steps:
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return lr

    def get_config(self):
        return dict(peak=self.peak, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                    kind=self.kind, boundaries=self.boundaries, decay=self.decay)


def make_schedule(config, steps_per_epoch):
    """The learning-rate schedule: peak scaled by batch_size / base_batch_size, boundaries in steps."""
    peak = config.learning_rate * config.batch_size / config.base_batch_size
    total = steps_per_epoch * config.epochs
    return WarmupSchedule(
        peak, total, warmup_steps=round(config.warmup_epochs * steps_per_epoch), kind=config.lr_schedule,
        boundaries=[round(b * total) for b in config.lr_boundaries], decay=config.lr_decay,
    )


def make_optimizer(config, steps_per_epoch):
    """The optimizer with `make_schedule`'s schedule."""
    schedule = make_schedule(config, steps_per_epoch)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, beta_1=config.momentum)
    return keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=config.optimizer == "nesterov")


# --- model -----------------------------------------------------------------------------------


def build_model(config, dataset, image_size):
    """The registry model for this dataset: raw-pixel input, normalisation layer, classes.

    With `init_from`: the pretrained backbone (with the preprocessing its weights expect, not
    the dataset's), a new head and `transfer_mode`'s layers trainable.
    """
    weight_decay = config.weight_decay if config.optimizer != "adamw" else 0.0
    input_shape = (image_size, image_size, dataset.image_shape[-1])
    if config.init_from:
        return transfer.build_transfer_model(
            config.init_from, input_shape=input_shape, num_classes=dataset.num_classes,
            mode=config.transfer_mode or "full", trainable_from=config.trainable_from,
            trainable_blocks=config.trainable_blocks, hidden_units=config.head_hidden_units, model_name=config.model,
            weight_decay=weight_decay, model_kwargs=config.model_kwargs,
        )
    return registry.get_model(
        config.model,
        input_shape=input_shape,
        num_classes=dataset.num_classes,
        preprocessing={"mean": dataset.mean, "std": dataset.std},
        weight_decay=weight_decay,
        **config.model_kwargs,
    )


def metric_names(num_classes):
    """What `compile_model` reports: loss, accuracy and (more than 5 classes) top5_accuracy."""
    return ["loss", "accuracy"] + (["top5_accuracy"] if num_classes > 5 else [])


def compile_model(model, config, steps_per_epoch, num_classes):
    metrics = ["accuracy"]
    if num_classes > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=metrics,
        jit_compile=config.jit_compile,
    )


def _seed_everything(config):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def _check(condition, message):
    if not condition:
        raise ValueError(message)


def _close_tensorboard(callbacks):
    """Close the TensorBoard writers of a `fit` that raised (Keras closes them only when training ends):
    an open writer flushed at interpreter exit onto a full disk crashed the process."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.TensorBoard):
            try:
                callback._close_writers()
            except Exception:  # best effort on the error path: the original error is what gets reported
                pass


def export_name(config):
    """The export's model folder: --export-name, else <model>-<dataset> (one task per name)."""
    return config.export_name or config_lib.task_name(config.model, config.dataset)


# --- training ----------------------------------------------------------------------------------


def train(config, strategy=None, progress=None):
    """Train, evaluate and export as `config` says; returns the metrics dict (metrics.json).

    `progress`: a prefix for one progress line per epoch on stderr (for scripts that run many
    trainings) instead of Keras' progress bar.
    """
    config_lib.validate_config(config)
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = strategy or distribute.get_strategy(config.strategy)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        return _train(config, strategy, progress)
    finally:  # the caller's precision policy again (the trained model keeps its own)
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(config, strategy, progress):
    _seed_everything(config)
    replicas = strategy.num_replicas_in_sync
    _check(config.batch_size % replicas == 0,
           f"batch_size must be divisible by the {replicas} replicas. Received: batch_size={config.batch_size}")
    _, task_index, is_chief = distribute.task_info()

    # Everything that can fail on bad input fails here, before the run directory exists.
    check_writable_folder(resolve_run_dir(config), "run_dir")
    if config.export and is_chief:
        check_writable_folder(config.export_dir, "export_dir")
    dataset = data.load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                                manual_dir=config.manual_dir, image_size=config.image_size, seed=config.seed,
                                max_pixels=config.max_image_pixels)
    if config.train_per_class:
        dataset = data.limit_per_class(dataset, config.train_per_class)
    image_size = config.image_size or dataset.image_shape[0] or 224
    augment = dataset.augment if config.augment == "auto" else config.augment
    flip = dataset.flip if config.flip is None else config.flip
    steps_per_epoch = dataset.train_size // config.batch_size
    _check(steps_per_epoch >= 1, f"batch_size must not exceed the {dataset.train_size} training images. "
                                 f"Received: batch_size={config.batch_size}")
    with strategy.scope():
        with warnings.catch_warnings():  # said below as an error, with what to do
            warnings.filterwarnings("ignore", message=".*oneDNN kernels crash")
            model = build_model(config, dataset, image_size)
        compile_model(model, config, steps_per_epoch, dataset.num_classes)
    crashing = blocks.layers_crashing_tensorflow(model)
    _check(not crashing, f"this model would crash TensorFlow 2.21 in training (a oneDNN bug with 1x1 stride-2 "
                         f"convolutions of 8 or fewer channels on maps of 64 pixels or more: {', '.join(crashing)}); "
                         f"use a width of at least 12 (--model-arg width=16), a smaller --image-size, or "
                         f"TF_ENABLE_ONEDNN_OPTS=0. Received: model_kwargs={config.model_kwargs}, "
                         f"image_size={image_size}")
    do_export = config.export and is_chief
    name = export_name(config)

    def pipeline(split, training):
        return data.make_pipeline(split, batch_size=config.batch_size, num_classes=dataset.num_classes,
                                  image_size=image_size, training=training, augment=augment, flip=flip,
                                  seed=config.seed)

    run_dir = resolve_run_dir(config)
    if not is_chief:  # other workers keep their own state beside the chief's
        run_dir = os.path.join(run_dir, f"worker-{task_index}")
    with open_run(run_dir, config) as run:
        if dataset.class_names:  # for scripts/export.py and predict.py
            atomic_write(run.file("labels.txt"), "\n".join(map(str, dataset.class_names)) + "\n")

        # Phase 1: the epochs. A rerun resumes from the backup (RunRecorder).
        if not run.done("epochs"):
            recorder = RunRecorder(run, backup_every_steps=config.backup_every_steps,
                                   title=f"{config.model} on {config.dataset}")
            callbacks = [keras.callbacks.TerminateOnNaN(), recorder,
                         keras.callbacks.TensorBoard(run.file("logs"), write_graph=False)]
            if progress:
                callbacks.append(EpochLine(progress))
            start = time.time()
            try:
                history = model.fit(pipeline(dataset.train, True),
                                    validation_data=pipeline(dataset.validation, False), epochs=config.epochs,
                                    callbacks=callbacks, shuffle=False, verbose=0 if config.quiet or progress else 1)
            except BaseException:
                _close_tensorboard(callbacks)
                raise
            losses = history.history.get("loss", [])
            if losses and not all(math.isfinite(v) for v in losses):
                best = run.file("best.keras")
                raise TrainingDivergedError(
                    f"Training diverged: the loss became {losses[-1]} in epoch {len(losses) + history.epoch[0]}. "
                    + (f"The best checkpoint {best} is intact. " if os.path.exists(best) else "")
                    + f"Lower the learning rate (it was {config.learning_rate})."
                )
            run.complete("epochs", {"epochs_this_run": len(losses), "wall_time_s": round(time.time() - start, 2)})
        else:
            run.restore_backup(model)  # the weights after the last epoch (the backup is kept until the end)

        # Phase 2: the final model.
        pause_point(run.path, "phase:final")
        if not run.done("final"):
            run.save_model("final.keras", model)
            run.complete("final")

        # Phase 3: evaluation on the test split.
        pause_point(run.path, "phase:evaluation")
        if not run.done("evaluation"):
            results = model.evaluate(pipeline(dataset.test, False), verbose=0, return_dict=True)
            run.complete("evaluation", {k: float(v) for k, v in results.items()})
        results = run.info("evaluation")

        # Phase 4: the SavedModel (chief only). export, export_dir and export_name may change on a rerun.
        pause_point(run.path, "phase:export")
        exported = run.info("export")
        if do_export and not (exported and exported.get("dir") == config.export_dir and exported.get("name") == name):
            before = export.existing_versions(os.path.join(config.export_dir, name))
            path = export.export_saved_model(model, config.export_dir, name=name, class_names=dataset.class_names,
                                             max_pixels=config.max_image_pixels, source=run.path)
            exported = {"path": path, "dir": config.export_dir, "name": name,
                        "new_version": int(os.path.basename(path)) not in before}
            run.complete("export", exported)

        # Phase 5: metrics.json, then the backup can go.
        pause_point(run.path, "phase:metrics")
        epochs_info = run.info("epochs")
        wall = epochs_info["wall_time_s"]
        metrics = {
            "model": config.model,
            "dataset": config.dataset,
            "test_accuracy": results["accuracy"],
            "test_loss": results["loss"],
            "params": int(model.count_params()),
            "trainable_params": analysis.count_trainable_params(model),
            "macs": int(analysis.count_macs(model)),
            "epochs": config.epochs,
            "epochs_this_run": epochs_info["epochs_this_run"],
            "wall_time_s": wall,
            "train_images_per_sec": round(dataset.train_size * epochs_info["epochs_this_run"] / wall, 1)
            if wall else None,
            "replicas": replicas,
            "run_dir": run.path,
            "history_rows": len(read_history(run.file("history.csv"))),
        }
        if config.init_from:
            metrics.update(init_from=config.init_from, transfer_mode=config.transfer_mode or "full",
                           trainable_params_per_stage=transfer.trainable_report(model))
        if "top5_accuracy" in results:
            metrics["test_top5_accuracy"] = results["top5_accuracy"]
        if do_export and exported:
            metrics["export"] = exported["path"]
            metrics["export_new_version"] = exported.get("new_version", True)
        write_json(run.file("metrics.json"), metrics)
        run.complete("metrics")
        run.clear_backup()
    return metrics
