"""The training configuration: precedence, types from annotations, validation in one place, flags."""

import argparse
import dataclasses
import json

import pytest

from keras_resnet import config

TINY = {"width": 4}


def test_config_precedence_recipe_then_dataset_then_overrides():
    default = config.resolve_config({})
    assert (default.model, default.dataset, default.epochs, default.batch_size) == ("resnet20", "digits", 30, 64)
    cifar = config.resolve_config({"dataset": "tfds:cifar10"})
    assert (cifar.epochs, cifar.batch_size, cifar.lr_boundaries, cifar.weight_decay) == (182, 128, [0.5, 0.75], 1e-4)
    imagenet = config.resolve_config({"dataset": "tfds:imagenet2012", "recipe": "imagenet", "epochs": 3})
    assert (imagenet.base_batch_size, imagenet.warmup_epochs, imagenet.epochs) == (256, 5.0, 3)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"epochs": -1}, "epochs=-1"),
        ({"epochs": 0}, "epochs must be a positive integer. Received: epochs=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"recipe": "mnist"}, "recipe='mnist'"),
        ({"optimizer": "rmsprop"}, "optimizer='rmsprop'"),
        ({"model": "resnet21"}, "Unknown model name 'resnet21'"),
        ({"batch": 3}, r"Unknown config keys \['batch'\]"),
        ({"precision": "float8"}, "precision='float8'"),
        # Types, as a --config file can carry them.
        ({"learning_rate": "0.1"}, r"learning_rate must be a number \(finite\). Received: learning_rate='0.1'"),
        ({"dataset": 5}, "dataset must be a string. Received: dataset=5"),
        ({"export": "no"}, "export must be true or false. Received: export='no'"),
        ({"epochs": 2.5}, "epochs must be an integer. Received: epochs=2.5"),
        ({"epochs": True}, "epochs must be an integer. Received: epochs=True"),
        ({"warmup_epochs": float("inf")}, "warmup_epochs must be a number"),
        ({"lr_boundaries": [0.5, "x"]}, "lr_boundaries must be a list of numbers"),
        ({"model_kwargs": [1]}, "model_kwargs must be an object"),
        # Ranges that were never checked before.
        ({"lr_decay": 0}, "lr_decay must be positive. Received: lr_decay=0"),
        ({"lr_boundaries": [0.75, 0.5]}, "increasing fractions"),
        ({"momentum": 1.5}, "momentum must be in"),
        ({"seed": -1}, "seed must be >= 0. Received: seed=-1"),
        ({"cpu_devices": 0}, "cpu_devices must be a positive integer. Received: cpu_devices=0"),
        ({"max_image_pixels": 0}, "max_image_pixels"),
        # Builder arguments: unknown, fixed by the name, set by training.
        ({"model_kwargs": {"foo": 1}}, "foo is not an argument of the resnet20 builder.*Received: --model-arg foo=1"),
        ({"model": "resnet50", "model_kwargs": {"depth": 18}}, "depth is fixed by the model name 'resnet50'"),
        ({"model_kwargs": {"num_classes": 3}}, "num_classes is set by the caller"),
        # Transfer settings.
        ({"transfer_mode": "head"}, "transfer_mode needs init_from"),
        ({"init_from": "imagenet", "trainable_blocks": 2}, "trainable_blocks applies to transfer_mode='partial'"),
        ({"init_from": "imagenet", "transfer_mode": "partial"}, "needs exactly one of trainable_from"),
        ({"init_from": "no/such/file.h5"}, "init_from='no/such/file.h5' \\(no such file or folder\\)"),
        # Names and paths.
        ({"export_name": "../x"}, "export_name must be a single folder name"),
        ({"export_name": "/tmp/x"}, "export_name must be a single folder name"),
        ({"dataset": "mnist"}, "Unknown dataset 'mnist'"),
    ],
)
def test_bad_config_values_are_named(overrides, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        config.resolve_config(overrides)


def test_paths_that_are_files_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    for field in ("run_dir", "export_dir", "data_dir"):
        with pytest.raises(NotADirectoryError, match=f"{field} must be a folder"):
            config.resolve_config({field: str(tmp_path / "file")})
    config.resolve_config({"export_dir": str(tmp_path / "file"), "export": False})  # not used: not checked


def test_task_names_are_folder_names():
    assert config.task_name("resnet20", "digits") == "resnet20-digits"
    assert config.task_name("resnet20", "digits:5-9") == "resnet20-digits-5-9"
    assert config.task_name("resnet50", "folder:/data/flowers") == "resnet50-folder-data-flowers"
    assert config.task_name("resnet56", "tfds:cifar10") == "resnet56-tfds-cifar10"


def _parser(defaults=None):
    parser = argparse.ArgumentParser()
    config.add_config_arguments(parser, defaults)
    return parser


# One valid value per field, as typed on a command line; `None` fields get a real value.
TYPED = {
    "model": ("resnet8", "resnet8"), "dataset": ("digits:0-4", "digits:0-4"), "data_dir": ("/d", "/d"),
    "manual_dir": ("/m", "/m"), "image_size": ("24", 24), "max_image_pixels": ("1000", 1000),
    "train_per_class": ("5", 5), "init_from": ("imagenet", "imagenet"), "transfer_mode": ("partial", "partial"),
    "trainable_from": (None, None), "trainable_blocks": ("2", 2), "head_hidden_units": ("16", 16),
    "recipe": ("imagenet", "imagenet"), "epochs": ("3", 3), "batch_size": ("16", 16), "optimizer": ("adamw", "adamw"),
    "learning_rate": ("0.05", 0.05), "base_batch_size": ("256", 256), "momentum": ("0.8", 0.8),
    "weight_decay": ("5e-4", 5e-4), "lr_schedule": ("cosine", "cosine"), "lr_decay": ("0.2", 0.2),
    "warmup_epochs": ("1.5", 1.5), "label_smoothing": ("0.1", 0.1), "augment": ("none", "none"),
    "strategy": ("one_device", "one_device"), "cpu_devices": ("2", 2), "precision": ("mixed_bfloat16", "mixed_bfloat16"),
    "seed": ("7", 7), "run_dir": ("runs/x", "runs/x"), "export_dir": ("out", "out"), "export_name": ("flowers", "flowers"),
    "backup_every_steps": ("0", 0),
}


def test_every_flag_parses_to_its_field_type():
    """Each flag typed as on a command line reaches the config with its annotation's type
    (Optional[int] fields included: --image-size, --train-per-class, --trainable-blocks)."""
    argv, expected = [], {}
    for name, (text, value) in TYPED.items():
        if text is not None:
            argv += ["--" + name.replace("_", "-"), text]
            expected[name] = value
    argv += ["--lr-boundaries", "0.3", "0.6", "--model-arg", "shortcut=B", "--model-arg", "zero_init_residual=true",
             "--no-flip", "--jit-compile", "--deterministic", "--no-export", "--quiet", "--download"]
    overrides = config.config_overrides(_parser().parse_args(argv))
    resolved = config._resolved_values(overrides)
    for name, value in expected.items():
        assert resolved[name] == value and type(resolved[name]) is type(value), name
    assert resolved["lr_boundaries"] == [0.3, 0.6]
    assert resolved["model_kwargs"] == {"shortcut": "B", "zero_init_residual": True}
    assert (resolved["flip"], resolved["jit_compile"], resolved["deterministic"], resolved["export"],
            resolved["quiet"], resolved["download"]) == (False, True, True, False, True, True)
    covered = set(TYPED) | {"lr_boundaries", "model_kwargs", "flip", "jit_compile", "deterministic", "export",
                            "quiet", "download"}
    assert covered == set(config.FIELD_TYPES)  # a new field needs a line here


@pytest.mark.parametrize("flag, text", [("--image-size", "big"), ("--epochs", "1.5"), ("--warmup-epochs", "nan"),
                                        ("--learning-rate", "inf"), ("--trainable-blocks", "x")])
def test_badly_typed_flags_are_refused_by_the_parser(flag, text):
    with pytest.raises(SystemExit):
        _parser().parse_args([flag, text])


def test_help_shows_the_defaults_the_default_run_uses():
    text = _parser().format_help()
    flat = " ".join(text.split())
    assert "(default: 30 on digits; otherwise the recipe's: cifar 182, imagenet 90)" in flat
    assert "(default: 64 on digits; otherwise the recipe's: cifar 128, imagenet 256)" in flat
    head = " ".join(_parser({"transfer_mode": "head"}).format_help().split())
    assert "which layers train after init_from (default: head)" in head  # transfer.py's own default
    assert "which layers train after init_from (default: full)" in flat  # None means full


def test_script_defaults_sit_below_the_config_file_and_the_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"transfer_mode": "full", "epochs": 5}))
    parser = _parser({"transfer_mode": "head"})
    assert config.config_overrides(parser.parse_args([]))["transfer_mode"] == "head"
    assert config.config_overrides(parser.parse_args(["--config", str(path)]))["transfer_mode"] == "full"
    flags = config.config_overrides(parser.parse_args(["--config", str(path), "--transfer-mode", "partial"]))
    assert (flags["transfer_mode"], flags["epochs"]) == ("partial", 5)


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config must be a JSON file. Received: config="):
        config.load_config_file(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"epochs": 3')
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        config.load_config_file(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        config.load_config_file(str(tmp_path / "list.json"))


def test_model_arg_parsing():
    assert config.parse_model_arg("shortcut=B") == ("shortcut", "B")
    assert config.parse_model_arg("zero_init_residual=true") == ("zero_init_residual", True)
    assert config.parse_model_arg("width=4") == ("width", 4)
    for bad in ("nokey", "=1", "a b=1"):
        with pytest.raises(ValueError, match="--model-arg takes KEY=VALUE"):
            config.parse_model_arg(bad)


def test_saved_config_round_trips():
    resolved = config.resolve_config({"model": "resnet8", "model_kwargs": TINY, "image_size": 16})
    again = config.resolve_config(json.loads(json.dumps(dataclasses.asdict(resolved))))
    assert again == resolved
