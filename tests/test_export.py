import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import no_traceback, randomize_batchnorm, run_main

import keras_resnet as kr
from keras_resnet import export, images as images_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
CLASSES = ["cat", "dog", "emu", "fox", "gnu"]
SIZE = 32


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


def test_versions_count_up_only_for_a_changed_model_and_are_never_overwritten_silently(model, tmp_path):
    first = export.export_saved_model(model, str(tmp_path), name="m")
    again = export.export_saved_model(model, str(tmp_path), name="m")  # the same model: no repeated version
    assert first == again == str(tmp_path / "m" / "1")
    changed = kr.ResNet.from_config(model.get_config())
    changed.set_weights(model.get_weights())
    changed.get_layer("predictions").bias.assign(np.full(len(CLASSES), 0.5, "float32"))
    assert export.export_saved_model(changed, str(tmp_path), name="m") == str(tmp_path / "m" / "2")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export.export_saved_model(model, str(tmp_path), name="m", version=1)
    before = os.path.getmtime(tmp_path / "m" / "1" / "saved_model.pb")
    export.export_saved_model(model, str(tmp_path), name="m", version=1, overwrite=True)
    assert os.path.getmtime(tmp_path / "m" / "1" / "saved_model.pb") >= before
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]
    with pytest.raises(ValueError, match="version=0"):
        export.export_saved_model(model, str(tmp_path), name="m", version=0)
    card = json.load(open(tmp_path / "m" / "2" / "export.json"))
    assert (card["num_classes"], card["channels"], card["input_size"]) == (5, 3, [SIZE, SIZE])
    eleven = export.export_saved_model(model, str(tmp_path), name="k", top_k=11)  # 5 classes: 5 come back
    assert json.load(open(os.path.join(eleven, "export.json")))["top_k"] == 5
    for folder, _, names in os.walk(tmp_path / "m" / "2"):  # a server running as another user can read it
        assert os.stat(folder).st_mode & 0o777 == 0o755
        assert all(os.stat(os.path.join(folder, n)).st_mode & 0o777 == 0o644 for n in names)


def test_one_name_never_holds_two_tasks(model, tmp_path):
    export.export_saved_model(model, str(tmp_path), name="pets", class_names=CLASSES)
    three = kr.build_resnet(stage_repeats=(1, 1, 1, 1), block_type="bottleneck", width=4, num_classes=3,
                            input_shape=(SIZE, SIZE, 3), name="tiny3")
    with pytest.raises(ValueError, match=r"pets holds another task \(version 1: classes 5\); this model has classes 3"):
        export.export_saved_model(three, str(tmp_path), name="pets", class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="class names"):
        export.export_saved_model(model, str(tmp_path), name="pets", class_names=list("vwxyz"))
    gray = kr.build_resnet(stage_repeats=(1, 1, 1, 1), block_type="bottleneck", width=4, num_classes=5,
                           input_shape=(SIZE, SIZE, 1), name="gray")
    with pytest.raises(ValueError, match="input channels"):
        export.export_saved_model(gray, str(tmp_path), name="pets", class_names=CLASSES)
    with pytest.raises(ValueError, match=r"name must be a single folder name .*Received: name='../up'"):
        export.export_saved_model(model, str(tmp_path), name="../up")
    assert sorted(os.listdir(tmp_path)) == [".pets.lock", "pets"] and sorted(os.listdir(tmp_path / "pets")) == ["1"]


def test_a_failed_export_leaves_no_version_folder(model, tmp_path):
    archive = export.make_export_archive(model)

    def write_then_fail(folder):
        archive.write_out(folder, verbose=False)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export.write_version_atomically(str(tmp_path / "m"), None, write_then_fail)
    assert os.listdir(tmp_path / "m") == []
    with pytest.raises(ValueError, match="top_k must be a positive integer. Received: top_k=0"):
        export.export_saved_model(model, str(tmp_path), name="m", top_k=0)
    with pytest.raises(ValueError, match="Received: 2 names"):
        export.export_saved_model(model, str(tmp_path), name="m", class_names=["a", "b"])
    assert os.listdir(tmp_path / "m") == []


