"""The training configuration: one dataclass, the paper's recipes, validation, and command-line flags.

`resolve_config(overrides)` fills a `TrainConfig` in this order: the dataclass defaults, the recipe,
the dataset's defaults, then the overrides (a config file, then flags), and validates every value
for type and range (`validate_config`), so a bad value is refused before anything is written.
`add_config_arguments` makes one flag per field, typed from the field's annotation
(`Optional[int]` included), with the field's comment as its help and the default run's value as
its shown default.
"""

import dataclasses
import json
import math
import os
import re
import typing
from typing import Optional

from keras_resnet import registry
from keras_resnet.files import check_folder_name, read_json
from keras_resnet.images import DEFAULT_MAX_PIXELS

OPTIMIZERS = ("sgd", "nesterov", "adamw")
SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multiworker", "tpu")
AUGMENTS = ("cifar", "imagenet", "none", "auto")
TRANSFER_MODES = ("full", "partial", "head")
DATASET_KINDS = ("digits", "digits:5-9", "tfds:NAME", "folder:PATH")

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
# Builder arguments that training sets itself (not through --model-arg), and where they come from.
RESERVED_MODEL_ARGS = {"input_shape": "the dataset and --image-size", "num_classes": "the dataset",
                       "preprocessing": "the dataset's statistics", "weight_decay": "--weight-decay",
                       "weights": "--init-from", "include_top": "training", "input_tensor": "training",
                       "name": "--model"}
# Fields that only affect what happens after training: a rerun may change them.
LATER_PHASE_FIELDS = ("quiet", "export", "export_dir", "export_name")
# Where the run is: a run directory moved or copied elsewhere resumes there.
LOCATION_FIELDS = ("run_dir",)


@dataclasses.dataclass
class TrainConfig:
    """Every hyperparameter of a training run; `scripts/train.py` flags map onto these."""

    # What to train
    model: str = "resnet20"  # registry name (keras_resnet.list_models())
    model_kwargs: dict = dataclasses.field(default_factory=dict)  # extra builder arguments, e.g. {"shortcut": "B"}
    dataset: str = "digits"  # "digits", "digits:5-9", "tfds:NAME" or "folder:PATH"
    data_dir: Optional[str] = None  # TensorFlow Datasets data directory
    manual_dir: Optional[str] = None  # archives of manually downloaded TFDS datasets (imagenet2012)
    download: bool = False  # allow a TFDS download or preparation (fails in seconds when offline)
    image_size: Optional[int] = None  # input height and width (None: the dataset's native size; folders 64)
    max_image_pixels: int = DEFAULT_MAX_PIXELS  # folder datasets: images with more pixels are skipped
    train_per_class: Optional[int] = None  # keep only the first N training images of each class (few-label runs)
    # Transfer learning (scripts/transfer.py)
    init_from: Optional[str] = None  # start from: "imagenet", a keras.applications .h5, a torchvision/timm .pth or .safetensors, a .keras file or run dir
    transfer_mode: Optional[str] = None  # full|partial|head: which layers train after init_from (None: full)
    trainable_from: Optional[str] = None  # partial: the first stage that trains, e.g. stage4
    trainable_blocks: Optional[int] = None  # partial: train only the last N blocks (and the head)
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
    lr_boundaries: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.75])  # fractions of training
    lr_decay: float = 0.1  # step schedule factor
    warmup_epochs: float = 0.0  # linear warm-up from 0 to the peak learning rate
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: str = "auto"  # "cifar" (pad + crop + flip), "imagenet" (random-resized crop), "none", "auto"
    flip: Optional[bool] = None  # random horizontal flips (None: the dataset's choice; not for digits)
    # System
    strategy: str = "auto"  # auto|default|one_device|mirrored|multiworker|tpu
    cpu_devices: int = 1  # logical CPU devices (mirrored training without GPUs)
    precision: str = "float32"  # float32|mixed_float16|mixed_bfloat16 (softmax stays float32)
    jit_compile: bool = False  # XLA compilation of the train step
    seed: int = 0  # seeds Python, NumPy, TensorFlow and the data pipeline
    deterministic: bool = False  # TensorFlow op determinism (identical reruns, slower)
    # Outputs
    run_dir: Optional[str] = None  # the run directory (None: runs/<model>-<dataset>[-N], the first unfinished)
    export_dir: str = "saved_models"  # SavedModels go to <export_dir>/<export_name>/<version>/
    export_name: Optional[str] = None  # model folder name of the export (None: <model>-<dataset>)
    export: bool = True  # export a SavedModel at the end
    backup_every_steps: int = 50  # backup interval (steps), besides every epoch end; 0: epoch ends only
    quiet: bool = False  # no progress bar


