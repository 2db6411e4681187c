"""torchvision and timm ResNet state dicts in our builders, checked against PyTorch itself.

Each test builds the PyTorch model with random weights and randomised BN statistics, saves its state
dict as .pth and .safetensors, loads the file through `build_resnet(depth, weights=FILE)` and compares
our softmax on raw 0-255 pixels with PyTorch's on the normalised image (torchvision's
ImageClassification preset: x / 255, minus the ImageNet mean, over the std).
"""

import importlib
import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import keras_resnet as kr
from keras_resnet import checkpoints, export, images, specs, transfer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # torchvision's ImageNet values
# 224: every strided conv sees an even map, where Keras' "same" padding would pad (0, 1), not (1, 1).
# 199x167: odd sizes; the maps inside are odd and even (199 -> 100 -> 50 -> 25 -> 13).
SIZES = [(224, 224), (199, 167)]


def require(module):
    """Import `module`; skip without it, except in CI (.ci/run sets CI=true), where `make test` installs the
    `test` extra (pyproject.toml) and a missing package must fail, not skip."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


# The CUDA torch wheel's triton (a GPU kernel compiler, unused here) crashes the process when its LLVM loads after
# TensorFlow's, which conftest has imported: torchvision and timm import it through torch._dynamo. Torch works
# without it (torch.utils._triton.has_triton_package() is then False).
sys.modules.setdefault("triton", None)
torch = require("torch")
torchvision = require("torchvision")
safetensors_torch = require("safetensors.torch")


def randomized(model, seed):
    """`model` in eval mode with random BN gamma, beta and running statistics (conv and fc weights are
    random already), the fc scaled so the logits spread over several units: a softmax that is neither
    uniform nor one-hot, so the comparison means something."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
            if isinstance(module, torch.nn.Linear):
                module.bias.copy_(torch.randn(module.out_features, generator=generator) * 0.1)
    return model.eval()


def scale_logits(model, pixels, target_std=3.0):
    """Scale the fc weights so the logits on `pixels` have standard deviation `target_std` (random deep
    networks otherwise give logits spread over tens of units: a one-hot softmax would hide differences)."""
    with torch.no_grad():
        model.fc.weight.mul_(target_std / float(torch_logits(model, pixels).std()))
    return model


def save_both(model, folder, stem):
    """The model's state dict as `stem`.pth (torch.save) and `stem`.safetensors."""
    state = model.state_dict()
    pth, safetensors_file = str(folder / f"{stem}.pth"), str(folder / f"{stem}.safetensors")
    torch.save(state, pth)
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, safetensors_file)
    return pth, safetensors_file


def normalised(pixels):
    """Raw 0-255 NHWC pixels -> what torchvision's ImageNet transforms give the model: NCHW, normalised."""
    return torch.from_numpy(((pixels / 255.0 - MEAN) / STD).astype("float32").transpose(0, 3, 1, 2))


def torch_logits(model, pixels):
    with torch.no_grad():
        return model(normalised(pixels))


def torch_softmax(model, pixels):
    return torch.softmax(torch_logits(model, pixels), -1).numpy()


def pixels_of(rng, size, n=2):
    return rng.uniform(0, 255, (n, *size, 3)).astype("float32")


