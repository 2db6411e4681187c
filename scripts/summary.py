"""Model summaries as markdown: one model per stage (Table 1), the ResNet families side by side,
or the classic CNNs against the ResNets ("the revolution of depth").

    python scripts/summary.py resnet50
    python scripts/summary.py resnet20 --input-size 32 --num-classes 10
    python scripts/summary.py --all                 # Table 1: ResNet-18..152, then the CIFAR family
    python scripts/summary.py --baselines           # LeNet-5 .. DenseNet-121 and the ResNets
    python scripts/summary.py --all --out summary.md
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import analysis, registry  # noqa: E402
from keras_resnet.cli import run_cli  # noqa: E402

IMAGENET_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
CIFAR_RESNETS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
DEPTH_TABLE = ("lenet5", "alexnet", "vgg11", "vgg11_lrn", "vgg13", "vgg16_1x1", "vgg16", "vgg19", "googlenet",
               "densenet121") + IMAGENET_RESNETS


def build(name, input_size=None, num_classes=None):
    entry = registry.get_entry(name)
    kwargs = {}
    if input_size is not None:
        kwargs["input_shape"] = (input_size, input_size, entry.default_input_shape[-1])
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return registry.get_model(name, **kwargs)


def depth_table(names, input_size=None, num_classes=None):
    """Layers, trainable parameters and multiply-adds of each model."""
    from keras_resnet.baselines import PAPER_LAYERS

    rows = []
    for name in names:
        model = build(name, input_size, num_classes)
        rows.append({"model": name, "input": "x".join(map(str, model.input_shape[1:])),
                     "layers": PAPER_LAYERS.get(name, analysis.weighted_depth(model)),
                     "params": analysis.count_trainable_params(model), "macs": analysis.count_macs(model)})
    return analysis.markdown_table(rows, ["model", "input", "layers", "params", "macs"],
                                   {"params": "{:,}".format, "macs": analysis.format_count})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help=f"registered model name, one of: {', '.join(registry.list_models())}")
    parser.add_argument("--all", action="store_true", help="Table 1 for ResNet-18..152 and the CIFAR ResNets")
    parser.add_argument("--baselines", action="store_true", help="layers, parameters, multiply-adds of the classic CNNs")
    parser.add_argument("--models", nargs="+", help="with --all or --baselines: these models instead")
    parser.add_argument("--input-size", type=int, help="square input size (default: the model's)")
    parser.add_argument("--num-classes", type=int, help="classes of the classifier (default: the model's)")
    parser.add_argument("--out", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    if not (args.model or args.all or args.baselines):
        raise ValueError("name a model, or pass --all or --baselines. Received: no model")
    parts = []
    if args.model:
        model = build(args.model, args.input_size, args.num_classes)
        parts.append(f"## {args.model}: input {'x'.join(map(str, model.input_shape[1:]))}\n\n"
                     + analysis.stage_summary_markdown(model))
    if args.all:
        groups = [args.models] if args.models else [IMAGENET_RESNETS, CIFAR_RESNETS]
        for names in groups:
            models = {name: build(name, args.input_size, args.num_classes) for name in names}
            size = "x".join(map(str, next(iter(models.values())).input_shape[1:]))
            parts.append(f"## Table 1: {', '.join(names)} at {size}\n\n" + analysis.compare_stage_summaries(models))
    if args.baselines:
        parts.append("## The revolution of depth: classic CNNs and ResNets\n\n"
                     + depth_table(args.models or DEPTH_TABLE, args.input_size, args.num_classes))
    text = "\n\n".join(parts)
    print(text)
    if args.out:
        from keras_resnet.training import atomic_write

        atomic_write(args.out, text + "\n")


if __name__ == "__main__":
    run_cli(main)
