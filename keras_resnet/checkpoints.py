"""Every weight source and model file behind one loader, dispatched by what the file holds.

`load_weights(model, weights)` fills a `ResNet` from:
- `"imagenet"` or a keras.applications `.h5` file: keras.applications' ResNet50/101/152 (v1);
- a torchvision or timm ResNet state dict, `.safetensors` (read with `safetensors.numpy`: no torch
  needed) or `.pth`/`.pt` (only through `torch.load(weights_only=True)`, when torch is installed);
- our own `.keras` files (the head is skipped when `include_top` differs) and `.weights.h5` files.
`builder_defaults(weights)` says which builder arguments a source implies (the file's blocks, v1.5
stride placement, class count, preprocessing, BN epsilon, evaluation transform); `build_resnet`
fills them in and refuses arguments that contradict them.

keras.applications' ResNets are the paper's v1 networks (stride on the first 1x1 of a bottleneck,
option B projections), so their weights fit `build_resnet(50|101|152)` layer for layer once three
differences are absorbed:
- their convs have biases, ours do not (BN follows each conv): a bias b before a BN equals the
  BN's moving mean lowered by b, so it moves into `moving_mean` exactly;
- their BN epsilon is 1.001e-5: the model is built with that epsilon (`builder_defaults`);
- their inputs are "caffe"-preprocessed (RGB -> BGR, minus the ImageNet mean): the model carries the
  mean as its `preprocessing` layer and stage1_conv takes its kernel with the input channels
  reversed, so the converted model takes raw RGB pixels.

torchvision's and timm's ResNets (torchvision.models.resnet; timm.models.resnet uses the same key names
for resnet18/34/50/101/152) are v1.5 networks (stride on the bottleneck's 3x3) with option B
projections (`downsample.0/1`), BN epsilon 1e-5 and inputs normalised with the ImageNet mean and std
on the 0-1 scale, which the model's `preprocessing="imagenet"` layer applies on the 0-255 scale. Conv
kernels go from PyTorch's (out, in, h, w) to Keras' (h, w, in, out), the fc weight (out, in) to the
Dense kernel (in, out), BN weight/bias/running_mean/running_var to gamma/beta/moving_mean/moving_variance;
`num_batches_tracked` is training bookkeeping and is ignored. Every tensor's shape is checked, and a
key that the model lacks or that the file lacks is an error (the head's keys are skipped only for
`include_top=False`). Exactness needs symmetric padding on the strided convs (`blocks.symmetric_padding`).

Reading saved models (for export, prediction and transfer) lives here too: `resolve_model_path`,
`load_keras_model` (safe mode), `read_labels`. This module never imports the model code: the
builders call it (lazily), and it fills the model they pass in.
"""

import os
import re
import zipfile

import keras
import numpy as np

from keras_resnet.specs import PREPROCESSING, RESNET_SPECS, describe_blocks, depth_of

APPLICATIONS = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}
KERAS_APPLICATIONS_EPSILON = 1.001e-5
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
STATE_DICT_SUFFIXES = (".safetensors", ".pth", ".pt")
TORCH_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default, which torchvision's and timm's ResNets use
# A state dict does not say whose recipe trained it: torchvision's IMAGENET1K_V1 evaluation (resize 256,
# crop 224) is the default; pass eval_transform="torchvision-v2" or "timm-a1" for those weights.
DEFAULT_STATE_DICT_TRANSFORM = "torchvision-v1"
# Builder arguments that a source fixes; a differing argument is an error. `eval_transform` is only a
# default: the caller may evaluate as they like.
SETTINGS = ("stride_in", "shortcut", "residual", "preprocessing", "bn_epsilon")


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


def source_kind(weights, argument="weights"):
    """'applications' ("imagenet", keras.applications .h5), 'state_dict' (torchvision/timm .safetensors,
    .pth, .pt), 'weights_h5' (our .weights.h5) or 'keras'."""
    weights = os.fspath(weights)
    if weights == "imagenet" or (weights.endswith(".h5") and not weights.endswith(".weights.h5")):
        return "applications"
    if weights.endswith(STATE_DICT_SUFFIXES):
        return "state_dict"
    if weights.endswith(".weights.h5"):
        return "weights_h5"
    if weights.endswith(".keras"):
        return "keras"
    raise ValueError(f"{argument} must be 'imagenet', a keras.applications .h5 file, a torchvision/timm state dict "
                     f"(.safetensors, .pth), a .keras file or a .weights.h5 file. Received: {argument}={weights!r}")


