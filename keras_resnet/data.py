"""Datasets behind one interface, as tf.data pipelines of raw 0-255 pixels.

`load_dataset(name)` returns a `Dataset`: unbatched train / validation / test splits of
(uint8 image, int label) plus what a model needs to know (classes, image shape, the
per-channel mean and std of the training images for the model's normalisation layer).
`make_pipeline` batches a split with the paper's augmentation (Sections 3.4 and 4.2).

Sources:
  digits          scikit-learn's bundled 1,797 8x8 handwritten digits (no download).
  tfds:NAME       any TensorFlow Datasets name (cifar10, cifar100, imagenet2012, ...).
  folder:PATH     one sub-folder per class of JPEG/PNG/BMP/GIF files (or a plain PATH).
"""

import dataclasses
import difflib
import os
import warnings

import numpy as np
import tensorflow as tf

from keras_resnet import images as images_lib
from keras_resnet import network
from keras_resnet.cli import ReportedError
from keras_resnet.config import DATASET_KINDS

AUTOTUNE = tf.data.AUTOTUNE
AUGMENTATIONS = ("cifar", "imagenet", "none")
# Digits split (fixed, stratified, scikit-learn's train_test_split with this seed):
# 20% test, then 10% of all images for validation: 1,257 train / 180 val / 360 test.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
DIGITS_VALIDATION_FRACTION = 0.1


class DatasetUnavailableError(ReportedError):
    """The dataset is not prepared locally and cannot be downloaded now."""

    exit_code = 2


@dataclasses.dataclass
class Dataset:
    """Unbatched splits of (uint8 image [H, W, C], int32 label) and their description."""

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    class_names: list
    image_shape: tuple  # native (height, width, channels); None sizes vary per image
    train_size: int
    mean: list  # per-channel mean of the training pixels, 0-255 scale
    std: list
    augment: str = "cifar"  # the augmentation this kind of data is trained with
    flip: bool = True  # horizontal flips preserve the labels (not for digits)


def _channel_stats(images):
    pixels = images.reshape(-1, images.shape[-1]).astype("float64")
    return pixels.mean(0).tolist(), np.maximum(pixels.std(0), 1e-3).tolist()


def _from_arrays(name, splits, num_classes, class_names, **kwargs):
    train_x, train_y = splits["train"]
    mean, std = _channel_stats(train_x)
    tensors = {k: tf.data.Dataset.from_tensor_slices((x, y.astype("int32"))) for k, (x, y) in splits.items()}
    return Dataset(
        name=name,
        train=tensors["train"],
        validation=tensors["validation"],
        test=tensors["test"],
        num_classes=num_classes,
        class_names=class_names,
        image_shape=tuple(train_x.shape[1:]),
        train_size=len(train_x),
        mean=mean,
        std=std,
        **kwargs,
    )