def test_two_exports_to_one_name_at_once_run_in_turn(tmp_path):
    """The second export waits for the first's lock, then sees its version: another task is refused, another
    model of the same task becomes version 2 (without the lock both wrote version 1, the last one winning)."""
    import threading

    def card(fingerprint, format="saved_model"):
        return {"fingerprint": fingerprint, "num_classes": 3, "channels": 3, "class_names": None,
                "input_size": [8, 8], "format": format}

    def writer(content, started=None, go=None):
        def write(folder):
            if started:
                started.set()
                assert go.wait(10)
            json.dump(content, open(os.path.join(folder, "export.json"), "w"))
        return write

    model_dir = str(tmp_path / "m")
    for second, expected in ((card("b"), ["1", "2"]), (card("c", "onnx"), ValueError)):
        shutil.rmtree(model_dir, ignore_errors=True)
        started, go, results = threading.Event(), threading.Event(), {}

        def run(key, *args):
            try:
                results[key] = export.export_version(model_dir, *args)
            except ValueError as error:
                results[key] = error

        first = threading.Thread(target=run, args=("first", card("a"), None, False, writer(card("a"), started, go)))
        first.start()
        assert started.wait(10)
        later = threading.Thread(target=run, args=("second", second, None, False, writer(second)))
        later.start()
        later.join(0.5)
        assert later.is_alive() and not os.path.exists(os.path.join(model_dir, "1"))  # waiting for the lock
        go.set()
        first.join(10)
        later.join(10)
        assert results["first"] == os.path.join(model_dir, "1")
        if expected is ValueError:
            assert "holds another task (version 1: format 'saved_model')" in str(results["second"])
            assert sorted(os.listdir(model_dir)) == ["1"]
        else:
            assert results["second"] == os.path.join(model_dir, "2") and sorted(os.listdir(model_dir)) == expected
            assert json.load(open(os.path.join(model_dir, "1", "export.json")))["fingerprint"] == "a"


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
    stale = [name for name in os.listdir(out / "r18") if name.startswith(".tmp-")]
    assert stale and stale[0].split("-")[2] == str(process.pid)  # the killed writer's, named by its process id

    done = run_main("export.py", source / "model.keras", "--export-dir", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"exported {source / 'model.keras'} -> {out / 'r18' / '1'}\n")
    assert sorted(os.listdir(out / "r18")) == ["1"]  # the dead process's temporary is gone
    again = run_main("export.py", source / "model.keras", "--export-dir", out)  # nothing changed: no new version
    assert again.stdout.startswith(f"exported {source / 'model.keras'} -> {out / 'r18' / '1'} (unchanged")
    assert export.existing_versions(str(out / "r18")) == [1]
    assert export.read_labels(str(out / "r18" / "1" / "labels.txt")) == CLASSES
    refused = run_main("export.py", source / "model.keras", "--export-dir", out, "--version", 1)
    assert "--overwrite" in no_traceback(refused)
    assert "nothing.keras" in no_traceback(run_main("export.py", tmp_path / "nothing.keras"))
    assert "name='../x'" in no_traceback(run_main("export.py", source / "model.keras", "--name", "../x"))
    # A run directory's config names the export; a hostile model name there must not escape either.
    (source / "config.json").write_text(json.dumps({"model": "../../x", "dataset": "digits"}))
    escaped = run_main("export.py", source / "model.keras", "--export-dir", out)
    assert "name='../../x-digits'" in no_traceback(escaped)
    (source / "config.json").write_text(json.dumps({"model": "r18", "export_name": "/abs"}))
    assert "name='/abs'" in no_traceback(run_main("export.py", source / "model.keras", "--export-dir", out))
    assert sorted(os.listdir(out)) == [".r18.lock", "r18"] and not os.path.exists(tmp_path / "x-digits")


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
    outputs = [run_main("predict.py", source, *files, "--top-k", 2)
               for source in (tmp_path / "tiny.keras", os.path.dirname(exported[False]))]
    assert f"model: {tmp_path / 'tiny.keras'} (Keras model)" in outputs[0].stderr
    assert f"model: {exported[False]} (version 1 of [1])" in outputs[1].stderr  # which version answered
    for done in outputs:
        assert done.returncode == 0, done.stderr[-2000:]
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 2
        for line, path, probabilities in zip(lines, files, expected):
            best = np.argsort(-probabilities)[:2]
            assert line == f"{path}: " + ", ".join(f"{CLASSES[c]} ({probabilities[c]:.3f})" for c in best)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = run_main("predict.py", tmp_path / "tiny.keras", files[0], tmp_path / "bad.png")
    assert "bad.png' is not a JPEG, PNG, BMP or GIF image. Received: images=" in no_traceback(bad)
    missing = run_main("predict.py", tmp_path / "tiny.keras", tmp_path / "none.png")
    assert f"none.png' does not exist. Received: images='{tmp_path / 'none.png'}'" in no_traceback(missing)
    (tmp_path / "bomb.png").write_bytes(tf.io.encode_png(np.zeros((300, 300, 3), "uint8")).numpy())
    bomb = run_main("predict.py", tmp_path / "tiny.keras", tmp_path / "bomb.png", "--max-pixels", 10_000)
    assert "300x300 pixels, over the limit max_pixels=10000. Received: images=" in no_traceback(bomb)


