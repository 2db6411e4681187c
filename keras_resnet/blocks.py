"""Residual and plain building blocks as functional-API functions on tensors.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385).
Each block maps a tensor to a tensor, in the manner of keras.applications'
`residual_block_v1` and keras-hub's `apply_basic_block`. Layers are named
`{name}_conv1`, `{name}_bn1`, ..., `{name}_shortcut_conv`, `{name}_add`, `{name}_out`
so that weight loading, freezing and feature extraction can select them by prefix.

Only `keras.layers` and `keras.ops` are used, so the blocks build under every Keras
backend (TensorFlow for training and export, JAX for GPU measurements).
"""

import functools
import os
import warnings

import keras
from keras import layers, ops

SHORTCUTS = ("A", "B", "C")
STRIDE_IN = ("1x1", "3x3")


def conv_kernel_initializer():
    """He initialisation (He et al. 2015, arXiv:1502.01852), fan-out as in torchvision."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def kernel_regularizer(weight_decay):
    """L2 penalty equivalent to SGD weight decay `weight_decay` (Section 3.4: 1e-4).

    Keras' L2(l) adds l * sum(w**2) to the loss, whose gradient is 2 * l * w; weight
    decay means a gradient of weight_decay * w, hence the factor one half.
    """
    if not weight_decay:
        return None
    return keras.regularizers.L2(weight_decay / 2.0)


@keras.saving.register_keras_serializable(package="keras_resnet")
class ZeroPadShortcut(layers.Layer):
    """Option A shortcut (Section 3.3): identity, strided subsampling, zero-padded channels.

    Parameter-free: spatial subsampling takes every `stride`-th pixel (what a 1x1
    convolution with that stride would see) and the extra output channels are zeros.
    """

    def __init__(self, filters, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.stride = int(stride)

    def call(self, x):
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        extra = self.filters - x.shape[-1]
        if extra > 0:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape

        def subsample(size):
            return None if size is None else (size + self.stride - 1) // self.stride

        return (batch, subsample(height), subsample(width), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}


def _channel_sum(t):
    """Sum over every axis but the last, as a [1, M] x [M, C] matrix product.

    On TensorFlow's CPU kernels this reads the tensor about three times faster than
    `ops.sum(t, axis=(0, 1, 2))` (a column reduction), with float32 accuracy.
    """
    flat = ops.reshape(t, (-1, t.shape[-1]))
    return ops.matmul(ops.ones((1, ops.shape(flat)[0]), dtype=t.dtype), flat)[0]


@functools.lru_cache(maxsize=None)
def _only_cpus():
    """True where TensorFlow sees no GPU or TPU: there float32 matrix products are exact float32
    sums, while a GPU may run them in TF32 (10-bit mantissa), too coarse for batch statistics."""
    return not any(device.lower().startswith(("gpu", "tpu")) for device in keras.distribution.list_devices())


def _batch_norm_train(x, gamma, beta, epsilon):
    """Batch-statistics normalisation with a hand-written gradient: (y, mean, variance).

    Forward as Keras': mean, biased variance (two passes), y = x * a + (beta - mean * a) with
    a = gamma / sqrt(variance + epsilon). Backward in closed form (Ioffe & Szegedy 2015, Section 3):
    dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)), i.e. dx = dy * a + x * c1 + c0 with per-channel
    c1, c0, instead of differentiating the moments op by op.
    """

    @ops.custom_gradient
    def normalize(x, gamma, beta):
        count = ops.cast(ops.size(x) // x.shape[-1], x.dtype)
        mean = _channel_sum(x) / count
        variance = _channel_sum(ops.square(x - mean)) / count
        inv_std = ops.rsqrt(variance + epsilon)
        a = gamma * inv_std
        y = x * a + (beta - mean * a)

        def grad(*upstream, **_):
            dy = upstream[0]  # the moments only feed the moving averages: no gradient
            sum_dy = _channel_sum(dy)
            mean_dy = sum_dy / count
            mean_dy_xhat = inv_std * (_channel_sum(dy * x) / count - mean * mean_dy)
            c1 = -a * mean_dy_xhat * inv_std
            c0 = -a * mean_dy - c1 * mean
            return dy * a + (x * c1 + c0), mean_dy_xhat * count, sum_dy

        return (y, mean, variance), grad

    return normalize(x, gamma, beta)


@keras.saving.register_keras_serializable(package="keras_resnet")
class FastBatchNormalization(layers.BatchNormalization):
    """keras.layers.BatchNormalization with a faster training step on the TensorFlow backend.

    Same arguments, weights, moving-average updates and inference. Keras 3 computes batch
    statistics with unfused ops (column reductions and their gradients op by op), which on a
    CPU makes batch norm a quarter of ResNet-50's training step; here the channel sums are matrix
    products and the gradient is written out (`_batch_norm_train`): on the 2-core CPU ResNet-50
    trains 1.32x as fast as keras.applications' (1.06x with Keras' batch norm; README, Benchmarks).
    GPUs (TF32 matrix products; fast reductions), other backends (XLA fuses the ops), masks, renorm,
    synchronized BN, other axes and inference use Keras' own code.
    """

    def _fast_path(self, inputs, training, mask):
        return (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and keras.backend.backend() == "tensorflow"
            and _only_cpus()
            and keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16", "float32")
            and list(self._reduction_axes) == list(range(len(inputs.shape) - 1))
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fast_path(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        # Statistics in float32 also under mixed precision, as Keras does.
        x = ops.cast(inputs, "float32")
        channels = x.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,), "float32")
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,), "float32")
        y, mean, variance = _batch_norm_train(x, gamma, beta, self.epsilon)
        momentum = self.momentum
        self.moving_mean.assign(ops.cast(self.moving_mean, "float32") * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(
            ops.cast(self.moving_variance, "float32") * momentum + variance * (1.0 - momentum)
        )
        return ops.cast(y, self.compute_dtype)


def crashes_tensorflow(channels, spatial, kernel_size, stride):
    """True for a conv that TensorFlow 2.21's oneDNN kernels crash on (segmentation fault, or
    "malloc_consolidate(): invalid chunk size") when *training* it: 1x1, stride 2 or more, 8 or fewer
    input channels, maps of 64 pixels or more (measured here: 2 to 8 channels at 64 to 128 pixels crash;
    12 or 16 channels, and 48-pixel maps, do not). Only narrow custom networks (width <= 8) at large
    inputs have such layers. False on other backends and with TF_ENABLE_ONEDNN_OPTS=0."""
    return (kernel_size == 1 and stride > 1 and channels is not None and channels <= 8
            and any(size is None or size >= 64 for size in spatial)
            and keras.backend.backend() == "tensorflow" and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0")


def layers_crashing_tensorflow(model):
    """Names of `model`'s convolutions that `crashes_tensorflow` (training refuses them up front)."""
    return [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)
            and crashes_tensorflow(layer.input.shape[-1], layer.input.shape[1:3], layer.kernel_size[0],
                                   layer.strides[0])]


