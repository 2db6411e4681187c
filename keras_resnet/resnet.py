"""ResNet networks of He et al. 2016: ImageNet (Table 1) and CIFAR-10 (Section 4.2).

One functional-API model class, `ResNet`, reads its architecture from arguments;
`build_resnet` and `build_cifar_resnet` fill them from the spec table below. Stage
numbering follows Table 1: `stage1` is conv1 (the stem), `stage2`..`stage5` are
conv2_x..conv5_x, and every stage ends in a layer named `stage{N}_out`, so features,
freezing and weight loading can select a stage by name; `feature_pyramid` returns them as
keras-hub's `pyramid_outputs` dict {"P2": ..., "P5": ...}.
"""

import keras
from keras import layers

from keras_resnet.specs import (
    CIFAR_WIDTH,
    IMAGENET_WIDTH,
    PREPROCESSING,
    RESNET_SPECS,
    check_eval_transform,
    depth_of,
    describe_blocks,
    eval_transform_for,
)
from keras_resnet.blocks import (
    SHORTCUTS,
    STRIDE_IN,
    basic_block,
    bottleneck_block,
    conv_bn,
    kernel_regularizer,
)

BLOCK_TYPES = {"basic": basic_block, "bottleneck": bottleneck_block}
STEMS = ("imagenet", "cifar")
POOLINGS = ("avg", "max", None)


def _stem(x, stem, width, bn_kwargs):
    """Stage 1 (conv1): 7x7/2 for ImageNet, 3x3/1 for CIFAR (Section 4.2)."""
    if stem == "imagenet":
        # Explicit symmetric padding (3 on every side, as PyTorch's padding=3 and keras.applications):
        # "same" would pad (2, 3) on an even input (see blocks.symmetric_padding).
        x = layers.ZeroPadding2D(3, name="stage1_pad")(x)
        x = conv_bn(x, width, 7, 2, prefix="stage1", padding="valid", **bn_kwargs)
    else:
        x = conv_bn(x, width, 3, 1, prefix="stage1", **bn_kwargs)
    return layers.Identity(name="stage1_out")(x)


