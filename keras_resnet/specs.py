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