# --- requests the signatures refuse, and sizes and formats they must get right ---------------------


@pytest.fixture(scope="module")
def oblong(tmp_path_factory):
    """A non-square grayscale model (32 high, 48 wide) exported: its SavedModel and the Keras model."""
    net = kr.build_resnet(stage_repeats=(1, 1, 1, 1), block_type="basic", width=4, num_classes=3,
                          input_shape=(32, 48, 1), preprocessing={"mean": [100.0], "std": [50.0]}, name="oblong")
    randomize_batchnorm(net, np.random.default_rng(2))
    folder = export.export_saved_model(net, str(tmp_path_factory.mktemp("oblong")), max_pixels=10_000)
    return tf.saved_model.load(folder), net


def test_non_square_model_resizes_to_height_and_width(oblong, rng):
    """Images of a third size, taller and wider, reach the model as 32 high x 48 wide (not 48 x 32)."""
    loaded, net = oblong
    for height, width in ((40, 60), (60, 40)):
        batch = rng.integers(0, 256, (2, height, width, 1)).astype("uint8")
        expected = net.predict(np.asarray(images_lib.resize_images(batch, (32, 48))), verbose=0)
        out = loaded.signatures["serve_uint8"](images=tf.constant(batch))["probabilities"].numpy()
        np.testing.assert_allclose(out, expected, atol=1e-5)
        encoded = [tf.io.encode_png(image).numpy() for image in batch]
        decoded = np.stack([images_lib.decode_and_resize(e, (32, 48), 1).numpy() for e in encoded])
        out = loaded.signatures[export.BYTES_SIGNATURE](image_bytes=tf.constant(encoded))["probabilities"].numpy()
        np.testing.assert_allclose(out, net.predict(decoded.astype("float32"), verbose=0), atol=1e-5)


