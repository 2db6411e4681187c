"""Training with `model.fit` under a tf.distribute strategy, with the paper's recipes.

`resolve_config(overrides)` fills a `TrainConfig` in this order: the dataclass defaults,
the recipe, the dataset's defaults, then the overrides (a config file, then flags).
`train(config)` builds and compiles the model inside `strategy.scope()`, trains with a
run directory that survives a kill (BackupAndRestore every N steps, history and
checkpoints written atomically), evaluates on the test split and exports a SavedModel.
"""

import csv
import dataclasses
import io
import json
import math
import os
import time

import keras
import tensorflow as tf

from keras_resnet import analysis, data, distribute, export, plots, registry, transfer
from keras_resnet.cli import ReportedError

# --- configuration ---------------------------------------------------------------------

OPTIMIZERS = ("sgd", "nesterov", "adamw")
SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

# The paper's recipes. Learning rates are for `base_batch_size` and scale linearly with
# the global batch (Goyal et al., arXiv:1706.02677). Boundaries are fractions of training.
RECIPES = {
    # Section 4.2: SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr /10 at 32k and
    # 48k iterations, stop at 64k: 182 epochs of CIFAR-10's 45k training images.
    "cifar": dict(
        optimizer="sgd", learning_rate=0.1, base_batch_size=128, batch_size=128, momentum=0.9,
        weight_decay=1e-4, lr_schedule="step", lr_boundaries=[0.5, 0.75], lr_decay=0.1,
        warmup_epochs=0.0, label_smoothing=0.0, epochs=182,
    ),
    # Section 3.4 and the common single-crop recipe: lr 0.1 x batch/256, 5 warm-up epochs,
    # /10 at epochs 30, 60, 80 of 90 (or --lr-schedule cosine), weight decay 1e-4.
    "imagenet": dict(
        optimizer="sgd", learning_rate=0.1, base_batch_size=256, batch_size=256, momentum=0.9,
        weight_decay=1e-4, lr_schedule="step", lr_boundaries=[30 / 90, 60 / 90, 80 / 90], lr_decay=0.1,
        warmup_epochs=5.0, label_smoothing=0.0, epochs=90,
    ),
}
# Defaults of the embedded dataset: a few minutes on a 2-core CPU.
DATASET_DEFAULTS = {"digits": dict(epochs=30, batch_size=64)}


@dataclasses.dataclass
class TrainConfig:
    """Every hyperparameter of a training run; `scripts/train.py` flags map onto these."""

    # What to train
    model: str = "resnet20"  # registry name (keras_resnet.list_models())
    model_kwargs: dict = dataclasses.field(default_factory=dict)  # extra builder arguments, e.g. {"shortcut": "B"}
    dataset: str = "digits"  # "digits", "tfds:NAME" or "folder:PATH"
    data_dir: str = None  # TensorFlow Datasets data directory
    manual_dir: str = None  # archives of manually downloaded TFDS datasets (imagenet2012)
    download: bool = False  # allow a TFDS download (fails in seconds when offline)
    image_size: int = None  # input height and width; None: the dataset's native size
    train_per_class: int = None  # keep only the first N training images of each class (few-label runs)
    # Transfer learning (scripts/transfer.py)
    init_from: str = None  # start from: "imagenet" (with --model resnet50/101/152), an .h5, .keras file or run dir
    transfer_mode: str = None  # full|partial|head: which layers train after init_from (default full)
    trainable_from: str = None  # partial: the first stage that trains, e.g. stage4
    trainable_blocks: int = None  # partial: train only the last N blocks (and the head)
    head_hidden_units: int = 0  # a hidden fully connected layer (ReLU) of this size before the new classifier
    # Recipe (defaults: the "cifar" recipe)
    recipe: str = "cifar"  # "cifar" or "imagenet": the values below that it sets
    epochs: int = 182  # passes over the training split
    batch_size: int = 128  # global batch, split evenly over the replicas
    optimizer: str = "sgd"  # "sgd" (momentum), "nesterov" or "adamw"
    learning_rate: float = 0.1  # peak learning rate at base_batch_size
    base_batch_size: int = 128  # the learning rate scales with batch_size / base_batch_size
    momentum: float = 0.9  # SGD momentum (AdamW: beta_1)
    weight_decay: float = 1e-4  # SGD: L2 on kernels (gradient += wd * w); AdamW: decoupled decay
    lr_schedule: str = "step"  # "step" (x lr_decay at each boundary), "cosine" or "constant"
    lr_boundaries: list = dataclasses.field(default_factory=lambda: [0.5, 0.75])  # fractions of training
    lr_decay: float = 0.1  # step schedule factor
    warmup_epochs: float = 0.0  # linear warm-up from 0 to the peak learning rate
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: str = "auto"  # "cifar" (pad + crop + flip), "imagenet" (random-resized crop), "none", "auto"
    flip: bool = None  # random horizontal flips; None: the dataset's choice (not for digits)
    # System
    strategy: str = "auto"  # auto|default|one_device|mirrored|multiworker|tpu
    cpu_devices: int = 1  # logical CPU devices (mirrored training without GPUs)
    precision: str = "float32"  # float32|mixed_float16|mixed_bfloat16 (softmax stays float32)
    jit_compile: bool = False  # XLA compilation of the train step
    seed: int = 0  # seeds Python, NumPy, TensorFlow and the data pipeline
    deterministic: bool = False  # TensorFlow op determinism (identical reruns, slower)
    # Outputs
    run_dir: str = None  # None: runs/<model>-<dataset>[-N], resuming the latest unfinished one
    export_dir: str = "saved_models"  # SavedModels go to <export_dir>/<model>/<version>/
    export: bool = True  # export a SavedModel at the end
    backup_every_steps: int = 50  # BackupAndRestore interval (steps); 0: every epoch
    quiet: bool = False  # no progress bar


