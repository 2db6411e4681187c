import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import randomize_batchnorm

import keras_resnet as kr
from keras_resnet import export, images as images_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
CLASSES = ["cat", "dog", "emu", "fox", "gnu"]
SIZE = 32


def script(name, *args, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def model():
    net = kr.build_resnet(stage_repeats=(1, 1, 1, 1), block_type="bottleneck", width=4, num_classes=len(CLASSES),
                          input_shape=(SIZE, SIZE, 3), preprocessing="imagenet", name="tiny")
    return randomize_batchnorm(net, np.random.default_rng(1))


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """{False: unfolded, True: folded} SavedModel version folders of `model`."""
    base = tmp_path_factory.mktemp("exports")
    return {fold: export.export_saved_model(model, str(base), name=f"tiny-{fold}", class_names=CLASSES,
                                            fold_batchnorm=fold) for fold in (False, True)}


def images(rng, n, height, width, dtype="uint8"):
    return rng.integers(0, 256, (n, height, width, 3)).astype(dtype)


def reference(model, batch):
    """What the Keras model says about raw images, resized as the signatures promise."""
    resized = images_lib.resize_images(batch, (SIZE, SIZE)) if batch.shape[1:3] != (SIZE, SIZE) else batch
    return model.predict(np.asarray(resized, "float32"), verbose=0)


def test_saved_model_cli_show_lists_both_signatures(exported):
    shown = subprocess.run([SAVED_MODEL_CLI, "show", "--dir", exported[False], "--all"],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    out = shown.stdout
    sections = {name: out.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
                for name in ("serving_default", "serve_uint8", "serve_image_bytes")}
    for name, dtype in (("serving_default", "DT_FLOAT"), ("serve_uint8", "DT_UINT8")):
        text = sections[name]
        assert "inputs['images'] tensor_info:" in text and f"dtype: {dtype}" in text
        assert "shape: (-1, -1, -1, 3)" in text
    assert "inputs['image_bytes'] tensor_info:" in sections["serve_image_bytes"]
    assert "dtype: DT_STRING" in sections["serve_image_bytes"] and "shape: (-1)" in sections["serve_image_bytes"]
    for text in sections.values():
        outputs = text.split("output(s):")[1]
        for key, shape in (("probabilities", "(-1, 5)"), ("top_k_classes", "(-1, 5)"), ("top_k_scores", "(-1, 5)"),
                           ("top_k_labels", "(-1, 5)")):
            assert f"outputs['{key}'] tensor_info:" in outputs
            assert shape in outputs.split(f"outputs['{key}']")[1].split("name:")[0]
        assert "DT_INT32" in outputs.split("outputs['top_k_classes']")[1].split("name:")[0]
        assert "DT_STRING" in outputs.split("outputs['top_k_labels']")[1].split("name:")[0]


@pytest.mark.parametrize("signature, dtype", [("serving_default", "float32"), ("serve_uint8", "uint8")])
def test_saved_model_cli_run_on_the_image_signatures(model, exported, tmp_path, rng, signature, dtype):
    batch = images(rng, 3, 40, 24, dtype)
    np.save(tmp_path / "in.npy", batch)
    ran = subprocess.run([SAVED_MODEL_CLI, "run", "--dir", exported[False], "--tag_set", "serve", "--signature_def",
                          signature, "--inputs", f"images={tmp_path / 'in.npy'}", "--outdir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    probabilities = np.load(tmp_path / "out" / "probabilities.npy")
    np.testing.assert_allclose(probabilities, reference(model, batch), atol=1e-5)
    labels = np.load(tmp_path / "out" / "top_k_labels.npy", allow_pickle=True)  # we wrote it
    assert [label.decode() for label in labels[:, 0]] == [CLASSES[i] for i in probabilities.argmax(1)]


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("height, width, n", [(SIZE, SIZE, 1), (20, 45, 4), (64, 48, 2)])
def test_image_signatures_match_the_keras_model_at_any_size(model, exported, rng, fold, height, width, n):
    loaded = tf.saved_model.load(exported[fold])
    batch = images(rng, n, height, width)
    expected = reference(model, batch)
    tolerance = 1e-4 if fold else 1e-5
    for name, dtype in export.IMAGE_SIGNATURES.items():
        out = loaded.signatures[name](images=tf.constant(batch.astype(dtype.as_numpy_dtype)))
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=tolerance)
        order = np.argsort(-expected, axis=1, kind="stable")
        np.testing.assert_array_equal(out["top_k_classes"].numpy(), order)
        np.testing.assert_allclose(out["top_k_scores"].numpy(), np.take_along_axis(expected, order, 1), atol=tolerance)
        assert out["top_k_labels"].numpy().tolist() == [[CLASSES[c].encode() for c in row] for row in order]


@pytest.mark.parametrize("fold", [False, True])
def test_bytes_signature_matches_the_keras_model_for_png_and_jpeg(model, exported, rng, fold):
    loaded = tf.saved_model.load(exported[fold])
    signature = loaded.signatures[export.BYTES_SIGNATURE]
    tolerance = 1e-4 if fold else 1e-5
    same_size = images(rng, 2, SIZE, SIZE)
    pngs = [tf.io.encode_png(image).numpy() for image in same_size]
    # PNG is lossless: at the model's size the served image is exactly the array.
    out = signature(image_bytes=tf.constant(pngs))
    np.testing.assert_allclose(out["probabilities"].numpy(), reference(model, same_size), atol=tolerance)
    # Mixed formats and sizes in one batch: each decoded and resized on its own.
    encoded = [tf.io.encode_png(images(rng, 1, 50, 30)[0]).numpy(),
               tf.io.encode_jpeg(images(rng, 1, 24, 70)[0], quality=90).numpy(),
               tf.io.encode_jpeg(images(rng, 1, SIZE, SIZE)[0]).numpy()]
    decoded = np.stack([images_lib.decode_and_resize(e, (SIZE, SIZE)).numpy() for e in encoded])
    out = signature(image_bytes=tf.constant(encoded))
    np.testing.assert_allclose(out["probabilities"].numpy(), reference(model, decoded), atol=tolerance)


def test_corrupt_image_fails_that_call_and_the_model_stays_usable(exported, rng):
    loaded = tf.saved_model.load(exported[False])
    signature = loaded.signatures[export.BYTES_SIGNATURE]
    good = tf.io.encode_png(images(rng, 1, SIZE, SIZE)[0]).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)image"):
        signature(image_bytes=tf.constant([good, b"\x89PNG this is not an image"]))
    first = signature(image_bytes=tf.constant([good]))["probabilities"].numpy()
    again = signature(image_bytes=tf.constant([good, good]))["probabilities"].numpy()
    np.testing.assert_allclose(again, np.concatenate([first, first]), atol=1e-6)


def test_top_k_is_configurable_and_labels_are_optional(model, tmp_path):
    folder = export.export_saved_model(model, str(tmp_path), top_k=2)
    signature = tf.saved_model.load(folder).signatures["serving_default"]
    assert set(signature.structured_outputs) == {"probabilities", "top_k_classes", "top_k_scores"}
    assert signature.structured_outputs["top_k_classes"].shape.as_list() == [None, 2]
    assert not os.path.exists(os.path.join(folder, "labels.txt"))
    assert folder == str(tmp_path / "tiny" / "1")  # the model's name by default
    reloaded = keras.saving.load_model(os.path.join(folder, "model.keras"), safe_mode=True)
    assert isinstance(reloaded, kr.ResNet)


def test_folding_removes_every_batch_norm_and_keeps_the_outputs(model, exported, rng):
    folded = export.fold_batchnorm_into_convs(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert "BatchNormalization" not in kinds
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert n_bn == 17 and len(folded.layers) == len(model.layers) - n_bn
    assert all(layer.use_bias for layer in folded.layers if isinstance(layer, keras.layers.Conv2D))
    batch = images(rng, 4, SIZE, SIZE).astype("float32")
    np.testing.assert_allclose(folded.predict(batch, verbose=0), model.predict(batch, verbose=0), atol=1e-5)
    # Logits, where folding errors are not squashed by the softmax.
    features = keras.Model(model.input, model.get_layer("stage5_out").output)
    folded_features = keras.Model(folded.input, folded.get_layer("stage5_out").output)
    np.testing.assert_allclose(folded_features(batch), features(batch), rtol=1e-4, atol=1e-4)

    def op_count(folder):
        graph = tf.saved_model.load(folder).signatures["serving_default"].graph.as_graph_def()
        return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)

    assert op_count(exported[True]) < op_count(exported[False]) - 3 * n_bn


def test_versions_count_up_and_are_never_overwritten_silently(model, tmp_path):
    first = export.export_saved_model(model, str(tmp_path), name="m")
    second = export.export_saved_model(model, str(tmp_path), name="m")
    assert (first, second) == (str(tmp_path / "m" / "1"), str(tmp_path / "m" / "2"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        export.export_saved_model(model, str(tmp_path), name="m", version=1)
    before = os.path.getmtime(tmp_path / "m" / "1" / "saved_model.pb")
    export.export_saved_model(model, str(tmp_path), name="m", version=1, overwrite=True)
    assert os.path.getmtime(tmp_path / "m" / "1" / "saved_model.pb") >= before
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]
    with pytest.raises(ValueError, match="version=0"):
        export.export_saved_model(model, str(tmp_path), name="m", version=0)


def test_a_failed_export_leaves_no_version_folder(model, tmp_path):
    archive = export.make_export_archive(model)

    def write_then_fail(folder):
        archive.write_out(folder, verbose=False)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export.write_version_atomically(str(tmp_path / "m"), None, write_then_fail)
    assert os.listdir(tmp_path / "m") == []
    with pytest.raises(ValueError, match="top_k=0"):
        export.export_saved_model(model, str(tmp_path), name="m", top_k=0)
    with pytest.raises(ValueError, match="Received: 2 names"):
        export.export_saved_model(model, str(tmp_path), name="m", class_names=["a", "b"])
    assert os.listdir(tmp_path / "m") == []


def test_export_script_survives_a_kill_and_counts_versions(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    # Big enough that writing takes a moment, so the kill lands inside the write.
    kr.build_resnet(18, num_classes=len(CLASSES), input_shape=(64, 64, 3), name="r18").save(source / "model.keras")
    (source / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    out = tmp_path / "exports"
    command = [sys.executable, os.path.join(ROOT, "scripts", "export.py"), str(source / "model.keras"),
               "--export-dir", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not (
        (out / "r18").is_dir() and any(name.startswith(".tmp-") for name in os.listdir(out / "r18"))
    ):
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert export.existing_versions(str(out / "r18")) == []  # no version for a server to pick up

    for expected in ("1", "2"):
        done = script("export.py", source / "model.keras", "--export-dir", out)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith(f"exported {source / 'model.keras'} -> {out / 'r18' / expected}")
    assert export.existing_versions(str(out / "r18")) == [1, 2]
    assert export.read_labels(str(out / "r18" / "2" / "labels.txt")) == CLASSES
    refused = script("export.py", source / "model.keras", "--export-dir", out, "--version", 1)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    missing = script("export.py", tmp_path / "nothing.keras")
    assert missing.returncode == 2 and "nothing.keras" in missing.stderr and "Traceback" not in missing.stderr


def test_predict_script_with_keras_model_and_saved_model(model, exported, tmp_path, rng):
    model.save(tmp_path / "tiny.keras")
    (tmp_path / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    files = []
    for i, (height, width) in enumerate([(SIZE, SIZE), (50, 40)]):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(tf.io.encode_png(images(rng, 1, height, width)[0]).numpy())
        files.append(path)
    decoded = np.stack([images_lib.decode_and_resize(p.read_bytes(), (SIZE, SIZE)).numpy() for p in files])
    expected = reference(model, decoded)
    outputs = [script("predict.py", source, *files, "--top-k", 2)
               for source in (tmp_path / "tiny.keras", os.path.dirname(exported[False]))]
    for done in outputs:
        assert done.returncode == 0, done.stderr[-2000:]
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 2
        for line, path, probabilities in zip(lines, files, expected):
            best = np.argsort(-probabilities)[:2]
            assert line == f"{path}: " + ", ".join(f"{CLASSES[c]} ({probabilities[c]:.3f})" for c in best)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = script("predict.py", tmp_path / "tiny.keras", files[0], tmp_path / "bad.png")
    assert bad.returncode == 2 and "bad.png" in bad.stderr and "Traceback" not in bad.stderr
