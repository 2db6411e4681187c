"""The README, run as a user follows it: every command (fenced `bash` blocks and inline `python scripts/...`
and `make ...` spans) and every fenced Python snippet, in the README's order, in one fresh folder.

Each command is in PLAN, which says how it runs here: as written, or with tiny settings appended (fewer
epochs, a smaller model: the README says so in "The two commands"), or, where it needs what this machine
cannot have (a prepared TFDS dataset, the internet), that it fails at once with the promised message. A
command or snippet added to the README without a PLAN entry fails `test_every_readme_command_has_a_plan`,
so the README cannot drift from the code. Commands run in this process (the scripts' `main(argv)`, argv as
the shell splits it) to keep the suite fast; those that need another process (an environment variable, op
determinism, `make`) run as subprocesses.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import ROOT, run_main

from keras_resnet import data, network

README = open(os.path.join(ROOT, "README.md")).read()
TINY = "--model-arg width=4"

# README command (whitespace-normalised, comments removed) -> how it runs here.
#   ("run", extra): run it with `extra` appended;   ("subprocess", extra): the same, in its own process;
#   ("make", extra): `make -n` shows the target runs scripts/train.py with the README's ARGS; then that
#                    command runs with `extra` appended;
#   ("fails", text): must exit 2 at once with `text` in its one-line error;
#   ("elsewhere", where): run by another test;       ("not here", why): needs a server this machine lacks;
#   ("slow", extra): "run", but minutes even with tiny settings: marked slow (`make test-all`).
PLAN = {
    "make train": ("make", "--epochs 1"),
    "make test": ("elsewhere", "this suite is `make test`; CI runs it from a clean clone"),
    "make test-all": ("elsewhere", "make test plus the tests marked slow"),
    "make test TEST_WORKERS=0": ("elsewhere", "test_make_test_runs_the_files_in_test_workers_processes"),
    "saved_model_cli run": ("elsewhere", "test_export.py::test_saved_model_cli_run_on_the_image_signatures"),
    'make train ARGS="--epochs 60 --model plain20"': ("make", "--epochs 1"),
    "python scripts/train.py": ("run", "--epochs 1"),
    # In process: op determinism, once on, stays on in this test process (it only makes later tests reproducible).
    "python scripts/train.py --model plain56 --epochs 60 --seed 3 --deterministic": ("run", f"--epochs 1 {TINY}"),
    "python scripts/train.py --model resnet110 --dataset tfds:cifar10 --data-dir ~/tensorflow_datasets "
    "--warmup-epochs 1": ("fails", "Dataset tfds:cifar10 is not prepared"),
    "python scripts/train.py --model resnet50 --dataset tfds:imagenet2012 --manual-dir ~/imagenet --recipe imagenet "
    "--strategy mirrored --precision mixed_bfloat16 --jit-compile --label-smoothing 0.1":
        ("fails", "Dataset tfds:imagenet2012 is not prepared"),
    "python scripts/train.py --dataset folder:/data/flowers --image-size 64 --model-arg shortcut=B":
        ("run", "--epochs 1 --batch-size 32 --image-size 32"),  # not width 4: see README, "A TensorFlow bug"
    "python scripts/train.py --config runs/resnet20-digits/config.json --epochs 60 --run-dir runs/resnet20-longer":
        ("run", "--epochs 1"),
    "python scripts/train.py --help": ("run", ""),
    "python scripts/train.py --strategy multiworker --run-dir /shared/run1":
        ("elsewhere", "test_training.py::test_two_workers_on_loopback_train_one_model"),
    "python scripts/summary.py resnet50": ("run", ""),
    "python scripts/summary.py NAME": ("not here", "a placeholder"),
    "python scripts/train.py --dataset digits:0-4": ("run", "--epochs 2"),
    "python scripts/transfer.py --init-from runs/resnet20-digits-0-4 --dataset digits:5-9 --train-per-class 5 "
    "--batch-size 10 --transfer-mode partial --trainable-from stage4": ("run", "--epochs 2"),
    "python scripts/transfer.py --init-from runs/resnet20-digits-0-4 --dataset digits:5-9 --transfer-mode partial "
    "--trainable-blocks 2 --learning-rate 0.01": ("run", "--epochs 1"),
    "python scripts/transfer.py --init-from imagenet --model resnet50 --dataset folder:/data/flowers --image-size 224 "
    "--transfer-mode head --head-hidden-units 256": ("fails", "init_from='imagenet': the ImageNet weights of ResNet-50 "
                                                              "are not cached and the network is unreachable"),
    "python scripts/transfer.py --init-from ...": ("not here", "a placeholder"),
    "python scripts/transfer_demo.py":
        ("elsewhere", "test_transfer.py::test_transfer_demo_script_writes_table_and_plot (tiny settings)"),
    "python scripts/tune.py": ("elsewhere", "test_tuning.py::test_random_search_writes_results_and_a_rerun_adds_no_"
                                            "trials (a random search on digits, tiny settings)"),
    "python scripts/tune.py --max-trials 10 --epochs 10": ("run", f"--max-trials 1 --epochs 1 {TINY} --quiet"),
    "python scripts/tune.py --tuner bayesian --space 'model=[\"resnet20\",\"resnet56\"]' --space "
    "'learning_rate={\"min\":0.01,\"max\":0.5}' --space optimizer=sgd": ("run", f"--max-trials 1 --epochs 1 {TINY} "
                                                                                "--quiet"),
    "python scripts/tune.py --tuner hyperband --epochs 27 --dataset tfds:cifar10 --strategy mirrored":
        ("fails", "Dataset tfds:cifar10 is not prepared"),
    "export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000":
        ("elsewhere", "test_tuning.py::test_chief_and_two_workers_split_one_search"),
    "KERASTUNER_TUNER_ID=chief python scripts/tune.py --max-trials 20 &":
        ("elsewhere", "test_tuning.py::test_chief_and_two_workers_split_one_search"),
    "KERASTUNER_TUNER_ID=tuner0 python scripts/tune.py --max-trials 20 &":
        ("elsewhere", "test_tuning.py::test_chief_and_two_workers_split_one_search"),
    "KERASTUNER_TUNER_ID=tuner1 python scripts/tune.py --max-trials 20 &":
        ("elsewhere", "test_tuning.py::test_chief_and_two_workers_split_one_search"),
    "python scripts/degradation.py":
        ("elsewhere", "test_experiments.py::test_degradation_script_writes_plot_and_table (tiny settings)"),
    "python scripts/shortcuts.py": ("elsewhere", "test_experiments.py::test_shortcuts_script_table (tiny settings)"),
    "python scripts/summary.py --all": ("elsewhere", "test_experiments.py::test_summary_script_tables (--models)"),
    "python scripts/summary.py --baselines": ("elsewhere", "test_experiments.py::test_summary_script_tables"),
    "python scripts/benchmark.py": ("run", "--model resnet20 --input-size 32 --batch-size 2 --warmup 1 --repeats 1"),
    "python scripts/benchmark.py --compare keras-applications --json bench.json":
        ("elsewhere", "test_benchmark.py::test_compare_json_holds_both_models (tiny settings)"),
    "python scripts/benchmark.py --all --rounds 3": ("slow", "--rounds 1 --model resnet50 --input-size 32 "
                                                             "--depth-input-size 32 --batch-size 2 --warmup 0 "
                                                             "--repeats 1"),
    "python scripts/benchmark.py --no-throughput --depth-scaling --jit-compile":
        ("elsewhere", "test_benchmark.py (XLA compiles of ResNet-18..152 take minutes on a CPU)"),
    "KERAS_BACKEND=jax python scripts/benchmark.py --precision mixed_bfloat16 --batch-size 256 --jit-compile":
        ("subprocess", "--model resnet8 --input-size 8 --batch-size 4 --warmup 1 --repeats 1"),
    "python -c \"import torch, torchvision; torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V2')"
    ".state_dict(), 'resnet50_v2.pth')\"": ("not here", "downloads the published weights: the workspace has "
                                                        "random weights in these files' layouts instead"),
    "python -c \"import torchvision; from safetensors.torch import save_file; save_file(torchvision.models.resnet18("
    "weights='IMAGENET1K_V1').state_dict(), 'resnet18_v1.safetensors')\"": ("not here", "downloads the weights"),
    "python -c \"from huggingface_hub import hf_hub_download; print(hf_hub_download('timm/resnet50.a1_in1k', "
    "'model.safetensors'))\"": ("not here", "downloads the weights"),
    "python scripts/convert_weights.py resnet50_v2.pth resnet50_v2.keras --eval-transform torchvision-v2":
        ("run", "--image-size 64"),
    "python scripts/convert_weights.py resnet50_a1/model.safetensors resnet50_a1.keras --eval-transform timm-a1":
        ("run", "--image-size 64"),
    "python scripts/convert_weights.py resnet50_weights_tf_dim_ordering_tf_kernels.h5 resnet50_keras.keras":
        ("run", "--image-size 64"),
    "python scripts/export.py resnet50_v2.keras --name resnet50-imagenet": ("run", ""),
    "python scripts/predict.py resnet50_v2.keras cat.jpg": ("run", ""),
    "python scripts/transfer.py --init-from resnet50_v2.safetensors --model resnet50 --dataset folder:/data/flowers "
    "--image-size 224 --transfer-mode partial --trainable-from stage5 --learning-rate 0.01":
        ("run", "--image-size 32 --epochs 1 --batch-size 32"),
    "python scripts/train.py --precision mixed_bfloat16": ("run", f"--epochs 1 --model resnet8 {TINY}"),
    "python scripts/benchmark.py --runtimes --no-throughput --rounds 3":
        ("elsewhere", "test_benchmark.py::test_runtimes_table_measures_every_runtime_in_turn (tiny settings)"),
    "python scripts/export.py runs/resnet20-digits --format openvino --int8":
        ("run", "--calibration-images 32 --evaluation-images 50"),
    "python scripts/export.py runs/resnet20-digits --format onnx --int8 --calibration-images 500":
        ("elsewhere", "test_runtimes.py::test_int8_agrees_with_the_float_model_on_the_digits (onnx)"),
    "python scripts/predict.py saved_models/resnet20-digits-openvino-int8 digit.png": ("run", ""),
    "python scripts/export.py runs/resnet20-digits --format onnx": ("run", ""),
    "python scripts/export.py runs/resnet20-digits --format openvino":
        ("elsewhere", "test_runtimes.py::test_float_exports_give_the_keras_probabilities (openvino)"),
    "python scripts/export.py runs/resnet20-digits --format litert":
        ("elsewhere", "test_runtimes.py::test_float_exports_give_the_keras_probabilities (litert)"),
    "python scripts/predict.py saved_models/resnet20-digits-onnx digit.png": ("run", ""),
    "make gpu-wheelhouse": ("elsewhere", "test_gpu_benchmark.py (python scripts/gpu_benchmark.py --build)"),
    "python scripts/gpu_benchmark.py --wheelhouse wheelhouse":
        ("elsewhere", "test_gpu_benchmark.py::test_wheelhouse_then_one_command_measures_under_jax"),
    "python scripts/gpu_benchmark.py": ("elsewhere", "test_gpu_benchmark.py"),
    "python scripts/export.py RUN_OR_KERAS": ("not here", "a placeholder"),
    "python scripts/convert_weights.py SRC OUT.keras": ("not here", "a placeholder"),
    "python scripts/predict.py MODEL IMAGE...": ("not here", "a placeholder"),
    "python scripts/export.py runs/resnet20-digits": ("run", ""),
    "python scripts/export.py runs/resnet20-digits/final.keras --name digits-top3 --version 3 --overwrite --top-k 3":
        ("run", ""),
    "python scripts/export.py runs/resnet20-digits --fold-batchnorm --name resnet20-digits-folded": ("run", ""),
    "python scripts/predict.py saved_models/resnet20-digits digit.png": ("run", ""),
    "saved_model_cli show --dir saved_models/resnet20-digits/1 --all": ("subprocess", ""),
    "docker run -p 8501:8501 -p 8500:8500 --mount type=bind,source=\"$PWD/saved_models/resnet20-digits\","
    "target=/models/digits -e MODEL_NAME=digits -t tensorflow/serving": ("not here", "Docker is not installed"),
    "curl -d '{\"instances\": [[[[0], [255]], [[128], [64]]]]}' http://localhost:8501/v1/models/digits:predict":
        ("not here", "needs TF Serving"),
    "curl -d \"{\\\"signature_name\\\": \\\"serve_image_bytes\\\", \\\"instances\\\": [{\\\"b64\\\": "
    "\\\"$(base64 -w0 digit.png)\\\"}]}\" http://localhost:8501/v1/models/digits:predict":
        ("not here", "needs TF Serving"),
}


def readme_commands(text=README):
    """Commands of fenced bash blocks (continuations joined, comments dropped) and inline code spans."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
            line = " ".join(line.split())
            if line.startswith("TF_CONFIG="):
                line = line[line.index("python scripts/"):]
            if line:
                found.append(line)
    for span in re.findall(r"`((?:python scripts/|make |saved_model_cli )[^`]*)`", text):
        found.append(" ".join(span.split()))
    return list(dict.fromkeys(found))


