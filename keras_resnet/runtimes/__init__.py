"""Exports for the runtimes ResNets are deployed on besides TF Serving, float32 or int8, behind one interface.

Formats (`FORMATS`): "saved_model" (TF Serving, `export.export_saved_model`), "onnx" (`model.onnx`, run by
ONNX Runtime), "openvino" (`model.xml` + `model.bin`, OpenVINO IR) and "litert" (`model.tflite`). Each
runtime module here (`runtimes.onnx`, `runtimes.openvino`, `runtimes.litert`) has:
- `PACKAGES`, `LOAD_PACKAGES`, `INT8_PACKAGES`: {import name: pip name} of what exporting, loading and
  quantizing need. They are optional extras (`pip install -e '.[runtimes]'`; `make test` installs them),
  imported only when used; a missing one is one clear error (`RuntimeNotInstalledError`, exit 2 in the scripts);
- `export(model, folder, input_shape, int8=False, calibration=None)`: the Keras model's forward pass in that
  format, raw 0-255 pixels `[batch, H, W, C]` in (the model's own `preprocessing` layer normalises them),
  its outputs out; with `int8`, post-training static quantization calibrated on `calibration` (float32
  images drawn from the training data: `calibration_images`);
- `open_model(folder)`: a function float32 images `[batch, H, W, C]` -> the model's outputs (NumPy);
- `load(folder)`: that function behind `Classifier`, which every format shares.

`Classifier` takes what the SavedModel's signatures take, a batch of images of any size (float or
uint8) or a list of encoded JPEG/PNG/BMP/GIF files, checks it as they do, decodes and resizes it with the
same TensorFlow ops (`keras_resnet.images`, eagerly) and returns their outputs as NumPy arrays:
`probabilities`, `top_k_classes` (int32), `top_k_scores` and, with class names, `top_k_labels` (bytes).
`load(path)` opens any export (and `.keras` files) that way, which is how `scripts/predict.py` serves
every format alike.

`export_model` writes every format in the SavedModel's layout (`export.py`): a version folder
`<export_dir>/<name>/<version>/` written atomically, with `labels.txt` and the `export.json` card, whose
`format` and `precision` say what it holds and whose fingerprint covers the weights, the settings and
the calibration images, so an identical re-export adds no version; a name holds one format and one
task. A model trained under a mixed-precision policy is exported as a float32 copy (`inference_model`).
"""

import contextlib
import hashlib
import importlib
import os
import sys
import tempfile

import numpy as np

from keras_resnet import export as export_lib
from keras_resnet import images as images_lib
from keras_resnet.benchmark import time_calls
from keras_resnet.checkpoints import existing_versions, labels_for
from keras_resnet.cli import ReportedError
from keras_resnet.files import check_folder_name

FORMATS = ("saved_model", "onnx", "openvino", "litert")
RUNTIME_FORMATS = FORMATS[1:]
NAMES = {"saved_model": "TF SavedModel", "onnx": "ONNX Runtime", "openvino": "OpenVINO", "litert": "LiteRT"}
DEFAULT_CALIBRATION_IMAGES = 300  # NNCF's default subset size; the measured int8 agreement holds with it
INSTALL_HINT = "pip install -e '.[runtimes]' installs every runtime (make test does)"


class RuntimeNotInstalledError(ReportedError):
    """A runtime's Python package is not installed (the runtimes are optional extras)."""

    exit_code = 2


def check_format(format, argument="format"):
    if format not in FORMATS:
        raise ValueError(f"{argument} must be one of {', '.join(FORMATS)}. Received: {argument}={format!r}")
    return format


def runtime(format, purpose="load", int8=False):
    """The module of `format`, once the packages that `purpose` ("export" or "load") needs import.

    A missing package is a `RuntimeNotInstalledError` on one line: which packages, and how to install them.
    """
    if check_format(format) == "saved_model":
        raise ValueError("format='saved_model' is TensorFlow's own: use keras_resnet.export. Received: "
                         "format='saved_model'")
    module = importlib.import_module(f"keras_resnet.runtimes.{format}")
    needed = dict(module.PACKAGES if purpose == "export" else module.LOAD_PACKAGES)
    if int8 and purpose == "export":
        needed.update(module.INT8_PACKAGES)
    missing = []
    for name, pip_name in needed.items():
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(pip_name)
    if missing:
        what = "int8 export" if int8 and purpose == "export" else purpose
        raise RuntimeNotInstalledError(
            f"{NAMES[format]} {what} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: pip install {' '.join(missing)} ({INSTALL_HINT}). Received: format={format!r}")
    return module


