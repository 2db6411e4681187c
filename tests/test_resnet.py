import ast
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_resnet import ResNet, build_cifar_resnet, build_resnet, count_trainable_params, feature_pyramid
from keras_resnet.resnet import RESNET_SPECS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**kwargs):
    """A five-stage ImageNet-layout ResNet small enough for every test."""
    arguments = dict(stage_repeats=(1, 1, 1, 1), block_type="basic", width=4, input_shape=(32, 32, 3), num_classes=3)
    return build_resnet(**{**arguments, **kwargs})


# REFERENCE.md: trainable counts equal torchvision's num_params (option B, no conv bias).
IMAGENET_TRAINABLE = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
IMAGENET_TOTAL = {18: 11_699_112, 34: 21_814_696, 50: 25_610_152, 101: 44_654_504, 152: 60_344_232}
CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


@pytest.mark.parametrize("depth", sorted(IMAGENET_TRAINABLE))
def test_imagenet_parameter_counts_are_exact(depth):
    model = build_resnet(depth)
    assert count_trainable_params(model) == IMAGENET_TRAINABLE[depth]
    assert model.count_params() == IMAGENET_TOTAL[depth]
    assert model.depth == depth


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS))
def test_cifar_parameter_counts_are_exact(depth):
    model = build_cifar_resnet(depth)
    assert count_trainable_params(model) == CIFAR_PARAMS[depth]
    assert model.depth == depth
    assert model.output.shape == (None, 10)


def test_option_a_adds_no_parameters_and_c_adds_more_than_b():
    plain = count_trainable_params(build_resnet(34, residual=False))
    a, b, c = (count_trainable_params(build_resnet(34, shortcut=s)) for s in "ABC")
    assert a == plain
    assert plain < b < c
    assert count_trainable_params(build_cifar_resnet(20, residual=False)) == CIFAR_PARAMS[20]


def test_stage_output_sizes_follow_table_1():
    model = build_resnet(stage_repeats=(1, 1, 1, 1), width=4)
    sizes = [model.get_layer(f"stage{i}_out").output.shape[1:3] for i in range(1, 6)]
    assert sizes == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert model.stage_names == ["stage1", "stage2", "stage3", "stage4", "stage5"]


def test_cifar_stage_output_sizes():
    model = build_cifar_resnet(20, width=4)
    sizes = [model.get_layer(f"stage{i}_out").output.shape[1:] for i in range(1, 5)]
    assert sizes == [(32, 32, 4), (32, 32, 4), (16, 16, 8), (8, 8, 16)]


