"""SavedModels for TF Serving: versioned, written atomically, with image and image-bytes signatures.

Layout: `<export_dir>/<name>/<version>/` holds `saved_model.pb` and `variables/` (what TF Serving
loads), `model.keras` (the Keras model, for further training or `predict.py`), `labels.txt` and
`export.json` (the model card: classes, input, signatures' settings, a fingerprint of the weights, the
format: "saved_model" here; `keras_resnet.runtimes` writes ONNX, OpenVINO and LiteRT versions the same way).
A version folder is built in a temporary folder beside it and renamed into place (mode 0755, so a
model server running as another user can read it), so a server watching `<export_dir>/<name>`
never sees a half-written version, and an existing version is never replaced without
`overwrite=True`. One name holds one task in one format: a model with other classes, another input
or another format is refused under a name whose latest version differs, and exporting the model the
latest version already holds (same weights and settings) adds no version.

Signatures (made with `keras.export.ExportArchive`; every one takes any batch size):
- `serving_default`: input `images`, float32 `[batch, H, W, C]` raw 0-255 pixels of any H and W;
- `serve_uint8`: the same for uint8 images;
- `serve_image_bytes`: input `image_bytes`, a string `[batch]` of encoded JPEG/PNG/BMP/GIF files
  (TF Serving's REST API carries them as `{"b64": ...}`).
Images are resized in the graph to the model's input size (`images.resize_images`, as the folder
datasets are) and normalised by the model's own preprocessing layer. A model that carries an
evaluation transform (`ResNet(eval_transform=...)`, pretrained weights' "resize 232, centre-crop 224")
gets that instead: every encoded image, and every float/uint8 image not already at the input size,
has its shorter side resized and the centre cropped (`images.resize_and_centre_crop`), as the
weights' publishers evaluate them. Every signature returns
`probabilities` [batch, classes], `top_k_classes` and `top_k_scores` [batch, k] and, when class
names are known, `top_k_labels`. Requests are checked first: an empty batch, an image without
pixels, a channel count other than the model's, non-finite pixel values, and encoded images whose
header claims more than `max_pixels` pixels (decompression bombs) each fail that request with an
InvalidArgumentError that says so (the model keeps serving).
"""

import hashlib
import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_resnet import images as images_lib
from keras_resnet.specs import eval_transform_for
from keras_resnet.checkpoints import (  # noqa: F401  (re-exported for the scripts)
    existing_versions,
    labels_for,
    load_keras_model,
    read_labels,
    resolve_model_path,
)
from keras_resnet.files import check_folder_name, check_writable_folder, fsync_path, locked

DEFAULT_TOP_K = 5
IMAGE_SIGNATURES = {"serving_default": tf.float32, "serve_uint8": tf.uint8}
BYTES_SIGNATURE = "serve_image_bytes"


# --- versions -----------------------------------------------------------------------------


def next_version(model_dir):
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def remove_stale_temporaries(model_dir):
    """Remove `.tmp-*` / `.old-*` folders that processes which no longer run left in `model_dir` (a
    killed export); their names carry the writer's process id. Returns the folders removed."""
    removed = []
    for name in os.listdir(model_dir) if os.path.isdir(model_dir) else ():
        parts = name.split("-")
        if name.startswith((".tmp-", ".old-")) and len(parts) >= 4 and parts[2].isdigit():
            if not _process_alive(int(parts[2])):
                shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)
                removed.append(name)
    return removed


