import keras
import numpy as np
import pytest
from conftest import randomize_batchnorm

import keras_resnet as kr
from keras_resnet import checkpoints

SIZE = 32  # keras.applications' smallest input: keeps 101 and 152 quick


def random_application(depth, rng, **kwargs):
    app = getattr(keras.applications, checkpoints.APPLICATIONS[depth])(weights=None, input_shape=(SIZE, SIZE, 3), **kwargs)
    randomize_batchnorm(app, rng)
    for layer in app.layers:  # random conv biases, so that folding them into BN is tested
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    return app


def features(model, name, x):
    return np.asarray(keras.Model(model.input, model.get_layer(name).output)(x))


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_converted_keras_applications_model_gives_the_same_outputs(depth, rng):
    app = random_application(depth, rng, classes=7)
    ours = kr.ResNet.from_keras_applications(app)
    assert isinstance(ours, kr.ResNet) and ours.depth == depth and ours.preprocessing == "caffe"
    assert ours.count_params() == app.count_params() - sum(
        layer.filters for layer in app.layers if isinstance(layer, keras.layers.Conv2D))  # minus conv biases
    pixels = rng.uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    caffe = keras.applications.resnet.preprocess_input(pixels.copy())
    assert np.abs(ours.predict(pixels, verbose=0) - app.predict(caffe, verbose=0)).max() < 1e-4
    theirs, mine = features(app, "conv5_block3_out", caffe), features(ours, "stage5_out", pixels)
    assert np.abs(theirs - mine).max() < 1e-5 * np.abs(theirs).max() + 1e-4


def test_applications_h5_file_into_build_resnet_and_depth_mismatch(tmp_path, rng):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    app = random_application(50, rng, include_top=False, pooling="avg")
    path = str(tmp_path / "resnet50_notop.h5")
    with h5py.File(path, "w") as f:  # the layout of keras.applications' downloadable files
        legacy_h5_format.save_weights_to_hdf5_group(f, app)
    ours = kr.build_resnet(50, weights=path, include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3))
    pixels = rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    expected = app.predict(keras.applications.resnet.preprocess_input(pixels.copy()), verbose=0)
    np.testing.assert_allclose(ours.predict(pixels, verbose=0), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="holds ResNet-50 but the model is ResNet-101"):
        kr.build_resnet(101, weights=path, include_top=False, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="ResNet-50/101/152; the model is ResNet-18"):
        kr.build_resnet(18, weights=path, include_top=False, input_shape=(SIZE, SIZE, 3))
    # v1 weights: the stride is on the first 1x1, and the normalisation is caffe's.
    with pytest.raises(ValueError, match=r"stride_in='3x3' contradicts weights='.*resnet50_notop.h5', which were "
                                         r"trained with stride_in='1x1'"):
        kr.build_resnet(50, weights=path, include_top=False, input_shape=(SIZE, SIZE, 3), stride_in="3x3")
    with pytest.raises(ValueError, match=r"preprocessing='imagenet' contradicts .* preprocessing='caffe'"):
        kr.build_resnet(50, weights=path, include_top=False, input_shape=(SIZE, SIZE, 3), preprocessing="imagenet")
    model = kr.build_resnet(50, include_top=False, input_shape=(SIZE, SIZE, 3), stride_in="3x3", preprocessing="caffe",
                            bn_epsilon=checkpoints.KERAS_APPLICATIONS_EPSILON)
    with pytest.raises(ValueError, match=r"are v1 weights .*; the model has stride_in='3x3'"):
        checkpoints.load_weights(model, path)


def test_imagenet_weights_offline_say_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr("keras_resnet.network.online", lambda *a, **k: False)  # CI is offline anyway
    with pytest.raises(FileNotFoundError) as error:
        kr.build_resnet(50, weights="imagenet", include_top=False, input_shape=(SIZE, SIZE, 3))
    message = str(error.value)
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" in message
    with pytest.raises(ValueError, match="num_classes must be 1000. Received: num_classes=10"):
        kr.build_resnet(50, weights="imagenet", num_classes=10, input_shape=(SIZE, SIZE, 3))