def _warn_about_narrow_strided_1x1(x, kernel_size, stride):
    if crashes_tensorflow(x.shape[-1], x.shape[1:3], kernel_size, stride):
        warnings.warn(
            f"A 1x1 stride-{stride} convolution with {x.shape[-1]} input channels on {tuple(x.shape[1:3])} maps: "
            "TensorFlow 2.21's oneDNN kernels crash when training it (a TensorFlow bug). Use a width of at least "
            "12, smaller inputs, or set TF_ENABLE_ONEDNN_OPTS=0 before TensorFlow starts.", stacklevel=3)


def symmetric_padding(x, kernel_size, *, name):
    """Zero-pad (k - 1) // 2 pixels on every side, for a strided conv that then uses "valid".

    Keras' `padding="same"` pads a stride-2 3x3 conv by (0, 1) on an even-sized map (the extra
    row and column at the bottom and right), where the reference implementations (Caffe and
    fb.resnet.torch, PyTorch's `padding=1`, torchvision, keras.applications' ResNetV2) pad (1, 1):
    with "same" every window of a downsampling conv would be shifted by one pixel, and weights
    trained in those frameworks would not give their outputs. The output size is the same as
    "same" gives (ceil(size / stride)), so parameters and multiply-adds do not change. A strided
    1x1 conv needs no padding (both conventions pad 0) and a stride-1 "same" conv is symmetric.
    """
    return layers.ZeroPadding2D((kernel_size - 1) // 2, name=name)(x)


def conv_bn(
    x,
    filters,
    kernel_size,
    stride=1,
    *,
    prefix,
    index="",
    padding="same",
    activation=True,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    bn_synchronized=False,
    weight_decay=0.0,
    gamma_initializer="ones",
):
    """Conv (no bias: BN's offset makes it redundant) -> BN -> optional ReLU.

    Layers: `{prefix}_conv{index}`, `{prefix}_bn{index}`, `{prefix}_relu{index}`, for
    example `stage3_block2_conv1`; a strided conv wider than 1x1 is preceded by
    `{prefix}_pad{index}` (see `symmetric_padding`).
    """
    if padding == "same" and stride > 1 and kernel_size > 1:
        x = symmetric_padding(x, kernel_size, name=f"{prefix}_pad{index}")
        padding = "valid"
    _warn_about_narrow_strided_1x1(x, kernel_size, stride)
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding=padding,
        use_bias=False,
        kernel_initializer=conv_kernel_initializer(),
        kernel_regularizer=kernel_regularizer(weight_decay),
        name=f"{prefix}_conv{index}",
    )(x)
    x = FastBatchNormalization(
        momentum=bn_momentum,
        epsilon=bn_epsilon,
        gamma_initializer=gamma_initializer,
        synchronized=bn_synchronized,
        name=f"{prefix}_bn{index}",
    )(x)
    if activation:
        x = layers.ReLU(name=f"{prefix}_relu{index}")(x)
    return x