def test_grayscale_model_serves_bmp_and_gif(oblong, rng):
    """Colour BMP and GIF files (which TensorFlow's decoders refuse to read as one channel) are converted."""
    import io

    from PIL import Image

    loaded, net = oblong
    colour = rng.integers(0, 256, (20, 30, 3)).astype("uint8")
    files = []
    for fmt in ("BMP", "GIF"):
        buffer = io.BytesIO()
        Image.fromarray(colour).save(buffer, format=fmt)
        files.append(buffer.getvalue())
    out = loaded.signatures[export.BYTES_SIGNATURE](image_bytes=tf.constant(files))["probabilities"].numpy()
    decoded = np.stack([images_lib.decode_and_resize(f, (32, 48), 1).numpy() for f in files]).astype("float32")
    np.testing.assert_allclose(out, net.predict(decoded, verbose=0), atol=1e-5)
    gray = images_lib.decode(files[0], 1).numpy()[..., 0].astype(float)
    weights = [0.2989, 0.587, 0.114]  # tf.image.rgb_to_grayscale
    np.testing.assert_allclose(gray, np.round(colour.astype(float) @ weights), atol=1)


@pytest.mark.parametrize("batch, message", [
    (np.zeros((1, 32, 48, 3), "float32"), "must have 1 channel"),
    (np.zeros((1, 32, 48, 2), "float32"), "must have 1 channel"),
    (np.zeros((0, 32, 48, 1), "float32"), "the batch is empty"),
    (np.zeros((1, 0, 0, 1), "float32"), "has no pixels"),
    (np.full((1, 32, 48, 1), np.nan, "float32"), "must be finite"),
])
def test_bad_image_requests_fail_clearly_and_the_model_keeps_serving(oblong, batch, message):
    loaded, net = oblong
    signature = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signature(images=tf.constant(batch))
    good = np.full((1, 32, 48, 1), 128.0, "float32")
    np.testing.assert_allclose(signature(images=tf.constant(good))["probabilities"].numpy(),
                               net.predict(good, verbose=0), atol=1e-5)


def test_decompression_bombs_are_refused_before_decoding(oblong):
    """A PNG whose header claims more pixels than the export's max_pixels (10,000 here) fails that
    request without its pixels being decoded; the same model serves small images."""
    loaded, _ = oblong
    big = tf.io.encode_png(np.zeros((200, 200, 1), "uint8")).numpy()  # 40,000 pixels
    signature = loaded.signatures[export.BYTES_SIGNATURE]
    with pytest.raises(tf.errors.InvalidArgumentError, match="pixel limit \\(max_pixels=10000\\)"):
        signature(image_bytes=tf.constant([big]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="the batch is empty"):
        signature(image_bytes=tf.constant([], tf.string))
    small = tf.io.encode_png(np.zeros((50, 60, 1), "uint8")).numpy()
    assert signature(image_bytes=tf.constant([small]))["probabilities"].shape == (1, 3)


def test_folding_uses_the_closed_form_with_epsilon():
    """kernel' = kernel * gamma / sqrt(var + eps), bias' = beta - mean * gamma / sqrt(var + eps), checked
    on a channel with variance 0 and a large epsilon, where leaving epsilon out is off by far more than
    float rounding."""
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, name="c")(inputs)
    x = keras.layers.BatchNormalization(epsilon=0.5, name="b")(x)
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    kernel = np.arange(54, dtype="float32").reshape(3, 3, 2, 3) / 50
    gamma, beta = np.array([1.0, 2.0, 0.5], "float32"), np.array([0.1, -0.2, 0.3], "float32")
    mean, var = np.array([0.5, -1.0, 2.0], "float32"), np.array([0.0, 1e-4, 4.0], "float32")
    model.get_layer("c").set_weights([kernel])
    model.get_layer("b").set_weights([gamma, beta, mean, var])
    folded = export.fold_batchnorm_into_convs(model)
    new_kernel, new_bias = folded.get_layer("c").get_weights()
    scale = gamma / np.sqrt(var + 0.5)
    np.testing.assert_allclose(new_kernel, kernel * scale, rtol=1e-6)
    np.testing.assert_allclose(new_bias, beta - mean * scale, rtol=1e-6)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
    np.testing.assert_allclose(folded(x), model(x, training=False), rtol=1e-5, atol=1e-6)
