"""SavedModels for TF Serving: versioned, written atomically, with image and image-bytes signatures.

Layout: `<export_dir>/<name>/<version>/` holds `saved_model.pb` and `variables/` (what TF Serving
loads), `model.keras` (the Keras model, for further training or `predict.py`) and `labels.txt`.
A version folder is built in a temporary folder beside it and renamed into place, so a server
watching `<export_dir>/<name>` never sees a half-written version, and an existing version is
never replaced without `overwrite=True`.

Signatures (made with `keras.export.ExportArchive`; every one takes any batch size):
- `serving_default`: input `images`, float32 `[batch, H, W, C]` raw 0-255 pixels of any H and W;
- `serve_uint8`: the same for uint8 images;
- `serve_image_bytes`: input `image_bytes`, a string `[batch]` of encoded JPEG/PNG/BMP/GIF files
  (TF Serving's REST API carries them as `{"b64": ...}`).
Images are resized in the graph to the model's input size (`data.resize_images`, as the folder
datasets are) and normalised by the model's own preprocessing layer. Every signature returns
`probabilities` [batch, classes], `top_k_classes` and `top_k_scores` [batch, k] and, when class
names are known, `top_k_labels`.
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_resnet import data

DEFAULT_TOP_K = 5
IMAGE_SIGNATURES = {"serving_default": tf.float32, "serve_uint8": tf.uint8}
BYTES_SIGNATURE = "serve_image_bytes"


# --- versions -----------------------------------------------------------------------------


def existing_versions(model_dir):
    """Integer version folders under `model_dir`, sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit() and os.path.isdir(os.path.join(model_dir, d)))


def next_version(model_dir):
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def write_version_atomically(model_dir, version, write, overwrite=False):
    """Call `write(tmp_folder)`, then rename the folder to `model_dir/version`.

    A failure (or a kill) inside `write` leaves no version folder: the temporary folder is named
    `.tmp-*`, which TF Serving ignores, and is removed when `write` raises.
    """
    if version is None:
        version = next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer. Received: version={version!r}")
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it.")
    os.makedirs(model_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    try:
        write(tmp)
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".old-{version}-", dir=model_dir)
            os.replace(target, os.path.join(old, "v"))
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


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
        if layer.name in folded_bns:
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
    return folded


# --- signatures ---------------------------------------------------------------------------


def _input_size(model, image_size):
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


def _outputs_softmax(model):
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def serving_functions(model, *, top_k=DEFAULT_TOP_K, class_names=None, image_size=None):
    """{signature name: (function, input TensorSpec)} for the SavedModel or for in-process use.

    The functions run `model` in inference mode on raw images of any size, resized in the graph.
    """
    height, width, channels = _input_size(model, image_size)
    num_classes = int(model.output_shape[-1])
    k = min(int(top_k), num_classes)
    if k < 1:
        raise ValueError(f"top_k must be at least 1. Received: top_k={top_k}")
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

    def from_images(images):
        images = tf.cast(images, tf.float32)
        same_size = tf.reduce_all(tf.equal(tf.shape(images)[1:3], [height, width]))
        images = tf.cond(same_size, lambda: images, lambda: data.resize_images(images, (height, width)))
        return classify(images)

    def from_bytes(image_bytes):
        images = tf.map_fn(
            lambda encoded: data.decode_and_resize(encoded, (height, width), channels),
            image_bytes,
            fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8),
        )
        return classify(tf.cast(images, tf.float32))

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
):
    """Export `model` as a SavedModel version for TF Serving; returns the version folder.

    `fold_batchnorm=True` serves the BN-folded copy (`fold_batchnorm_into_convs`); `model.keras`
    beside it is always the model as trained.
    """
    name = name or model.name
    served = fold_batchnorm_into_convs(model) if fold_batchnorm else model
    archive = make_export_archive(served, top_k=top_k, class_names=class_names, image_size=image_size)

    def write(folder):
        archive.write_out(folder, verbose=False)
        model.save(os.path.join(folder, "model.keras"))
        if class_names:
            with open(os.path.join(folder, "labels.txt"), "w") as f:
                f.write("\n".join(map(str, class_names)) + "\n")

    return write_version_atomically(os.path.join(export_dir, name), version, write, overwrite)


# --- loading what was saved ---------------------------------------------------------------


def read_labels(path):
    """Class names from a labels.txt file (one per line), or None when it does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def resolve_model_path(path, argument="model"):
    """A `.keras` file, a SavedModel folder, a TF Serving model folder (-> its latest version) or a
    training run directory (-> best.keras, else final.keras). Returns (kind, path), kind being
    "keras" or "saved_model"."""
    if os.path.isfile(path) and path.endswith(".keras"):
        return "keras", path
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "saved_model", path
        versions = existing_versions(path)
        if versions:
            return "saved_model", os.path.join(path, str(versions[-1]))
        for checkpoint in ("best.keras", "final.keras"):
            if os.path.isfile(os.path.join(path, checkpoint)):
                return "keras", os.path.join(path, checkpoint)
    raise FileNotFoundError(
        f"{argument} must be a .keras file, a SavedModel folder, a folder of numbered SavedModel versions or a "
        f"training run directory with best.keras or final.keras. Received: {argument}={path!r}"
    )


def load_keras_model(path):
    """Load a `.keras` file safely (no Lambda layers needed); the message names a bad file."""
    import keras_resnet  # noqa: F401  (registers ResNet, ZeroPadShortcut, WarmupSchedule)

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"Could not load the Keras model {path!r}: {error}") from error


def labels_for(path):
    """labels.txt beside a model file or inside a model folder, or None."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return read_labels(os.path.join(folder, "labels.txt"))


def load_classifier(path, top_k=DEFAULT_TOP_K, class_names=None):
    """A function `image_bytes [batch] -> outputs dict` from a `.keras` model or a SavedModel.

    A SavedModel answers through its own `serve_image_bytes` signature (its k is the one it was
    exported with); a Keras model through the same function built in process. Returns
    (function, class_names).
    """
    kind, path = resolve_model_path(path)
    class_names = class_names or labels_for(path)
    if kind == "saved_model":
        loaded = tf.saved_model.load(path)
        if BYTES_SIGNATURE not in loaded.signatures:
            raise ValueError(f"{path} has no {BYTES_SIGNATURE!r} signature (signatures: {list(loaded.signatures)})")
        signature = loaded.signatures[BYTES_SIGNATURE]

        def classify(image_bytes):
            return signature(image_bytes=tf.constant(image_bytes))

        classify.keep_alive = loaded
        return classify, class_names
    model = load_keras_model(path)
    fn, _ = serving_functions(model, top_k=top_k, class_names=class_names)[BYTES_SIGNATURE]
    return (lambda image_bytes: fn(tf.constant(image_bytes))), class_names