def tiny(**kwargs):
    args = dict(stage_repeats=(1, 1, 1, 1), block_type="basic", width=4, input_shape=(SIZE, SIZE, 3),
                num_classes=5, preprocessing="imagenet")
    args.update(kwargs)
    return kr.build_resnet(**args)


def test_own_keras_and_weights_files_with_or_without_the_head(tmp_path, rng):
    source = randomize_batchnorm(tiny(), rng)
    for w in source.trainable_weights:
        w.assign(rng.normal(0, 0.2, w.shape))
    source.save(tmp_path / "source.keras")
    source.save_weights(tmp_path / "source.weights.h5")
    pixels = rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    expected = source.predict(pixels, verbose=0)
    for path in ("source.keras", "source.weights.h5"):
        same = tiny(weights=str(tmp_path / path))
        np.testing.assert_allclose(same.predict(pixels, verbose=0), expected, atol=1e-6)
    # include_top differs: the head is skipped, the backbone loaded.
    backbone = tiny(include_top=False, weights=str(tmp_path / "source.keras"))
    np.testing.assert_allclose(features(backbone, "stage5_out", pixels), features(source, "stage5_out", pixels),
                               atol=1e-5)
    with pytest.raises(ValueError, match="5-class head but the model was built with include_top=True and num_classes=3"):
        tiny(num_classes=3, weights=str(tmp_path / "source.keras"))
    with pytest.raises(ValueError, match=r"holds a ResNet with basic blocks \[1, 1, 1, 1\] but the model is "
                                         r"a ResNet with basic blocks \[2, 1, 1, 1\]"):
        tiny(stage_repeats=(2, 1, 1, 1), weights=str(tmp_path / "source.keras"))
    with pytest.raises(ValueError, match="was not saved from a model like this one"):
        tiny(stage_repeats=(2, 1, 1, 1), weights=str(tmp_path / "source.weights.h5"))
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        tiny(weights=str(tmp_path / "missing.keras"))


def test_damaged_and_hostile_model_files_are_one_line_errors_and_run_nothing(tmp_path):
    """A truncated .keras, a file that is not one, a Lambda layer that safe mode refuses (its code would
    write a marker file), and a broken .h5: each a ValueError naming the argument, nothing executed."""
    from conftest import no_traceback, run_main

    good = tiny()
    good.save(tmp_path / "good.keras")
    (tmp_path / "truncated.keras").write_bytes((tmp_path / "good.keras").read_bytes()[:3000])
    (tmp_path / "text.keras").write_text("not a model")
    marker = tmp_path / "ran"
    inputs = keras.Input((4,))
    payload = eval(f"lambda x: x + 0 * len(open({str(marker)!r}, 'w').name)")  # writes the marker if it runs
    hostile = keras.Model(inputs, keras.layers.Lambda(payload)(inputs))
    hostile.save(tmp_path / "hostile.keras")
    marker.unlink()  # building the model ran the lambda once; loading it must not
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    for name, message in (("truncated.keras", "is not a .keras file \\(not a zip archive; truncated"),
                          ("text.keras", "is not a .keras file"),
                          ("hostile.keras", "could not be loaded as a Keras model")):
        with pytest.raises(ValueError, match=message):
            kr.build_resnet(stage_repeats=(1, 1, 1, 1), block_type="basic", width=4, input_shape=(SIZE, SIZE, 3),
                            num_classes=5, weights=str(tmp_path / name))
    with pytest.raises(ValueError, match="broken.h5' is not a readable HDF5 weights file"):
        kr.build_resnet(50, include_top=False, input_shape=(SIZE, SIZE, 3), weights=str(tmp_path / "broken.h5"))
    assert not marker.exists()
    for name in ("truncated.keras", "hostile.keras"):
        line = no_traceback(run_main("export.py", tmp_path / name, "--export-dir", tmp_path / "out"))
        assert f"source='{tmp_path / name}'" in line
        line = no_traceback(run_main("train.py", "--init-from", tmp_path / name, "--quiet", "--run-dir",
                                     tmp_path / "run"))
        assert f"init_from='{tmp_path / name}'" in line
    assert not marker.exists() and not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