def _check_input_shape(input_shape, min_size):
    """input_shape as a tuple of 3 positive ints (height and width may be None), large enough."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") or len(input_shape) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels). Received: input_shape={input_shape!r}"
        )
    input_shape = tuple(input_shape)
    for index, size in enumerate(input_shape):
        bad_type = isinstance(size, bool) or not (isinstance(size, int) or (size is None and index < 2))
        if bad_type or (size is not None and size < 1):
            raise ValueError(
                "input_shape must hold positive integers (height and width may be None). "
                f"Received: input_shape={input_shape!r}"
            )
    for size in input_shape[:2]:
        if size is not None and size < min_size:
            raise ValueError(
                f"input_shape={input_shape!r} is too small: the network downsamples "
                f"by {min_size}, so height and width must be at least {min_size}."
            )
    return input_shape


def _preprocessing_layer(preprocessing, channels):
    if isinstance(preprocessing, str):
        if preprocessing not in PREPROCESSING:
            raise ValueError(
                f"preprocessing must be None, one of {sorted(PREPROCESSING)} or a dict with "
                f"'mean' and 'std'. Received: preprocessing={preprocessing!r}"
            )
        preprocessing = PREPROCESSING[preprocessing]
    try:
        mean, std = [float(m) for m in preprocessing["mean"]], [float(s) for s in preprocessing["std"]]
    except (TypeError, KeyError, ValueError):
        mean = std = None
    if mean is None or set(preprocessing) != {"mean", "std"} or len(mean) not in (1, channels) \
            or len(std) != len(mean) or min(std) <= 0:
        raise ValueError(
            f"preprocessing must be None, one of {sorted(PREPROCESSING)}, or a dict with 'mean' and 'std': "
            f"1 or {channels} means and as many positive stds. Received: preprocessing={preprocessing!r}"
        )
    return layers.Normalization(
        mean=mean, variance=[s * s for s in std], name="preprocessing"
    )


def _check_width(width):
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer (the stem's filters). Received: width={width!r}")


def _check_batchnorm(bn_momentum, bn_epsilon):
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 <= bn_momentum < 1:
        raise ValueError(f"bn_momentum must be a number in [0, 1). Received: bn_momentum={bn_momentum!r}")
    if isinstance(bn_epsilon, bool) or not isinstance(bn_epsilon, (int, float)) or not 0 < bn_epsilon < 1:
        raise ValueError(f"bn_epsilon must be a small positive number. Received: bn_epsilon={bn_epsilon!r}")


@keras.saving.register_keras_serializable(package="keras_resnet")
class ResNet(keras.Model):
    """A ResNet (or its plain counterpart) as a Keras functional model.

    Prefer `build_resnet` and `build_cifar_resnet`, which fill these arguments from the
    paper's tables. `get_config()` returns every constructor argument, so
    `ResNet.from_config(model.get_config())` rebuilds the same architecture and
    `.keras` files load with `safe_mode=True`.

    Args:
        block_type: "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1).
        stage_repeats: blocks in each residual stage (stage2 onwards).
        stage_widths: filters of each residual stage (bottleneck output is 4x this).
        stem: "imagenet" (7x7/2 conv + 3x3/2 max pool) or "cifar" (3x3/1 conv).
        stem_width: filters of the stem convolution.
        input_shape: (height, width, channels), height and width None for any size.
            Default: (224, 224, 3) with `include_top`, else (None, None, 3), as in
            keras.applications.
        input_tensor: a Keras tensor to use as the model's input (keras.applications'
            argument), instead of a new `keras.Input`.
        num_classes: classes of the classifier when `include_top`.
        include_top: add global pooling and the `predictions` Dense layer.
        pooling: "avg", "max" or None: global pooling of the features
            (with `include_top`, None means "avg").
        classifier_activation: activation of `predictions` (None for logits). The head
            computes in float32 under mixed precision.
        shortcut: "A", "B" or "C" (Section 3.3).
        residual: False for the plain network (no shortcuts).
        stride_in: "1x1" (paper) or "3x3" (v1.5) for bottleneck blocks.
        expansion: bottleneck output channels per bottleneck channel.
        zero_init_residual: zero-initialise the last BN gamma of each residual branch.
        bn_momentum, bn_epsilon: BatchNormalization settings for every BN.
        bn_synchronized: batch statistics over all replicas (TensorFlow backend only).
        weight_decay: SGD-style weight decay on every conv and dense kernel.
        preprocessing: None (inputs used as they are), "imagenet", or
            {"mean": [...], "std": [...]} on the 0-255 scale: a `preprocessing` layer
            so the model takes raw pixels.
        eval_transform: how a served image becomes the model's input: None (resize to the
            input size, as the datasets here do), a preset of `specs.EVAL_TRANSFORMS`
            ("torchvision-v1", "torchvision-v2", "timm-a1": resize the shorter side, then
            centre-crop the input size) or {"resize": 232, "crop": 224, "interpolation":
            "bilinear"}. Carried in the config (and .keras files) for the export signatures and
            `scripts/predict.py`; the model itself takes the cropped image.
        name: model name.
        dtype_policy: the Keras dtype policy the layers are built with (default: the global policy),
            kept in the config.
    """

    def __init__(self, *, block_type="bottleneck", dtype_policy=None, **kwargs):
        # Built under `dtype_policy` (default: the global policy now), which the config keeps: a model
        # trained in mixed_bfloat16 and saved reloads in mixed_bfloat16 in a float32 process. (Keyword
        # arguments only: keras.models.clone_model takes a (*args, **kwargs) constructor for Functional's.)
        previous = keras.mixed_precision.global_policy().name
        dtype_policy = dtype_policy or previous
        keras.mixed_precision.set_global_policy(dtype_policy)
        try:
            self._construct(block_type=block_type, **kwargs)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        self.dtype_policy_name = dtype_policy

    def _construct(
        self,
        block_type="bottleneck",
        stage_repeats=(3, 4, 6, 3),
        stage_widths=(64, 128, 256, 512),
        stem="imagenet",
        stem_width=64,
        input_shape=None,
        num_classes=1000,
        include_top=True,
        pooling=None,
        classifier_activation="softmax",
        shortcut="B",
        residual=True,
        stride_in="1x1",
        expansion=4,
        zero_init_residual=False,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        bn_synchronized=False,
        weight_decay=0.0,
        preprocessing=None,
        name="resnet",
        input_tensor=None,
        eval_transform=None,
        **kwargs,
    ):
        try:
            stage_repeats = tuple(int(r) for r in stage_repeats)
            stage_widths = tuple(int(w) for w in stage_widths)
        except (TypeError, ValueError):
            raise ValueError("stage_repeats and stage_widths must be sequences of positive integers. "
                             f"Received: stage_repeats={stage_repeats!r}, stage_widths={stage_widths!r}") from None
        if input_tensor is not None:
            input_shape = tuple(input_tensor.shape[1:])
        elif input_shape is None:
            size = 224 if stem == "imagenet" else 32
            input_shape = (size, size, 3) if include_top else (None, None, 3)
        if block_type not in BLOCK_TYPES:
            raise ValueError(
                f"block_type must be one of {tuple(BLOCK_TYPES)}. Received: block_type={block_type!r}"
            )
        if not stage_repeats or min(stage_repeats) < 1:
            raise ValueError(
                "stage_repeats must be a non-empty sequence of positive integers. "
                f"Received: stage_repeats={stage_repeats!r}"
            )
        if len(stage_widths) != len(stage_repeats) or min(stage_widths) < 1:
            raise ValueError(
                f"stage_widths must give one positive width per stage ({len(stage_repeats)}). "
                f"Received: stage_widths={stage_widths!r}"
            )
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}. Received: stem={stem!r}")
        if shortcut not in SHORTCUTS:
            raise ValueError(
                f"shortcut must be one of {SHORTCUTS} (paper Section 3.3). "
                f"Received: shortcut={shortcut!r}"
            )
        if stride_in not in STRIDE_IN:
            raise ValueError(f"stride_in must be one of {STRIDE_IN}. Received: stride_in={stride_in!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
        if include_top and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(
                f"num_classes must be a positive integer when include_top=True. "
                f"Received: num_classes={num_classes!r}"
            )
        # The stem downsamples by 4 (ImageNet) or 1 (CIFAR); each later stage by 2.
        total_stride = (4 if stem == "imagenet" else 1) * 2 ** (len(stage_repeats) - 1)
        input_shape = _check_input_shape(input_shape, total_stride)
        _check_batchnorm(bn_momentum, bn_epsilon)
        eval_transform = check_eval_transform(eval_transform)
        if None not in input_shape[:2]:
            eval_transform_for(eval_transform, input_shape[:2])  # a dict's crop must be the input size

        bn_kwargs = dict(
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            bn_synchronized=bool(bn_synchronized),
            weight_decay=weight_decay,
        )
        block_kwargs = dict(
            shortcut=shortcut, residual=residual, zero_init_residual=zero_init_residual, **bn_kwargs
        )
        if block_type == "bottleneck":
            block_kwargs.update(stride_in=stride_in, expansion=expansion)
        block = BLOCK_TYPES[block_type]

        if input_tensor is None:
            inputs = x = keras.Input(shape=input_shape, name="image")
        else:
            x = input_tensor if keras.backend.is_keras_tensor(input_tensor) else keras.Input(
                tensor=input_tensor, shape=input_shape, name="image")
            inputs = keras.utils.get_source_inputs(x)
        if preprocessing is not None:
            x = _preprocessing_layer(preprocessing, input_shape[-1])(x)
        x = _stem(x, stem, stem_width, bn_kwargs)
        for index, (repeats, width) in enumerate(zip(stage_repeats, stage_widths)):
            stage = f"stage{index + 2}"
            if index == 0 and stem == "imagenet":
                # conv2_x starts with the 3x3 max pool, stride 2 (Table 1), padded 1 on every side like
                # torchvision's MaxPool2d(3, 2, padding=1). PyTorch pads a max pool with -inf; zeros give
                # the same maxima here because the stem ends in a ReLU (every input is >= 0).
                x = layers.ZeroPadding2D(1, name=f"{stage}_pool_pad")(x)
                x = layers.MaxPooling2D(3, strides=2, name=f"{stage}_pool")(x)
            for b in range(repeats):
                # Downsampling by the first block of conv3_x onwards (Section 3.4).
                stride = 2 if (b == 0 and index > 0) else 1
                x = block(x, width, stride, name=f"{stage}_block{b + 1}", **block_kwargs)
            x = layers.Identity(name=f"{stage}_out")(x)

        if include_top or pooling is not None:
            kind = pooling or "avg"
            pool = layers.GlobalAveragePooling2D if kind == "avg" else layers.GlobalMaxPooling2D
            x = pool(name=f"{kind}_pool")(x)
        if include_top:
            x = layers.Dense(
                num_classes,
                activation=classifier_activation,
                kernel_regularizer=kernel_regularizer(weight_decay),
                dtype="float32",
                name="predictions",
            )(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        # === Config ===
        self.block_type = block_type
        self.stage_repeats = stage_repeats
        self.stage_widths = stage_widths
        self.stem = stem
        self.stem_width = int(stem_width)
        self.image_shape = input_shape
        self.num_classes = num_classes
        self.include_top = bool(include_top)
        self.pooling = pooling
        self.classifier_activation = classifier_activation
        self.shortcut = shortcut
        self.residual = bool(residual)
        self.stride_in = stride_in
        self.expansion = int(expansion)
        self.zero_init_residual = bool(zero_init_residual)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.bn_synchronized = bool(bn_synchronized)
        self.weight_decay = float(weight_decay)
        self.preprocessing = preprocessing
        self.eval_transform = eval_transform

    @property
    def depth(self):
        """Weighted layers on the main path, as the paper counts them (18, 50, 110, ...)."""
        per_block = 2 if self.block_type == "basic" else 3
        return per_block * sum(self.stage_repeats) + 1 + int(self.include_top)

    @property
    def stage_names(self):
        """Names of the stages, `stage1` (the stem) to the last; each has `{name}_out`."""
        return [f"stage{i + 1}" for i in range(len(self.stage_repeats) + 1)]

    @property
    def pyramid_outputs(self):
        """{"P2": stage2_out, ..., "P5": stage5_out}: the residual stages' output tensors, keyed as
        keras-hub's `pyramid_outputs` (P{N} for stage N). On the ImageNet layout P{N} has stride 2**N
        (4, 8, 16, 32); the CIFAR layout has P2..P4 at strides 1, 2, 4. See `feature_pyramid`."""
        return {f"P{n}": self.get_layer(f"stage{n}_out").output for n in range(2, len(self.stage_repeats) + 2)}

    def get_config(self):
        # Not Functional.get_config: the constructor arguments rebuild the whole graph.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "block_type": self.block_type,
            "stage_repeats": list(self.stage_repeats),
            "stage_widths": list(self.stage_widths),
            "stem": self.stem,
            "stem_width": self.stem_width,
            "input_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "include_top": self.include_top,
            "pooling": self.pooling,
            "classifier_activation": self.classifier_activation,
            "shortcut": self.shortcut,
            "residual": self.residual,
            "stride_in": self.stride_in,
            "expansion": self.expansion,
            "zero_init_residual": self.zero_init_residual,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "bn_synchronized": self.bn_synchronized,
            "weight_decay": self.weight_decay,
            "preprocessing": self.preprocessing,
            "eval_transform": self.eval_transform,
            "dtype_policy": self.dtype_policy_name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_keras_applications(cls, app, name=None):
        """Our model with the weights of keras.applications' ResNet50/101/152 model `app` (v1).

        Any input size, class count, `include_top` and `pooling`; the result gives on raw RGB pixels
        the outputs `app` gives on `keras.applications.resnet.preprocess_input(pixels)`
        (`keras_resnet.checkpoints` explains the conversion).
        """
        from keras_resnet import checkpoints

        model = cls(**checkpoints.applications_config(app, name))
        return checkpoints.copy_applications_weights(app, model)


def build_resnet(
    depth=50,
    *,
    stage_repeats=None,
    block_type=None,
    width=IMAGENET_WIDTH,
    input_shape=None,
    input_tensor=None,
    num_classes=None,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    shortcut="B",
    residual=True,
    stride_in=None,
    zero_init_residual=False,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    bn_synchronized=False,
    weight_decay=0.0,
    preprocessing=None,
    name=None,
    weights=None,
    eval_transform=None,
):
    """The five-stage ImageNet ResNet of Table 1, or a custom-depth variant.

    Args:
        depth: 18, 34, 50, 101 or 152 (Table 1); may be None with `stage_repeats`.
        stage_repeats: blocks per residual stage, overriding the table (for example
            (1, 1, 1, 1) for a tiny test model).
        block_type: "basic" or "bottleneck"; defaults to the table's for `depth`,
            else "basic".
        width: filters of conv1 and conv2_x (64); later stages double it.
        input_shape: (224, 224, 3) by default with `include_top`, else (None, None, 3).
        num_classes: classes of the head; None means 1000, or the class count of `weights`.
        stride_in: None means "1x1" (the paper), or what `weights` were trained with.
        weights: None (random), "imagenet" (keras.applications' weights for 50/101/152,
            downloaded and cached by Keras), a keras.applications .h5 file, a torchvision or
            timm ResNet state dict (.safetensors, or .pth with torch installed), or our own
            `.keras` / `.weights.h5` file (`keras_resnet.checkpoints`). The weights bring what
            they were trained with (`checkpoints.builder_defaults`): keras.applications' "caffe"
            preprocessing and BN epsilon 1.001e-5; a state dict's blocks, stride_in="3x3",
            its class count, "imagenet" preprocessing (the model takes raw 0-255 RGB) and
            eval_transform "torchvision-v1". An argument that contradicts them is a ValueError;
            `include_top=False` loads the backbone only.
        eval_transform: as in `ResNet`; with a state dict, pass "torchvision-v2" for torchvision's
            IMAGENET1K_V2 weights and "timm-a1" for timm's a1 weights.
        Other arguments: as in `ResNet`.

    Example:
        >>> model = build_resnet(50, num_classes=10, input_shape=(None, None, 3))
        >>> pretrained = build_resnet(50, weights="resnet50_v2.safetensors", eval_transform="torchvision-v2")
    """
    _check_width(width)
    explicit_repeats = stage_repeats is not None
    if stage_repeats is None:
        if isinstance(depth, bool) or depth not in RESNET_SPECS:
            raise ValueError(
                f"depth must be one of {tuple(RESNET_SPECS)} (Table 1), or pass stage_repeats. "
                f"Received: depth={depth!r}"
            )
        table_block, stage_repeats = RESNET_SPECS[depth]
        block_type = block_type or table_block
    elif block_type is None:
        block_type = RESNET_SPECS[depth][0] if depth in RESNET_SPECS else "basic"
    if name is None:
        kind = "resnet" if residual else "plain"
        table = depth in RESNET_SPECS and tuple(stage_repeats) == tuple(RESNET_SPECS[depth][1])
        name = f"{kind}{depth}" if table else kind
    settings = dict(block_type=block_type, stage_repeats=tuple(stage_repeats), width=width, stride_in=stride_in,
                    shortcut=shortcut, residual=residual, num_classes=num_classes, preprocessing=preprocessing,
                    bn_epsilon=None if bn_epsilon == 1e-5 else bn_epsilon, eval_transform=eval_transform)
    if weights is not None:
        layout_argument = ("stage_repeats", list(stage_repeats)) if explicit_repeats else ("depth", depth)
        settings = _with_weight_settings(weights, settings, include_top, layout_argument)
    unset = {"stride_in": "1x1", "num_classes": 1000, "bn_epsilon": bn_epsilon}
    settings.update({key: value for key, value in unset.items() if settings[key] is None})
    stride_in, num_classes, bn_epsilon = settings["stride_in"], settings["num_classes"], settings["bn_epsilon"]
    preprocessing, eval_transform = settings["preprocessing"], settings["eval_transform"]
    model = ResNet(
        block_type=block_type,
        stage_repeats=stage_repeats,
        stage_widths=[width * 2**i for i in range(len(stage_repeats))],
        stem="imagenet",
        stem_width=width,
        input_shape=input_shape,
        input_tensor=input_tensor,
        num_classes=num_classes,
        include_top=include_top,
        pooling=pooling,
        classifier_activation=classifier_activation,
        shortcut=shortcut,
        residual=residual,
        stride_in=stride_in,
        zero_init_residual=zero_init_residual,
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        bn_synchronized=bn_synchronized,
        weight_decay=weight_decay,
        preprocessing=preprocessing,
        name=name,
        eval_transform=eval_transform,
    )
    if weights is not None:
        from keras_resnet import checkpoints

        checkpoints.load_weights(model, weights)
    return model


def _with_weight_settings(weights, settings, include_top, layout_argument):
    """`settings` (build_resnet's arguments, None where not given) completed with what `weights` imply
    (`checkpoints.builder_defaults`); a ValueError naming the argument, its value and what the file
    holds where they contradict."""
    from keras_resnet import checkpoints  # keras.applications, h5py, safetensors: only when asked

    implied = checkpoints.builder_defaults(weights)
    settings = dict(settings)
    if "stage_repeats" in implied:
        holds = (implied["block_type"], tuple(implied["stage_repeats"]))
        if (settings["block_type"], settings["stage_repeats"]) != holds:
            depth = depth_of(*holds)
            advice = f"depth={depth}" if depth else f"depth=None, stage_repeats={list(holds[1])}, " \
                                                    f"block_type={holds[0]!r}"
            name, value = layout_argument
            raise ValueError(f"{name}={value!r} does not match weights={weights!r}, which hold "
                             f"{describe_blocks(*holds)} ({holds[0]} blocks {list(holds[1])}); build with {advice}.")
    for key, value in implied.items():
        if key in ("block_type", "stage_repeats") or (key == "num_classes" and not include_top):
            continue
        given = settings[key]
        if given is None:
            settings[key] = value
        elif key == "eval_transform":
            continue  # the caller's evaluation is theirs to choose
        elif key == "num_classes" and given != value:
            raise ValueError(f"weights={weights!r} have a {value}-class head; with include_top=True num_classes "
                             f"must be {value}. Received: num_classes={given!r}. Build with include_top=False and add "
                             "a new head (keras_resnet.transfer.replace_head).")
        elif not (checkpoints.same_preprocessing(given, value) if key == "preprocessing" else given == value):
            raise ValueError(f"{key}={given!r} contradicts weights={weights!r}, which were trained with "
                             f"{key}={value!r}.")
    return settings


def feature_pyramid(model, name=None):
    """A functional model from `model`'s input to its stage outputs as a dict {"P2": stage2_out, ...,
    "P5": stage5_out} (keras-hub's `pyramid_outputs`), the input of detection and segmentation heads
    (FPN, Lin et al. 2017: strides 4, 8, 16, 32 on the ImageNet layout).

    Works on any model with our `stage{N}_out` layers (a `ResNet`, or one made from it by
    `transfer.replace_head`) and shares its layers and weights.

    Example:
        >>> backbone = feature_pyramid(build_resnet(50, weights="resnet50.safetensors", include_top=False))
        >>> backbone(images)["P3"].shape   # (batch, height / 8, width / 8, 512)
    """
    names = {layer.name for layer in model.layers}
    levels = {}
    while f"stage{len(levels) + 2}_out" in names:
        level = len(levels) + 2
        levels[f"P{level}"] = model.get_layer(f"stage{level}_out").output
    if not levels:
        raise ValueError(f"model has no stage outputs (stage2_out, ...); is it a keras_resnet model? Received: "
                         f"model={model.name!r}")
    return keras.Model(model.input, levels, name=name or f"{model.name}_pyramid")


def cifar_blocks_per_stage(depth):
    """n for depth 6n+2 (Section 4.2); ValueError for any other depth."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "depth must be 6n+2 for a positive integer n (20, 32, 44, 56, 110, 1202, ...). "
            f"Received: depth={depth!r}"
        )
    return (depth - 2) // 6