def default_name(base, format, int8=False):
    """The model folder of an export: `base` for a SavedModel (TF Serving's), else `<base>-<format>[-int8]`,
    so that each folder holds one format."""
    if format == "saved_model":
        return base
    return f"{base}-{format}" + ("-int8" if int8 else "")


def keras_export(model, folder, files, format, input_shape, *, quantize=None, calibration=None, **options):
    """`model.export` in Keras' `format` into `folder/files[0]`, one float32 input `images` [batch, *input_shape].

    With `quantize` (a runtime's post-training int8 step), the float model goes to `float.<ext>` files first
    and `quantize(float_path, model_path, calibration)` writes `files` from them; the float files are removed.
    """
    import tensorflow as tf

    written = [f"float{os.path.splitext(name)[1]}" for name in files] if quantize else list(files)
    spec = tf.TensorSpec([None, *input_shape], tf.float32, name="images")
    model.export(os.path.join(folder, written[0]), format=format, verbose=False, input_signature=[spec], **options)
    if quantize:
        quantize(os.path.join(folder, written[0]), os.path.join(folder, files[0]), calibration)
        for name in written:
            os.remove(os.path.join(folder, name))


@contextlib.contextmanager
def quiet_output():
    """Silence what the converters print (tf2onnx, TensorFlow's converter, NNCF's progress bars) on the
    process's stdout and stderr, Python's and the file descriptors'; replayed on stderr if the conversion
    fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile("w+") as captured:
        try:
            saved = (os.dup(1), os.dup(2))
        except (OSError, ValueError):  # no real file descriptors (an embedding host)
            saved = None
        if saved:
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
        failed = True
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                yield
            failed = False
        finally:
            captured.flush()
            if saved:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            if failed:
                captured.seek(0)
                sys.stderr.write(captured.read()[-5000:])


# --- the model that is converted --------------------------------------------------------------


def inference_model(model):
    """`model` as the converters should see it: float32, its normalisation as constants in the graph.

    Returns `model` itself when nothing needs to change, else a copy with the same weights in which
    - every layer computes in float32: a model trained under `mixed_bfloat16` would otherwise be
      exported with bfloat16 casts (Keras' ONNX export requires float32; variables are float32 under
      the mixed policies, so the weights copy as they are);
    - a `Normalization` layer with a fixed mean and variance (the `preprocessing` layer) becomes the
      equivalent `Rescaling` (x / std - mean / std): Keras keeps the fixed statistics as eager tensors
      that the traced function captures, which tf2onnx turns into extra graph inputs.
    """
    import keras

    def fixed_normalization(layer):
        return isinstance(layer, keras.layers.Normalization) and layer.input_mean is not None and not layer.invert

    if all(keras.backend.standardize_dtype(layer.compute_dtype) == "float32" and not fixed_normalization(layer)
           for layer in model.layers):
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        if fixed_normalization(layer):
            mean = np.asarray(layer.mean, np.float64).reshape(-1)
            std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64).reshape(-1)), keras.backend.epsilon())
            return keras.layers.Rescaling(scale=(1.0 / std).tolist(), offset=(-mean / std).tolist(), dtype="float32",
                                          name=layer.name)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.weights:
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    copy.eval_transform = getattr(model, "eval_transform", None)
    return copy


# --- images in, the signatures' outputs out ---------------------------------------------------


def prepare_images(images, size, channels, transform=None):
    """A batch `[N, H, W, C]` (float or uint8, raw 0-255) -> float32 `[N, height, width, C]`, checked and
    resized as the SavedModel's image signatures do (`images.resize_images`, or the evaluation
    transform's resize and centre crop); a ValueError says what is wrong with a bad batch."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be a batch [batch, height, width, channels]. Received: shape={images.shape}")
    if images.shape[0] == 0:
        raise ValueError("the batch is empty: send at least one image. Received: shape=" + str(images.shape))
    if images.shape[1] * images.shape[2] == 0:
        raise ValueError(f"an image has no pixels (height or width 0). Received: shape={images.shape}")
    if images.shape[3] != channels:
        raise ValueError(f"images must have {channels} channel(s), as the model. Received: shape={images.shape}")
    if images.dtype.kind not in "uif" and images.dtype != np.bool_:
        raise ValueError(f"images must be numbers. Received: dtype={images.dtype}")
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
        raise ValueError("pixel values must be finite numbers (no NaN or infinity)")
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    if transform is None:
        return images_lib.resize_images(images, tuple(size)).numpy()
    return images_lib.resize_and_centre_crop(images, transform).numpy()


