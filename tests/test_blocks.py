import keras
import numpy as np
import pytest

from keras_resnet import FastBatchNormalization, ZeroPadShortcut, basic_block, bottleneck_block
from keras_resnet.blocks import conv_bn


def block_model(block, shape, filters, stride=1, **kwargs):
    inputs = keras.Input(shape)
    return keras.Model(inputs, block(inputs, filters, stride, name="b", **kwargs))


def layer_names(model):
    return {layer.name for layer in model.layers}


@pytest.mark.parametrize(
    "block, filters, shortcut",
    [(basic_block, 8, "A"), (basic_block, 8, "B"), (bottleneck_block, 2, "B"), (basic_block, 8, "C")],
)
def test_zero_residual_branch_computes_relu_of_input(rng, block, filters, shortcut):
    """Section 3.1: with F(x) = 0 the block is the identity mapping followed by ReLU."""
    model = block_model(block, (6, 6, 8), filters, shortcut=shortcut, zero_init_residual=True)
    if shortcut == "C":
        # Make the projection an identity too, so only the residual branch is tested.
        model.get_layer("b_shortcut_conv").kernel.assign(np.eye(8, dtype="float32")[None, None])
    x = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    out = model(x, training=False)
    # BN in inference divides by sqrt(1 + epsilon): a relative 5e-6 on the projection.
    np.testing.assert_allclose(out, np.maximum(x, 0.0), rtol=1e-5 if shortcut == "C" else 0)
    assert np.any(x < 0)


def test_option_a_subsamples_and_zero_pads_channels(rng):
    model = block_model(basic_block, (6, 6, 4), 8, stride=2, shortcut="A", zero_init_residual=True)
    x = rng.normal(size=(2, 6, 6, 4)).astype("float32")
    out = np.asarray(model(x, training=False))
    assert out.shape == (2, 3, 3, 8)
    np.testing.assert_array_equal(out[..., :4], np.maximum(x[:, ::2, ::2, :], 0))
    np.testing.assert_array_equal(out[..., 4:], 0.0)


def test_option_a_has_no_parameters_and_matches_conv_output_size():
    layer = ZeroPadShortcut(16, 2)
    assert layer.compute_output_shape((None, 7, 9, 8)) == (None, 4, 5, 16)
    assert np.asarray(layer(np.ones((1, 7, 9, 8), "float32"))).shape == (1, 4, 5, 16)
    assert not layer.weights


@pytest.mark.parametrize(
    "shortcut, stride, filters, projection",
    [("A", 1, 8, False), ("A", 2, 16, False), ("B", 1, 8, False), ("B", 2, 16, True), ("C", 1, 8, True)],
)
def test_projection_only_where_the_option_says(shortcut, stride, filters, projection):
    model = block_model(basic_block, (8, 8, 8), filters, stride, shortcut=shortcut)
    assert ("b_shortcut_conv" in layer_names(model)) == projection
    assert ("b_shortcut_pad" in layer_names(model)) == (shortcut == "A" and stride == 2)


def test_plain_block_has_no_shortcut_and_ends_in_relu():
    model = block_model(bottleneck_block, (8, 8, 16), 4, residual=False)
    names = layer_names(model)
    assert "b_add" not in names and not any("shortcut" in n for n in names)
    assert isinstance(model.layers[-1], keras.layers.ReLU)


@pytest.mark.parametrize("stride_in, strided", [("1x1", "b_conv1"), ("3x3", "b_conv2")])
def test_bottleneck_stride_placement(stride_in, strided):
    model = block_model(bottleneck_block, (8, 8, 16), 4, 2, stride_in=stride_in)
    convs = {l.name: l.strides[0] for l in model.layers if isinstance(l, keras.layers.Conv2D)}
    assert convs[strided] == 2
    assert sum(s == 2 for n, s in convs.items() if "shortcut" not in n) == 1
    assert model.output.shape == (None, 4, 4, 16)


def test_block_layer_names_and_no_conv_bias():
    inputs = keras.Input((8, 8, 16))
    out = bottleneck_block(inputs, 4, 2, name="stage3_block2")
    model = keras.Model(inputs, out)
    names = layer_names(model)
    for expected in ("stage3_block2_conv1", "stage3_block2_bn3", "stage3_block2_shortcut_conv",
                     "stage3_block2_shortcut_bn", "stage3_block2_add", "stage3_block2_out"):
        assert expected in names
    assert all(not l.use_bias for l in model.layers if isinstance(l, keras.layers.Conv2D))
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 4 and all(isinstance(l, FastBatchNormalization) for l in bns)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(shortcut="D"), "shortcut='D'"),
        (dict(stride_in="2x2"), "stride_in='2x2'"),
        (dict(residual=False, zero_init_residual=True), "residual=False"),
    ],
)
def test_bad_block_arguments_name_argument_and_value(kwargs, argument):
    with pytest.raises(ValueError, match=argument.replace("(", r"\(")):
        block_model(bottleneck_block, (8, 8, 16), 4, **kwargs)


