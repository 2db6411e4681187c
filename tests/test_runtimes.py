"""Exports for ONNX Runtime, OpenVINO and LiteRT (keras_resnet.runtimes): exact parity of the float exports
with the Keras model, int8 agreement on the digits, the SavedModel's layout and outputs, the scripts, and
one-line errors when a runtime is missing. One small digits model is trained once for the module."""

import json
import os
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import randomize_batchnorm, run_main

from keras_resnet import benchmark, data, export, registry, runtimes

FORMATS = runtimes.RUNTIME_FORMATS
TOLERANCE = 1e-4  # max abs difference of probabilities, float32


@pytest.fixture(scope="module")
def digits():
    return data.load_digits_dataset()


@pytest.fixture(scope="module")
def digits_model(digits):
    """ResNet-8 (width 16) trained on the digits for a few seconds: about 98% test accuracy. (At width 8 int8
    loses about 0.6 points on any runtime: too narrow to quantize well.)"""
    keras.utils.set_random_seed(0)
    train_x, train_y = _arrays(digits.train)
    model = registry.get_model("resnet8", width=16, input_shape=(8, 8, 1), num_classes=10,
                               preprocessing={"mean": digits.mean, "std": digits.std})
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    model.fit(train_x.astype("float32"), train_y, batch_size=64, epochs=15, verbose=0)
    return model


@pytest.fixture(scope="module")
def test_split(digits):
    images, labels = _arrays(digits.test)
    return images.astype("float32"), labels


@pytest.fixture(scope="module")
def float_exports(digits_model, digits, tmp_path_factory):
    """{format: version folder} of the digits model in every runtime format, and its SavedModel."""
    base = str(tmp_path_factory.mktemp("exports"))
    folders = {fmt: runtimes.export_model(digits_model, base, fmt, class_names=digits.class_names, name=f"d-{fmt}")
               for fmt in FORMATS}
    folders["saved_model"] = export.export_saved_model(digits_model, base, name="d", class_names=digits.class_names)
    return folders


def _arrays(split):
    images, labels = zip(*[(np.asarray(x), int(y)) for x, y in split])
    return np.stack(images), np.asarray(labels)


@pytest.mark.parametrize("fmt", FORMATS)
def test_float_exports_give_the_keras_probabilities(digits_model, float_exports, test_split, fmt, rng):
    """Parity: <= 1e-4 on probabilities, random and real images, at two batch sizes."""
    classify, _, loaded = runtimes.load(float_exports[fmt])
    assert loaded == float_exports[fmt] and (classify.format, classify.precision) == (fmt, "float32")
    real = test_split[0]
    random = rng.uniform(0, 255, (32, 8, 8, 1)).astype("float32")
    for images in (real, random):
        for batch in (1, 32):
            got = classify(images[:batch])["probabilities"]
            expected = digits_model.predict(images[:batch], verbose=0)
            assert got.shape == expected.shape and np.abs(got - expected).max() <= TOLERANCE
    whole = classify(real)["probabilities"]  # every test image: the same top-1 class as Keras
    assert (whole.argmax(1) == digits_model.predict(real, verbose=0).argmax(1)).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_outputs_resize_and_decoding_are_the_saved_models(float_exports, digits, rng, fmt):
    """The same outputs as the SavedModel's signatures for uint8 images of other sizes and for PNG/JPEG bytes."""
    classify, names, _ = runtimes.load(float_exports[fmt])
    saved = tf.saved_model.load(float_exports["saved_model"])
    assert names == digits.class_names
    other_size = rng.integers(0, 256, (3, 13, 20, 1)).astype("uint8")
    encoded = [tf.io.encode_png(other_size[0]).numpy(), tf.io.encode_jpeg(other_size[1]).numpy(),
               tf.io.encode_png(rng.integers(0, 256, (8, 8, 1)).astype("uint8")).numpy()]
    cases = [(other_size, saved.signatures["serve_uint8"](images=tf.constant(other_size))),
             (encoded, saved.signatures[export.BYTES_SIGNATURE](image_bytes=tf.constant(encoded)))]
    for inputs, expected in cases:
        got = classify(inputs)
        assert set(got) == set(expected) == {"probabilities", "top_k_classes", "top_k_scores", "top_k_labels"}
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"].numpy(), atol=TOLERANCE)
        np.testing.assert_array_equal(got["top_k_classes"], expected["top_k_classes"].numpy())
        assert got["top_k_classes"].dtype == np.int32 and got["top_k_scores"].shape == (3, 5)
        assert got["top_k_labels"].tolist() == expected["top_k_labels"].numpy().tolist()
    for bad, message in ((np.zeros((1, 8, 8, 3), "float32"), "1 channel"), (np.zeros((0, 8, 8, 1)), "empty"),
                         (np.full((1, 8, 8, 1), np.nan, "float32"), "finite"), ([b"not an image"], "image 0")):
        with pytest.raises(ValueError, match=message):
            classify(bad)