def assert_same_weights(a, b):
    assert [w.path for w in a.weights] == [w.path for w in b.weights]
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def check_parity(torch_model, ours, batches, tolerance=1e-4):
    """Max |softmax difference| per image size ({size: pixels}); asserts it is within `tolerance`, and that
    the softmax is neither flat nor one-hot."""
    differences = {}
    for size, pixels in batches.items():
        expected = torch_softmax(torch_model, pixels)
        assert 0.01 < expected.max() < 0.95  # uniform would be 0.001
        got = np.asarray(ours(pixels, training=False))
        differences[size] = float(np.abs(got - expected).max())
        assert differences[size] < tolerance, (size, differences[size])
        np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))
    return differences


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_torchvision_state_dicts_load_exactly(depth, tmp_path, rng):
    """Both file formats load to the same weights; the model agrees with torchvision at 224 and at an odd size."""
    torch.manual_seed(depth)
    reference = randomized(getattr(torchvision.models, f"resnet{depth}")(), seed=depth)
    batches = {size: pixels_of(rng, size) for size in SIZES}
    scale_logits(reference, batches[SIZES[0]])
    pth, safetensors_file = save_both(reference, tmp_path, f"resnet{depth}")
    ours = kr.build_resnet(depth, weights=safetensors_file, input_shape=(None, None, 3))
    assert (ours.preprocessing, ours.bn_epsilon, ours.num_classes, ours.eval_transform) == (
        "imagenet", 1e-5, 1000, "torchvision-v1")
    assert ours.stride_in == ("3x3" if depth >= 50 else "1x1")  # v1.5; basic blocks have no choice
    assert kr.count_trainable_params(ours) == sum(p.numel() for p in reference.parameters())
    assert_same_weights(ours, kr.build_resnet(depth, weights=pth, input_shape=(None, None, 3)))
    differences = check_parity(reference, ours, batches)
    print(f"ResNet-{depth}: max softmax difference {differences}")


@pytest.mark.parametrize("name, depth", [("resnet18", 18), ("resnet50", 50)])
def test_timm_state_dicts_load_exactly(name, depth, tmp_path, rng):
    timm = require("timm")
    torch.manual_seed(1000 + depth)  # other weights than the torchvision test's
    reference = randomized(timm.create_model(name, pretrained=False), seed=1000 + depth)
    batches = {size: pixels_of(rng, size) for size in SIZES}
    scale_logits(reference, batches[SIZES[0]])
    pth, safetensors_file = save_both(reference, tmp_path, name)
    ours = kr.build_resnet(depth, weights=pth, input_shape=(None, None, 3), eval_transform="timm-a1")
    assert ours.eval_transform == "timm-a1"
    assert_same_weights(ours, kr.build_resnet(depth, weights=safetensors_file, input_shape=(None, None, 3)))
    differences = check_parity(reference, ours, batches)
    print(f"timm {name}: max softmax difference {differences}")


# --- small models: the loader's rules, the transform, export, the script ---------------------------------


