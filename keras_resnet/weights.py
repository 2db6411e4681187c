"""Weights into our builders: ImageNet weights from keras.applications, and our own files.

keras.applications' ResNet50/101/152 are the paper's v1 networks (stride on the first 1x1 of
a bottleneck, option B projections), so their weights fit `build_resnet(50|101|152)` layer for
layer once three differences are absorbed:
- their convs have biases, ours do not (BN follows each conv): a bias b before a BN equals the
  BN's moving mean lowered by b, so it moves into `moving_mean` exactly;
- their BN epsilon is 1.001e-5: our model is built with that epsilon;
- their inputs are "caffe"-preprocessed (RGB -> BGR, minus the ImageNet mean): our model carries
  the mean as its `preprocessing` layer ("caffe") and stage1_conv takes its kernel with the input
  channels reversed, so the converted model takes raw RGB pixels.
"""

import os
import keras

from keras_resnet.resnet import RESNET_SPECS, ResNet, build_resnet

APPLICATIONS = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}
KERAS_APPLICATIONS_EPSILON = 1.001e-5
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"


def _spec_name(block_type, stage_repeats):
    for depth, (kind, repeats) in RESNET_SPECS.items():
        if kind == block_type and tuple(repeats) == tuple(stage_repeats):
            return f"ResNet-{depth}"
    return f"a ResNet with {block_type} blocks {list(stage_repeats)}"


def describe(model):
    """'ResNet-50' or 'a ResNet with bottleneck blocks [1, 1, 1, 1]', for error messages."""
    return _spec_name(model.block_type, model.stage_repeats)


def _application_repeats(app):
    """Blocks per stage of a keras.applications ResNet, from its layer names conv{s}_block{b}_out."""
    repeats = {}
    for layer in app.layers:
        parts = layer.name.split("_")
        if len(parts) == 3 and parts[0].startswith("conv") and parts[1].startswith("block") and parts[2] == "out":
            stage, block = int(parts[0][4:]), int(parts[1][5:])
            repeats[stage] = max(repeats.get(stage, 0), block)
    return [repeats[s] for s in sorted(repeats)]


def _our_name(app_name):
    """keras.applications layer name -> ours: conv3_block2_1_conv -> stage3_block2_conv1."""
    if app_name in ("conv1_conv", "conv1_bn"):
        return "stage1_" + app_name.split("_")[1]
    stage, block, index, kind = app_name.split("_")
    prefix = f"stage{stage[4:]}_{block}"
    return f"{prefix}_shortcut_{kind}" if index == "0" else f"{prefix}_{kind}{index}"


def from_keras_applications(app, name=None):
    """Our `ResNet` with the weights of a keras.applications ResNet50/101/152 (v1).

    Any input size, class count, `include_top` and `pooling`; the result gives the same outputs
    on raw RGB pixels as `app` gives on `keras.applications.resnet.preprocess_input(pixels)`.
    """
    repeats = _application_repeats(app)
    matches = [d for d in APPLICATIONS if list(RESNET_SPECS[d][1]) == repeats]
    if not matches or "conv1_conv" not in {layer.name for layer in app.layers}:
        raise ValueError(
            f"app must be a keras.applications ResNet50, ResNet101 or ResNet152 (v1). Received: {app.name!r} "
            f"with blocks {repeats}"
        )
    depth = matches[0]
    layer_names = {layer.name for layer in app.layers}
    include_top = "predictions" in layer_names
    pooling = "avg" if "avg_pool" in layer_names else "max" if "max_pool" in layer_names else None
    kwargs = {}
    if include_top:
        head = app.get_layer("predictions")
        kwargs = {"num_classes": head.units, "classifier_activation": head.get_config()["activation"]}
    model = build_resnet(
        depth, input_shape=tuple(app.input_shape[1:]), include_top=include_top, pooling=pooling,
        bn_epsilon=KERAS_APPLICATIONS_EPSILON, preprocessing="caffe", name=name or f"resnet{depth}", **kwargs,
    )
    for layer in app.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            conv = app.get_layer(layer.name[: -len("bn")] + "conv")
            kernel, bias = conv.get_weights()
            if conv.name == "conv1_conv":
                kernel = kernel[:, :, ::-1, :]  # caffe's BGR input order, folded into the kernel
            gamma, beta, mean, variance = layer.get_weights()
            model.get_layer(_our_name(conv.name)).set_weights([kernel])
            model.get_layer(_our_name(layer.name)).set_weights([gamma, beta, mean - bias, variance])
    if include_top:
        model.get_layer("predictions").set_weights(app.get_layer("predictions").get_weights())
    return model


# --- loading into a model ------------------------------------------------------------------


def _keras_home():
    return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def imagenet_weights_file(depth, include_top):
    """The file keras.applications caches ImageNet weights in, and its download URL."""
    file_name = f"resnet{depth}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return os.path.join(_keras_home(), "models", file_name), WEIGHTS_URL + file_name