def digits_arrays(classes=None):
    """The digits as 8-bit images (value x 255/16) and labels, split train/validation/test.

    `classes` keeps only those digits (labels stay the digit values).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype("uint8")[..., None]
    labels = bunch.target.astype("int64")
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    val_size = DIGITS_VALIDATION_FRACTION / (1 - DIGITS_TEST_FRACTION)
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=val_size, stratify=rest_y, random_state=DIGITS_SPLIT_SEED
    )
    splits = {"train": (train_x, train_y), "validation": (val_x, val_y), "test": (test_x, test_y)}
    if classes is not None:
        keep = np.asarray(sorted(classes))
        splits = {k: (x[np.isin(y, keep)], y[np.isin(y, keep)]) for k, (x, y) in splits.items()}
    return splits


def load_digits_dataset(classes=None):
    """scikit-learn's digits: 10 classes, 8x8x1 uint8, 1,257 / 180 / 360 images.

    `classes` (for example range(5, 10)) keeps only those digits, labelled 0..len-1 in order,
    with the digits as class names: "digits:5-9" for the transfer demonstration.
    """
    if classes is None:
        return _from_arrays("digits", digits_arrays(), 10, [str(i) for i in range(10)], augment="cifar", flip=False)
    classes = sorted(set(classes))
    lookup = np.full(10, -1)
    lookup[classes] = np.arange(len(classes))
    splits = {k: (x, lookup[y]) for k, (x, y) in digits_arrays(classes).items()}
    name = f"digits:{classes[0]}-{classes[-1]}" if classes == list(range(classes[0], classes[-1] + 1)) else "digits"
    return _from_arrays(name, splits, len(classes), [str(c) for c in classes], augment="cifar", flip=False)


def _parse_digit_classes(spec):
    """'5-9' -> [5, 6, 7, 8, 9]; '1,3,7' -> [1, 3, 7]."""
    try:
        if "-" in spec:
            low, high = (int(v) for v in spec.split("-"))
            classes = list(range(low, high + 1))
        else:
            classes = [int(v) for v in spec.split(",")]
    except ValueError:
        classes = []
    if len(classes) < 2 or min(classes) < 0 or max(classes) > 9:
        raise ValueError(f"digits classes must be a range like 5-9 or a list like 1,3,7 of at least two digits. "
                         f"Received: dataset='digits:{spec}'")
    return classes


def limit_per_class(dataset, per_class):
    """`dataset` with only the first `per_class` training images of each class (few-label runs)."""
    labels = np.fromiter((int(y) for _, y in dataset.train.as_numpy_iterator()), dtype="int64")
    counts = np.bincount(labels, minlength=dataset.num_classes)

    def keep_first(seen, element):
        _, label = element
        keep = tf.gather(seen, label) < per_class
        return tf.tensor_scatter_nd_add(seen, [[label]], [1]), (element, keep)

    def kept(element, keep):
        return keep

    def unwrap(element, keep):
        return element

    size = int(np.minimum(counts, per_class).sum())
    train = dataset.train.scan(tf.zeros([dataset.num_classes], tf.int32), keep_first).filter(kept).map(unwrap)
    train = train.apply(tf.data.experimental.assert_cardinality(size))  # a known epoch length for Keras
    return dataclasses.replace(dataset, train=train, train_size=size)


def _tfds_builder(name, data_dir):
    """tfds.builder(name), with a one-line error (and the nearest names) for an unknown name."""
    import logging

    import tensorflow_datasets as tfds

    logging.getLogger("absl").setLevel(logging.ERROR)  # tfds warns about folders it inspects, on several lines
    try:
        return tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except Exception as error:  # tfds raises DatasetNotFoundError with every known name (hundreds of lines)
        if "not found" not in str(error).lower():
            raise ValueError(f"tfds:{name} could not be opened: {' '.join(str(error).split())[:300]}") from None
        close = difflib.get_close_matches(name, tfds.list_builders(), n=3)
        hint = f" Did you mean {', '.join('tfds:' + c for c in close)}?" if close else ""
        raise ValueError(f"Unknown TensorFlow Datasets name {name!r}.{hint} (tfds.list_builders() lists them.) "
                         f"Received: dataset='tfds:{name}'") from None


def load_tfds_dataset(name, data_dir=None, download=False, manual_dir=None, validation_fraction=0.1):
    """A TensorFlow Datasets dataset; fails in seconds when it is not prepared offline.

    Validation: the dataset's own "validation" split where it has one and a test split
    too; otherwise the last `validation_fraction` of "train" (CIFAR: 45k/5k, Section 4.2).
    Manual datasets (imagenet2012) are prepared from the archives in `manual_dir`, no network needed.
    """
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, data_dir)
    manual = bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))
    data_flag = f" --data-dir {data_dir}" if data_dir else " --data-dir DIR"
    if manual:
        hint = (f"It is prepared from archives downloaded by hand (see its TFDS page): put them in a folder and pass "
                f"--manual-dir FOLDER --download{data_flag} (no network needed), or run python -m "
                f"tensorflow_datasets.scripts.download_and_prepare --datasets={name} --data_dir=DIR "
                f"--manual_dir=FOLDER.")
    else:
        hint = (f"Pass --download to fetch it now (needs the internet), or prepare it where there is internet "
                f"access (python -m tensorflow_datasets.scripts.download_and_prepare --datasets={name} "
                f"--data_dir=DIR) and pass --data-dir DIR.")
    if not builder.is_prepared():
        if not download or (manual and not manual_dir):
            raise DatasetUnavailableError(f"Dataset tfds:{name} is not prepared in {builder.data_dir}. {hint}")
        if not manual and not network.online():
            raise DatasetUnavailableError(f"Dataset tfds:{name} is not prepared and there is no network. {hint}")
        config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as error:  # tfds' messages span many lines
            raise DatasetUnavailableError(f"Preparing tfds:{name} failed: {' '.join(str(error).split())[:400]}") \
                from None
    splits = builder.info.splits
    if "validation" in splits and "test" in splits:
        names = {"train": "train", "validation": "validation", "test": "test"}
    elif "validation" in splits:
        names = {"train": "train", "validation": "validation", "test": "validation"}
    else:
        cut = int(round(100 * (1 - validation_fraction)))
        names = {"train": f"train[:{cut}%]", "validation": f"train[{cut}%:]", "test": "test"}
    loaded = {
        key: builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        for key, split in names.items()
    }
    label = builder.info.features["label"]
    image_shape = tuple(builder.info.features["image"].shape)
    try:
        train_size = builder.info.splits[names["train"]].num_examples
    except KeyError:  # split metadata absent (tfds.testing.mock_data): count
        train_size = int(loaded["train"].reduce(0, lambda count, *_: count + 1))
    mean, std = _sample_stats(loaded["train"], image_shape)
    is_small = image_shape[0] is not None and image_shape[0] <= 64
    return Dataset(
        name=f"tfds:{name}",
        train=loaded["train"].map(_cast_label),
        validation=loaded["validation"].map(_cast_label),
        test=loaded["test"].map(_cast_label),
        num_classes=label.num_classes,
        class_names=list(label.names),
        image_shape=image_shape,
        train_size=int(train_size),
        mean=mean,
        std=std,
        augment="cifar" if is_small else "imagenet",
        flip=True,
    )


def _cast_label(image, label):
    return image, tf.cast(label, tf.int32)


def _sample_stats(dataset, image_shape, samples=2000):
    """Per-channel mean/std from up to `samples` training images (resized when sizes vary)."""
    size = image_shape[0] or 64

    def resize(image, _):
        return tf.image.resize(tf.cast(image, tf.float32), (size, size))

    images = np.stack([x.numpy() for x in dataset.take(samples).map(resize)])
    return _channel_stats(images)


def _scan_folder(path, channels, max_pixels):
    """(files, labels, class names, skipped {reason: count}) of an image folder; every file kept decodes
    with the pipeline's own decoder (`images.check`), within the pixel budget."""
    if not os.path.isdir(path):
        raise NotADirectoryError(f"Image folder not found. Received: folder={path!r}")
    folders = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    files, labels, classes, skipped, empty = [], [], [], {}, []
    for name in folders:
        found = []
        for entry in sorted(os.listdir(os.path.join(path, name))):
            full = os.path.join(path, name, entry)
            if not os.path.isfile(full) or entry.startswith("."):
                continue
            if not entry.lower().endswith(images_lib.SUFFIXES):
                skipped["not an image file name"] = skipped.get("not an image file name", 0) + 1
                continue
            with open(full, "rb") as f:
                reason = images_lib.check(f.read(), channels, max_pixels)
            if reason:
                key = "over the pixel limit" if "max_pixels" in reason else reason.split(" (")[0]
                skipped[key] = skipped.get(key, 0) + 1
            else:
                found.append(full)
        if found:
            files += found
            labels += [len(classes)] * len(found)
            classes.append(name)
        else:
            empty.append(name)
    if empty:
        warnings.warn(f"Sub-folders without usable images are not classes: {', '.join(empty)} (in {path})",
                      stacklevel=3)
    return files, labels, classes, skipped