FIELD_TYPES = typing.get_type_hints(TrainConfig)


def _check(condition, message):
    if not condition:
        raise ValueError(message)


def dataset_slug(dataset):
    """A dataset name as part of a folder name: digits, digits-5-9, tfds-cifar10, folder-data-flowers."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", dataset).strip("-.") or "data"


def task_name(model, dataset):
    """'<model>-<dataset>' as a folder name: resnet20-digits, resnet20-digits-5-9, resnet50-folder-data-flowers."""
    return f"{model}-{dataset_slug(dataset)}"


# --- types and ranges ------------------------------------------------------------------------


def _base_type(annotation):
    """(type, optional, element type) of a field annotation: Optional[int] -> (int, True, None)."""
    optional = False
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional, annotation = True, args[0]
    origin = typing.get_origin(annotation)
    if origin is list:
        return list, optional, typing.get_args(annotation)[0]
    return origin or annotation, optional, None


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list of numbers",
          dict: "an object (JSON) of builder arguments"}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_ok(value, kind, element):
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return _is_number(value)
    if kind is list:
        return isinstance(value, list) and all(_is_number(v) for v in value)
    if kind is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    return isinstance(value, kind)


def check_types(config):
    """TypeError-free config: every field of the type its annotation says (numbers finite)."""
    for name, annotation in FIELD_TYPES.items():
        value = getattr(config, name)
        kind, optional, element = _base_type(annotation)
        if value is None and optional:
            continue
        if not _type_ok(value, kind, element):
            finite = " (finite)" if kind in (float, list) else ""
            raise ValueError(f"{name} must be {_KINDS[kind]}{finite}{' or null' if optional else ''}. "
                             f"Received: {name}={value!r}")


def check_dataset_name(name):
    """A syntactically valid dataset name (the data module checks that it exists)."""
    kind, colon, rest = name.partition(":")
    _check(name == "digits" or (colon and kind in ("digits", "tfds", "folder") and rest) or os.path.isdir(name),
           f"Unknown dataset {name!r}. Use one of: {', '.join(DATASET_KINDS)}. Received: dataset={name!r}")


def validate_config(config):
    """ValueError naming the field and the value for anything of the wrong type or out of range."""
    check_types(config)
    registry.get_entry(config.model)
    registry.check_arguments(config.model, config.model_kwargs, argument="--model-arg", reserved=RESERVED_MODEL_ARGS)
    check_dataset_name(config.dataset)
    for name in ("epochs", "batch_size", "base_batch_size", "cpu_devices", "max_image_pixels"):
        value = getattr(config, name)
        _check(value >= 1, f"{name} must be a positive integer. Received: {name}={value!r}")
    for name in ("image_size", "train_per_class"):
        value = getattr(config, name)
        _check(value is None or value >= 1, f"{name} must be a positive integer. Received: {name}={value!r}")
    for name in ("seed", "backup_every_steps", "head_hidden_units"):
        value = getattr(config, name)
        _check(value >= 0, f"{name} must be >= 0. Received: {name}={value!r}")
    choices = {"recipe": tuple(RECIPES), "optimizer": OPTIMIZERS, "lr_schedule": SCHEDULES, "precision": PRECISIONS,
               "strategy": STRATEGIES, "augment": AUGMENTS}
    for name, allowed in choices.items():
        value = getattr(config, name)
        _check(value in allowed, f"{name} must be one of {allowed}. Received: {name}={value!r}")
    _check(config.learning_rate > 0, f"learning_rate must be positive. Received: learning_rate={config.learning_rate!r}")
    _check(0 <= config.momentum < 1, f"momentum must be in [0, 1). Received: momentum={config.momentum!r}")
    _check(config.lr_decay > 0, f"lr_decay must be positive. Received: lr_decay={config.lr_decay!r}")
    _check(all(0 < b < 1 for b in config.lr_boundaries) and config.lr_boundaries == sorted(config.lr_boundaries),
           f"lr_boundaries are increasing fractions of training in (0, 1). Received: lr_boundaries={config.lr_boundaries!r}")
    _check(0 <= config.label_smoothing < 1,
           f"label_smoothing must be in [0, 1). Received: label_smoothing={config.label_smoothing!r}")
    _check(config.weight_decay >= 0, f"weight_decay must be >= 0. Received: weight_decay={config.weight_decay!r}")
    _check(config.warmup_epochs >= 0, f"warmup_epochs must be >= 0. Received: warmup_epochs={config.warmup_epochs!r}")
    _validate_transfer(config)
    _validate_paths(config)


def _validate_transfer(config):
    _check(config.transfer_mode is None or config.transfer_mode in TRANSFER_MODES,
           f"transfer_mode must be one of {TRANSFER_MODES}. Received: transfer_mode={config.transfer_mode!r}")
    for name in ("transfer_mode", "trainable_from", "trainable_blocks"):
        _check(getattr(config, name) is None or config.init_from,
               f"{name} needs init_from (the weights to transfer). Received: {name}={getattr(config, name)!r}")
    partial_args = {n: getattr(config, n) for n in ("trainable_from", "trainable_blocks") if getattr(config, n) is not None}
    if config.transfer_mode == "partial":
        _check(len(partial_args) == 1, "transfer_mode='partial' needs exactly one of trainable_from (a stage, e.g. "
               f"stage4) and trainable_blocks (a number). Received: {partial_args or 'neither'}")
    else:
        for name, value in partial_args.items():
            _check(False, f"{name} applies to transfer_mode='partial'. Received: {name}={value!r} with "
                          f"transfer_mode={config.transfer_mode!r}")
    _check(config.trainable_blocks is None or config.trainable_blocks >= 0,
           f"trainable_blocks must be >= 0. Received: trainable_blocks={config.trainable_blocks!r}")
    if config.init_from and config.init_from != "imagenet":
        if not os.path.exists(config.init_from):
            raise FileNotFoundError(f"init_from must be 'imagenet', a weights file, a .keras file or a run directory. "
                                    f"Received: init_from={config.init_from!r} (no such file or folder)")


def _validate_paths(config):
    """Folders the run will use must not be files (checked before anything is written)."""
    for name in ("run_dir", "data_dir", "manual_dir") + (("export_dir",) if config.export else ()):
        value = getattr(config, name)
        if value is not None and os.path.exists(value) and not os.path.isdir(value):
            raise NotADirectoryError(f"{name} must be a folder. Received: {name}={value!r} (a file)")
    if config.export_name is not None:
        check_folder_name(config.export_name, "export_name")


def resolve_config(overrides=None):
    """A validated `TrainConfig` from defaults < recipe < dataset defaults < `overrides` (a dict)."""
    config = TrainConfig(**_resolved_values(overrides))
    validate_config(config)
    return config


def _resolved_values(overrides):
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(FIELD_TYPES))
    _check(not unknown, f"Unknown config keys {unknown}. Known keys: {', '.join(FIELD_TYPES)}")
    values = dataclasses.asdict(TrainConfig())
    recipe = overrides.get("recipe", values["recipe"])
    _check(recipe in RECIPES, f"recipe must be one of {tuple(RECIPES)}. Received: recipe={recipe!r}")
    values.update(RECIPES[recipe])
    dataset = overrides.get("dataset", values["dataset"])
    _check(isinstance(dataset, str), f"dataset must be a string. Received: dataset={dataset!r}")
    values.update(DATASET_DEFAULTS.get(dataset.split(":")[0], {}))
    values.update(overrides)
    return values


def load_config_file(path, argument="config"):
    """Overrides from a JSON object file (the run directory's config.json works too)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{argument} must be a JSON file. Received: {argument}={path!r} (no such file)")
    values = read_json(path, advice=f"pass a valid JSON file as --{argument.replace('_', '-')}")
    _check(isinstance(values, dict), f"{argument} file {path!r} must hold a JSON object. Received: {values!r}")
    return values


# --- command line ------------------------------------------------------------------------------


def _field_help():
    """The comment after each TrainConfig field: the flags' help text (one source of truth)."""
    import inspect

    helps = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.*)$", line)
        if match:
            helps[match.group(1)] = match.group(2)
    return helps


