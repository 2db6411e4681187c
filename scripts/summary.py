"""Model summaries as markdown: one model per stage (Table 1), the ResNet families side by side,
or the classic CNNs against the ResNets ("the revolution of depth").

    python scripts/summary.py resnet50
    python scripts/summary.py resnet20 --input-size 32 --num-classes 10
    python scripts/summary.py --all                 # Table 1: ResNet-18..152, then the CIFAR family
    python scripts/summary.py --baselines           # LeNet-5 .. DenseNet-121 and the ResNets
    python scripts/summary.py --all --out summary.md

Parameters are trainable parameters everywhere (torchvision's count; Keras' count_params() also
counts the batch norms' moving statistics, given in the total row). Building the large models
takes a while: a progress line per model goes to stderr.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import analysis, registry  # noqa: E402
from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402
from keras_resnet.files import atomic_write, check_output_file  # noqa: E402

IMAGENET_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
CIFAR_RESNETS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
DEPTH_TABLE = ("lenet5", "alexnet", "vgg11", "vgg11_lrn", "vgg13", "vgg16_1x1", "vgg16", "vgg19", "googlenet",
               "densenet121") + IMAGENET_RESNETS


def build(name, input_size=None, num_classes=None, progress=None):
    entry = registry.get_entry(name)
    kwargs = {}
    if input_size is not None:
        kwargs["input_shape"] = (input_size, input_size, entry.default_input_shape[-1])
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if progress:
        print(f"[{progress}] building {name}", file=sys.stderr, flush=True)
    return registry.get_model(name, **kwargs)


def depth_table(names, input_size=None, num_classes=None):
    """Layers, trainable parameters and multiply-adds of each model."""
    import keras

    from keras_resnet.baselines import PAPER_LAYERS

    rows = []
    for step, name in enumerate(names, start=1):
        model = build(name, input_size, num_classes, progress=f"{step}/{len(names)}")
        rows.append({"model": name, "input": "x".join(map(str, model.input_shape[1:])),
                     "layers": PAPER_LAYERS.get(name, analysis.weighted_depth(model)),
                     "params": analysis.count_trainable_params(model), "macs": analysis.count_macs(model)})
        del model
        keras.backend.clear_session()
    return analysis.markdown_table(rows, ["model", "input", "layers", "params", "macs"],
                                   {"params": "{:,}".format, "macs": analysis.format_count})


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", help=f"registered model name, one of: {', '.join(registry.list_models())}")
    parser.add_argument("--all", action="store_true", help="Table 1 for ResNet-18..152 and the CIFAR ResNets")
    parser.add_argument("--baselines", action="store_true", help="layers, parameters, multiply-adds of the classic CNNs")
    parser.add_argument("--models", nargs="+", help="with --all or --baselines: these models instead")
    parser.add_argument("--input-size", type=int, help="square input size (default: the model's)")
    parser.add_argument("--num-classes", type=int, help="classes of the classifier (default: the model's)")
    parser.add_argument("--out", help="also write the markdown to this file")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not (args.model or args.all or args.baselines):
        raise ValueError("name a model, or pass --all or --baselines. Received: no model")
    for name in ("input_size", "num_classes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    for name in ([args.model] if args.model else []) + (args.models or []):
        registry.get_entry(name)  # a misspelled name fails before anything is built
    if args.out:
        check_output_file(args.out, "out")
    parts = []
    if args.model:
        model = build(args.model, args.input_size, args.num_classes)
        parts.append(f"## {args.model}: input {'x'.join(map(str, model.input_shape[1:]))}\n\n"
                     + analysis.stage_summary_markdown(model))
    if args.all:
        groups = [args.models] if args.models else [IMAGENET_RESNETS, CIFAR_RESNETS]
        total, step = sum(len(g) for g in groups), 0
        for names in groups:
            models = {}
            for name in names:
                step += 1
                models[name] = build(name, args.input_size, args.num_classes, progress=f"{step}/{total}")
            size = "x".join(map(str, next(iter(models.values())).input_shape[1:]))
            parts.append(f"## Table 1: {', '.join(names)} at {size}\n\n" + analysis.compare_stage_summaries(models))
    if args.baselines:
        parts.append("## The revolution of depth: classic CNNs and ResNets\n\n"
                     + depth_table(args.models or DEPTH_TABLE, args.input_size, args.num_classes))
    text = "\n\n".join(parts)
    print(text)
    if args.out:
        atomic_write(args.out, text + "\n")


if __name__ == "__main__":
    run_cli(main)
