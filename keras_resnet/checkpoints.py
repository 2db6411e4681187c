"""Every weight source and model file behind one loader, dispatched by what the file holds.

`load_weights(model, weights)` fills a `ResNet` from:
- `"imagenet"` or a keras.applications `.h5` file: keras.applications' ResNet50/101/152 (v1);
- our own `.keras` files (the head is skipped when `include_top` differs) and `.weights.h5` files.

keras.applications' ResNets are the paper's v1 networks (stride on the first 1x1 of a bottleneck,
option B projections), so their weights fit `build_resnet(50|101|152)` layer for layer once three
differences are absorbed:
- their convs have biases, ours do not (BN follows each conv): a bias b before a BN equals the
  BN's moving mean lowered by b, so it moves into `moving_mean` exactly;
- their BN epsilon is 1.001e-5: the model is built with that epsilon (`builder_defaults`);
- their inputs are "caffe"-preprocessed (RGB -> BGR, minus the ImageNet mean): the model carries the
  mean as its `preprocessing` layer and stage1_conv takes its kernel with the input channels
  reversed, so the converted model takes raw RGB pixels.

Reading saved models (for export, prediction and transfer) lives here too: `resolve_model_path`,
`load_keras_model` (safe mode), `read_labels`. This module never imports the model code: the
builders call it (lazily), and it fills the model they pass in.
"""

import os
import zipfile

import keras

from keras_resnet.specs import RESNET_SPECS, describe_blocks, depth_of

APPLICATIONS = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}
KERAS_APPLICATIONS_EPSILON = 1.001e-5
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"


def describe(model):
    """'ResNet-50' or 'a ResNet with bottleneck blocks [1, 1, 1, 1]', for error messages."""
    return describe_blocks(model.block_type, model.stage_repeats)


def _is_resnet(model):
    return hasattr(model, "block_type") and hasattr(model, "stage_repeats")


# --- which source -------------------------------------------------------------------------------


def check_weights_argument(weights, argument="weights"):
    """`weights` as a string: 'imagenet' or an existing file; a clear error naming `argument` otherwise."""
    if weights == "imagenet":
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"{argument} must be None, 'imagenet' or the path of a weights file. "
                         f"Received: {argument}={weights!r}")
    weights = os.fspath(weights)
    if os.path.isdir(weights):
        raise IsADirectoryError(f"{argument} must be a weights file, not a folder. Received: {argument}={weights!r}")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{argument} must be 'imagenet' or an existing file. Received: {argument}={weights!r}")
    return weights


def source_kind(weights):
    """'applications' ("imagenet", keras.applications .h5), 'weights_h5' (our .weights.h5) or 'keras'."""
    if weights == "imagenet" or (weights.endswith(".h5") and not weights.endswith(".weights.h5")):
        return "applications"
    if weights.endswith(".weights.h5"):
        return "weights_h5"
    if weights.endswith(".keras"):
        return "keras"
    raise ValueError(f"weights must be 'imagenet', a keras.applications .h5 file, a .keras file or a .weights.h5 "
                     f"file. Received: weights={weights!r}")


def builder_defaults(weights):
    """Builder arguments that a weight source implies unless the caller gives them."""
    if weights is not None and source_kind(check_weights_argument(weights)) == "applications":
        return {"preprocessing": "caffe", "bn_epsilon": KERAS_APPLICATIONS_EPSILON}
    return {}


# --- keras.applications ------------------------------------------------------------------------


def _application_repeats(names):
    """Blocks per stage, from keras.applications layer names conv{s}_block{b}_..."""
    repeats = {}
    for layer_name in names:
        parts = layer_name.split("_")
        if len(parts) >= 3 and parts[0].startswith("conv") and parts[1].startswith("block"):
            try:
                stage, block = int(parts[0][4:]), int(parts[1][5:])
            except ValueError:
                continue
            repeats[stage] = max(repeats.get(stage, 0), block)
    return [repeats[s] for s in sorted(repeats)]


def _our_name(app_name):
    """keras.applications layer name -> ours: conv3_block2_1_conv -> stage3_block2_conv1."""
    if app_name in ("conv1_conv", "conv1_bn"):
        return "stage1_" + app_name.split("_")[1]
    stage, block, index, kind = app_name.split("_")
    prefix = f"stage{stage[4:]}_{block}"
    return f"{prefix}_shortcut_{kind}" if index == "0" else f"{prefix}_{kind}{index}"