def _shown_default(name, default_run, comment=""):
    """The value the default run uses, and where recipes or datasets change it ("(None: full)" in the
    field's comment says what None means)."""
    value = default_run[name]
    meaning = re.search(r"\(None: ([^)]*)\)", comment)
    if value is None and meaning:
        return meaning.group(1)
    recipes = ", ".join(f"{n} {values[name]}" for n, values in RECIPES.items() if name in values)
    if any(name in values for values in DATASET_DEFAULTS.values()):
        return f"{value} on {default_run['dataset']}; otherwise the recipe's: {recipes}"
    others = [f"{n} {values[name]}" for n, values in RECIPES.items() if name in values and values[name] != value]
    return f"{value}" + (f"; recipe {', '.join(others)}" if others else "")


def add_config_arguments(parser, defaults=None):
    """One flag per TrainConfig field (--batch-size, --lr-boundaries, ...), plus --config.

    Each flag's type is its field's annotation (Optional[int] -> int). Flags that are not given
    stay out of the parsed namespace, so `config_overrides` can apply them over the recipe and
    the config file. `defaults` (field -> value) are a script's own defaults: applied when the
    flag is not given, and shown in --help.
    """
    import argparse

    defaults = dict(defaults or {})
    parser.set_defaults(_script_defaults=defaults)
    helps = _field_help()
    default_run = _resolved_values(defaults)
    parser.add_argument("--config", default=argparse.SUPPRESS, help="JSON file of config values (flags win)")
    for name, annotation in FIELD_TYPES.items():
        flag = "--" + name.replace("_", "-")
        kind, _, element = _base_type(annotation)
        comment = helps.get(name, "")
        shown = _shown_default(name, default_run, comment)
        kwargs = dict(default=argparse.SUPPRESS,
                      help=f"{re.sub(r' ?[(]None: [^)]*[)]', '', comment)} (default: {shown})")
        if name == "model_kwargs":
            parser.add_argument("--model-arg", dest="model_kwargs", action="append", metavar="KEY=JSON",
                                help="builder argument for the model, e.g. shortcut=B or zero_init_residual=true "
                                     "(repeatable)", default=argparse.SUPPRESS)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif kind is list:
            parser.add_argument(flag, type=_number_type(element), nargs="+", **kwargs)
        else:
            parser.add_argument(flag, type=_number_type(kind) if kind in (int, float) else kind, **kwargs)


