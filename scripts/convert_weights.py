"""Convert pretrained ResNet weights into a keras_resnet .keras model, and say what it is.

    python scripts/convert_weights.py resnet50_v2.pth resnet50_v2.keras --eval-transform torchvision-v2
    python scripts/convert_weights.py resnet50.a1_in1k.safetensors resnet50_a1.keras --eval-transform timm-a1
    python scripts/convert_weights.py resnet50_weights_tf_dim_ordering_tf_kernels.h5 resnet50_keras.keras

SRC: a torchvision or timm ResNet state dict (.safetensors; .pth needs torch) or a keras.applications
ResNet50/101/152 .h5 file. The network comes from the file (--depth checks it). The model takes raw
0-255 RGB pixels (the normalisation the weights were trained with is its `preprocessing` layer) and
carries its evaluation transform (--eval-transform; a state dict's default is torchvision-v1, resize
256 and centre-crop 224: pass torchvision-v2 for torchvision's IMAGENET1K_V2 weights, timm-a1 for
timm's a1 weights), which the export signatures and predict.py apply.

Prints the model card: the source, the network, parameters, multiply-adds at --image-size and the
transform; where torch and torchvision are importable, also the largest difference from the PyTorch
model on random images. OUT is written atomically.
"""

import importlib.util
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

if "tensorflow" in sys.modules:  # loaded into a process that runs TensorFlow already (a test): no triton
    sys.modules.setdefault("triton", None)
try:  # before TensorFlow (keras_resnet imports it): the CUDA wheel's triton crashes when it loads after TF's LLVM
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:
    pass

from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402
from keras_resnet.specs import EVAL_TRANSFORMS  # noqa: E402

SOURCES = {"state_dict": "torchvision/timm ResNet state dict", "applications": "keras.applications ResNet weights"}