class TrainingDivergedError(ReportedError):
    """The loss became NaN or infinite; the best checkpoint is left as it was."""


def _check(condition, message):
    if not condition:
        raise ValueError(message)


def resolve_config(overrides=None):
    """A `TrainConfig` from defaults < recipe < dataset defaults < `overrides` (a dict)."""
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - fields)
    _check(not unknown, f"Unknown config keys {unknown}. Known keys: {', '.join(sorted(fields))}")
    values = dataclasses.asdict(TrainConfig())
    recipe = overrides.get("recipe", values["recipe"])
    _check(recipe in RECIPES, f"recipe must be one of {tuple(RECIPES)}. Received: recipe={recipe!r}")
    values.update(RECIPES[recipe])
    values.update(DATASET_DEFAULTS.get(overrides.get("dataset", values["dataset"]).split(":")[0], {}))
    values.update(overrides)
    config = TrainConfig(**values)
    validate_config(config)
    return config


def validate_config(config):
    """ValueError naming the field and the value for anything out of range."""
    registry.get_entry(config.model)
    for name in ("epochs", "batch_size", "base_batch_size", "cpu_devices"):
        value = getattr(config, name)
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
               f"{name} must be a positive integer. Received: {name}={value!r}")
    _check(config.learning_rate > 0, f"learning_rate must be positive. Received: learning_rate={config.learning_rate!r}")
    _check(config.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}. Received: optimizer={config.optimizer!r}")
    _check(config.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}. Received: lr_schedule={config.lr_schedule!r}")
    _check(all(0 < b < 1 for b in config.lr_boundaries),
           f"lr_boundaries are fractions of training in (0, 1). Received: lr_boundaries={config.lr_boundaries!r}")
    _check(config.precision in PRECISIONS, f"precision must be one of {PRECISIONS}. Received: precision={config.precision!r}")
    _check(config.strategy in distribute.STRATEGIES,
           f"strategy must be one of {distribute.STRATEGIES}. Received: strategy={config.strategy!r}")
    _check(config.augment in data.AUGMENTATIONS + ("auto",),
           f"augment must be one of {data.AUGMENTATIONS + ('auto',)}. Received: augment={config.augment!r}")
    _check(0 <= config.label_smoothing < 1, f"label_smoothing must be in [0, 1). Received: {config.label_smoothing!r}")
    _check(config.weight_decay >= 0, f"weight_decay must be >= 0. Received: weight_decay={config.weight_decay!r}")
    _check(config.warmup_epochs >= 0, f"warmup_epochs must be >= 0. Received: warmup_epochs={config.warmup_epochs!r}")
    _check(config.backup_every_steps >= 0, f"backup_every_steps must be >= 0. Received: {config.backup_every_steps!r}")
    _check(config.image_size is None or config.image_size >= 1, f"image_size must be positive. Received: image_size={config.image_size!r}")
    _check(config.train_per_class is None or config.train_per_class >= 1,
           f"train_per_class must be positive. Received: train_per_class={config.train_per_class!r}")
    _check(config.transfer_mode in (None,) + transfer.MODES,
           f"transfer_mode must be one of {transfer.MODES}. Received: transfer_mode={config.transfer_mode!r}")
    transfer_fields = ("transfer_mode", "trainable_from", "trainable_blocks")
    for name in transfer_fields:
        _check(getattr(config, name) is None or config.init_from,
               f"{name} needs init_from (the weights to transfer). Received: {name}={getattr(config, name)!r}")
    _check(config.head_hidden_units >= 0, f"head_hidden_units must be >= 0. Received: {config.head_hidden_units!r}")