DATASET_FIELDS = ("dataset", "data_dir", "manual_dir", "download")


def add_dataset_arguments(parser):
    """--dataset, --data-dir, --manual-dir and --download, as the training script has them (for the
    scripts that train several runs)."""
    import argparse

    helps = _field_help()
    defaults = TrainConfig()
    for name in DATASET_FIELDS:
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        if name == "download":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{helps[name]} (default: {default})")
        else:
            parser.add_argument(flag, default=default, help=f"{helps[name]} (default: {default})")


def dataset_overrides(args):
    """The dataset settings of `add_dataset_arguments`' flags, as config overrides."""
    return {name: getattr(args, name) for name in DATASET_FIELDS}


def _number_type(kind):
    """An argparse type that rejects nan and inf (and names what it expected)."""
    def convert(text):
        value = kind(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value

    convert.__name__ = "integer" if kind is int else "number"
    return convert


def parse_model_arg(text, argument="--model-arg"):
    """'KEY=JSON' -> (key, value); a bare string value (shortcut=B) is kept as a string."""
    key, sep, value = text.partition("=")
    _check(sep and key and key.isidentifier(), f"{argument} takes KEY=VALUE. Received: {argument} {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def config_overrides(args):
    """The overrides of a parsed namespace: the script's defaults, the --config file's values, then the flags."""
    given = {k: v for k, v in vars(args).items() if k in FIELD_TYPES or k == "config"}
    overrides = dict(getattr(args, "_script_defaults", {}))
    if "config" in given:
        overrides.update(load_config_file(given.pop("config")))
    if "model_kwargs" in given:
        given["model_kwargs"] = {**overrides.get("model_kwargs", {}),
                                 **dict(parse_model_arg(t) for t in given["model_kwargs"])}
    overrides.update(given)
    return overrides
