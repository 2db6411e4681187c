"""The baselines of the lecture notes and the experiment scripts (tiny configurations)."""

import os

import keras
import numpy as np
import pytest
from conftest import no_traceback, run_main

from keras_resnet import analysis, baselines, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("vgg11", 132_863_336),  # configuration A
        ("vgg11_lrn", 132_863_336),  # A-LRN: LRN has no parameters
        ("vgg13", 133_047_848),  # B
        ("vgg16", 138_357_544),  # D
        ("vgg19", 143_667_240),  # E
        ("vgg16_1x1", 133_638_952),  # C: three 3x3 convs of D become 1x1
        ("densenet121", 7_978_856),
        ("alexnet", 61_100_840),  # torchvision's alexnet
        ("googlenet", 6_624_904),  # torchvision's googlenet, aux_logits=False
        ("lenet5", 61_706),  # 32x32x1, 10 classes
    ],
)
def test_baseline_parameter_counts_match_the_references(name, expected):
    model = registry.get_model(name)
    assert analysis.count_trainable_params(model) == expected
    assert model.output.shape[-1] == (10 if name == "lenet5" else 1000)
    keras.backend.clear_session()


def test_googlenet_auxiliary_heads_and_every_baseline_in_the_registry():
    assert set(registry.list_models("baseline")) == set(baselines.BASELINES)
    model = baselines.build_googlenet(aux_heads=True)
    assert len(model.outputs) == 3 and analysis.count_trainable_params(model) == 13_004_888


def test_local_response_normalization_follows_the_formula(rng):
    x = rng.normal(0, 3, (2, 4, 4, 7)).astype("float32")
    layer = baselines.LocalResponseNormalization(size=5, alpha=1e-2, beta=0.75, k=2.0)
    padded = np.pad(x**2, [(0, 0), (0, 0), (0, 0), (2, 2)])
    window = sum(padded[..., i:i + 7] for i in range(5))
    np.testing.assert_allclose(layer(x), x / (2.0 + 1e-2 / 5 * window) ** 0.75, rtol=1e-5)


def test_small_baselines_train_on_small_images():
    model = registry.get_model("vgg11", input_shape=(32, 32, 3), num_classes=3, preprocessing="imagenet")
    model.compile("sgd", "categorical_crossentropy")
    model.train_on_batch(np.zeros((2, 32, 32, 3)), keras.utils.to_categorical([0, 2], 3))
    assert model.get_layer("preprocessing") is not None


def test_summary_script_tables(tmp_path):
    done = run_main("summary.py", "--all", "--models", "resnet20", "resnet32", "--out", tmp_path / "t1.md")
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "t1.md").read_text()
    assert "| stage2 | 32x32 | [3x3, 16; 3x3, 16] x 3 | [3x3, 16; 3x3, 16] x 5 |" in text
    assert "| parameters |  | 269,722 | 464,154 |" in text
    done = run_main("summary.py", "--baselines", "--models", "lenet5", "alexnet", "googlenet", "--out",
                  tmp_path / "depth.md")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (tmp_path / "depth.md").read_text().splitlines()
    assert "| lenet5 | 32x32x1 | 5 | 61,706 | 0.42e6 |" in lines
    assert "| googlenet | 224x224x3 | 22 | 6,624,904 | 1.498e9 |" in lines
    assert "--all or --baselines" in no_traceback(run_main("summary.py"))
    assert "out must be a file path, not a folder" in no_traceback(run_main("summary.py", "resnet20", "--out", tmp_path))
    assert "Unknown model name 'vgg99'" in no_traceback(run_main("summary.py", "--baselines", "--models", "vgg99"))
    assert "[3/3] building googlenet" in done.stderr  # progress while the big models build


def test_degradation_script_writes_plot_and_table(tmp_path):
    done = run_main("degradation.py", "--depths", 8, 20, "--epochs", 2, "--model-arg", "width=4",
                  "--out-dir", tmp_path / "deg")
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "deg" / "results.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["plain8", "resnet8", "plain20",
                                                                                "resnet20"]
    assert (tmp_path / "deg" / "degradation.png").stat().st_size > 10_000
    assert (tmp_path / "deg" / "results.csv").read_text().startswith("model,depth,params,train error")
    assert "[4/4] resnet20 epoch 2/2:" in done.stderr  # a progress line per epoch of each run


def test_shortcuts_script_table(tmp_path):
    done = run_main("shortcuts.py", "--model", "resnet8", "--epochs", 1, "--model-arg", "width=4",
                  "--out-dir", tmp_path / "sc")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|") for line in (tmp_path / "sc" / "results.md").read_text().splitlines()[2:]]
    params = {row[1].strip(): int(row[2].strip().replace(",", "")) for row in rows}
    assert list(params) == ["A", "B", "C"] and params["A"] < params["B"] < params["C"]
    assert "options must be distinct among" in no_traceback(run_main("shortcuts.py", "--options", "D"))