def applications_config(app, name=None):
    """`ResNet` constructor arguments for a model shaped like keras.applications model `app`."""
    repeats = _application_repeats(layer.name for layer in app.layers)
    depth = depth_of("bottleneck", repeats)
    if depth not in APPLICATIONS or "conv1_conv" not in {layer.name for layer in app.layers}:
        raise ValueError(
            f"app must be a keras.applications ResNet50, ResNet101 or ResNet152 (v1). Received: {app.name!r} "
            f"with blocks {repeats}"
        )
    names = {layer.name for layer in app.layers}
    include_top = "predictions" in names
    config = dict(
        block_type="bottleneck", stage_repeats=RESNET_SPECS[depth][1], input_shape=tuple(app.input_shape[1:]),
        include_top=include_top, pooling="avg" if "avg_pool" in names else "max" if "max_pool" in names else None,
        bn_epsilon=KERAS_APPLICATIONS_EPSILON, preprocessing="caffe", name=name or f"resnet{depth}",
    )
    if include_top:
        head = app.get_layer("predictions")
        config.update(num_classes=head.units, classifier_activation=head.get_config()["activation"])
    return config


def copy_applications_weights(app, model):
    """Copy keras.applications model `app`'s weights into our `model` (module doc); returns the model."""
    for layer in app.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            conv = app.get_layer(layer.name[: -len("bn")] + "conv")
            kernel, bias = conv.get_weights()
            if conv.name == "conv1_conv":
                kernel = kernel[:, :, ::-1, :]  # caffe's BGR input order, folded into the kernel
            gamma, beta, mean, variance = layer.get_weights()
            model.get_layer(_our_name(conv.name)).set_weights([kernel])
            model.get_layer(_our_name(layer.name)).set_weights([gamma, beta, mean - bias, variance])
    if "predictions" in {layer.name for layer in model.layers} and "predictions" in {l.name for l in app.layers}:
        model.get_layer("predictions").set_weights(app.get_layer("predictions").get_weights())
    return model


def _keras_home():
    return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def imagenet_weights_file(depth, include_top):
    """The file keras.applications caches ImageNet weights in, and its download URL."""
    file_name = f"resnet{depth}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return os.path.join(_keras_home(), "models", file_name), WEIGHTS_URL + file_name