@pytest.mark.parametrize("size", [(64, 64), (96, 160)])
def test_any_input_size_without_top(size):
    model = tiny(input_shape=(None, None, 3), include_top=False)
    out = model(np.zeros((1, *size, 3), "float32"))
    assert out.shape == (1, size[0] // 32, size[1] // 32, 32)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 1, 1, 32)), ("avg", (None, 32)), ("max", (None, 32))])
def test_pooling(pooling, shape):
    assert tiny(include_top=False, pooling=pooling).output.shape == shape


def test_classifier_activation_none_gives_logits(rng):
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    probs = np.asarray(tiny()(x))
    logits = np.asarray(tiny(classifier_activation=None)(x))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert not np.allclose(logits.sum(-1), 1.0)


def test_hierarchical_names_and_no_bias_before_bn():
    model = build_resnet(18, input_shape=(64, 64, 3))
    names = {layer.name for layer in model.layers}
    assert {"stage3_block2_conv1", "stage5_block1_shortcut_bn", "predictions"} <= names
    assert "stage2_block1_shortcut_conv" not in names  # 64 -> 64 channels, stride 1: identity
    assert all(not l.use_bias for l in model.layers if isinstance(l, keras.layers.Conv2D))
    features = keras.Model(model.input, model.get_layer("stage4_out").output)
    assert features.output.shape == (None, 4, 4, 256)


def test_zero_init_residual_weight_decay_and_bn_settings():
    model = tiny(zero_init_residual=True, weight_decay=2e-4, bn_momentum=0.97, bn_epsilon=1e-3)
    last_bns = [l for l in model.layers if l.name.endswith("_bn2") and "block" in l.name]
    assert last_bns and all(np.all(np.asarray(l.gamma) == 0) for l in last_bns)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert all(l.momentum == 0.97 and l.epsilon == 1e-3 for l in bns)
    kernels = [l.kernel for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(model.losses) == len(kernels)
    expected = 1e-4 * sum(float(np.sum(np.square(k))) for k in kernels)  # weight_decay / 2 * |w|^2
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)


def test_zero_init_zeroes_exactly_the_last_gamma_of_each_residual_branch():
    """Goyal et al.: the branch's *last* BN gamma starts at 0 (a zero first gamma would also zero the
    branch, but the block would then not start as the identity of its input's statistics)."""
    for model, last in ((tiny(zero_init_residual=True), "bn2"),
                        (tiny(zero_init_residual=True, block_type="bottleneck"), "bn3")):
        for layer in model.layers:
            if not isinstance(layer, keras.layers.BatchNormalization):
                continue
            gamma = np.asarray(layer.gamma)
            in_branch = "_block" in layer.name and "shortcut" not in layer.name
            expected = 0.0 if in_branch and layer.name.endswith(last) else 1.0
            assert np.all(gamma == expected), layer.name
    assert all(np.all(np.asarray(l.gamma) == 1) for l in tiny().layers if isinstance(l, keras.layers.BatchNormalization))


def test_bottleneck_expansion_sets_the_output_channels():
    """A block outputs filters * expansion channels (the paper's 4, or any other), also through a ResNet."""
    from keras_resnet import bottleneck_block

    for expansion in (2, 4, 5):
        inputs = keras.Input((8, 8, 6))
        outputs = bottleneck_block(inputs, 3, stride=2, expansion=expansion, name="b")
        block = keras.Model(inputs, outputs)
        assert outputs.shape[-1] == 3 * expansion
        assert block.get_layer("b_conv3").filters == 3 * expansion
        assert block.get_layer("b_shortcut_conv").filters == 3 * expansion
    model = ResNet(**{**NON_DEFAULT, "expansion": 3, "include_top": False})
    assert [model.get_layer(f"stage{i}_out").output.shape[-1] for i in (2, 3)] == [4 * 3, 8 * 3]


def test_defaults_without_top_take_any_size_as_keras_applications_does():
    assert build_resnet(18, include_top=False).input_shape == (None, None, None, 3)
    assert build_cifar_resnet(20, include_top=False).input_shape == (None, None, None, 3)
    assert build_resnet(18).input_shape == (None, 224, 224, 3)
    assert build_cifar_resnet(20).input_shape == (None, 32, 32, 3)


def test_input_tensor_as_in_keras_applications(rng):
    image = keras.Input((64, 48, 3), name="photo")
    model = build_resnet(18, input_tensor=image, include_top=False, pooling="avg")
    assert model.inputs[0] is image and model.input_shape == (None, 64, 48, 3)
    scaled = keras.layers.Rescaling(2.0)(image)  # a tensor inside another graph: its source is the input
    wrapped = build_resnet(18, input_tensor=scaled, include_top=False, pooling="avg")
    assert wrapped.inputs[0] is image
    wrapped.set_weights(model.get_weights())
    x = rng.uniform(0, 1, (1, 64, 48, 3)).astype("float32")
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), model.predict(2 * x, verbose=0), rtol=1e-5, atol=1e-6)
    assert wrapped.get_config()["input_shape"] == [64, 48, 3]


def test_preprocessing_layer_normalises_raw_pixels():
    model = tiny(preprocessing={"mean": [100.0, 110.0, 120.0], "std": [50.0, 60.0, 70.0]})
    layer = model.get_layer("preprocessing")
    out = np.asarray(layer(np.full((1, 2, 2, 3), 170.0, "float32")))
    np.testing.assert_allclose(out[0, 0, 0], [70 / 50, 60 / 60, 50 / 70], rtol=1e-6)