def tiny_torch(block="basic", **kwargs):
    """torchvision's ResNet class with one block per stage (width 64 as torchvision fixes it)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    torch.manual_seed(0)
    return randomized(ResNet({"basic": BasicBlock, "bottleneck": Bottleneck}[block], [1, 1, 1, 1], **kwargs), seed=1)


def tiny_ours(weights, block="basic", **kwargs):
    arguments = dict(depth=None, stage_repeats=(1, 1, 1, 1), block_type=block, input_shape=(64, 64, 3), weights=weights)
    return kr.build_resnet(**{**arguments, **kwargs})


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """{"basic"/"bottleneck": (torch model, .pth, .safetensors)} with 10 classes."""
    folder = tmp_path_factory.mktemp("tiny")
    return {block: (model, *save_both(model, folder, block))
            for block, model in ((b, tiny_torch(b, num_classes=10)) for b in ("basic", "bottleneck"))}


def test_file_decides_head_preprocessing_and_stride_and_backbone_only(tiny_files, rng):
    reference, pth, safetensors_file = tiny_files["bottleneck"]
    ours = tiny_ours(safetensors_file, "bottleneck")
    assert (ours.num_classes, ours.stride_in, ours.preprocessing) == (10, "3x3", "imagenet")
    check_parity(reference, ours, {(64, 64): pixels_of(rng, (64, 64))}, tolerance=1e-5)
    backbone = tiny_ours(pth, "bottleneck", include_top=False, input_shape=(None, None, 3))
    pixels = pixels_of(rng, (96, 160))
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(reference.children())[:-2])  # up to layer4
        expected = trunk(normalised(pixels)).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(backbone(pixels, training=False))
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    # Arguments equal to what the file holds are fine.
    tiny_ours(safetensors_file, "bottleneck", stride_in="3x3", num_classes=10, preprocessing="imagenet",
              bn_epsilon=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride_in="1x1"), r"stride_in='1x1' contradicts weights='.*bottleneck.safetensors', which were trained "
                            r"with stride_in='3x3'"),
    (dict(num_classes=5), r"have a 10-class head; with include_top=True num_classes must be 10. Received: "
                          r"num_classes=5"),
    (dict(stage_repeats=(1, 1, 2, 1)), r"stage_repeats=\[1, 1, 2, 1\] does not match weights=.*which hold a ResNet "
                                       r"with bottleneck blocks \[1, 1, 1, 1\]"),
    (dict(block_type="basic"), r"does not match weights=.*which hold a ResNet with bottleneck blocks"),
    (dict(preprocessing="caffe"), r"preprocessing='caffe' contradicts .* preprocessing='imagenet'"),
    (dict(bn_epsilon=1e-3), r"bn_epsilon=0.001 contradicts .* bn_epsilon=1e-05"),
    (dict(shortcut="A"), r"shortcut='A' contradicts .* shortcut='B'"),
    (dict(width=32), r"width=32 contradicts .* width=64"),
])
def test_arguments_that_contradict_the_file_are_named(tiny_files, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_ours(tiny_files["bottleneck"][2], "bottleneck", **kwargs)


def test_depth_that_does_not_match_the_file(tiny_files, tmp_path):
    with pytest.raises(ValueError, match=r"depth=18 does not match weights=.*basic.pth', which hold a ResNet with "
                                         r"basic blocks \[1, 1, 1, 1\]"):
        kr.build_resnet(18, weights=tiny_files["basic"][1], input_shape=(64, 64, 3))
    resnet18 = randomized(torchvision.models.resnet18(), seed=0)
    path = str(tmp_path / "resnet18.safetensors")
    safetensors_torch.save_file(resnet18.state_dict(), path)
    with pytest.raises(ValueError, match=r"depth=34 does not match .* which hold ResNet-18 \(basic blocks "
                                         r"\[2, 2, 2, 2\]\); build with depth=18"):
        kr.build_resnet(34, weights=path)
    # The loader checks the model it is given, too.
    model = kr.build_resnet(50, stride_in="3x3", preprocessing="imagenet", input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="holds ResNet-18 but the model is ResNet-50"):
        checkpoints.load_weights(model, path)


def one_line_error(call, match, error=ValueError):
    with pytest.raises(error, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_bad_files_are_one_line_errors_and_nothing_runs(tiny_files, tmp_path):
    _, pth, safetensors_file = tiny_files["basic"]
    # Truncated .safetensors.
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(open(safetensors_file, "rb").read()[:-1000])
    one_line_error(lambda: tiny_ours(str(truncated)), r"truncated.safetensors' is not a readable .safetensors file")
    # Another architecture: a real torchvision network (SqueezeNet: small) and VGG's key names.
    squeezenet = str(tmp_path / "squeezenet.safetensors")
    safetensors_torch.save_file(torchvision.models.squeezenet1_1().state_dict(), squeezenet)
    one_line_error(lambda: tiny_ours(squeezenet), r"is not a torchvision or timm ResNet state dict .* keys such as "
                                                  r"classifier.1.bias, classifier.1.weight, features.0.bias are not")
    vgg = str(tmp_path / "vgg.pth")
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.0.weight": torch.zeros(10, 64)}, vgg)
    one_line_error(lambda: tiny_ours(vgg), "is not a torchvision or timm ResNet state dict")
    # A ResNeXt has ResNet's key names but grouped 3x3 kernels: the shapes are checked.
    resnext = str(tmp_path / "resnext.safetensors")
    safetensors_torch.save_file(tiny_torch("bottleneck", groups=32, width_per_group=4).state_dict(), resnext)
    one_line_error(lambda: tiny_ours(resnext, "bottleneck"), r"layer1.0.conv1.weight has shape \[128, 64, 1, 1\]; "
                                                             r"the model's stage2_block1_conv1 needs \[64, 64, 1, 1\]")
    # A missing and a leftover tensor.
    state = tiny_files["basic"][0].state_dict()
    missing = str(tmp_path / "missing.safetensors")
    safetensors_torch.save_file({k: v for k, v in state.items() if k != "layer3.0.bn2.running_var"}, missing)
    one_line_error(lambda: tiny_ours(missing), r"has no tensor 'layer3.0.bn2.running_var' for the model's "
                                               r"stage4_block1_bn2")
    extra = str(tmp_path / "extra.safetensors")
    safetensors_torch.save_file({**state, "layer1.0.conv9.weight": torch.zeros(64, 64, 3, 3)}, extra)
    one_line_error(lambda: tiny_ours(extra), r"has 1 tensors that the model .* has no place for, such as "
                                             r"layer1.0.conv9.weight")
    # A backbone-only file and a head.
    backbone = str(tmp_path / "backbone.safetensors")
    safetensors_torch.save_file({k: v for k, v in state.items() if not k.startswith("fc.")}, backbone)
    one_line_error(lambda: checkpoints.load_weights(tiny_ours(None, preprocessing="imagenet", stride_in="3x3"),
                                                    backbone), "has no fc layer")
    assert not tiny_ours(backbone, include_top=False).include_top


class WritesMarker:
    """Unpickling this would create the marker file: a stand-in for any code a pickle can run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pth_with_a_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    for name, content in (("object.pth", WritesMarker(str(marker))),
                          ("nested.pth", {"conv1.weight": torch.zeros(1), "bad": WritesMarker(str(marker))})):
        path = str(tmp_path / name)
        torch.save(content, path)
        one_line_error(lambda: kr.build_resnet(18, weights=path), r"torch.load\(weights_only=True\) refused it and "
                                                                  r"nothing in it ran \(Unsupported global")
        assert not marker.exists()
    legacy = str(tmp_path / "legacy.pth")  # a plain pickle, not torch's zip format
    with open(legacy, "wb") as f:
        pickle.dump(WritesMarker(str(marker)), f)
    one_line_error(lambda: kr.build_resnet(18, weights=legacy), "nothing in it ran")
    assert not marker.exists()
    listed = str(tmp_path / "list.pth")  # loads (weights_only allows lists) but is no state dict
    torch.save([torch.zeros(2)], listed)
    one_line_error(lambda: kr.build_resnet(18, weights=listed), "holds a list, not a state dict of named tensors")