def load_config_file(path):
    """Overrides from a JSON file (the run directory's config.json works too)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found. Received: config={path!r}")
    with open(path) as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"Config file {path!r} is not valid JSON: {error}") from None
    _check(isinstance(values, dict), f"Config file {path!r} must hold a JSON object.")
    return values


# --- learning rate schedule ------------------------------------------------------------


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


def make_optimizer(config, steps_per_epoch):
    """The optimizer and its schedule; the peak rate scales with the global batch."""
    peak = config.learning_rate * config.batch_size / config.base_batch_size
    total = steps_per_epoch * config.epochs
    schedule = WarmupSchedule(
        peak, total, warmup_steps=round(config.warmup_epochs * steps_per_epoch), kind=config.lr_schedule,
        boundaries=[round(b * total) for b in config.lr_boundaries], decay=config.lr_decay,
    )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, beta_1=config.momentum)
    return keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=config.optimizer == "nesterov")


# --- run directory and callbacks ---------------------------------------------------------


def atomic_write(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _finished(run_dir):
    return os.path.exists(os.path.join(run_dir, "metrics.json"))


def resolve_run_dir(config):
    """The run directory: the given one, or runs/<model>-<dataset>[-N] (latest unfinished)."""
    if config.run_dir:
        return config.run_dir
    base = os.path.join("runs", f"{config.model}-{config.dataset.replace(':', '-').replace('/', '_')}")
    candidate, n = base, 1
    while _finished(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def prepare_run_dir(run_dir, config):
    """Create the run directory and write config.json, or check a resumed run's config."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "config.json")
    resolved = dataclasses.asdict(config)
    comparable = {k: v for k, v in resolved.items() if k not in ("quiet", "export")}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if _finished(run_dir):
            raise FileExistsError(f"{run_dir} holds a finished run; pass another --run-dir.")
        changed = sorted(k for k, v in comparable.items() if previous.get(k) != json.loads(json.dumps(v)))
        if changed:
            raise ValueError(
                f"{run_dir} holds an unfinished run with a different config ({', '.join(changed)}); "
                "rerun with the same settings to resume it, or pass another --run-dir."
            )
    atomic_write(path, json.dumps(resolved, indent=2) + "\n")


class StepAndEpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore every `save_freq` steps and also at the end of every epoch.

    Keras' callback takes one or the other; with steps only, a kill early in an epoch
    would redo the whole previous epoch. Keras restores the epoch, not the batch.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()

    def _save_model(self):
        # Keras writes the weights file in place: a kill during the write leaves a truncated
        # HDF5 file that fails to load. Write beside it and rename, so a backup is whole.
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = self._weights_path[: -len(".weights.h5")] + ".tmp.weights.h5"
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, self._weights_path)
        atomic_write(self._training_metadata_path,
                      json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))


class HistoryLogger(keras.callbacks.Callback):
    """history.csv and curves.png, rewritten atomically after every epoch.

    On a resumed run, rows from epochs that are being redone are dropped, so the file
    always has one row per completed epoch.
    """

    def __init__(self, run_dir, title=None):
        super().__init__()
        self.backup_metadata = os.path.join(run_dir, "backup", "training_metadata.json")
        self.csv_path = os.path.join(run_dir, "history.csv")
        self.png_path = os.path.join(run_dir, "curves.png")
        self.title = title
        self.rows = []

    def on_train_begin(self, logs=None):
        if os.path.exists(self.csv_path):
            with open(self.csv_path) as f:
                self.rows = list(csv.DictReader(f))
        start = getattr(self.model, "_initial_epoch", None) or 0
        if os.path.exists(self.backup_metadata):  # said even with --quiet: not a fresh start
            print(f"Resuming from the backup: {start} epoch(s) done, continuing at epoch {start + 1}.")
        self.rows = [r for r in self.rows if int(r["epoch"]) <= start]

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch + 1] + [row]
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.csv_path, out.getvalue())
        plots.plot_history(self.rows, self.png_path, self.title)