def _validate(filters, stride, shortcut, residual, zero_init_residual):
    if int(filters) < 1:
        raise ValueError(f"filters must be a positive integer. Received: filters={filters!r}")
    if int(stride) < 1:
        raise ValueError(f"stride must be a positive integer. Received: stride={stride!r}")
    if shortcut not in SHORTCUTS:
        raise ValueError(
            f"shortcut must be one of {SHORTCUTS} (paper Section 3.3). "
            f"Received: shortcut={shortcut!r}"
        )
    if zero_init_residual and not residual:
        raise ValueError(
            "zero_init_residual=True zeroes the last BN of the residual branch and needs "
            f"residual=True; a plain block would output zeros. Received: residual={residual!r}"
        )


def _merge(x, branch, filters, stride, *, shortcut, residual, name, bn_kwargs):
    """Add the shortcut to the branch, then ReLU (Section 3.2, Eq. 1-2); plain: ReLU only."""
    if not residual:
        return layers.ReLU(name=f"{name}_out")(branch)
    shape_changes = stride != 1 or x.shape[-1] != filters
    if shortcut == "C" or (shortcut == "B" and shape_changes):
        # Projection W_s x (Eq. 2): 1x1 conv + BN.
        identity = conv_bn(
            x, filters, 1, stride, prefix=f"{name}_shortcut", activation=False, **bn_kwargs
        )
    elif shape_changes:
        identity = ZeroPadShortcut(filters, stride, name=f"{name}_shortcut_pad")(x)
    else:
        identity = x
    y = layers.Add(name=f"{name}_add")([identity, branch])
    return layers.ReLU(name=f"{name}_out")(y)