def batchnorm_step(layer, x, weights):
    """Training-mode output, gradients (x, gamma, beta) of a weighted sum, and moving statistics."""
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [np.asarray(t, dtype="float64") for t in (y, *grads, layer.moving_mean, layer.moving_variance)]


@pytest.mark.parametrize("shape", [(4, 5, 5, 6), (16, 6)])
def test_fast_batchnorm_trains_like_keras_batchnorm(rng, shape):
    """Same outputs, gradients and moving averages as keras.layers.BatchNormalization in training,
    for off-centre inputs and a channel with gamma = 0 (zero_init_residual)."""
    x = rng.normal(3.0, 2.0, shape).astype("float32")
    weights = rng.normal(size=shape).astype("float32")
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype("float32")
    gamma[0] = 0.0
    initial = [gamma, rng.normal(0, 0.2, shape[-1]), rng.normal(0, 0.2, shape[-1]), rng.uniform(0.5, 2, shape[-1])]
    layers = [FastBatchNormalization(momentum=0.9, epsilon=1e-5), keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)]
    results = []
    for layer in layers:
        layer.build(shape)
        layer.set_weights(initial)
        results.append(batchnorm_step(layer, x, weights))
    assert layers[0]._fast_path(x, True, None)
    for name, ours, reference in zip(("y", "dx", "dgamma", "dbeta", "moving_mean", "moving_var"), *results):
        scale = max(np.abs(reference).max(), 1e-3)
        assert np.abs(ours - reference).max() / scale < 2e-5, name
    assert np.abs(results[0][1]).max() > 0  # gradients flow


def test_fast_batchnorm_uses_keras_code_outside_training(rng):
    """Inference, frozen layers, synchronized BN and masks take Keras' path: the same numbers exactly."""
    x = rng.normal(1.0, 2.0, (4, 3, 3, 5)).astype("float32")
    layer = FastBatchNormalization()
    layer.build(x.shape)
    layer.set_weights([rng.uniform(0.5, 1.5, 5), rng.normal(size=5), rng.normal(size=5), rng.uniform(0.5, 2, 5)])
    reference = keras.layers.BatchNormalization()
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x, training=False), reference(x, training=False))
    assert layer._fast_path(x, True, None)
    layer.trainable = reference.trainable = False
    np.testing.assert_array_equal(layer(x, training=True), reference(x, training=True))
    assert not layer._fast_path(x, True, None)
    assert not FastBatchNormalization(synchronized=True)._fast_path(x, True, None)
    assert not layer._fast_path(x, True, np.ones((4, 3, 3), bool))


@pytest.mark.parametrize("block, filters, stride_in, padded", [
    (basic_block, 8, None, "b_pad1"), (bottleneck_block, 2, "3x3", "b_pad2"), (bottleneck_block, 2, "1x1", None)])
def test_strided_convs_pad_symmetrically(block, filters, stride_in, padded):
    """A strided 3x3 conv pads one pixel on every side, as PyTorch's padding=1 (Keras' "same" would pad (0, 1)
    on an even map); a strided 1x1 conv needs none. Shapes and weights are those of "same"."""
    kwargs = {"stride_in": stride_in} if stride_in else {}
    model = block_model(block, (8, 8, 8), filters, 2, **kwargs)
    pads = {l.name: l.padding for l in model.layers if isinstance(l, keras.layers.ZeroPadding2D)}
    assert pads == ({padded: ((1, 1), (1, 1))} if padded else {})
    strided = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.strides == (2, 2)]
    assert [l.padding for l in strided if l.kernel_size == (3, 3)] == (["valid"] if padded else [])
    assert model.output.shape == (None, 4, 4, 8)


def test_strided_conv_windows_are_centred_on_even_pixels(rng):
    """With a kernel that copies its centre pixel, a stride-2 3x3 conv on an 8x8 map returns x[::2, ::2] (the
    windows PyTorch uses); Keras' "same" would return x[1::2, 1::2]."""
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, conv_bn(inputs, 3, 3, 2, prefix="b", index=1, activation=False))
    kernel = np.zeros((3, 3, 3, 3), "float32")
    kernel[1, 1] = np.eye(3)
    model.get_layer("b_conv1").set_weights([kernel])
    model.get_layer("b_bn1").set_weights([np.ones(3), np.zeros(3), np.zeros(3), np.ones(3) - 1e-5])  # identity
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x, training=False)), x[:, ::2, ::2], rtol=1e-5, atol=1e-6)


def test_narrow_strided_projections_warn_about_the_tensorflow_crash():
    """Training a 1x1 stride-2 conv with <= 8 input channels on maps of 64+ pixels crashes TF 2.21's oneDNN
    kernels (a segmentation fault, measured): the builders say so instead of letting the process die."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        block_model(basic_block, (64, 64, 4), 8, stride=2, shortcut="B")
        block_model(basic_block, (32, 32, 4), 8, stride=2, shortcut="B")  # small maps: fine
        block_model(basic_block, (64, 64, 16), 32, stride=2, shortcut="B")  # wide enough: fine
    messages = [str(w.message) for w in caught if "oneDNN" in str(w.message)]
    assert len(messages) == 1 and "1x1 stride-2 convolution with 4 input channels on (64, 64) maps" in messages[0]