NON_DEFAULT = dict(
    block_type="bottleneck",
    stage_repeats=[1, 2],
    stage_widths=[4, 8],
    stem="cifar",
    stem_width=6,
    input_shape=[16, 16, 1],
    num_classes=5,
    include_top=True,
    pooling="max",
    classifier_activation=None,
    shortcut="C",
    residual=True,
    stride_in="3x3",
    expansion=2,
    zero_init_residual=True,
    bn_momentum=0.8,
    bn_epsilon=0.002,
    bn_synchronized=True,
    weight_decay=3e-4,
    preprocessing={"mean": [10.0], "std": [20.0]},
    name="custom",
    trainable=True,
    eval_transform={"resize": 18, "crop": [16, 16], "interpolation": "bicubic"},
    dtype_policy="mixed_bfloat16",
)


def test_config_round_trip_with_non_default_values():
    model = ResNet(**NON_DEFAULT)
    config = model.get_config()
    assert config == NON_DEFAULT
    rebuilt = ResNet.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights]
    assert [l.name for l in rebuilt.layers] == [l.name for l in model.layers]


def test_keras_file_round_trip_with_safe_mode(tmp_path, rng):
    model = ResNet(**{**NON_DEFAULT, "stem": "imagenet", "input_shape": [32, 32, 1], "stage_repeats": [1, 1],
                      "shortcut": "A", "eval_transform": "timm-a1"})
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, ResNet) and loaded.get_config() == model.get_config()
    x = rng.uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: build_resnet(42), "depth=42"),
        (lambda: build_cifar_resnet(21), "depth=21"),
        (lambda: build_resnet(18, shortcut="D"), "shortcut='D'"),
        (lambda: build_cifar_resnet(20, shortcut="D"), "shortcut='D'"),
        (lambda: build_resnet(18, num_classes=0), "num_classes=0"),
        (lambda: build_resnet(18, input_shape=(16, 16, 3)), r"input_shape=\(16, 16, 3\).*at least 32"),
        (lambda: build_cifar_resnet(20, input_shape=(2, 2, 3)), r"at least 4"),
        (lambda: build_resnet(18, pooling="sum"), "pooling='sum'"),
        (lambda: build_resnet(18, preprocessing="caffe2"), "preprocessing='caffe2'"),
        (lambda: build_resnet(50, stride_in="2x2"), "stride_in='2x2'"),
        # Type errors name the argument too.
        (lambda: build_resnet(18, input_shape=224), r"input_shape must be \(height, width, channels\). Received: "
                                                     r"input_shape=224"),
        (lambda: build_resnet(18, input_shape=(64, 64, 0)), r"positive integers.*input_shape=\(64, 64, 0\)"),
        (lambda: build_resnet(18, input_shape=(64.0, 64, 3)), r"input_shape=\(64.0, 64, 3\)"),
        (lambda: build_resnet(18, preprocessing={"mean": [1, 2, 3]}), r"'mean' and 'std'.*Received: preprocessing="),
        (lambda: build_resnet(18, preprocessing={"mean": "a", "std": [1]}), r"Received: preprocessing="),
        (lambda: build_resnet(18, weights=123), "weights must be None, 'imagenet' or the path of a weights file. "
                                                "Received: weights=123"),
        (lambda: build_resnet("50"), "depth='50'"),
        (lambda: build_resnet(18, bn_momentum=1.5), "bn_momentum=1.5"),
        (lambda: build_resnet(18, bn_epsilon=0), "bn_epsilon=0"),
        (lambda: build_resnet(stage_repeats=("a",)), "stage_repeats"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, match):
    with pytest.raises(ValueError, match=match):
        build()


MODEL_MODULES = ("blocks.py", "resnet.py", "registry.py", "analysis.py", "baselines.py")


@pytest.mark.parametrize("module", MODEL_MODULES)
def test_model_code_never_imports_tensorflow(module):
    tree = ast.parse(open(os.path.join(ROOT, "keras_resnet", module)).read())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imported if m.split(".")[0] == "tensorflow"]


