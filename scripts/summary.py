"""Per-stage summary of a registered model in the form of the paper's Table 1.

    python scripts/summary.py resnet50
    python scripts/summary.py resnet20 --input-size 32 --num-classes 10
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import analysis, registry  # noqa: E402
from keras_resnet.cli import run_cli  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help=f"registered model name, one of: {', '.join(registry.list_models())}")
    parser.add_argument("--input-size", type=int, help="square input size (default: the model's)")
    parser.add_argument("--num-classes", type=int, help="classes of the classifier (default: the model's)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    entry = registry.get_entry(args.model)
    kwargs = {}
    if args.input_size is not None:
        kwargs["input_shape"] = (args.input_size, args.input_size, entry.default_input_shape[-1])
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    model = registry.get_model(args.model, **kwargs)
    print(f"## {args.model}: input {'x'.join(map(str, model.input_shape[1:]))}\n")
    print(analysis.stage_summary_markdown(model))


if __name__ == "__main__":
    run_cli(main)