def decode_images(encoded, size, channels, max_pixels=images_lib.DEFAULT_MAX_PIXELS, transform=None):
    """Encoded JPEG/PNG/BMP/GIF files -> float32 `[N, height, width, C]`, as the `serve_image_bytes`
    signature decodes and resizes them (pixel limit first; rounded to uint8 after the resize)."""
    if len(encoded) == 0:
        raise ValueError("the batch is empty: send at least one image")
    import tensorflow as tf

    decoded = []
    for i, content in enumerate(encoded):
        try:
            image = images_lib.decode_and_resize(tf.constant(content), tuple(size), channels, max_pixels,
                                                 transform=transform)
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
            message = " ".join(error.message.split("\n")[0].split())
            raise ValueError(f"image {i} of the batch: {message}") from None
        decoded.append(image.numpy())
    return np.stack(decoded).astype(np.float32)


def _softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def top_k_outputs(probabilities, k, class_names=None):
    """The signatures' outputs from probabilities: ties keep the lower class first, as `tf.math.top_k`."""
    probabilities = np.asarray(probabilities, np.float32)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    outputs = {"probabilities": probabilities, "top_k_classes": order.astype(np.int32),
               "top_k_scores": np.take_along_axis(probabilities, order, axis=1)}
    if class_names:
        names = np.asarray([str(c).encode() for c in class_names], dtype=object)
        outputs["top_k_labels"] = names[order]
    return outputs


class Classifier:
    """An export as one function: `classify(images)` or `classify([encoded files])` -> outputs dict.

    `run`: float32 images at the input size -> the model's outputs (probabilities, or logits when
    `softmax`). Attributes: `format`, `precision`, `channels`, `input_size`, `eval_transform` (None:
    images are resized to the input size), `class_names`, `files` (the runtime's model files).
    """

    def __init__(self, run, *, input_size, channels, num_classes, top_k=export_lib.DEFAULT_TOP_K, class_names=None,
                 eval_transform=None, max_pixels=images_lib.DEFAULT_MAX_PIXELS, softmax=True, format="",
                 precision="float32", files=()):
        self.run = run
        self.files = tuple(files)
        self.input_size = tuple(input_size)
        self.channels = int(channels)
        self.k = min(int(top_k), int(num_classes))
        self.class_names = list(class_names) if class_names else None
        self.eval_transform = eval_transform
        self.max_pixels = int(max_pixels)
        self.softmax = softmax
        self.format = format
        self.precision = precision

    @classmethod
    def from_card(cls, run, card, class_names=None, top_k=None):
        return cls(run, input_size=card["input_size"], channels=card["channels"], num_classes=card["num_classes"],
                   top_k=min(top_k or card["top_k"], card["top_k"]), class_names=class_names or card.get("class_names"),
                   eval_transform=card.get("eval_transform"), max_pixels=card["max_pixels"],
                   softmax=card.get("softmax", True), format=card.get("format", "saved_model"),
                   precision=card.get("precision", "float32"), files=card.get("files", ()))

    def prepare(self, inputs):
        """Float32 images at the input size, from a batch of images or a list of encoded files."""
        if isinstance(inputs, (list, tuple)) or (isinstance(inputs, np.ndarray) and inputs.dtype.kind in "SO"):
            return decode_images(list(inputs), self.input_size, self.channels, self.max_pixels, self.eval_transform)
        return prepare_images(inputs, self.input_size, self.channels, self.eval_transform)

    def __call__(self, inputs):
        outputs = np.asarray(self.run(self.prepare(inputs)), np.float32)
        probabilities = outputs if self.softmax else _softmax(outputs)
        return top_k_outputs(probabilities, self.k, self.class_names)


