import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_resnet import data, network


def test_digits_split_is_fixed_stratified_and_8_bit():
    dataset = data.load_digits_dataset()
    assert (dataset.train_size, dataset.num_classes, dataset.image_shape) == (1257, 10, (8, 8, 1))
    splits = data.digits_arrays()
    assert [len(splits[k][0]) for k in ("train", "validation", "test")] == [1257, 180, 360]
    for images, labels in splits.values():
        assert images.dtype == np.uint8 and images.max() == 255
        assert np.bincount(labels).min() >= 0.08 * len(labels)  # every digit in every split
    again = data.digits_arrays()
    np.testing.assert_array_equal(again["test"][0], splits["test"][0])
    assert not dataset.flip  # a mirrored digit is another symbol


def test_digits_splits_are_disjoint_by_content():
    """No image of one split is in another (compared by pixels, as a leak would show), and together the
    splits are the whole dataset. (scikit-learn's digits hold a few exact duplicate images; each
    duplicate group lies in one split.)"""
    from sklearn.datasets import load_digits

    splits = data.digits_arrays()
    keys = {name: {x.tobytes() for x in images} for name, (images, _) in splits.items()}
    assert not keys["train"] & keys["validation"] and not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    everything = {np.round(x * (255 / 16)).astype("uint8")[..., None].tobytes() for x in load_digits().images}
    assert keys["train"] | keys["validation"] | keys["test"] == everything


def _batches(dataset, **kwargs):
    pipeline = data.make_pipeline(dataset, batch_size=32, num_classes=10, image_size=8, **kwargs)
    return [(x.numpy(), y.numpy()) for x, y in pipeline.take(3)]


def test_training_pipeline_is_seeded_and_reshuffles_each_epoch():
    train = data.load_digits_dataset().train
    first = _batches(train, training=True, seed=3)
    second = _batches(train, training=True, seed=3)
    other = _batches(train, training=True, seed=4)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other[0][0])
    pipeline = data.make_pipeline(train, batch_size=32, num_classes=10, image_size=8, training=True, seed=3)
    epoch1, epoch2 = (next(iter(pipeline))[0].numpy() for _ in range(2))
    assert not np.array_equal(epoch1, epoch2)


def test_cifar_augmentation_shifts_but_evaluation_keeps_pixels():
    dataset = data.load_digits_dataset()
    x_eval, y_eval = _batches(dataset.test, training=False)[0]
    raw = np.stack([x.numpy() for x, _ in dataset.test.take(32)]).astype("float32")
    np.testing.assert_array_equal(x_eval, raw)
    assert y_eval.shape == (32, 10) and np.all(y_eval.sum(1) == 1)
    x_aug, _ = _batches(dataset.train, training=True, augment="cifar", flip=False)[0]
    assert x_aug.shape == (32, 8, 8, 1) and x_aug.min() >= 0 and x_aug.max() <= 255


def test_imagenet_augmentation_and_centre_crop_give_the_input_size():
    images = tf.data.Dataset.from_tensor_slices((np.random.randint(0, 255, (4, 50, 70, 3), "uint8"), np.arange(4, dtype="int32")))
    for training in (True, False):
        pipeline = data.make_pipeline(images, batch_size=4, num_classes=4, image_size=32, training=training, augment="imagenet")
        assert next(iter(pipeline))[0].shape == (4, 32, 32, 3)


def _write_image(path, value, fmt):
    Image.fromarray(np.full((12, 10, 3), value, "uint8")).save(path, format=fmt)