@pytest.mark.parametrize("fmt", FORMATS)
def test_int8_agrees_with_the_float_model_on_the_digits(digits_model, digits, tmp_path, fmt):
    """>= 99% top-1 agreement with the float model on the test split, accuracy within 0.5 points; the
    report in the card says so, with the file size and the speeds."""
    calibration = runtimes.calibration_images(digits, (8, 8), 300)
    evaluation = runtimes.split_arrays(digits.test, (8, 8), 1)
    folder = runtimes.export_model(digits_model, str(tmp_path), fmt, int8=True, calibration=calibration,
                                   calibration_source="digits", evaluation=evaluation, class_names=digits.class_names)
    card = export.read_card(folder)
    report = card["report"]
    assert card["precision"] == "int8" and card["calibration"]["images"] == 300 and report["evaluation_images"] == 360
    assert report["top1_agreement"] >= 0.99, report
    assert abs(report["accuracy"] - report["float_accuracy"]) <= 0.005, report
    assert report["float_accuracy"] > 0.9 and report["file_bytes"] > 0 and report["images_per_sec_batch32"] > 0
    classify, _, _ = runtimes.load(folder)
    assert classify.precision == "int8"
    probabilities = classify(evaluation[0])["probabilities"]
    assert (probabilities.argmax(1) == evaluation[1]).mean() == pytest.approx(report["accuracy"])


def test_versions_fingerprints_and_one_format_per_name(digits_model, digits, tmp_path):
    base = str(tmp_path)
    first = runtimes.export_model(digits_model, base, "onnx", class_names=digits.class_names)
    assert first == os.path.join(base, f"{digits_model.name}-onnx", "1")  # runtimes.default_name
    assert runtimes.export_model(digits_model, base, "onnx", class_names=digits.class_names) == first  # no new version
    second = runtimes.export_model(digits_model, base, "onnx", class_names=digits.class_names, top_k=3)
    assert second.endswith(os.path.join("-onnx", "2"))
    assert sorted(os.listdir(first)) == ["export.json", "labels.txt", "model.onnx"]
    card = export.read_card(first)
    assert (card["format"], card["precision"], card["files"], card["input_size"]) == ("onnx", "float32",
                                                                                       ["model.onnx"], [8, 8])
    for folder, _, names in os.walk(first):  # readable by a server running as another user
        assert os.stat(folder).st_mode & 0o777 == 0o755
        assert all(os.stat(os.path.join(folder, n)).st_mode & 0o777 == 0o644 for n in names)
    with pytest.raises(ValueError, match=r"holds another task \(version 2: format 'onnx'\); this model has format "
                                         r"'openvino'"):
        runtimes.export_model(digits_model, base, "openvino", name=f"{digits_model.name}-onnx",
                              class_names=digits.class_names)
    export.export_saved_model(digits_model, base, name="served", class_names=digits.class_names)
    with pytest.raises(ValueError, match="format 'saved_model'"):
        runtimes.export_model(digits_model, base, "litert", name="served", class_names=digits.class_names)
    calibration = runtimes.calibration_images(digits, (8, 8), 16)
    np.testing.assert_array_equal(calibration, runtimes.calibration_images(digits, (8, 8), 16))  # seeded
    int8 = runtimes.export_model(digits_model, base, "onnx", int8=True, calibration=calibration, report=False)
    again = runtimes.export_model(digits_model, base, "onnx", int8=True, calibration=calibration, report=False)
    other = runtimes.export_model(digits_model, base, "onnx", int8=True, calibration=calibration[:8], report=False)
    assert int8 == again and int8.endswith("-onnx-int8/1") and other.endswith("-onnx-int8/2")
    with pytest.raises(ValueError, match="int8 needs calibration images"):
        runtimes.export_model(digits_model, base, "onnx", int8=True)
    with pytest.raises(ValueError, match=r"Received: shape=\(2, 4, 4, 1\)"):
        runtimes.export_model(digits_model, base, "onnx", int8=True, calibration=np.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="format='saved_model', int8=True"):
        runtimes.export_model(digits_model, base, "saved_model", int8=True, calibration=calibration)
    with pytest.raises(ValueError, match="fold_batchnorm=True"):
        runtimes.export_model(digits_model, base, "onnx", fold_batchnorm=True)
    with pytest.raises(ValueError, match="Received: format='tflite'"):
        runtimes.export_model(digits_model, base, "tflite")