def load_runtime(folder, class_names=None, top_k=None, **options):
    """A `Classifier` of a version folder exported by `export_model` in a runtime format."""
    card = export_lib.read_card(folder)
    if not card or card.get("format") not in RUNTIME_FORMATS:
        raise FileNotFoundError(f"model must be a version folder of an ONNX, OpenVINO or LiteRT export (with its "
                                f"export.json). Received: model={folder!r}")
    module = runtime(card["format"], "load")
    run = module.open_model(folder, **options)
    return Classifier.from_card(run, card, class_names=class_names or labels_for(folder), top_k=top_k)


def _runtime_folder(path):
    """The version folder when `path` is a runtime export's version or model folder, else None."""
    if not os.path.isdir(path):
        return None
    card = export_lib.read_card(path)
    if card and card.get("format") in RUNTIME_FORMATS:
        return path
    versions = existing_versions(path)
    if versions:
        latest = os.path.join(path, str(versions[-1]))
        card = export_lib.read_card(latest)
        if card and card.get("format") in RUNTIME_FORMATS:
            return latest
    return None


def load(path, top_k=export_lib.DEFAULT_TOP_K, class_names=None, max_pixels=images_lib.DEFAULT_MAX_PIXELS):
    """Any export or model as one function: (classify, class_names, the file or version folder loaded).

    `classify(images or encoded files)` returns the signatures' outputs as NumPy arrays and has the
    attributes `format`, `precision`, `channels` and `eval_transform`. A runtime export (its version folder,
    or its model folder: the latest version) runs in its runtime (`Classifier`); SavedModels, `.keras`
    files and run directories through `export.load_classifier`.
    """
    folder = _runtime_folder(os.fspath(path))
    if folder:
        classify = load_runtime(folder, class_names=class_names, top_k=top_k)
        return classify, classify.class_names, folder
    function, class_names, loaded = export_lib.load_classifier(path, top_k=top_k, class_names=class_names,
                                                              max_pixels=max_pixels)

    def classify(inputs):
        if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "SO":
            inputs = inputs.tolist()
        return {key: value.numpy() for key, value in function(inputs).items()}

    classify.channels, classify.eval_transform = function.channels, function.eval_transform
    classify.format = "saved_model" if os.path.isdir(loaded) else "keras"
    classify.precision, classify.keep_alive = "float32", function
    return classify, class_names, loaded


# --- calibration, the export, its report -------------------------------------------------------


