"""The paper's tables and the input normalisations, as data (no Keras): the one source of truth that
the builders (`resnet`) and the weight loaders (`checkpoints`) both read.
"""

# Table 1. depth -> (block type, blocks per stage for conv2_x, conv3_x, conv4_x, conv5_x).
RESNET_SPECS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTH = 64  # filters of conv1 and conv2_x; each later stage doubles them
CIFAR_WIDTH = 16  # Section 4.2: 16, 32, 64 filters on 32x32, 16x16, 8x8 maps
# Per-channel mean and standard deviation on the 0-255 scale (torchvision's ImageNet values).
PREPROCESSING = {
    "imagenet": {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
    # keras.applications' "caffe" mode (the original ResNet weights): subtract the ImageNet mean,
    # no scaling. Caffe also swaps RGB to BGR; checkpoints folds that swap into stage1_conv's
    # kernel, so the model still takes RGB.
    "caffe": {"mean": [123.68, 116.779, 103.939], "std": [1.0, 1.0, 1.0]},
}

# Evaluation transforms: resize the shorter side to `resize` pixels, centre-crop `crop` (the model's
# input size), as the weights' publishers evaluate (each preset is defined at crop 224; at another
# input size `eval_transform_for` keeps the resize / crop ratio).
EVAL_TRANSFORMS = {
    # torchvision's ResNet{18,...,152}_Weights.IMAGENET1K_V1.transforms(): ImageClassification(resize_size=256)
    "torchvision-v1": {"resize": 256, "crop": 224, "interpolation": "bilinear"},
    # torchvision's ResNet{50,101,152}_Weights.IMAGENET1K_V2.transforms(): ImageClassification(resize_size=232)
    "torchvision-v2": {"resize": 232, "crop": 224, "interpolation": "bilinear"},
    # timm's resnet{18,34,50}.a1_in1k pretrained_cfg: crop_pct 0.95, bicubic; floor(224 / 0.95) = 235
    "timm-a1": {"resize": 235, "crop": 224, "interpolation": "bicubic"},
}
INTERPOLATIONS = ("bilinear", "bicubic")


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_eval_transform(transform):
    """`transform` as a model config holds it: None, a preset name, or {"resize", "crop", "interpolation"}
    (crop an int or [height, width]); a ValueError naming `eval_transform` otherwise."""
    if transform is None or (isinstance(transform, str) and transform in EVAL_TRANSFORMS):
        return transform
    if isinstance(transform, dict) and set(transform) <= {"resize", "crop", "interpolation"} \
            and {"resize", "crop"} <= set(transform):
        crop = transform["crop"]
        crop = list(crop) if isinstance(crop, (list, tuple)) else crop
        interpolation = transform.get("interpolation", "bilinear")
        crops = crop if isinstance(crop, list) else [crop]
        if _positive_int(transform["resize"]) and len(crops) in (1, 2) and all(map(_positive_int, crops)) \
                and max(crops) <= transform["resize"] and interpolation in INTERPOLATIONS:
            return {"resize": transform["resize"], "crop": crop, "interpolation": interpolation}
    raise ValueError(
        f"eval_transform must be None, one of {sorted(EVAL_TRANSFORMS)}, or a dict {{'resize': shorter side, "
        f"'crop': size or [height, width] (at most resize), 'interpolation': one of {INTERPOLATIONS}}}. "
        f"Received: eval_transform={transform!r}"
    )


def eval_transform_for(transform, size=None):
    """The transform for images of `size` (height, width; None: as defined), as
    {"resize": int, "crop": (height, width), "interpolation": str}, or None for no transform.

    A preset scales to `size` keeping its resize / crop ratio (torchvision-v2 at 288: resize 298);
    a dict is exact, and its crop must be `size`.
    """
    transform = check_eval_transform(transform)
    if transform is None:
        return None
    preset = isinstance(transform, str)
    spec = EVAL_TRANSFORMS[transform] if preset else transform
    crop = spec["crop"] if isinstance(spec["crop"], list) else [spec["crop"]] * 2
    resize = spec["resize"]
    if size is not None and tuple(size) != tuple(crop):
        if not preset:
            raise ValueError(f"eval_transform crops {crop[0]}x{crop[1]} pixels but the model takes "
                             f"{size[0]}x{size[1]}. Received: eval_transform={transform!r}")
        resize, crop = max(size) * spec["resize"] // spec["crop"], list(size)
    return {"resize": int(resize), "crop": (int(crop[0]), int(crop[1])), "interpolation": spec["interpolation"]}


def describe_blocks(block_type, stage_repeats):
    """'ResNet-50', or 'a ResNet with bottleneck blocks [1, 1, 1, 1]' for other layouts."""
    for depth, (kind, repeats) in RESNET_SPECS.items():
        if kind == block_type and tuple(repeats) == tuple(stage_repeats):
            return f"ResNet-{depth}"
    return f"a ResNet with {block_type} blocks {list(stage_repeats)}"


def depth_of(block_type, stage_repeats):
    """The Table 1 depth with these blocks, or None."""
    for depth, (kind, repeats) in RESNET_SPECS.items():
        if kind == block_type and tuple(repeats) == tuple(stage_repeats):
            return depth
    return None