def load_folder_dataset(path, image_size=64, validation_fraction=0.2, seed=0, channels=3,
                        max_pixels=images_lib.DEFAULT_MAX_PIXELS):
    """Images in `path/<class>/*`, resized to `image_size`; a stratified validation split.

    Files that TensorFlow cannot decode, that are not images or that have more than `max_pixels`
    pixels are skipped and counted (by reason) in a warning. A class needs at least two images (one
    for training, one for validation). The validation split doubles as the test split.
    """
    files, labels, classes, skipped = _scan_folder(path, channels, max_pixels)
    if skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
        warnings.warn(f"Skipped {sum(skipped.values())} files in {path}: {reasons}", stacklevel=2)
    if len(classes) < 2:
        raise ValueError(
            f"An image folder needs at least two class sub-folders with images; {path!r} has "
            f"{len(classes)} ({len(files)} images in {classes or 'no sub-folders with images'})."
        )
    counts = np.bincount(labels, minlength=len(classes))
    few = [f"{classes[i]} ({counts[i]})" for i in np.flatnonzero(counts < 2)]
    if few:
        raise ValueError(f"Every class needs at least two images (one to train on, one to validate); "
                         f"{path!r} has too few in: {', '.join(few)}.")
    rng = np.random.default_rng(seed)
    files, labels = np.asarray(files), np.asarray(labels, dtype="int32")
    train_idx, val_idx = [], []
    for label in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(labels == label))
        cut = min(len(idx) - 1, max(1, int(round(len(idx) * validation_fraction))))
        val_idx += list(idx[:cut])
        train_idx += list(idx[cut:])

    def decode(file, label):
        image = images_lib.decode_and_resize(tf.io.read_file(file), (image_size, image_size), channels, max_pixels)
        return image, label

    def split(indices):
        order = np.sort(np.asarray(indices, dtype="int64"))
        return tf.data.Dataset.from_tensor_slices((files[order], labels[order])).map(decode, num_parallel_calls=AUTOTUNE)

    train = split(train_idx)
    mean, std = _channel_stats(np.stack([x.numpy() for x, _ in train.take(500)]))
    validation = split(val_idx)
    return Dataset(
        name=f"folder:{path}",
        train=train,
        validation=validation,
        test=validation,
        num_classes=len(classes),
        class_names=classes,
        image_shape=(image_size, image_size, channels),
        train_size=len(train_idx),
        mean=mean,
        std=std,
        augment="cifar" if image_size <= 64 else "imagenet",
        flip=True,
    )