def write_version_atomically(model_dir, version, write, overwrite=False):
    """Call `write(tmp_folder)`, then rename the folder to `model_dir/version`.

    A failure (or a kill) inside `write` leaves no version folder: the temporary folder is named
    `.tmp-<version>-<pid>-*`, which TF Serving ignores, and is removed when `write` raises, or by the
    next export once its process is gone (after a kill).
    """
    if version is None:
        version = next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer. Received: version={version!r}")
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it.")
    os.makedirs(model_dir, exist_ok=True)
    remove_stale_temporaries(model_dir)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}-", dir=model_dir)
    try:
        write(tmp)
        for folder, subfolders, files in os.walk(tmp):  # readable by a server running as another user
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
                fsync_path(os.path.join(folder, name))
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".old-{version}-{os.getpid()}-", dir=model_dir)
            os.replace(target, os.path.join(old, "v"))
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        fsync_path(model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def export_version(model_dir, card, version, overwrite, write):
    """The export of `card` into `model_dir`: the version that already holds it (`existing_export`), else a
    new version written by `write(folder)` (`write_version_atomically`). Check and write happen under a lock on
    the name (`<export_dir>/.<name>.lock`, outside the folder TF Serving watches), so two exports to one name
    at once run in turn: the second sees the first's version instead of replacing it."""
    export_dir, name = os.path.split(os.path.normpath(model_dir))
    os.makedirs(export_dir or ".", exist_ok=True)
    with locked(os.path.join(export_dir or ".", f".{name}.lock")):
        existing = existing_export(model_dir, card, name, version, overwrite)
        if existing:
            return existing  # already exported: no repeated version
        return write_version_atomically(model_dir, version, write, overwrite)


# --- batch-norm folding ------------------------------------------------------------------


def _producer(layer):
    """The layer whose output is `layer`'s (single) input."""
    return layer._inbound_nodes[0].input_tensors[0]._keras_history.operation


def _foldable_pairs(model):
    """{conv name: bn layer} for each BatchNormalization fed by a bias-free-or-not linear Conv2D
    whose output goes nowhere else."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        conv = _producer(layer)
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        if (
            type(conv) is keras.layers.Conv2D
            and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1
            and conv.get_config()["activation"] == "linear"
            and axis in (-1, 3)
        ):
            pairs[conv.name] = layer
    return pairs


def fold_batchnorm_into_convs(model):
    """A copy of `model` for inference with each conv -> batch norm pair merged into one conv.

    With s = gamma / sqrt(moving_variance + epsilon): kernel' = kernel * s (per output channel)
    and bias' = beta + (bias - moving_mean) * s. The BN layers leave the graph (every other layer keeps
    its name); outputs match the model in inference to float rounding. The copy is a plain functional model (not trainable as a ResNet: BN is gone).
    """
    pairs = _foldable_pairs(model)
    folded_bns = {bn.name for bn in pairs.values()}

    def clone(layer):
        config = layer.get_config()
        if layer.name in pairs:
            config.update(use_bias=True, kernel_regularizer=None, bias_regularizer=None)
            return keras.layers.Conv2D.from_config(config)
        if layer.name in folded_bns:
            return keras.layers.Identity(name=layer.name)  # never called: `call` skips it
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        return args[0] if layer.name in folded_bns else layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.name in folded_bns or not layer.weights:
            continue
        new = folded.get_layer(layer.name)
        if layer.name in pairs:
            bn = pairs[layer.name]
            gamma = bn.gamma.numpy() if bn.scale else 1.0
            beta = bn.beta.numpy() if bn.center else 0.0
            scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
            kernel = layer.kernel.numpy()
            bias = layer.bias.numpy() if layer.use_bias else 0.0
            new.set_weights([kernel * scale, beta + (bias - bn.moving_mean.numpy()) * scale])
        else:
            new.set_weights(layer.get_weights())
    folded.eval_transform = getattr(model, "eval_transform", None)  # served the same way
    return folded


# --- signatures ---------------------------------------------------------------------------


def input_size(model, image_size=None):
    """(height, width, channels) that the signatures resize to."""
    _, height, width, channels = model.input_shape
    if image_size is not None:
        height = width = int(image_size)
    if not height or not width:
        raise ValueError(
            f"The model takes any image size ({model.input_shape}); pass image_size to say what size to "
            f"resize served images to. Received: image_size={image_size!r}"
        )
    return int(height), int(width), int(channels)


def serving_transform(model, image_size=None):
    """The model's evaluation transform resolved for the served size, or None (plain resize)."""
    transform = getattr(model, "eval_transform", None)
    if transform is None:
        return None
    height, width, _ = input_size(model, image_size)
    return eval_transform_for(transform, (height, width))