def calibration_images(dataset, input_size, count=DEFAULT_CALIBRATION_IMAGES, seed=0, transform=None):
    """`count` images drawn at random (seeded: the same images every time) from `dataset.train` (a
    `data.Dataset`'s split of (uint8 image, label)), resized as served: float32 `[count, H, W, C]`."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"calibration images must be a positive integer. Received: calibration_images={count!r}")
    buffer = max(1, min(int(dataset.train_size), 10_000))
    split = dataset.train.shuffle(buffer, seed=seed, reshuffle_each_iteration=False).take(count)
    channels = dataset.image_shape[-1]
    drawn = [prepare_images(np.asarray(image)[None], input_size, channels, transform)[0] for image, _ in split]
    return np.stack(drawn)


def split_arrays(split, input_size, channels, limit=None, transform=None):
    """(images float32 [N, H, W, C] resized as served, labels int) of a split of (image, label), at most `limit`."""
    if limit is not None:
        split = split.take(limit)
    images, labels = [], []
    for image, label in split:
        images.append(prepare_images(np.asarray(image)[None], input_size, channels, transform)[0])
        labels.append(int(label))
    return np.stack(images), np.asarray(labels)


def _fingerprint_of(array):
    return hashlib.sha256(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest()


def files_size(folder, names):
    return sum(os.path.getsize(os.path.join(folder, name)) for name in names)


def export_report(classify, model, folder, files, evaluation=None, batch_size=32, warmup=2, repeats=5):
    """File size, latency at batch 1, images/s at `batch_size` and, with `evaluation` (images, labels of a
    held-out split, prepared as served), the top-1 agreement with the float Keras model and both accuracies."""
    height, width = classify.input_size
    rng = np.random.default_rng(0)
    probe = evaluation[0] if evaluation is not None else rng.uniform(0, 255, (batch_size, height, width,
                                                                              classify.channels)).astype(np.float32)
    batch = np.resize(probe, (batch_size, *probe.shape[1:])).astype(np.float32)
    latency = time_calls(classify, batch[:1], warmup, repeats)
    step = time_calls(classify, batch, warmup, repeats)
    report = {"file_bytes": files_size(folder, files), "latency_batch1_ms": round(latency * 1000, 3),
              f"images_per_sec_batch{batch_size}": round(batch_size / step, 2)}
    if evaluation is not None:
        images, labels = evaluation
        exported = np.concatenate([classify(images[i:i + batch_size])["probabilities"]
                                   for i in range(0, len(images), batch_size)]).argmax(1)
        expected = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float32).argmax(1)
        report.update(evaluation_images=int(len(labels)), top1_agreement=float((exported == expected).mean()),
                      accuracy=float((exported == labels).mean()), float_accuracy=float((expected == labels).mean()))
    return report


def export_model(model, export_dir="saved_models", format="saved_model", *, int8=False, calibration=None,
                 calibration_source=None, evaluation=None, name=None, version=None, overwrite=False, class_names=None,
                 top_k=export_lib.DEFAULT_TOP_K, fold_batchnorm=False, image_size=None,
                 max_pixels=images_lib.DEFAULT_MAX_PIXELS, source=None, report=True):
    """Export `model` in `format` as a new version folder (the SavedModel's layout); returns the folder.

    `int8` (not for "saved_model"): post-training static quantization calibrated on `calibration`, float32
    images `[N, H, W, C]` at the served size drawn from the training data (`calibration_images`);
    `calibration_source` names them in the card. `evaluation`: (images, labels) of a held-out split for
    the report (`export_report`) that the card keeps under "report" (`report=False`: none). `name`
    defaults to `default_name(model.name, format, int8)`. With `version=None` an export that the latest
    version already holds (same weights, settings and calibration images) adds no version.
    """
    check_format(format)
    if format == "saved_model":
        if int8:
            raise ValueError("int8 is for the onnx, openvino and litert formats; a SavedModel serves the model's "
                             "own precision. Received: format='saved_model', int8=True")
        return export_lib.export_saved_model(model, export_dir, name=name, version=version, overwrite=overwrite,
                                             class_names=class_names, top_k=top_k, fold_batchnorm=fold_batchnorm,
                                             image_size=image_size, max_pixels=max_pixels, source=source)
    if fold_batchnorm:
        raise ValueError(f"fold_batchnorm is for format='saved_model': ONNX Runtime, OpenVINO and LiteRT fold batch "
                         f"norm into the convs themselves. Received: format={format!r}, fold_batchnorm=True")
    module = runtime(format, "export", int8=int8)
    name = check_folder_name(name or default_name(model.name, format, int8), "name")
    export_lib.check_export_dir(export_dir)
    height, width, channels = export_lib.input_size(model, image_size)
    settings = export_lib.serving_settings(model, top_k=top_k, class_names=class_names, image_size=image_size,
                                           max_pixels=max_pixels)
    settings.update(format=format, int8=bool(int8))
    fields = {"precision": "int8" if int8 else "float32", "files": list(module.FILES),
              "softmax": export_lib._outputs_softmax(model)}
    if int8:
        if calibration is None:
            raise ValueError("int8 needs calibration images drawn from the training data (calibration_images). "
                             "Received: calibration=None")
        calibration = np.asarray(calibration, np.float32)
        if calibration.ndim != 4 or calibration.shape[1:] != (height, width, channels) or not len(calibration):
            raise ValueError(f"calibration must be images [N, {height}, {width}, {channels}] at the served size. "
                             f"Received: shape={calibration.shape}")
        settings["calibration"] = {"images": int(len(calibration)), "sha256": _fingerprint_of(calibration)}
        fields["calibration"] = {**settings["calibration"], "source": calibration_source}
    card = export_lib.model_card(model, name, settings, image_size=image_size, source=source, format=format,
                                 **fields)

    def write(folder):
        served = inference_model(model)
        with quiet_output():
            module.export(served, folder, input_shape=(height, width, channels), int8=int8, calibration=calibration)
        if report:
            classify = Classifier.from_card(module.open_model(folder), card)
            card["report"] = export_report(classify, served, folder, module.FILES, evaluation)
        export_lib.write_labels_and_card(folder, card, class_names)

    return export_lib.export_version(os.path.join(export_dir, name), card, version, overwrite, write)