def _applications_file_repeats(path):
    """Blocks per stage in a keras.applications .h5 weights file (its layer names)."""
    import h5py

    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs.get("layer_names", [])] or list(f)
    repeats = {}
    for layer_name in names:
        parts = layer_name.split("_")
        if len(parts) >= 3 and parts[0].startswith("conv") and parts[1].startswith("block"):
            stage, block = int(parts[0][4:]), int(parts[1][5:])
            repeats[stage] = max(repeats.get(stage, 0), block)
    return [repeats[s] for s in sorted(repeats)]


def _load_applications(depth, weights, model):
    """A keras.applications ResNet of `depth` with `weights` ("imagenet" or an .h5 path), shaped
    like `model` (input size, top)."""
    constructor = getattr(keras.applications, APPLICATIONS[depth])
    include_top = "predictions" in {layer.name for layer in model.layers}
    if weights == "imagenet":
        path, url = imagenet_weights_file(depth, include_top)
        if not os.path.exists(path):
            from keras_resnet.data import _online

            if not _online():
                raise FileNotFoundError(
                    f"weights='imagenet': the ImageNet weights of ResNet-{depth} are not cached and the network "
                    f"is unreachable. Download {url} to {path} (or anywhere, and pass weights='that/path.h5')."
                )
    else:
        file_repeats = _applications_file_repeats(weights)
        if file_repeats and file_repeats != list(RESNET_SPECS[depth][1]):
            raise ValueError(
                f"weights={weights!r} holds {_spec_name('bottleneck', file_repeats)} but the model is "
                f"ResNet-{depth}."
            )
    kwargs = {"classes": model.num_classes} if include_top else {}
    try:
        return constructor(weights=weights, include_top=include_top, input_shape=tuple(model.input_shape[1:]),
                           **kwargs)
    except ValueError as error:
        raise ValueError(f"weights={weights!r} do not fit ResNet-{depth} as built: {error}") from None


def _source_model(weights):
    """A Keras model holding `weights` (a .keras file, or a .weights.h5 file via its model)."""
    from keras_resnet.export import load_keras_model

    if weights.endswith(".keras"):
        return load_keras_model(weights)
    raise ValueError(f"weights must be 'imagenet', a .keras file or an .h5 file. Received: weights={weights!r}")


def copy_weights(source, model, weights_name="weights"):
    """Copy every layer's weights from `source` into `model` by layer name.

    The networks must have the same blocks (else the error names both). The head is copied when
    both have one of the same size, skipped when only one has a head, and a different class count
    with `include_top=True` is an error.
    """
    if isinstance(source, ResNet) and (source.block_type, list(source.stage_repeats)) != (
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
            raise ValueError(f"{weights_name}: layer {layer.name!r} has shapes {other_shapes}, the model {shapes}.")
        layer.set_weights(other.get_weights())
    # The preprocessing the weights were trained with comes with them.
    if "preprocessing" in source_layers and "preprocessing" in {layer.name for layer in model.layers}:
        model.get_layer("preprocessing").set_weights(source_layers["preprocessing"].get_weights())
    return model


def is_applications_weights(weights):
    """True for "imagenet" and keras.applications .h5 files (not our .weights.h5)."""
    weights = os.fspath(weights)
    return weights == "imagenet" or (weights.endswith(".h5") and not weights.endswith(".weights.h5"))


def load_weights(model, weights):
    """Load `weights` into `model` (a `ResNet`); returns the model.

    weights: "imagenet" (keras.applications' file, downloaded and cached by Keras when online),
    a keras.applications .h5 file, our own `.keras` file, or a `.weights.h5` file saved from a
    model of the same configuration.
    """
    weights = os.fspath(weights)
    if weights != "imagenet" and not os.path.isfile(weights):
        raise FileNotFoundError(f"weights must be 'imagenet' or an existing file. Received: weights={weights!r}")
    if weights.endswith(".weights.h5"):
        try:
            model.load_weights(weights)
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"weights={weights!r} was not saved from a model like this one ({describe(model)}); "
                f"load a .keras file to adapt heads. ({error})"
            ) from None
        return model
    if is_applications_weights(weights):
        depth = next((d for d in APPLICATIONS if (model.block_type, list(model.stage_repeats))
                      == (RESNET_SPECS[d][0], list(RESNET_SPECS[d][1]))), None)
        if depth is None:
            raise ValueError(
                f"weights={weights!r} are keras.applications weights for ResNet-50/101/152; the model is "
                f"{describe(model)}."
            )
        if model.preprocessing != "caffe" or model.bn_epsilon != KERAS_APPLICATIONS_EPSILON:
            raise ValueError(
                f"weights={weights!r} expect preprocessing='caffe' and bn_epsilon={KERAS_APPLICATIONS_EPSILON}; "
                f"the model has preprocessing={model.preprocessing!r}, bn_epsilon={model.bn_epsilon}."
            )
        if weights == "imagenet" and model.include_top and model.num_classes != 1000:
            raise ValueError(
                "weights='imagenet' have a 1000-class head; with include_top=True num_classes must be 1000. "
                f"Received: num_classes={model.num_classes}. Build with include_top=False and add a new head "
                "(keras_resnet.transfer.replace_head)."
            )
        app = _load_applications(depth, weights, model)
        source = from_keras_applications(app)
        return copy_weights(source, model, weights_name=f"weights={weights!r}")
    return copy_weights(_source_model(weights), model, weights_name=f"weights={weights!r}")