def readme_snippets(text=README):
    """(line number, marker, code) of each fenced python block; marker is 'online' after <!-- online: ... -->."""
    snippets = []
    for match in re.finditer(r"(<!-- (\w+):[^>]*-->\n)?```python\n(.*?)```", text, re.S):
        snippets.append((text[:match.start()].count("\n") + 1, match.group(2), match.group(3)))
    return snippets


def test_every_readme_command_has_a_plan():
    commands = readme_commands()
    missing = [c for c in commands if c not in PLAN]
    assert not missing, f"README commands without a plan in tests/test_readme.py: {missing}"
    stale = [c for c in PLAN if c not in commands]
    assert not stale, f"plans for commands no longer in the README: {stale}"
    assert len(readme_snippets()) >= 4


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A fresh folder as a user has it: a flowers image folder, a digit image, an empty home, and
    keras.applications' ResNet-50 weights file (random weights in its layout) for the offline snippet."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    from PIL import Image

    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    for index, name in enumerate(("daisy", "rose", "tulip")):
        os.makedirs(root / "flowers" / name)
        for i in range(56):  # 3 x 45 training images: more than the cifar recipe's batch of 128
            colour = np.zeros((20, 24, 3), "uint8")
            colour[..., index] = 200
            Image.fromarray(colour + rng.integers(0, 40, colour.shape, dtype="uint8")).save(
                root / "flowers" / name / f"{i}.png")
    digit = data.digits_arrays()["test"][0][0][..., 0]
    Image.fromarray(digit).save(root / "digit.png")
    Image.fromarray(rng.integers(0, 256, (180, 240, 3), dtype="uint8")).save(root / "cat.jpg")
    os.makedirs(root / "home")
    for top, name in ((False, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                      (True, "resnet50_weights_tf_dim_ordering_tf_kernels.h5")):
        app = keras.applications.ResNet50(weights=None, include_top=top, input_shape=(64, 64, 3))
        with h5py.File(root / name, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, app)
    keras.backend.clear_session()
    _torch_weights(root)
    previous = os.getcwd()
    os.chdir(root)
    yield root
    os.chdir(previous)


def _torch_weights(root):
    """The pretrained-weight files the README names, in their publishers' layouts with random weights:
    torchvision's resnet50 (.pth and .safetensors) and resnet18 (.safetensors), timm's resnet50."""
    sys.modules.setdefault("triton", None)  # see test_torch_parity: torch's triton must not load after TF
    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    resnet50 = torchvision.models.resnet50().state_dict()
    torch.save(resnet50, root / "resnet50_v2.pth")
    save_file({k: v.contiguous() for k, v in resnet50.items()}, root / "resnet50_v2.safetensors")
    save_file({k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()},
              root / "resnet18_v1.safetensors")
    os.makedirs(root / "resnet50_a1")
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet50").state_dict().items()},
              root / "resnet50_a1" / "model.safetensors")