def build_cifar_resnet(
    depth=20,
    *,
    width=CIFAR_WIDTH,
    input_shape=None,
    input_tensor=None,
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    shortcut="A",
    residual=True,
    zero_init_residual=False,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    bn_synchronized=False,
    weight_decay=0.0,
    preprocessing=None,
    name=None,
    weights=None,
):
    """The CIFAR-10 ResNet of Section 4.2: depth 6n+2, 3x3/16 stem, 3 stages of n blocks.

    Stages have 16, 32, 64 filters (times `width / 16`) on 32x32, 16x16 and 8x8 maps,
    with option A shortcuts by default as in the paper. `input_shape`: (32, 32, 3) by default
    with `include_top`, else (None, None, 3). `weights`: None or our own `.keras` / `.weights.h5`
    file (`keras_resnet.checkpoints.load_weights`). Other arguments: as in `ResNet`.

    Example:
        >>> model = build_cifar_resnet(56)            # 853,018 parameters
        >>> plain = build_cifar_resnet(56, residual=False)
    """
    n = cifar_blocks_per_stage(depth)
    _check_width(width)
    if name is None:
        name = f"{'resnet' if residual else 'plain'}{depth}"
    model = ResNet(
        block_type="basic",
        stage_repeats=(n, n, n),
        stage_widths=(width, 2 * width, 4 * width),
        stem="cifar",
        stem_width=width,
        input_shape=input_shape,
        input_tensor=input_tensor,
        num_classes=num_classes,
        include_top=include_top,
        pooling=pooling,
        classifier_activation=classifier_activation,
        shortcut=shortcut,
        residual=residual,
        zero_init_residual=zero_init_residual,
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        bn_synchronized=bn_synchronized,
        weight_decay=weight_decay,
        preprocessing=preprocessing,
        name=name,
    )
    if weights is not None:
        from keras_resnet import checkpoints

        checkpoints.load_weights(model, weights)
    return model


__all__ = [
    "RESNET_SPECS",
    "ResNet",
    "build_resnet",
    "build_cifar_resnet",
    "cifar_blocks_per_stage",
    "feature_pyramid",
]
