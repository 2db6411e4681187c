import csv
import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest
from conftest import no_traceback, run_main

from keras_resnet import tuning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNE = os.path.join(ROOT, "scripts", "tune.py")
TINY = ["--model-arg", "width=4", "--space", 'model=["resnet8"]', "--space", "batch_size=[64,128]", "--quiet"]


def tune(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, TUNE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def results_folder(done):
    """The project folder a search reported ('results in ...')."""
    text = done if isinstance(done, str) else done.stdout
    return pathlib.Path(text.split("results in ")[-1].split()[0])


def read_trials(folder):
    with open(os.path.join(folder, "trials.csv")) as f:
        return list(csv.DictReader(f))


def test_equal_scores_pick_the_earliest_trial_in_any_order():
    """A rerun reloads the trials in another order: with equal scores the best (and the export) must not change."""
    import types

    import keras_tuner

    trials = {}
    for trial_id, score, status in (("02", 0.5, "COMPLETED"), ("03", float("nan"), "COMPLETED"),
                                    ("01", 0.3, "COMPLETED"), ("00", 0.5, "COMPLETED"), ("04", None, "FAILED")):
        trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id=trial_id, status=status)
        trial.score = score
        trials[trial_id] = trial
    tuner = types.SimpleNamespace(oracle=types.SimpleNamespace(
        trials=trials, objective=keras_tuner.Objective("val_accuracy", "max")))
    assert [row["trial"] for row in tuning.trials_table(tuner)] == ["00", "02", "01", "03", "04"]
    assert tuning.best_trial(tuner).trial_id == "00"
    tuner.oracle.trials = dict(reversed(list(trials.items())))
    assert tuning.best_trial(tuner).trial_id == "00"


def test_random_search_writes_results_and_a_rerun_adds_no_trials(tmp_path):
    args = ["--max-trials", 2, "--epochs", 1, "--directory", tmp_path / "t", "--export-dir", tmp_path / "sm", *TINY]
    first = tune(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    folder = results_folder(first)
    trials = read_trials(folder)
    assert len(trials) == 2 and {t["status"] for t in trials} == {"COMPLETED"}
    assert {t["model"] for t in trials} == {"resnet8"} and {t["batch_size"] for t in trials} <= {"64", "128"}
    assert float(trials[0]["score"]) >= float(trials[1]["score"])  # best first
    best = json.loads((folder / "best_hyperparameters.json").read_text())
    assert best["model"] == "resnet8" and set(best) == set(tuning.DEFAULT_SPACE)
    assert (folder / "trials.md").read_text().startswith("| trial | status | score |")
    assert os.listdir(tmp_path / "sm" / "resnet8-digits") == ["1"]
    assert "2 trials (2 new, 2 completed)" in first.stdout

    again = tune(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(read_trials(folder)) == 2 and "2 trials (0 new, 2 completed)" in again.stdout
    assert "tuner0 ran 0 trial(s)" in again.stdout
    assert os.listdir(tmp_path / "sm" / "resnet8-digits") == ["1"]  # the same best model: no new version
    assert folder.name.startswith("random-digits-")
    # Another search in the same directory gets its own project, never this one's trials.
    other = tune(*args, "--tuner", "bayesian", "--max-trials", 1)
    assert other.returncode == 0 and results_folder(other) != folder and "1 trials (1 new" in other.stdout
    clash = tune(*args, "--project-name", folder.name, "--space", "optimizer=sgd")
    assert "holds another search (space differ)" in no_traceback(clash)


@pytest.mark.parametrize(
    "space, match",
    [
        ({"optimizer": []}, r"optimizer has an empty list of choices"),
        ({"learning_rate": {"min": -0.1, "max": 0.1}}, r"0 < min <= max"),
        ({"learning_rate": {"min": 0.5, "max": 0.1}}, r"learning_rate range must have 0 < min <= max"),
        ({"model": ["resnet21"]}, r"Unknown model name 'resnet21'"),
        ({"model": ["vgg16"]}, r"ResNets or plain nets"),
        ({"depth": [20]}, r"Unknown search space keys \['depth'\]"),
        ({"augmentation": ["heavy"]}, r"augmentation choices must be among"),
    ],
)
def test_invalid_search_spaces_are_named(space, match):
    with pytest.raises(ValueError, match=match):
        tuning.validate_space(space)


@pytest.mark.parametrize("args, match", [
    (["--space", 'learning_rate={"min":0.5,"max":0.1}'], "learning_rate range"),
    (["--objective", "val_acuracy"], "objective must be one of the metrics the models report: loss, accuracy, "
                                     "top5_accuracy, val_loss, val_accuracy, val_top5_accuracy. "
                                     "Received: objective='val_acuracy'"),
    (["--space", "batch_size=[64,2048]"], "batch_size choices must not exceed the 1257 training images"),
    (["--cpu-devices", "0"], "cpu_devices must be a positive integer. Received: cpu_devices=0"),
    (["--epochs", "0"], "epochs must be a positive integer. Received: epochs=0"),
    (["--max-trials", "0"], "max_trials must be a positive integer. Received: max_trials=0"),
    (["--project-name", "../x"], "project_name must be a single folder name"),
])
def test_bad_settings_fail_before_any_trial(tmp_path, args, match):
    done = run_main("tune.py", *args, "--directory", tmp_path / "t")
    assert match in no_traceback(done)
    assert not os.path.exists(tmp_path / "t")


def test_a_search_whose_trials_all_diverge_exits_1_and_exports_nothing(tmp_path):
    done = tune("--max-trials", 2, "--epochs", 1, "--directory", tmp_path / "t", "--export-dir", tmp_path / "sm",
                *TINY, "--space", "learning_rate=1e9", "--space", "optimizer=sgd")
    assert "all 2 trials failed or diverged" in no_traceback(done, code=1)
    assert "2 trials (2 new, 0 completed); best hyperparameters: none" in done.stdout
    assert not os.path.exists(tmp_path / "sm")
    assert {t["status"] for t in read_trials(results_folder(done))} <= {"FAILED", "INVALID"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_split_one_search(tmp_path):
    env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    args = [sys.executable, TUNE, "--max-trials", 4, "--epochs", 1, "--directory", tmp_path / "t", "--no-export", *TINY]
    args = list(map(str, args))
    processes = {
        name: subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env, "KERASTUNER_TUNER_ID": name})
        for name in ("chief", "tuner0", "tuner1")
    }
    outputs = {name: p.communicate(timeout=600) for name, p in processes.items()}
    for name, p in processes.items():
        assert p.returncode == 0, f"{name}: {outputs[name][1][-3000:]}"
    ran = {name: int(outputs[name][0].split(f"{name} ran ")[1].split(" ")[0]) for name in ("tuner0", "tuner1")}
    assert ran["tuner0"] >= 1 and ran["tuner1"] >= 1 and sum(ran.values()) == 4
    trials = read_trials(results_folder(outputs["chief"][0]))
    assert len(trials) == 4 and {t["status"] for t in trials} == {"COMPLETED"}
    assert "chief ran 0 trial(s)" in outputs["chief"][0]