class BestCheckpoint(keras.callbacks.Callback):
    """best.keras: the model with the highest val_accuracy, replaced atomically.

    Epochs with a non-finite loss never count as best, so a diverging run leaves the
    last good checkpoint intact. The best score survives a resume (best.json).
    """

    def __init__(self, run_dir, monitor="val_accuracy"):
        super().__init__()
        self.path = os.path.join(run_dir, "best.keras")
        self.info_path = os.path.join(run_dir, "best.json")
        self.monitor = monitor
        self.best = -math.inf
        if os.path.exists(self.info_path):
            with open(self.info_path) as f:
                self.best = json.load(f)[monitor]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(logs.get("loss", math.nan)) or value <= self.best:
            return
        self.best = float(value)
        tmp = self.path[: -len(".keras")] + ".tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, self.path)
        atomic_write(self.info_path, json.dumps({"epoch": epoch + 1, self.monitor: self.best}) + "\n")


# --- training ----------------------------------------------------------------------------


def _seed_everything(config):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


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
            last_blocks=config.trainable_blocks, hidden_units=config.head_hidden_units, model_name=config.model,
            weight_decay=weight_decay,
        )
    return registry.get_model(
        config.model,
        input_shape=input_shape,
        num_classes=dataset.num_classes,
        preprocessing={"mean": dataset.mean, "std": dataset.std},
        weight_decay=weight_decay,
        **config.model_kwargs,
    )


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