def test_image_folder_skips_bad_files_and_counts_them(tmp_path):
    for name, value in (("cat", 30), ("dog", 200)):
        (tmp_path / name).mkdir()
        for i in range(5):
            _write_image(tmp_path / name / f"{i}.png", value, "PNG")
        _write_image(tmp_path / name / "x.jpg", value, "JPEG")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = data.load_dataset(f"folder:{tmp_path}", image_size=16)
    assert any(f"Skipped 2 files in {tmp_path}: 1 cannot be decoded, 1 not an image file name" in str(w.message)
               for w in caught), [str(w.message) for w in caught]
    assert dataset.class_names == ["cat", "dog"] and dataset.num_classes == 2
    assert dataset.train_size == 10  # 6 images per class, 1 of each in validation
    images = [(x.numpy(), int(y)) for x, y in dataset.train]
    assert len(images) == 10 and images[0][0].shape == (16, 16, 3)
    assert {y: int(x.mean()) for x, y in images} == {0: 30, 1: 200}


def test_image_folder_counts_what_tensorflow_cannot_decode_or_is_too_large(tmp_path):
    """Files Pillow reads but TensorFlow cannot (a TIFF named .png), images over the pixel limit and
    empty class folders are skipped and reported; they never silently drop a class."""
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(3):
            _write_image(tmp_path / name / f"{i}.png", 10, "PNG")
    Image.fromarray(np.zeros((12, 10, 3), "uint8")).save(tmp_path / "dog" / "tiff.png", format="TIFF")
    Image.fromarray(np.zeros((40, 40, 3), "uint8")).save(tmp_path / "dog" / "large.png")
    (tmp_path / "empty").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = data.load_folder_dataset(str(tmp_path), image_size=8, max_pixels=1000)
    messages = " ".join(str(w.message) for w in caught)
    assert "Skipped 2 files" in messages and "1 not a JPEG, PNG, BMP or GIF image" in messages
    assert "1 over the pixel limit" in messages and "without usable images are not classes: empty" in messages
    assert dataset.class_names == ["cat", "dog"] and dataset.train_size == 4
    assert len(list(dataset.train)) == 4 and len(list(dataset.validation)) == 2  # every kept file decodes


def test_image_folder_needs_two_images_per_class(tmp_path):
    for name, count in (("cat", 3), ("dog", 1)):
        (tmp_path / name).mkdir()
        for i in range(count):
            _write_image(tmp_path / name / f"{i}.png", 10, "PNG")
    with pytest.raises(ValueError, match=r"at least two images .* too few in: dog \(1\)"):
        data.load_folder_dataset(str(tmp_path))


def test_image_folder_with_one_class_or_none_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="at least two class sub-folders"):
        data.load_dataset(f"folder:{tmp_path}")
    (tmp_path / "only").mkdir()
    _write_image(tmp_path / "only" / "a.png", 1, "PNG")
    with pytest.raises(ValueError, match="has 1"):
        data.load_dataset(f"folder:{tmp_path}")
    with pytest.raises(NotADirectoryError, match="missing"):
        data.load_dataset(f"folder:{tmp_path / 'missing'}")


def test_unprepared_tfds_dataset_fails_fast_offline(tmp_path):
    start = time.time()
    with pytest.raises(data.DatasetUnavailableError, match="tfds:cifar10 is not prepared.*--data-dir"):
        data.load_dataset("tfds:cifar10", data_dir=str(tmp_path))
    assert time.time() - start < 30


def test_unknown_dataset_names():
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'"):
        data.load_dataset("mnist")
    with pytest.raises(ValueError, match="Unknown TensorFlow Datasets name 'no_such_set'") as error:
        data.load_dataset("tfds:no_such_set")
    assert "\n" not in str(error.value) and len(str(error.value)) < 300  # not tfds' list of every name


def test_tfds_dataset_through_mock_data(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(network, "online", lambda: True)  # the download itself is mocked below
    with tfds.testing.mock_data(num_examples=40):
        dataset = data.load_dataset("tfds:cifar10", data_dir=str(tmp_path), download=True)
        assert (dataset.num_classes, dataset.image_shape, dataset.augment) == (10, (32, 32, 3), "cifar")
        assert len(dataset.class_names) == 10 and dataset.name == "tfds:cifar10"
        x, y = next(iter(data.make_pipeline(dataset.train, batch_size=8, num_classes=10, image_size=32, training=True)))
        assert x.shape == (8, 32, 32, 3) and y.shape == (8, 10)