def load_dataset(name, *, data_dir=None, download=False, manual_dir=None, image_size=None, seed=0,
                 max_pixels=images_lib.DEFAULT_MAX_PIXELS):
    """Load a dataset by name: "digits", "tfds:NAME" or "folder:PATH" (or an existing folder)."""
    if name == "digits":
        return load_digits_dataset()
    if name.startswith("digits:"):
        return load_digits_dataset(_parse_digit_classes(name[7:]))
    if name.startswith("tfds:"):
        return load_tfds_dataset(name[5:], data_dir=data_dir, download=download, manual_dir=manual_dir)
    if name.startswith("folder:") or os.path.isdir(name):
        path = name[7:] if name.startswith("folder:") else name
        return load_folder_dataset(path, image_size=image_size or 64, seed=seed, max_pixels=max_pixels)
    raise ValueError(f"Unknown dataset {name!r}. Use one of: {', '.join(DATASET_KINDS)}. Received: dataset={name!r}")


# --- augmentation and batching ---------------------------------------------------------


def _cifar_augment_batch(images, draws, size, flip):
    """Section 4.2 on a whole batch: pad 4 pixels each side (size / 8), random crop back, random
    flip. `draws` holds one random int64 per image, from which its offsets and flip are taken
    (a few gathers per batch instead of several ops per image, and the same result however the
    batch is later split across replicas)."""
    pad = max(1, size // 8)
    span = 2 * pad + 1
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    draws = tf.math.floormod(draws, span * span * 2)
    window = tf.range(size)
    top = tf.cast(draws % span, tf.int32)[:, None] + window
    left = tf.cast((draws // span) % span, tf.int32)[:, None] + window
    images = tf.gather(padded, top, axis=1, batch_dims=1)
    images = tf.gather(images, left, axis=2, batch_dims=1)
    if flip:
        mirror = draws // (span * span) == 1
        images = tf.where(mirror[:, None, None, None], tf.reverse(images, axis=[2]), images)
    return images


def _imagenet_augment(image, seed, size, flip):
    """Random-resized crop (area 8-100%, aspect 3/4-4/3) and flip (Section 3.4, Szegedy et al.)."""
    begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop)
    image = tf.image.resize(image, (size, size))
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    return image


def _center_crop(image, size):
    """Evaluation for ImageNet-style data: shorter side to size / 0.875, central crop."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / 0.875) / tf.reduce_min(shape)
    image = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32))
    return tf.image.resize_with_crop_or_pad(image, size, size)


def make_pipeline(
    dataset,
    *,
    batch_size,
    num_classes,
    image_size,
    training,
    augment="cifar",
    flip=True,
    seed=0,
    cache=True,
    shuffle_buffer=10_000,
):
    """Batch a split of raw images for `fit`/`evaluate`: float32 0-255 images, one-hot labels.

    Training shuffles and augments with random draws made per image before batching ("cifar",
    applied to whole batches) or stateless ops seeded per image ("imagenet"), so a seed gives the
    same batches on every run, however the batches are split across replicas;
    `tf.data.Dataset.random` gives each epoch new draws. Evaluation resizes (cifar) or
    centre-crops (imagenet).
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}. Received: augment={augment!r}")
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # Training drops the last partial batch (reshuffled, so other images each epoch): every
    # step then has the same global batch, split evenly however many replicas share it.
    if augment == "imagenet":  # per image: random-resized crops of images of any size
        if training:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            dataset = tf.data.Dataset.zip((dataset, seeds))
        else:
            dataset = dataset.map(lambda image, label: ((image, label), tf.zeros(2, tf.int64)))

        def prepare(example, element_seed):
            image, label = example
            image = tf.cast(image, tf.float32)
            image = _imagenet_augment(image, element_seed, image_size, flip) if training else _center_crop(
                image, image_size)
            return image, tf.one_hot(label, num_classes)

        dataset = dataset.map(prepare, num_parallel_calls=AUTOTUNE)
        dataset = dataset.batch(batch_size, drop_remainder=training)
    else:  # per batch: resize to the input size, then (training, "cifar") pad-crop-flip
        if any(d is None for d in dataset.element_spec[0].shape[:2]):
            dataset = dataset.map(lambda image, label: (tf.image.resize(image, (image_size, image_size)), label),
                                  num_parallel_calls=AUTOTUNE)
        augmenting = training and augment == "cifar"
        if augmenting:  # one random number per image, drawn before batching: its crop and flip
            draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            dataset = tf.data.Dataset.zip((dataset, draws))
        else:
            dataset = dataset.map(lambda image, label: ((image, label), tf.zeros([], tf.int64)))
        dataset = dataset.batch(batch_size, drop_remainder=training)

        def prepare_batch(example, image_draws):
            images, labels = example
            images = tf.cast(images, tf.float32)
            if images.shape[1] != image_size or images.shape[2] != image_size:
                images = tf.image.resize(images, (image_size, image_size))
            if augmenting:
                images = _cifar_augment_batch(images, image_draws, image_size, flip)
            return images, tf.one_hot(labels, num_classes)

        dataset = dataset.map(prepare_batch, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE)