def builder_defaults(weights, argument="weights"):
    """Builder arguments (`build_resnet`'s names) that a weight source implies.

    keras.applications: v1 stride placement, "caffe" preprocessing, epsilon 1.001e-5 (and 1000 classes
    for "imagenet"). A torchvision/timm state dict: its blocks (`block_type`, `stage_repeats`, `width`),
    v1.5 stride placement for bottlenecks, its head's `num_classes` (when it has an fc layer), ImageNet
    mean/std, epsilon 1e-5 and the default `eval_transform`. Keys in `SETTINGS` and the blocks are
    fixed by the file; `eval_transform` is a default.
    """
    if weights is None:
        return {}
    weights = check_weights_argument(weights, argument)
    kind = source_kind(weights, argument)
    if kind == "applications":
        implied = {"stride_in": "1x1", "shortcut": "B", "residual": True, "preprocessing": "caffe",
                   "bn_epsilon": KERAS_APPLICATIONS_EPSILON}
        return {**implied, "num_classes": 1000} if weights == "imagenet" else implied
    if kind == "state_dict":
        layout = state_dict_layout(read_state_dict(weights, argument, shapes_only=True), weights, argument)
        implied = {"block_type": layout["block_type"], "stage_repeats": layout["stage_repeats"],
                   "width": layout["width"], "shortcut": "B", "residual": True, "preprocessing": "imagenet",
                   "bn_epsilon": TORCH_EPSILON, "eval_transform": DEFAULT_STATE_DICT_TRANSFORM}
        if layout["block_type"] == "bottleneck":
            implied["stride_in"] = "3x3"  # torchvision's v1.5 (its Bottleneck docstring), timm's too
        if layout["num_classes"] is not None:
            implied["num_classes"] = layout["num_classes"]
        return implied
    return {}


def same_preprocessing(a, b):
    """Whether two `preprocessing` values (names or {"mean", "std"} dicts) normalise alike."""
    def values(p):
        p = PREPROCESSING.get(p, p) if isinstance(p, str) else p
        if not isinstance(p, dict):
            return p
        return [float(v) for v in p.get("mean", ())], [float(v) for v in p.get("std", ())]

    a, b = values(a), values(b)
    if a is None or b is None or not isinstance(a, tuple) or not isinstance(b, tuple):
        return a == b
    return all(len(x) == len(y) and np.allclose(x, y, rtol=1e-6, atol=0) for x, y in zip(a, b))


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