JAX_SCRIPT = """
import sys, numpy as np, keras
assert keras.backend.backend() == "jax"
from keras_resnet import build_resnet, build_cifar_resnet, count_macs
model = build_resnet(stage_repeats=(1, 1, 1, 1), block_type="basic", width=4, input_shape=(32, 32, 3), num_classes=3, shortcut="A")
model.load_weights(sys.argv[1])
np.save(sys.argv[2], np.asarray(model(np.load(sys.argv[3]), training=False)))
print(model.count_params(), count_macs(build_cifar_resnet(20)))
"""


def test_same_model_code_builds_and_agrees_under_jax(tmp_path, rng):
    pytest.importorskip("jax")
    keras.utils.set_random_seed(0)  # fixed weights: the comparison below is not a draw
    model = tiny(shortcut="A")
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    model.save_weights(tmp_path / "w.weights.h5")
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "w.weights.h5"), str(tmp_path / "y.npy"), str(tmp_path / "x.npy")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    params, macs = map(int, result.stdout.split()[-2:])
    assert params == model.count_params()
    assert macs == 40_551_040
    # Two backends' float32 convolutions (oneDNN, XLA) round differently: 1e-4 relative.
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)


def test_spec_table_is_table_1():
    assert RESNET_SPECS[152] == ("bottleneck", (3, 8, 36, 3))
    assert {d: 2 * sum(r) + 2 if b == "basic" else 3 * sum(r) + 2 for d, (b, r) in RESNET_SPECS.items()} == {
        d: d for d in RESNET_SPECS
    }


def test_pyramid_outputs_strides_4_to_32_at_a_non_square_input(rng):
    """keras-hub's pyramid_outputs convention: P{N} is stage{N}_out, at stride 2**N on the ImageNet layout."""
    model = tiny(include_top=False, input_shape=(None, None, 3))
    assert list(model.pyramid_outputs) == ["P2", "P3", "P4", "P5"]
    pyramid = feature_pyramid(model)
    outputs = pyramid(rng.uniform(0, 255, (2, 96, 160, 3)).astype("float32"))
    assert sorted(outputs) == ["P2", "P3", "P4", "P5"]
    for level, stride, channels in zip((2, 3, 4, 5), (4, 8, 16, 32), (4, 8, 16, 32)):
        assert tuple(outputs[f"P{level}"].shape) == (2, 96 // stride, 160 // stride, channels)
    x = rng.uniform(0, 255, (1, 96, 160, 3)).astype("float32")  # the same layers and weights as the model
    np.testing.assert_allclose(np.asarray(pyramid(x)["P5"]), np.asarray(model(x)), atol=1e-6)
    # A model with a new head (transfer.replace_head) keeps its stage layers; CIFAR's stages are P2..P4.
    from keras_resnet.transfer import replace_head

    assert sorted(feature_pyramid(replace_head(model, 3)).output) == ["P2", "P3", "P4", "P5"]
    cifar = build_cifar_resnet(8, width=4, include_top=False, input_shape=(32, 32, 3))
    assert {k: tuple(v.shape[1:3]) for k, v in cifar.pyramid_outputs.items()} == {
        "P2": (32, 32), "P3": (16, 16), "P4": (8, 8)}
    with pytest.raises(ValueError, match="no stage outputs"):
        feature_pyramid(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_resnet_takes_keyword_arguments_only():
    """Positional arguments are refused (a stage list would land in dtype_policy), and keras.models.clone_model
    rebuilds the graph instead of calling ResNet(inputs, outputs) as a Functional subclass."""
    with pytest.raises(TypeError, match="positional argument"):
        ResNet("basic", (1, 1, 1))
    model = ResNet(block_type="basic", stage_repeats=(1, 1, 1), stage_widths=(4, 8, 16), stem="cifar",
                   input_shape=(8, 8, 1), num_classes=3)
    clone = keras.models.clone_model(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 1)).astype("float32")
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