def basic_block(
    x,
    filters,
    stride=1,
    *,
    shortcut="B",
    residual=True,
    zero_init_residual=False,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    bn_synchronized=False,
    weight_decay=0.0,
    name="block",
):
    """The two-layer residual block of Figure 2 (left of Figure 5): 3x3, 3x3.

    Args:
        x: input tensor, channels last.
        filters: output channels of both 3x3 convolutions.
        stride: stride of the first 3x3 convolution (2 at the first block of a stage).
        shortcut: "A" identity with zero padding, "B" projection where the shape
            changes, "C" projection everywhere (Section 3.3, Table 3).
        residual: False builds the plain counterpart (no shortcut, Section 4.1).
        zero_init_residual: start the branch's last BN gamma at 0, so the block begins
            as the identity (Goyal et al., arXiv:1706.02677).
        bn_momentum, bn_epsilon: BatchNormalization settings.
        bn_synchronized: batch statistics over all replicas of a distribution strategy
            (TensorFlow backend only), so training matches one device at the same batch.
        weight_decay: SGD-style weight decay on the kernels (see `kernel_regularizer`).
        name: prefix of every layer name.

    Returns:
        The block's output tensor with `filters` channels.
    """
    _validate(filters, stride, shortcut, residual, zero_init_residual)
    bn_kwargs = dict(
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        bn_synchronized=bn_synchronized,
        weight_decay=weight_decay,
    )
    y = conv_bn(x, filters, 3, stride, prefix=name, index=1, **bn_kwargs)
    y = conv_bn(
        y,
        filters,
        3,
        prefix=name, index=2,
        activation=False,
        gamma_initializer="zeros" if zero_init_residual else "ones",
        **bn_kwargs,
    )
    return _merge(
        x, y, filters, stride, shortcut=shortcut, residual=residual, name=name, bn_kwargs=bn_kwargs
    )


def bottleneck_block(
    x,
    filters,
    stride=1,
    expansion=4,
    *,
    shortcut="B",
    residual=True,
    stride_in="1x1",
    zero_init_residual=False,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    bn_synchronized=False,
    weight_decay=0.0,
    name="block",
):
    """The three-layer bottleneck block of Figure 5 (right): 1x1 reduce, 3x3, 1x1 expand.

    Args:
        x: input tensor, channels last.
        filters: width of the 1x1 and 3x3 convolutions; the block outputs
            `filters * expansion` channels.
        stride: spatial stride of the block (2 at the first block of a stage).
        expansion: output channels per bottleneck channel (4 in the paper).
        shortcut, residual, zero_init_residual, bn_momentum, bn_epsilon, weight_decay,
            name: as in `basic_block`.
        stride_in: "1x1" puts the stride on the first 1x1 convolution (the paper, v1,
            keras.applications); "3x3" puts it on the 3x3 (v1.5, torchvision), which
            costs more multiply-adds and is about 0.5% more accurate.

    Returns:
        The block's output tensor with `filters * expansion` channels.
    """
    _validate(filters, stride, shortcut, residual, zero_init_residual)
    if stride_in not in STRIDE_IN:
        raise ValueError(f"stride_in must be one of {STRIDE_IN}. Received: stride_in={stride_in!r}")
    if int(expansion) < 1:
        raise ValueError(f"expansion must be a positive integer. Received: expansion={expansion!r}")
    bn_kwargs = dict(
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        bn_synchronized=bn_synchronized,
        weight_decay=weight_decay,
    )
    stride_1x1, stride_3x3 = (stride, 1) if stride_in == "1x1" else (1, stride)
    out_filters = filters * expansion
    y = conv_bn(x, filters, 1, stride_1x1, prefix=name, index=1, **bn_kwargs)
    y = conv_bn(y, filters, 3, stride_3x3, prefix=name, index=2, **bn_kwargs)
    y = conv_bn(
        y,
        out_filters,
        1,
        prefix=name, index=3,
        activation=False,
        gamma_initializer="zeros" if zero_init_residual else "ones",
        **bn_kwargs,
    )
    return _merge(
        x,
        y,
        out_filters,
        stride,
        shortcut=shortcut,
        residual=residual,
        name=name,
        bn_kwargs=bn_kwargs,
    )