def test_a_model_trained_in_bfloat16_is_exported_in_float32(digits_model, tmp_path, test_split):
    with benchmark.precision_policy("mixed_bfloat16"):
        bf16 = registry.get_model("resnet8", width=16, input_shape=(8, 8, 1), num_classes=10,
                                  preprocessing={"mean": [1.0], "std": [2.0]})
    bf16.set_weights(digits_model.get_weights())
    assert bf16.get_layer("stage2_block1_conv1").compute_dtype == "bfloat16"
    copy = runtimes.inference_model(bf16)
    assert {keras.backend.standardize_dtype(layer.compute_dtype) for layer in copy.layers} == {"float32"}
    assert type(copy.get_layer("preprocessing")).__name__ == "Rescaling"  # constants in the graph (module doc)
    float_model = runtimes.inference_model(digits_model)
    images = test_split[0][:16]
    np.testing.assert_allclose(float_model.predict(images, verbose=0), digits_model.predict(images, verbose=0),
                               atol=1e-6)
    folder = runtimes.export_model(bf16, str(tmp_path), "onnx", report=False)
    got = runtimes.load(folder)[0](images)["probabilities"]
    assert np.abs(got - copy.predict(images, verbose=0)).max() <= TOLERANCE


def test_a_colour_model_with_another_input_size(tmp_path, rng):
    """ImageNet-style preprocessing, 3 channels, random batch-norm statistics, images resized to 32x32."""
    import keras_resnet as kr

    model = randomize_batchnorm(kr.build_resnet(stage_repeats=(1, 1, 1, 1), block_type="bottleneck", width=4,
                                                num_classes=5, input_shape=(32, 32, 3), preprocessing="imagenet",
                                                name="tiny"), np.random.default_rng(1))
    images = rng.integers(0, 256, (4, 40, 24, 3)).astype("uint8")
    expected = model.predict(export.images_lib.resize_images(images, (32, 32)).numpy(), verbose=0)
    for fmt in FORMATS:
        classify = runtimes.load(runtimes.export_model(model, str(tmp_path), fmt, report=False))[0]
        assert np.abs(classify(images)["probabilities"] - expected).max() <= TOLERANCE, fmt


# --- the scripts and the optional packages ---------------------------------------------------------


def run_script(name, *argv, capsys=None):
    """scripts/<name> in this process as the shell runs it (conftest.run_main): (exit code, stdout, stderr)."""
    result = run_main(name, *argv)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def run_dir(digits_model, digits, tmp_path_factory):
    """A training run directory as train.py leaves it (the parts export.py reads)."""
    folder = tmp_path_factory.mktemp("run")
    digits_model.save(folder / "best.keras")
    (folder / "labels.txt").write_text("\n".join(digits.class_names) + "\n")
    (folder / "config.json").write_text(json.dumps({"model": "resnet8", "dataset": "digits"}))
    return folder