def _applications_file_repeats(path, argument):
    """Blocks per stage in a keras.applications .h5 weights file (its layer names)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs.get("layer_names", [])] or list(f)
    except OSError as error:
        raise ValueError(f"{argument}={path!r} is not a readable HDF5 weights file "
                         f"({' '.join(str(error).split())}).") from None
    return _application_repeats(names)


def _load_applications(model, weights, argument):
    """keras.applications' ResNet of the model's depth holding `weights`, shaped like `model`."""
    depth = depth_of(model.block_type, model.stage_repeats)
    if depth not in APPLICATIONS:
        raise ValueError(f"{argument}={weights!r} are keras.applications weights for ResNet-50/101/152; the model is "
                         f"{describe(model)}.")
    if model.preprocessing != "caffe" or model.bn_epsilon != KERAS_APPLICATIONS_EPSILON:
        raise ValueError(
            f"{argument}={weights!r} expect preprocessing='caffe' and bn_epsilon={KERAS_APPLICATIONS_EPSILON}; "
            f"the model has preprocessing={model.preprocessing!r}, bn_epsilon={model.bn_epsilon}."
        )
    include_top = model.include_top
    if weights == "imagenet":
        if include_top and model.num_classes != 1000:
            raise ValueError(
                "weights='imagenet' have a 1000-class head; with include_top=True num_classes must be 1000. "
                f"Received: num_classes={model.num_classes}. Build with include_top=False and add a new head "
                "(keras_resnet.transfer.replace_head)."
            )
        path, url = imagenet_weights_file(depth, include_top)
        if not os.path.exists(path):
            from keras_resnet import network

            if not network.online():
                raise FileNotFoundError(
                    f"{argument}='imagenet': the ImageNet weights of ResNet-{depth} are not cached and the network "
                    f"is unreachable. Download {url} to {path} (or anywhere, and pass that path as {argument})."
                )
    else:
        file_repeats = _applications_file_repeats(weights, argument)
        if file_repeats and file_repeats != list(RESNET_SPECS[depth][1]):
            raise ValueError(f"{argument}={weights!r} holds {describe_blocks('bottleneck', file_repeats)} but the "
                             f"model is ResNet-{depth}.")
    constructor = getattr(keras.applications, APPLICATIONS[depth])
    kwargs = {"classes": model.num_classes} if include_top else {}
    try:
        return constructor(weights=weights, include_top=include_top, input_shape=tuple(model.input_shape[1:]),
                           **kwargs)
    except (ValueError, OSError, KeyError) as error:
        raise ValueError(f"{argument}={weights!r} do not fit ResNet-{depth} as built: "
                         f"{' '.join(str(error).split())}") from None


# --- our files ----------------------------------------------------------------------------------


def copy_weights(source, model, weights_name="weights"):
    """Copy every layer's weights from `source` into `model` by layer name.

    The networks must have the same blocks (else the error names both). The head is copied when
    both have one of the same size, skipped when only one has a head, and a different class count
    with `include_top=True` is an error.
    """
    if _is_resnet(source) and (source.block_type, list(source.stage_repeats)) != (
        model.block_type, list(model.stage_repeats)
    ):
        raise ValueError(f"{weights_name} holds {describe(source)} but the model is {describe(model)}.")
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        if not layer.weights or layer.name == "preprocessing":
            continue
        other = source_layers.get(layer.name)
        if other is None:
            if layer.name == "predictions":
                continue  # include_top differs: keep the new head
            raise ValueError(f"{weights_name} has no layer {layer.name!r}; it does not fit {describe(model)}.")
        shapes = [tuple(w.shape) for w in layer.weights]
        other_shapes = [tuple(w.shape) for w in other.weights]
        if shapes != other_shapes:
            if layer.name == "predictions":
                raise ValueError(
                    f"{weights_name} has a {other_shapes[0][-1]}-class head but the model was built with "
                    f"include_top=True and num_classes={shapes[0][-1]}. Build with num_classes="
                    f"{other_shapes[0][-1]}, or with include_top=False and add a new head "
                    "(keras_resnet.transfer.replace_head)."
                )
            if layer.name == "stage1_conv" and shapes[0][2] != other_shapes[0][2]:
                raise ValueError(f"{weights_name} takes {other_shapes[0][2]}-channel images but the model was built "
                                 f"for {shapes[0][2]} channels; build it with input_shape=(height, width, "
                                 f"{other_shapes[0][2]}).")
            raise ValueError(f"{weights_name}: layer {layer.name!r} has shapes {other_shapes}, the model {shapes}.")
        layer.set_weights(other.get_weights())
    # The preprocessing the weights were trained with comes with them.
    if "preprocessing" in source_layers and "preprocessing" in {layer.name for layer in model.layers}:
        ours, theirs = model.get_layer("preprocessing"), source_layers["preprocessing"]
        if [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]:
            ours.set_weights(theirs.get_weights())
    return model


def load_weights(model, weights, argument="weights"):
    """Load `weights` into `model` (a `ResNet`); returns the model.

    weights: "imagenet" (keras.applications' file, downloaded and cached by Keras when online),
    a keras.applications .h5 file, our own `.keras` file, or a `.weights.h5` file saved from a
    model of the same configuration. `argument` is the name errors use (`init_from` for the scripts).
    """
    weights = check_weights_argument(weights, argument)
    kind = source_kind(weights)
    if kind == "weights_h5":
        try:
            model.load_weights(weights)
        except Exception as error:  # h5py and Keras raise several kinds for a file of another model
            raise ValueError(
                f"{argument}={weights!r} was not saved from a model like this one ({describe(model)}); "
                f"load a .keras file to adapt heads. ({' '.join(str(error).split())[:300]})"
            ) from None
        return model
    if kind == "applications":
        app = _load_applications(model, weights, argument)
        return copy_applications_weights(app, model)
    return copy_weights(load_keras_model(weights, argument), model, weights_name=f"{argument}={weights!r}")


# --- reading saved models ----------------------------------------------------------------------


def existing_versions(model_dir):
    """Integer version folders under `model_dir` (TF Serving's layout), sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit() and os.path.isdir(os.path.join(model_dir, d)))


def resolve_model_path(path, argument="model"):
    """A `.keras` file, a SavedModel folder, a TF Serving model folder (-> its latest version) or a
    training run directory (-> best.keras, else final.keras). Returns (kind, path), kind being
    "keras" or "saved_model"."""
    path = os.fspath(path)
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


def load_keras_model(path, argument="model"):
    """Load a `.keras` file in safe mode (no code in it runs); one clear error for any bad file.

    Our layer classes are registered with Keras by importing the package (which importing this
    module does).
    """
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{argument}={path!r} is not a .keras file (not a zip archive; truncated or another format).")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # safe mode refusals, damaged archives, unknown classes: all one message
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise ValueError(f"{argument}={path!r} could not be loaded as a Keras model: {reason}") from None


def read_labels(path):
    """Class names from a labels.txt file (one per line), or None when it does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def labels_for(path):
    """labels.txt beside a model file or inside a model folder, or None."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return read_labels(os.path.join(folder, "labels.txt"))