def train(config, strategy=None):
    """Train, evaluate and export as `config` says; returns the metrics dict (metrics.json)."""
    validate_config(config)
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = strategy or distribute.get_strategy(config.strategy)
    keras.mixed_precision.set_global_policy(config.precision)
    _seed_everything(config)
    replicas = strategy.num_replicas_in_sync
    _check(config.batch_size % replicas == 0,
           f"batch_size must be divisible by the {replicas} replicas. Received: batch_size={config.batch_size}")
    _, task_index, is_chief = distribute.task_info()

    dataset = data.load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                                manual_dir=config.manual_dir, image_size=config.image_size, seed=config.seed)
    if config.train_per_class:
        dataset = data.limit_per_class(dataset, config.train_per_class)
    image_size = config.image_size or dataset.image_shape[0] or 224
    augment = dataset.augment if config.augment == "auto" else config.augment
    flip = dataset.flip if config.flip is None else config.flip

    run_dir = resolve_run_dir(config)
    if not is_chief:  # other workers keep their own state beside the chief's
        run_dir = os.path.join(run_dir, f"worker-{task_index}")
    prepare_run_dir(run_dir, config)
    if dataset.class_names:  # for scripts/export.py and predict.py
        atomic_write(os.path.join(run_dir, "labels.txt"), "\n".join(map(str, dataset.class_names)) + "\n")

    def pipeline(split, training):
        return data.make_pipeline(split, batch_size=config.batch_size, num_classes=dataset.num_classes,
                                  image_size=image_size, training=training, augment=augment, flip=flip,
                                  seed=config.seed)

    train_data = pipeline(dataset.train, True)
    val_data = pipeline(dataset.validation, False)
    steps_per_epoch = dataset.train_size // config.batch_size
    _check(steps_per_epoch >= 1, f"batch_size must not exceed the {dataset.train_size} training images. "
                                 f"Received: batch_size={config.batch_size}")

    with strategy.scope():
        model = build_model(config, dataset, image_size)
        compile_model(model, config, steps_per_epoch, dataset.num_classes)
    callbacks = [
        StepAndEpochBackup(
            os.path.join(run_dir, "backup"), save_freq=config.backup_every_steps or "epoch", double_checkpoint=True
        ),
        keras.callbacks.TerminateOnNaN(),
        BestCheckpoint(run_dir),
        HistoryLogger(run_dir, title=f"{config.model} on {config.dataset}"),  # last: marks the epoch done
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), write_graph=False),
    ]
    start = time.time()
    history = model.fit(train_data, validation_data=val_data, epochs=config.epochs, callbacks=callbacks,
                        shuffle=False, verbose=0 if config.quiet else 1)
    wall = time.time() - start
    losses = history.history.get("loss", [])
    if losses and not all(math.isfinite(v) for v in losses):
        best = os.path.join(run_dir, "best.keras")
        raise TrainingDivergedError(
            f"Training diverged: the loss became {losses[-1]} in epoch {len(losses) + history.epoch[0]}. "
            + (f"The best checkpoint {best} is intact. " if os.path.exists(best) else "")
            + f"Lower the learning rate (it was {config.learning_rate})."
        )

    model.save(os.path.join(run_dir, "final.keras"))
    test_data = pipeline(dataset.test, False)
    results = model.evaluate(test_data, verbose=0, return_dict=True)
    epochs_run = len(losses)
    metrics = {
        "model": config.model,
        "dataset": config.dataset,
        "test_accuracy": float(results["accuracy"]),
        "test_loss": float(results["loss"]),
        "params": int(model.count_params()),
        "trainable_params": analysis.count_trainable_params(model),
        "macs": int(analysis.count_macs(model)),
        "epochs": config.epochs,
        "epochs_this_run": epochs_run,
        "wall_time_s": round(wall, 2),
        "train_images_per_sec": round(dataset.train_size * epochs_run / wall, 1) if wall else None,
        "replicas": replicas,
        "run_dir": run_dir,
    }
    if config.init_from:
        metrics.update(init_from=config.init_from, transfer_mode=config.transfer_mode or "full",
                       trainable_params_per_stage=transfer.trainable_report(model))
    if "top5_accuracy" in results:
        metrics["test_top5_accuracy"] = float(results["top5_accuracy"])
    if config.export and is_chief:
        metrics["export"] = export.export_saved_model(
            model, config.export_dir, name=config.model, class_names=dataset.class_names
        )
    atomic_write(os.path.join(run_dir, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics


# --- command line ------------------------------------------------------------------------


def _field_help():
    """The comment after each TrainConfig field: the flags' help text (one source of truth)."""
    import inspect
    import re

    helps = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.*)$", line)
        if match:
            helps[match.group(1)] = match.group(2)
    return helps


def add_config_arguments(parser):
    """One flag per TrainConfig field (--batch-size, --lr-boundaries, ...), plus --config.

    Flags that are not given stay out of the parsed namespace, so `config_overrides`
    can apply them over the recipe and the config file.
    """
    import argparse

    helps = _field_help()
    parser.add_argument("--config", default=argparse.SUPPRESS, help="JSON file of config values (flags win)")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = TrainConfig.__dataclass_fields__[field.name]
        value = default.default if default.default is not dataclasses.MISSING else default.default_factory()
        kwargs = dict(default=argparse.SUPPRESS, help=f"{helps.get(field.name, '')} (default: {value})")
        if field.name == "model_kwargs":
            parser.add_argument("--model-arg", dest="model_kwargs", action="append", metavar="KEY=JSON",
                                help="builder argument for the model, e.g. shortcut='\"B\"' or zero_init_residual=true "
                                     "(repeatable)", default=argparse.SUPPRESS)
        elif isinstance(value, bool) or field.name == "flip":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif isinstance(value, list):
            parser.add_argument(flag, type=float, nargs="+", **kwargs)
        elif isinstance(value, (int, float)):
            parser.add_argument(flag, type=type(value), **kwargs)
        else:
            parser.add_argument(flag, **kwargs)


def parse_model_arg(text):
    key, sep, value = text.partition("=")
    _check(sep and key, f"--model-arg takes KEY=VALUE. Received: {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string such as shortcut=B


def config_overrides(args):
    """The overrides of a parsed namespace: the --config file's values, then the flags."""
    given = dict(vars(args))
    overrides = load_config_file(given.pop("config")) if "config" in given else {}
    if "model_kwargs" in given:
        given["model_kwargs"] = {**overrides.get("model_kwargs", {}), **dict(map(parse_model_arg, given["model_kwargs"]))}
    overrides.update(given)
    return overrides
