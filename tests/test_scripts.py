"""Every script's flags, as a user types them: each parses to its declared type, --help shows the
defaults the scripts use, bad values fail on one line, and stderr stays free of TensorFlow's start-up log."""

import argparse
import importlib.util
import os

import pytest
from conftest import ROOT, no_traceback, script

SCRIPTS = sorted(name for name in os.listdir(os.path.join(ROOT, "scripts")) if name.endswith(".py"))
# Flags that take text (names, paths, expressions): every other flag that takes a value must have a type.
TEXT_FLAGS = {
    "--model", "--dataset", "--data-dir", "--manual-dir", "--init-from", "--transfer-mode", "--trainable-from",
    "--recipe", "--optimizer", "--lr-schedule", "--augment", "--strategy", "--precision", "--run-dir",
    "--export-dir", "--export-name", "--config", "--model-arg", "--directory", "--project-name", "--objective",
    "--space", "--space-file", "--out-dir", "--out", "--json", "--name", "--labels", "--tuner", "--compare",
    "--source", "--target", "--options", "--models", "--eval-transform", "--calibration-dataset", "--build",
    "--wheelhouse",
}


def load(name):
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(ROOT, "scripts", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_script_is_a_thin_cli_with_a_parser():
    assert SCRIPTS == ["benchmark.py", "convert_weights.py", "degradation.py", "export.py", "gpu_benchmark.py",
                       "predict.py", "shortcuts.py", "summary.py", "train.py", "transfer.py", "transfer_demo.py",
                       "tune.py"]
    for name in SCRIPTS:
        module = load(name)
        assert callable(module.build_parser) and callable(module.main), name


def _value_flags(parser):
    for action in parser._actions:
        if action.option_strings and action.nargs != 0 and not isinstance(action, argparse._HelpAction):
            yield action


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_flag_that_takes_a_number_parses_to_a_number(name):
    """A flag without a type stays a string: only text flags may go without one, and every typed flag
    turns a typed value into its type (the bug that broke --image-size, --train-per-class and
    --trainable-blocks)."""
    parser = load(name).build_parser()
    for action in _value_flags(parser):
        flag = action.option_strings[0]
        if action.choices:
            text = str(list(action.choices)[0])
        elif action.type is None:
            assert flag in TEXT_FLAGS, f"{name} {flag} takes a value but declares no type"
            continue
        else:
            text = "3"
        values = [text] * (2 if action.nargs in ("+", "*") else 1)
        positional = ["x"] * sum(1 for a in parser._actions if not a.option_strings and a.nargs in (None, 1)) + \
            ["x"] * sum(1 for a in parser._actions if not a.option_strings and a.nargs == "+")
        parsed = getattr(parser.parse_args([*positional, flag, *values]), action.dest)
        first = parsed[0] if isinstance(parsed, list) else parsed
        if action.type is not None and not action.choices:
            expected = {"integer": int, "number": float}.get(getattr(action.type, "__name__", ""), action.type)
            assert type(first) is expected, f"{name} {flag}: {type(first).__name__}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_is_quick_to_read_and_names_defaults(name):
    text = load(name).build_parser().format_help()
    assert text.startswith("usage:") and "python scripts/" in text
    for action in _value_flags(load(name).build_parser()):
        if action.default not in (None, argparse.SUPPRESS, False) and action.help:
            shown = str(action.default if not isinstance(action.default, list) else " ".join(map(str, action.default)))
            assert "default" in action.help and shown.split(".")[0].replace(",", "") in action.help.replace(",", ""), \
                f"{name} {action.option_strings[0]}: default {action.default!r} not in help {action.help!r}"


def test_stderr_is_free_of_tensorflow_start_up_noise():
    result = script("summary.py", "resnet8", "--input-size", 8)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == "", result.stderr  # no absl notice, oneDNN note or CUDA probe lines
    bad = script("train.py", "--epochs", "0")
    assert no_traceback(bad) == "error: epochs must be a positive integer. Received: epochs=0"
    assert bad.stderr.count("\n") == 1