def _outputs_softmax(model):
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def serving_functions(model, *, top_k=DEFAULT_TOP_K, class_names=None, image_size=None,
                      max_pixels=images_lib.DEFAULT_MAX_PIXELS):
    """{signature name: (function, input TensorSpec)} for the SavedModel or for in-process use.

    The functions check each request (module doc), then run `model` in inference mode on raw
    images of any size, resized in the graph (with the model's evaluation transform, if it has one).
    """
    height, width, channels = input_size(model, image_size)
    transform = serving_transform(model, image_size)
    num_classes = int(model.output_shape[-1])
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer. Received: top_k={top_k!r}")
    k = min(top_k, num_classes)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have one name for each of the model's {num_classes} classes. "
            f"Received: {len(class_names)} names"
        )
    softmax = _outputs_softmax(model)
    labels = None if class_names is None else tf.constant([str(c) for c in class_names])

    def classify(images):
        images.set_shape([None, height, width, channels])
        outputs = tf.cast(model(images, training=False), tf.float32)
        probabilities = outputs if softmax else tf.nn.softmax(outputs)
        scores, classes = tf.math.top_k(probabilities, k=k)
        result = {"probabilities": probabilities, "top_k_classes": classes, "top_k_scores": scores}
        if labels is not None:
            result["top_k_labels"] = tf.gather(labels, classes)
        return result

    def checked(images):
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_equal(tf.rank(images), 4, message="images must be a batch [batch, height, width, "
                                                                   "channels]"),
            tf.debugging.assert_positive(shape[0], message="the batch is empty: send at least one image"),
            tf.debugging.assert_positive(shape[1] * shape[2], message="an image has no pixels (height or width 0)"),
            tf.debugging.assert_equal(shape[3], channels, message=f"images must have {channels} channel(s), as the "
                                                                  "model; received a different count"),
        ]
        with tf.control_dependencies(checks):
            images = tf.cast(images, tf.float32)
            finite = tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(images)), True,
                                               message="pixel values must be finite numbers (no NaN or infinity)")
        with tf.control_dependencies([finite]):
            return tf.identity(images)

    def from_images(images):
        images = checked(images)
        same_size = tf.reduce_all(tf.equal(tf.shape(images)[1:3], [height, width]))
        if transform is None:
            resize = lambda: images_lib.resize_images(images, (height, width))  # noqa: E731
        else:
            resize = lambda: images_lib.resize_and_centre_crop(images, transform)  # noqa: E731
        images = tf.cond(same_size, lambda: images, resize)
        return classify(images)

    def from_bytes(image_bytes):
        nonempty = tf.debugging.assert_positive(tf.size(image_bytes), message="the batch is empty: send at least "
                                                                               "one image")
        with tf.control_dependencies([nonempty]):
            decoded = tf.map_fn(
                lambda encoded: images_lib.decode_and_resize(encoded, (height, width), channels, max_pixels,
                                                             transform=transform),
                image_bytes,
                fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8),
            )
        return classify(tf.cast(decoded, tf.float32))

    functions = {
        name: (from_images, tf.TensorSpec([None, None, None, channels], dtype, name="images"))
        for name, dtype in IMAGE_SIGNATURES.items()
    }
    functions[BYTES_SIGNATURE] = (from_bytes, tf.TensorSpec([None], tf.string, name="image_bytes"))
    return functions


