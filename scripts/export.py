"""Export a trained model as a SavedModel for TF Serving.

    python scripts/export.py runs/resnet20-digits                  # best.keras -> saved_models/resnet20/<next>/
    python scripts/export.py model.keras --name flowers --version 3 --overwrite
    python scripts/export.py runs/resnet50-imagenet --fold-batchnorm --top-k 5

The source is a .keras file or a training run directory (its best.keras, else final.keras, and
its labels.txt). The SavedModel has the signatures serving_default (float images of any size),
serve_uint8 and serve_image_bytes (encoded JPEG/PNG/BMP), each returning probabilities,
top_k_classes, top_k_scores and top_k_labels; model.keras and labels.txt lie beside it.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import export  # noqa: E402
from keras_resnet.cli import run_cli  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a .keras file or a training run directory")
    parser.add_argument("--export-dir", default="saved_models", help="TF Serving base folder (saved_models)")
    parser.add_argument("--name", help="model folder name (default: the run's model, else the model's name)")
    parser.add_argument("--version", type=int, help="version number (default: the next free one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--fold-batchnorm", action="store_true", help="fold batch norm into the convs")
    parser.add_argument("--top-k", type=int, default=export.DEFAULT_TOP_K, help="k of the top-k outputs (5)")
    parser.add_argument("--labels", help="class names, one per line (default: labels.txt beside the source)")
    parser.add_argument("--image-size", type=int, help="resize served images to this size (models of any size)")
    args = parser.parse_args(argv)

    kind, path = export.resolve_model_path(args.source, argument="source")
    if kind != "keras":
        raise ValueError(f"source must be a .keras file or a run directory, not a SavedModel. Received: {args.source!r}")
    if args.labels and not os.path.isfile(args.labels):
        raise FileNotFoundError(f"labels must be a file of class names. Received: labels={args.labels!r}")
    class_names = export.read_labels(args.labels) if args.labels else export.labels_for(path)
    name = args.name
    config_path = os.path.join(os.path.dirname(path), "config.json")
    if name is None and os.path.isfile(config_path):
        with open(config_path) as f:
            name = json.load(f).get("model")
    model = export.load_keras_model(path)
    target = export.export_saved_model(
        model, args.export_dir, name=name, version=args.version, overwrite=args.overwrite,
        class_names=class_names, top_k=args.top_k, fold_batchnorm=args.fold_batchnorm, image_size=args.image_size,
    )
    print(f"exported {path} -> {target}")
    print(f"inspect: saved_model_cli show --dir {target} --all")


if __name__ == "__main__":
    run_cli(main)