def _argv(command, extra, root):
    words = shlex.split(command) + shlex.split(extra)
    home = str(root / "home")
    return [home + w[1:] if w.startswith("~") else w.replace("/data/flowers", str(root / "flowers")) for w in words]


def _in_process(argv):
    """Run scripts/<argv[1]> main(argv[2:]) here (conftest.run_main); returns (exit code, stdout, stderr)."""
    result = run_main(os.path.basename(argv[1]), *argv[2:])
    return result.returncode, result.stdout, result.stderr


def _make_command(command):
    """What `make` runs for a README make command (`make -n`, nothing executed): the script's argv."""
    words = shlex.split(command)
    shown = subprocess.run(["make", "-n", "--always-make", *words[1:]], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    line = [row for row in shown.stdout.splitlines() if "scripts/train.py" in row][-1]
    script = line.split()[0]
    assert script.endswith("/bin/python"), line  # the virtual environment's python
    return "python " + " ".join(line.split()[1:])


@pytest.mark.parametrize("variables, workers", [([], "2"), (["TEST_WORKERS=0"], "0")])
def test_make_test_runs_the_files_in_test_workers_processes(variables, workers):
    """`make test` is pytest over whole files in TEST_WORKERS processes (2 unless set), as the README says."""
    for target in ("test", "test-all"):
        shown = subprocess.run(["make", "-n", "--always-make", target, *variables], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        line = [row for row in shown.stdout.splitlines() if "-m pytest" in row][-1]
        assert f"-m pytest -q -n {workers} --dist loadfile" in line, line


def _subprocess(command, extra, root):
    env = {**os.environ, "HOME": str(root / "home")}
    words = _argv(command, extra, root)
    while "=" in words[0] and not words[0].startswith("-"):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words[0] == "python":
        words = [sys.executable, os.path.join(ROOT, words[1]), *words[2:]]
    elif words[0] == "saved_model_cli":
        words[0] = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(words, cwd=root, capture_output=True, text=True, timeout=600, env=env)
    return result.returncode, result.stdout, result.stderr


RUNNABLE = [pytest.param(c, marks=[pytest.mark.slow] if PLAN[c][0] == "slow" else [], id=c[:70])
            for c in readme_commands() if c in PLAN and PLAN[c][0] in ("run", "subprocess", "fails", "make", "slow")]


@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_command(workspace, command, monkeypatch):
    how, extra = PLAN[command]
    how = "run" if how == "slow" else how
    monkeypatch.setenv("HOME", str(workspace / "home"))
    monkeypatch.setattr(network, "online", lambda *a, **k: False)  # CI is offline: make it so everywhere
    if how == "make":
        command = _make_command(command)
        assert command.startswith("python scripts/train.py"), command
        how = "run"
    if how == "subprocess":
        code, out, err = _subprocess(command, extra, workspace)
    else:
        code, out, err = _in_process(_argv(command, "" if how == "fails" else extra, workspace))
    if how == "fails":
        assert code == 2 and extra in err and err.count("\n") == 1, err[-2000:]
        return
    assert code == 0, (out[-2000:], err[-3000:])
    assert "Traceback" not in err


def test_readme_commands_did_what_the_readme_says(workspace):
    """A few claims of the README, checked on what its commands left behind."""
    assert os.path.exists("saved_models/resnet20-digits/1/saved_model.pb")  # train.py's export name
    assert os.path.exists("runs/resnet20-longer/metrics.json")
    assert os.path.isdir("saved_models/digits-top3/3") and os.path.isdir("saved_models/resnet20-digits-folded/1")
    assert os.path.exists("runs/resnet20-folder-data-flowers/metrics.json") or any(
        name.startswith("resnet20-folder") for name in os.listdir("runs"))
    from keras_resnet.specs import eval_transform_for

    card = json.load(open("saved_models/resnet50-imagenet/1/export.json"))  # converted at --image-size 64
    assert card["eval_transform"]["resize"] == eval_transform_for("torchvision-v2", (64, 64))["resize"]


SNIPPETS = readme_snippets()


@pytest.mark.parametrize("line, marker, code", SNIPPETS, ids=[f"README.md:{s[0]}" for s in SNIPPETS])
def test_readme_python_snippet(workspace, line, marker, code, monkeypatch):
    monkeypatch.setenv("HOME", str(workspace / "home"))
    monkeypatch.setenv("KERAS_HOME", str(workspace / "home" / ".keras"))
    monkeypatch.setattr(network, "online", lambda *a, **k: False)
    compiled = compile(code, f"README.md:{line}", "exec")
    try:
        if marker == "online":  # needs a download: offline it must fail at once and say what to fetch
            with pytest.raises(FileNotFoundError, match="not cached and the network is unreachable. Download https"):
                exec(compiled, {"__name__": "readme"})
        else:
            assert marker is None, f"unknown README marker {marker!r}"
            exec(compiled, {"__name__": "readme"})
    finally:
        keras.backend.clear_session()