def make_export_archive(model, **kwargs):
    """A `keras.export.ExportArchive` of `model` with the three signatures (see the module doc)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, spec) in serving_functions(model, **kwargs).items():
        archive.add_endpoint(name, fn, input_signature=[spec])
    return archive


# --- the model card: one task per name, no repeated versions -------------------------------------


def fingerprint(model, settings):
    """A hash of the weights and the serving settings: equal for an identical export."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for weight in model.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def read_card(version_folder):
    """The export.json of a version folder (None for versions exported without one)."""
    path = os.path.join(version_folder, "export.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _check_same_task(model_dir, card, name):
    """Refuse to put a model with other classes, another input or another format under `name`."""
    versions = existing_versions(model_dir)
    latest = read_card(os.path.join(model_dir, str(versions[-1]))) if versions else None
    if not latest:
        return None
    latest = {"format": "saved_model", **latest}  # cards written before other formats existed
    for key, what in (("num_classes", "classes"), ("channels", "input channels"), ("class_names", "class names"),
                      ("input_size", "input size"), ("format", "format")):
        if latest.get(key) != card[key]:
            raise ValueError(
                f"{model_dir} holds another task (version {versions[-1]}: {what} {latest.get(key)!r}); this model "
                f"has {what} {card[key]!r}. Export it under another name (--export-name / --name). "
                f"Received: name={name!r}"
            )
    return versions[-1], latest


def serving_settings(model, *, top_k=DEFAULT_TOP_K, class_names=None, image_size=None,
                     max_pixels=images_lib.DEFAULT_MAX_PIXELS, fold_batchnorm=False):
    """What an export serves besides the weights (the fingerprint hashes both): k, labels, sizes, limits."""
    input_size(model, image_size)  # a model of any size needs image_size: say so first
    transform = serving_transform(model, image_size)
    if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > 0:
        top_k = min(top_k, int(model.output_shape[-1]))  # what the signatures return: at most every class
    settings = {"top_k": top_k, "fold_batchnorm": bool(fold_batchnorm), "image_size": image_size,
                "max_pixels": int(max_pixels), "class_names": list(map(str, class_names)) if class_names else None}
    if transform is not None:  # only then: the fingerprints of exports without one stay as they were
        settings["eval_transform"] = {**transform, "crop": list(transform["crop"])}
    return settings


def model_card(model, name, settings, *, image_size=None, source=None, format="saved_model", **fields):
    """The export.json of a new version: the task (classes, labels, input), the serving settings, the
    fingerprint of `model` and `settings`, and `fields` (a format's own entries)."""
    height, width, channels = input_size(model, image_size)
    card = {
        "name": name, "model": model.name, "format": format, "num_classes": int(model.output_shape[-1]),
        "channels": channels, "input_size": [height, width], "class_names": settings["class_names"],
        "top_k": settings["top_k"], "fold_batchnorm": settings["fold_batchnorm"], "max_pixels": settings["max_pixels"],
        "source": source, "eval_transform": settings.get("eval_transform"),
        "fingerprint": fingerprint(model, settings), "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    card.update(fields)
    return card


def existing_export(model_dir, card, name, version=None, overwrite=False):
    """The version folder that already holds this export (same fingerprint, `version` None), else None.

    Refuses (ValueError) a model of another task or format under `name`, unless `overwrite`.
    """
    if overwrite:
        return None
    latest = _check_same_task(model_dir, card, name)
    if version is None and latest and latest[1].get("fingerprint") == card["fingerprint"]:
        return os.path.join(model_dir, str(latest[0]))
    return None


def write_labels_and_card(folder, card, class_names):
    """labels.txt (when the class names are known) and export.json into a version folder being written."""
    if class_names:
        with open(os.path.join(folder, "labels.txt"), "w") as f:
            f.write("\n".join(map(str, class_names)) + "\n")
    with open(os.path.join(folder, "export.json"), "w") as f:
        json.dump(card, f, indent=2)


def check_export_dir(export_dir):
    """`export_dir` if it is, or can become, a folder this process writes in (else an error naming it)."""
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise NotADirectoryError(f"export_dir must be a folder. Received: export_dir={export_dir!r} (a file)")
    return check_writable_folder(export_dir, "export_dir")


def export_saved_model(
    model,
    export_dir="saved_models",
    name=None,
    version=None,
    overwrite=False,
    class_names=None,
    top_k=DEFAULT_TOP_K,
    fold_batchnorm=False,
    image_size=None,
    max_pixels=images_lib.DEFAULT_MAX_PIXELS,
    source=None,
):
    """Export `model` as a SavedModel version for TF Serving; returns the version folder.

    `fold_batchnorm=True` serves the BN-folded copy (`fold_batchnorm_into_convs`); `model.keras`
    beside it is always the model as trained. With `version=None`, a model that the latest version
    already holds (same weights and settings) is not exported again: its folder is returned.
    Other formats (ONNX, OpenVINO, LiteRT, int8): `keras_resnet.runtimes.export_model`.
    """
    name = check_folder_name(name or model.name, "name")
    check_export_dir(export_dir)
    settings = serving_settings(model, top_k=top_k, class_names=class_names, image_size=image_size,
                                max_pixels=max_pixels, fold_batchnorm=fold_batchnorm)
    card = model_card(model, name, settings, image_size=image_size, source=source,
                      signatures=[*IMAGE_SIGNATURES, BYTES_SIGNATURE])

    def write(folder):
        served = fold_batchnorm_into_convs(model) if fold_batchnorm else model
        archive = make_export_archive(served, top_k=top_k, class_names=class_names, image_size=image_size,
                                      max_pixels=max_pixels)
        archive.write_out(folder, verbose=False)
        model.save(os.path.join(folder, "model.keras"))
        write_labels_and_card(folder, card, class_names)

    return export_version(os.path.join(export_dir, name), card, version, overwrite, write)


# --- serving what was saved ----------------------------------------------------------------------


def _is_encoded(inputs):
    """Whether `inputs` is a batch of encoded image files (a list of bytes, a string array or tensor)."""
    if isinstance(inputs, (list, tuple)):
        return True
    dtype = getattr(inputs, "dtype", None)
    return dtype == tf.string or getattr(dtype, "kind", "") in "SO"


def load_classifier(path, top_k=DEFAULT_TOP_K, class_names=None, max_pixels=images_lib.DEFAULT_MAX_PIXELS):
    """A function `inputs -> outputs dict` from a `.keras` model or a SavedModel.

    `inputs`: encoded image files `[batch]` (the `serve_image_bytes` signature) or a batch of images of
    any size (`serving_default`). A SavedModel answers through its own signatures (its k, pixel limit and
    evaluation transform are the ones it was exported with); a Keras model through the same functions built
    in process (with the model's evaluation transform). Returns (function, class_names, the file or version
    folder actually loaded); the function's `eval_transform` says how images are resized (None: to the
    input size). Other formats: `keras_resnet.runtimes.load`.
    """
    kind, path = resolve_model_path(path)
    class_names = class_names or labels_for(path)
    if kind == "saved_model":
        loaded = tf.saved_model.load(path)
        if BYTES_SIGNATURE not in loaded.signatures:
            raise ValueError(f"{path} has no {BYTES_SIGNATURE!r} signature (signatures: {list(loaded.signatures)})")
        from_bytes, from_images = loaded.signatures[BYTES_SIGNATURE], loaded.signatures["serving_default"]
        images_spec = from_images.structured_input_signature[1]["images"]
        channels = int(images_spec.shape[-1])
        eval_transform = (read_card(path) or {}).get("eval_transform")
    else:
        model = loaded = load_keras_model(path)
        functions = serving_functions(model, top_k=top_k, class_names=class_names, max_pixels=max_pixels)
        bytes_function, images_function = functions[BYTES_SIGNATURE][0], functions["serving_default"][0]
        from_bytes = lambda image_bytes: bytes_function(image_bytes)  # noqa: E731
        from_images = lambda images: images_function(images)  # noqa: E731
        channels, eval_transform = int(model.input_shape[-1]), serving_transform(model)

    def classify(inputs):
        if _is_encoded(inputs):
            return from_bytes(image_bytes=tf.constant(inputs, tf.string))
        return from_images(images=tf.constant(inputs, tf.float32))

    classify.keep_alive = loaded
    classify.channels = channels
    classify.eval_transform = eval_transform
    return classify, class_names, path