def test_without_torch_safetensors_load_and_pth_names_the_package(tiny_files, monkeypatch, rng):
    reference, pth, safetensors_file = tiny_files["basic"]
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    one_line_error(lambda: tiny_ours(pth), r"reading it needs the torch package \(pip install torch\)")
    ours = tiny_ours(safetensors_file)  # safetensors.numpy: no torch needed
    monkeypatch.undo()
    check_parity(reference, ours, {(64, 64): pixels_of(rng, (64, 64))}, tolerance=1e-5)


# --- the evaluation transform -------------------------------------------------------------------------


def photo(rng, height, width):
    """A synthetic photograph: smooth colour gradients plus sensor-like noise, uint8."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [128 + 100 * np.sin(x / 17.0 + c) * np.cos(y / 23.0 - c) for c in range(3)]
    return np.clip(np.round(np.stack(channels, -1) + rng.normal(0, 20, (height, width, 3))), 0, 255).astype("uint8")


ASPECTS = [(300, 400), (500, 333), (224, 224), (180, 260), (1000, 240), (241, 239)]


@pytest.mark.parametrize("preset", ["torchvision-v2", "torchvision-v1"])
def test_resize_and_centre_crop_is_torchvisions(preset, rng):
    """Against torchvision's ImageClassification preset (what ResNet50_Weights.IMAGENET1K_V2.transforms() is):
    on float tensors the same to float rounding, and on PIL images (how torchvision evaluates) within one
    8-bit level (1/255 on the 0-1 scale; PIL resizes in fixed point)."""
    from PIL import Image
    from torchvision.transforms._presets import ImageClassification

    transform = specs.eval_transform_for(preset, (224, 224))
    reference = ImageClassification(crop_size=224, resize_size=transform["resize"])
    if preset == "torchvision-v2":
        assert str(reference) == str(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms())
    for height, width in ASPECTS:
        image = photo(rng, height, width)
        ours = images.resize_and_centre_crop(image, transform).numpy()
        ours_normalised = (ours / 255.0 - MEAN) / STD
        from_tensor = reference(torch.from_numpy(image).permute(2, 0, 1).float() / 255).numpy().transpose(1, 2, 0)
        assert np.abs(ours_normalised - from_tensor).max() < 1e-4  # well within 1/255 after normalisation
        from_pil = reference(Image.fromarray(image)).numpy().transpose(1, 2, 0) * STD + MEAN  # 0-1 scale
        rounded = np.clip(np.round(ours), 0, 255) / 255.0  # as the serving signature rounds
        assert np.abs(rounded - from_pil).max() <= 1 / 255 + 1e-6
        assert np.abs(rounded - from_pil).mean() < 0.3 / 255


def test_timm_bicubic_transform_matches_antialiased_bicubic(rng):
    """timm-a1: resize 235 (floor(224 / 0.95)) bicubic, crop 224, as timm's create_transform builds it."""
    from torchvision.transforms import v2

    transform = specs.eval_transform_for("timm-a1", (224, 224))
    assert transform == {"resize": 235, "crop": (224, 224), "interpolation": "bicubic"}
    timm = require("timm")
    config = timm.data.resolve_data_config({}, model=timm.create_model("resnet50.a1_in1k", pretrained=False))
    assert (config["crop_pct"], config["interpolation"]) == (0.95, "bicubic")
    reference = v2.Compose([v2.Resize(235, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                            v2.CenterCrop(224)])
    for height, width in ASPECTS[:3]:
        image = photo(rng, height, width)
        expected = reference(torch.from_numpy(image).permute(2, 0, 1).float()).numpy().transpose(1, 2, 0)
        assert np.abs(images.resize_and_centre_crop(image, transform).numpy() - expected).max() < 0.05


def test_presets_scale_to_the_input_size_and_dicts_must_fit():
    assert specs.eval_transform_for("torchvision-v2", (288, 288)) == {"resize": 298, "crop": (288, 288),
                                                                       "interpolation": "bilinear"}
    assert specs.eval_transform_for({"resize": 72, "crop": 64}, (64, 64))["crop"] == (64, 64)
    with pytest.raises(ValueError, match=r"crops 224x224 pixels but the model takes 64x64"):
        kr.build_resnet(18, input_shape=(64, 64, 3), eval_transform={"resize": 256, "crop": 224})
    with pytest.raises(ValueError, match=r"eval_transform='squash'"):
        kr.build_resnet(18, eval_transform="squash")
    with pytest.raises(ValueError, match=r"Received: eval_transform=\{'resize': 200, 'crop': 224\}"):
        kr.build_resnet(18, eval_transform={"resize": 200, "crop": 224})


def test_exported_converted_model_serves_with_the_transform(tiny_files, tmp_path, rng):
    import tensorflow as tf

    transform = {"resize": 72, "crop": 64, "interpolation": "bilinear"}
    model = tiny_ours(tiny_files["basic"][2], eval_transform=transform)
    model.save(tmp_path / "tiny.keras")
    folder = export.export_saved_model(model, str(tmp_path / "exports"), name="tiny", fold_batchnorm=True)
    card = export.read_card(folder)
    assert card["eval_transform"] == {"resize": 72, "crop": [64, 64], "interpolation": "bilinear"}
    encoded = [tf.io.encode_png(photo(rng, h, w)).numpy() for h, w in ((80, 120), (150, 90), (64, 64))]
    resolved = specs.eval_transform_for(transform, (64, 64))
    cropped = np.stack([np.asarray(images.decode_and_resize(e, (64, 64), transform=resolved)) for e in encoded])
    expected = model.predict(cropped.astype("float32"), verbose=0)
    loaded = tf.saved_model.load(folder)
    served = loaded.signatures[export.BYTES_SIGNATURE](image_bytes=tf.constant(encoded))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-4)  # BN folded: 1e-4
    # The float signature: a batch of another size is resized and cropped the same way (not rounded).
    batch = np.stack([photo(rng, 90, 120) for _ in range(2)]).astype("float32")
    served = loaded.signatures["serving_default"](images=tf.constant(batch))["probabilities"].numpy()
    cropped = np.asarray(images.resize_and_centre_crop(batch, resolved))
    np.testing.assert_allclose(served, model.predict(cropped, verbose=0), atol=1e-4)
    # predict.py's in-process path (export.load_classifier) on the .keras file applies it too.
    classify, _, _ = export.load_classifier(str(tmp_path / "tiny.keras"))
    np.testing.assert_allclose(classify(encoded)["probabilities"].numpy(), expected, atol=1e-5)
    # Without a transform the whole image is resized to 64x64: a different input, other outputs.
    squashed = np.stack([np.asarray(images.decode_and_resize(e, (64, 64))) for e in encoded[:2]])
    assert np.abs(model.predict(squashed.astype("float32"), verbose=0) - expected[:2]).max() > 1e-3