def parse_transform(value):
    """--eval-transform: a preset name or a JSON object such as {"resize": 232, "crop": 224}."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ValueError(f"eval_transform must be one of {sorted(EVAL_TRANSFORMS)} or a JSON object. "
                         f"Received: eval_transform={value!r}") from None


def build(args, kind):
    """The converted model (build_resnet with weights=SRC: its checks and messages)."""
    import keras_resnet as kr
    from keras_resnet import checkpoints
    from keras_resnet.specs import depth_of

    size = (args.image_size, args.image_size, 3)
    transform = parse_transform(args.eval_transform)
    if kind == "state_dict":
        implied = checkpoints.builder_defaults(args.source, argument="source")
        block_type, repeats = implied["block_type"], implied["stage_repeats"]
        depth = args.depth if args.depth is not None else depth_of(block_type, repeats)
        layout = {} if depth is not None else {"stage_repeats": repeats, "block_type": block_type}
        include_top = "num_classes" in implied
    else:
        repeats, include_top = ((None, True) if args.source == "imagenet"
                                else checkpoints.applications_file_layout(args.source, argument="source"))
        depth = args.depth if args.depth is not None else depth_of("bottleneck", repeats or ())
        if depth is None:
            raise ValueError("depth is needed: the file does not say it (pass --depth 50, 101 or 152). "
                             f"Received: source={args.source!r}")
        layout = {}
    return kr.build_resnet(depth, **layout, weights=args.source, include_top=include_top, input_shape=size,
                           eval_transform=transform)


def describe_transform(model):
    from keras_resnet.export import serving_transform

    resolved = serving_transform(model)
    if resolved is None:
        return "none (images are resized to the input size)"
    name = model.eval_transform if isinstance(model.eval_transform, str) else "custom"
    height, width = resolved["crop"]
    return f"{name} (resize {resolved['resize']}, centre crop {height}x{width}, {resolved['interpolation']})"


def compare_with_pytorch(model, source, size, images=2):
    """(what was compared, max difference) against torchvision's ResNet holding the same state dict, or None
    where torch or torchvision is missing."""
    if not all(importlib.util.find_spec(name) for name in ("torch", "torchvision")):
        return None
    import numpy as np
    import torch
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    from keras_resnet import checkpoints

    state = {k: torch.from_numpy(np.array(v)) for k, v in checkpoints.read_state_dict(source, "source").items()}
    block = BasicBlock if model.block_type == "basic" else Bottleneck
    reference = ResNet(block, list(model.stage_repeats), num_classes=model.num_classes if model.include_top else 1000)
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert not unexpected and all(key.startswith("fc.") for key in missing), (missing, unexpected)
    reference.eval()
    pixels = np.random.default_rng(0).uniform(0, 255, (images, size, size, 3)).astype("float32")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    with torch.no_grad():
        inputs = torch.from_numpy(((pixels / 255 - mean) / std).astype("float32").transpose(0, 3, 1, 2))
        if model.include_top:
            expected = torch.softmax(reference(inputs), -1).numpy()
        else:
            expected = torch.nn.Sequential(*list(reference.children())[:-2])(inputs).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(model(pixels, training=False))
    what = "softmax" if model.include_top else "feature"
    return f"max |{what} difference| against PyTorch (torchvision.models.resnet, {images} random {size}x{size} " \
           f"images)", float(np.abs(got - expected).max())


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("source", help="a torchvision/timm state dict (.safetensors, .pth) or a keras.applications "
                                       ".h5 file")
    parser.add_argument("output", help="the .keras file to write")
    parser.add_argument("--depth", type=int, help="check that the file holds this depth (18, 34, 50, 101, 152)")
    parser.add_argument("--eval-transform", help=f"one of {', '.join(sorted(EVAL_TRANSFORMS))}, or JSON such as "
                                                 "'{\"resize\": 232, \"crop\": 224, \"interpolation\": \"bilinear\"}' "
                                                 "(default for state dicts: torchvision-v1)")
    parser.add_argument("--image-size", type=int, default=224, help="the model's input size (default: 224)")
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison with PyTorch")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.image_size < 32:
        raise ValueError(f"image_size must be at least 32 (the network downsamples by 32). "
                         f"Received: image_size={args.image_size}")
    if not args.output.endswith(".keras"):
        raise ValueError(f"output must be a .keras file. Received: output={args.output!r}")
    from keras_resnet import checkpoints, count_macs, count_trainable_params
    from keras_resnet.files import atomic_save

    checkpoints.check_weights_argument(args.source, argument="source")
    kind = checkpoints.source_kind(args.source, argument="source")
    if kind not in SOURCES:
        raise ValueError(f"source must be a torchvision/timm state dict (.safetensors, .pth) or a keras.applications "
                         f".h5 file. Received: source={args.source!r}")
    model = build(args, kind)
    atomic_save(args.output, model.save)

    suffix = os.path.splitext(args.source)[1] or args.source
    details = [f"{model.block_type} blocks {list(model.stage_repeats)}"] if model.name != "resnet" else []
    if model.block_type == "bottleneck":
        details.append(f"stride on the {model.stride_in}" + (" (v1.5)" if model.stride_in == "3x3" else " (v1)"))
    print(f"source: {SOURCES[kind]} ({suffix})")
    print(f"network: {checkpoints.describe(model)}" + (f" ({', '.join(details)})" if details else ""))
    print(f"head: {f'{model.num_classes} classes' if model.include_top else 'none (backbone)'}")
    print(f"parameters: {count_trainable_params(model):,} trainable, {model.count_params():,} in all")
    print(f"multiply-adds: {count_macs(model) / 1e9:.3f} G at {args.image_size}x{args.image_size}")
    print(f"preprocessing: {model.preprocessing} (the model takes raw 0-255 RGB pixels)")
    print(f"eval transform: {describe_transform(model)}")
    print(f"written: {args.output}")
    if kind == "state_dict" and not args.no_compare:
        compared = compare_with_pytorch(model, args.source, args.image_size)
        if compared is None:
            print("comparison with PyTorch: skipped (torch and torchvision are not installed)")
        else:
            print(f"{compared[0]}: {compared[1]:.3g}")


if __name__ == "__main__":
    run_cli(main)