def applications_file_layout(path, argument="weights"):
    """(blocks per stage, has the `predictions` head) of a keras.applications .h5 weights file, from its
    layer names."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs.get("layer_names", [])] or list(f)
    except OSError as error:
        raise ValueError(f"{argument}={path!r} is not a readable HDF5 weights file "
                         f"({' '.join(str(error).split())}).") from None
    return _application_repeats(names), "predictions" in names


def _load_applications(model, weights, argument):
    """keras.applications' ResNet of the model's depth holding `weights`, shaped like `model`."""
    depth = depth_of(model.block_type, model.stage_repeats)
    if depth not in APPLICATIONS:
        raise ValueError(f"{argument}={weights!r} are keras.applications weights for ResNet-50/101/152; the model is "
                         f"{describe(model)}.")
    if getattr(model, "stride_in", "1x1") != "1x1":
        raise ValueError(f"{argument}={weights!r} are v1 weights (stride on the first 1x1 of a bottleneck); the "
                         f"model has stride_in={model.stride_in!r}.")
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
        file_repeats, _ = applications_file_layout(weights, argument)
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


# --- torchvision and timm state dicts -----------------------------------------------------------

_TORCH_KEY = re.compile(
    r"^(conv1|bn1|fc|layer(\d+)\.(\d+)\.(conv\d+|bn\d+|downsample\.[01]))\."
    r"(weight|bias|running_mean|running_var|num_batches_tracked)$"
)


def _one_line(error, limit=300):
    return (" ".join(str(error).split()) or type(error).__name__)[:limit]


def _torch_load(path, argument):
    """A .pth/.pt file through `torch.load(weights_only=True)`: tensors, dicts and numbers only, never
    another pickled object (nothing in the file runs)."""
    try:
        import torch
    except ImportError:
        raise ValueError(f"{argument}={path!r} is a PyTorch file: reading it needs the torch package (pip install "
                         "torch), or convert it to .safetensors where torch is installed.") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for a refused object, RuntimeError for a damaged archive, ...
        text = " ".join(str(error).split())
        refused = re.search(r"Unsupported (global|operand)[^.]*", text)
        # torch's own message goes on to suggest weights_only=False: never for a file you do not trust.
        reason = refused.group(0) if refused else text.split(". ")[0][:200] or type(error).__name__
        raise ValueError(f"{argument}={path!r} is not a readable PyTorch state dict of tensors; torch.load("
                         f"weights_only=True) refused it and nothing in it ran ({reason}). Convert files you "
                         "trust to .safetensors.") from None


def _as_state_dict(obj, path, argument):
    """The {name: tensor} mapping in a loaded .pth: the object itself, or its "state_dict"/"model" entry
    (timm's and torchvision's training checkpoints)."""
    import torch

    def is_state_dict(value):
        return isinstance(value, dict) and value and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())

    if is_state_dict(obj):
        return obj
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and is_state_dict(obj.get(key)):
            return obj[key]
    raise ValueError(f"{argument}={path!r} holds a {type(obj).__name__}, not a state dict of named tensors "
                     "(save model.state_dict()).")


def read_state_dict(path, argument="weights", shapes_only=False):
    """{name: float32 numpy array} from a .safetensors (numpy API, no torch) or .pth/.pt file; with
    `shapes_only`, {name: shape} (a .safetensors header only)."""
    if path.endswith(".safetensors"):
        try:
            import safetensors
            import safetensors.numpy
        except ImportError:
            raise ValueError(f"{argument}={path!r} is a .safetensors file: reading it needs the safetensors package "
                             "(pip install safetensors).") from None
        try:
            if shapes_only:
                with safetensors.safe_open(path, framework="numpy") as f:
                    return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
            return safetensors.numpy.load_file(path)
        except Exception as error:  # SafetensorError (truncated, not safetensors), numpy dtype errors
            raise ValueError(f"{argument}={path!r} is not a readable .safetensors file ({_one_line(error)}).") from None
    state = _as_state_dict(_torch_load(path, argument), path, argument)
    if shapes_only:
        return {key: tuple(value.shape) for key, value in state.items()}
    return {key: (value.float() if value.is_floating_point() else value).numpy() for key, value in state.items()}


def state_dict_layout(shapes, path, argument="weights"):
    """The network a torchvision/timm ResNet state dict holds: {"block_type", "stage_repeats", "width",
    "num_classes" (None without an fc layer)}, from its key names and shapes ({name: shape})."""
    unknown = sorted(key for key in shapes if not _TORCH_KEY.match(key))
    if unknown or "conv1.weight" not in shapes or not any(key.startswith("layer") for key in shapes):
        sample = ", ".join(unknown[:3]) if unknown else ", ".join(sorted(shapes)[:3]) or "no tensors"
        raise ValueError(f"{argument}={path!r} is not a torchvision or timm ResNet state dict (conv1, bn1, "
                         f"layer1.0.conv1, ..., fc): {len(unknown) or len(shapes)} keys such as {sample} are not "
                         "ResNet keys.")
    blocks = {}
    for key in shapes:
        match = _TORCH_KEY.match(key)
        if match.group(2):
            stage, block = int(match.group(2)), int(match.group(3))
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    stages = sorted(blocks)
    if stages != list(range(1, len(stages) + 1)):
        raise ValueError(f"{argument}={path!r} has stages {['layer%d' % s for s in stages]}; a ResNet has layer1 "
                         f"to layer{len(stages)}.")
    block_type = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
    fc = shapes.get("fc.weight")
    return {"block_type": block_type, "stage_repeats": tuple(blocks[s] for s in stages),
            "width": int(shapes["conv1.weight"][0]), "num_classes": int(fc[0]) if fc else None}


def _torch_prefix(layer_name):
    """Our layer name -> the state dict's module: stage3_block2_conv1 -> layer2.1.conv1,
    stage3_block1_shortcut_bn -> layer2.0.downsample.1, stage1_conv -> conv1, predictions -> fc."""
    if layer_name in ("stage1_conv", "stage1_bn"):
        return "conv1" if layer_name == "stage1_conv" else "bn1"
    if layer_name == "predictions":
        return "fc"
    match = re.fullmatch(r"stage(\d+)_block(\d+)_(conv\d+|bn\d+|shortcut_conv|shortcut_bn)", layer_name)
    if not match:
        return None
    stage, block, kind = int(match.group(1)) - 1, int(match.group(2)) - 1, match.group(3)
    kind = {"shortcut_conv": "downsample.0", "shortcut_bn": "downsample.1"}.get(kind, kind)
    return f"layer{stage}.{block}.{kind}"


def _torch_tensors(layer, prefix):
    """(state dict key, Keras weight, function from the torch tensor to Keras' layout) for a layer."""
    if isinstance(layer, keras.layers.BatchNormalization):
        names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
        return [(f"{prefix}.{names[w.name]}", w, lambda t: t) for w in layer.weights]
    if isinstance(layer, keras.layers.Conv2D):
        return [(f"{prefix}.weight", layer.kernel, lambda t: np.transpose(t, (2, 3, 1, 0)))]  # OIHW -> HWIO
    if isinstance(layer, keras.layers.Dense):
        return [(f"{prefix}.weight", layer.kernel, np.transpose), (f"{prefix}.bias", layer.bias, lambda t: t)]
    return None


def _torch_shape(keras_shape):
    """A Keras weight's shape in PyTorch's order: HWIO kernels as OIHW, Dense (in, out) as (out, in)."""
    shape = [int(d) for d in keras_shape]
    return [shape[3], shape[2], shape[0], shape[1]] if len(shape) == 4 else shape[::-1]


def _check_torch_model(model, path, layout, argument):
    """The settings a torchvision/timm ResNet was trained with, checked against the model."""
    if not _is_resnet(model) or getattr(model, "stem", None) != "imagenet":
        raise ValueError(f"{argument}={path!r} holds an ImageNet ResNet; load it into a keras_resnet ResNet built by "
                         "build_resnet.")
    if (model.block_type, tuple(model.stage_repeats)) != (layout["block_type"], layout["stage_repeats"]):
        raise ValueError(f"{argument}={path!r} holds {describe_blocks(layout['block_type'], layout['stage_repeats'])} "
                         f"but the model is {describe(model)}.")
    expected = {"residual": True, "shortcut": "B", "bn_epsilon": TORCH_EPSILON, "stem_width": layout["width"]}
    if model.block_type == "bottleneck":
        expected["stride_in"] = "3x3"
    for name, value in expected.items():
        if getattr(model, name) != value:
            raise ValueError(f"{argument}={path!r} were trained with {name}={value!r} (torchvision/timm ResNet); the "
                             f"model has {name}={getattr(model, name)!r}.")
    if not same_preprocessing(model.preprocessing, "imagenet"):
        raise ValueError(f"{argument}={path!r} expect inputs normalised with the ImageNet mean and std "
                         f"(preprocessing='imagenet'); the model has preprocessing={model.preprocessing!r}.")


def load_state_dict(model, path, argument="weights"):
    """Fill `model` from a torchvision/timm ResNet state dict file (module doc); returns the model."""
    state = read_state_dict(path, argument)
    layout = state_dict_layout({key: value.shape for key, value in state.items()}, path, argument)
    _check_torch_model(model, path, layout, argument)
    has_head = "predictions" in {layer.name for layer in model.layers}
    if has_head and layout["num_classes"] is None:
        raise ValueError(f"{argument}={path!r} has no fc layer (a backbone); build the model with include_top=False.")
    if has_head and layout["num_classes"] != model.num_classes:
        raise ValueError(f"{argument}={path!r} have a {layout['num_classes']}-class head; with include_top=True "
                         f"num_classes must be {layout['num_classes']}. Received: num_classes={model.num_classes}. "
                         "Build with include_top=False and add a new head (keras_resnet.transfer.replace_head).")
    used = set()
    assignments = []
    for layer in model.layers:
        if not layer.weights or layer.name == "preprocessing":
            continue
        prefix = _torch_prefix(layer.name)
        tensors = _torch_tensors(layer, prefix) if prefix else None
        if tensors is None:
            raise ValueError(f"the model's layer {layer.name!r} has no counterpart in a torchvision ResNet state dict "
                             f"({argument}={path!r}).")
        for key, weight, convert in tensors:
            if key not in state:
                raise ValueError(f"{argument}={path!r} has no tensor {key!r} for the model's {layer.name} "
                                 f"({describe(model)}).")
            value = convert(np.asarray(state[key], dtype="float32"))
            if tuple(value.shape) != tuple(weight.shape):
                raise ValueError(f"{argument}={path!r}: {key} has shape {list(np.shape(state[key]))}; the model's "
                                 f"{layer.name} needs {_torch_shape(weight.shape)} (PyTorch's order).")
            assignments.append((weight, value))
            used.add(key)
    skipped = {"fc.weight", "fc.bias"} if not has_head else set()
    leftover = sorted(k for k in state if k not in used and k not in skipped and not k.endswith("num_batches_tracked"))
    if leftover:
        raise ValueError(f"{argument}={path!r} has {len(leftover)} tensors that the model ({describe(model)}) has no "
                         f"place for, such as {', '.join(leftover[:3])}.")
    for weight, value in assignments:  # all checked first: a refused file leaves the model untouched
        weight.assign(value)
    return model


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
    a keras.applications .h5 file, a torchvision/timm ResNet state dict (.safetensors, .pth, .pt),
    our own `.keras` file, or a `.weights.h5` file saved from a model of the same configuration.
    `argument` is the name errors use (`init_from` for the scripts).
    """
    weights = check_weights_argument(weights, argument)
    kind = source_kind(weights, argument)
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
    if kind == "state_dict":
        return load_state_dict(model, weights, argument)
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