def test_export_and_predict_scripts_serve_every_format_alike(run_dir, digits, tmp_path, capsys, rng):
    out_dir = tmp_path / "exports"
    code, out, err = run_script("export.py", run_dir, "--export-dir", out_dir, "--format", "openvino", "--int8",
                                "--calibration-images", 64, "--evaluation-images", 100, capsys=capsys)
    assert code == 0, err
    target = out_dir / "resnet8-digits-openvino-int8" / "1"
    lines = out.splitlines()
    assert lines[0] == f"exported {run_dir / 'best.keras'} -> {target}"
    assert lines[1].startswith("report: ") and "top-1 agreement with the float model" in lines[1]
    assert "on 100 held-out images" in lines[1] and lines[2] == f"run: python scripts/predict.py {target} IMAGE..."
    assert export.read_card(str(target))["calibration"]["source"] == "digits: 64 training images"
    assert run_script("export.py", run_dir, "--export-dir", out_dir, "--format", "onnx", capsys=capsys)[0] == 0
    assert run_script("export.py", run_dir, "--export-dir", out_dir, capsys=capsys)[0] == 0  # the SavedModel
    files = []
    for i, image in enumerate(rng.integers(0, 256, (2, 8, 8, 1)).astype("uint8")):
        files.append(tmp_path / f"digit{i}.png")
        files[-1].write_bytes(tf.io.encode_png(image).numpy())
    answers = {}
    for folder in ("resnet8-digits", "resnet8-digits-onnx", "resnet8-digits-openvino-int8"):
        code, out, err = run_script("predict.py", out_dir / folder, *files, "--json", capsys=capsys)
        assert code == 0, err
        answers[folder] = [json.loads(line) for line in out.splitlines()]
        assert f"model: {out_dir / folder / '1'} (version 1 of [1]" in err
    assert err.endswith("; OpenVINO, int8)\n")  # the last one: which runtime and precision answered
    saved, onnx = answers["resnet8-digits"], answers["resnet8-digits-onnx"]
    for a, b in zip(saved, onnx):
        assert a["classes"] == b["classes"] and a["labels"] == b["labels"]
        np.testing.assert_allclose(a["scores"], b["scores"], atol=TOLERANCE)


def test_export_script_refuses_what_cannot_be_done(run_dir, tmp_path, capsys, monkeypatch):
    from keras_resnet import network

    monkeypatch.setattr(network, "online", lambda *a, **k: False)
    tfds_data = ["--format", "onnx", "--int8", "--calibration-dataset", "tfds:cifar10", "--data-dir", tmp_path / "tfds"]
    for argv, message in (
        (tfds_data, "Dataset tfds:cifar10 is not prepared in"),  # the advice names export.py's own --download
        ([*tfds_data, "--download"], "Dataset tfds:cifar10 is not prepared and there is no network"),
        (["--format", "onnx", "--int8", "--calibration-dataset", "nosuch"], "Received: dataset='nosuch'"),
        (["--export-dir", "/proc/keras-resnet"], "export_dir: cannot create folders in '/proc'"),
        (["--export-dir", str(run_dir / "config.json")], "export_dir must be a folder"),
        (["--int8"], "error: --int8 is for --format onnx, openvino or litert"),
        (["--format", "onnx", "--fold-batchnorm"], "error: --fold-batchnorm is for --format saved_model"),
        (["--format", "onnx", "--int8", "--calibration-images", 0], "Received: calibration_images=0"),
        (["--format", "litert", "--int8", "--calibration-dataset", "digits:0-4"], "it has 5 classes, the model 10"),
    ):
        code, _, err = run_script("export.py", run_dir, "--export-dir", tmp_path, *argv, capsys=capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    keras_file = tmp_path / "m.keras"
    shutil.copy(run_dir / "best.keras", keras_file)  # a bare .keras file: no dataset to draw from
    code, _, err = run_script("export.py", keras_file, "--export-dir", tmp_path, "--format", "onnx", "--int8",
                              capsys=capsys)
    assert code == 2 and "--int8 needs calibration images from the training data" in err and err.count("\n") == 1


MISSING = [("onnx", "onnxruntime"), ("onnx", "tf2onnx"), ("openvino", "openvino"), ("openvino", "nncf"),
           ("litert", "ai_edge_litert")]


@pytest.mark.parametrize("fmt, package", MISSING)
def test_a_missing_runtime_is_one_clear_line(run_dir, float_exports, tmp_path, monkeypatch, capsys, fmt, package):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now fails as if it were not installed
    pip_name = package.replace("_", "-")
    with pytest.raises(runtimes.RuntimeNotInstalledError, match=f"needs {pip_name}, which is not installed: "
                                                                f"pip install {pip_name}"):
        runtimes.runtime(fmt, "export", int8=True)
    code, _, err = run_script("export.py", run_dir, "--export-dir", tmp_path, "--format", fmt, "--int8", capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and f"pip install {pip_name}" in err, err
    assert f"Received: format={fmt!r}" in err and not os.listdir(tmp_path)
    if package not in ("tf2onnx", "nncf"):  # needed to serve too, not only to export
        with pytest.raises(runtimes.RuntimeNotInstalledError, match=f"pip install {pip_name}"):
            runtimes.load(float_exports[fmt])