# --- downstream uses ---------------------------------------------------------------------------------


def test_transfer_backbone_from_a_state_dict(tmp_path, rng):
    resnet18 = randomized(torchvision.models.resnet18(), seed=3)
    path = str(tmp_path / "resnet18.safetensors")
    safetensors_torch.save_file(resnet18.state_dict(), path)
    backbone = transfer.load_backbone(path, input_shape=(64, 64, 3), model_name="resnet18")
    assert not backbone.include_top and backbone.preprocessing == "imagenet"
    pixels = pixels_of(rng, (64, 64))
    with torch.no_grad():
        expected = torch.nn.Sequential(*list(resnet18.children())[:-2])(normalised(pixels)).numpy()
    got = np.asarray(backbone(pixels, training=False)).transpose(0, 3, 1, 2)
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    with pytest.raises(ValueError, match=r"init_from=.*resnet18.safetensors' holds ResNet-18 but the model is "
                                         r"ResNet-34"):
        transfer.load_backbone(path, input_shape=(64, 64, 3), model_name="resnet34")


def test_convert_weights_script(tiny_files, tmp_path, capsys):
    source = tiny_files["bottleneck"][2]
    out = tmp_path / "tiny.keras"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_weights.py"), source, str(out),
                           "--image-size", "64", "--eval-transform", "torchvision-v2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for expected in ("source: torchvision/timm ResNet state dict (.safetensors)",
                     "network: a ResNet with bottleneck blocks [1, 1, 1, 1]", "parameters:", "multiply-adds:",
                     "eval transform: torchvision-v2 (resize 66, centre crop 64x64, bilinear)",
                     "max |softmax difference| against PyTorch"):
        assert expected in done.stdout, done.stdout
    compared = [line for line in done.stdout.splitlines() if line.startswith("max |softmax difference|")]
    assert float(compared[0].split()[-1]) < 1e-5
    model = checkpoints.load_keras_model(str(out))
    assert model.eval_transform == "torchvision-v2" and model.num_classes == 10
    # Bad input: in process (a second interpreter costs 8 s); run_cli turns the ValueError into one line, exit 2.
    path = os.path.join(ROOT, "scripts", "convert_weights.py")
    spec = importlib.util.spec_from_file_location("convert_weights", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    one_line_error(lambda: script.main([source, str(out), "--depth", "50"]), r"depth=50 does not match weights=")
    one_line_error(lambda: script.main([source, str(tmp_path / "x.h5")]), r"Received: output='.*x.h5'")
    with pytest.raises(SystemExit) as exited:
        script.run_cli(script.main, [source, str(out), "--eval-transform", "squash"])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and error.count("\n") == 1
    assert error.startswith("error: eval_transform must be None, one of") and "Received: eval_transform='squash'" in error
