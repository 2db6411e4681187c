"""Export a trained model as a SavedModel for TF Serving.

    python scripts/export.py runs/resnet20-digits      # best.keras -> saved_models/resnet20-digits/<next>/
    python scripts/export.py model.keras --name flowers --version 3 --overwrite --top-k 3
    python scripts/export.py runs/resnet50-imagenet --fold-batchnorm

The source is a .keras file or a training run directory (its best.keras, else final.keras, and
its labels.txt). The model folder is --name, else the run's <model>-<dataset> (as the training
script exports it), else the model's name; a name is one folder name (no '/', no '..'). The
SavedModel has the signatures serving_default (float images of any size), serve_uint8 and
serve_image_bytes (encoded JPEG/PNG/BMP/GIF), each returning probabilities, top_k_classes,
top_k_scores and top_k_labels; model.keras, labels.txt and export.json lie beside it. Exporting
the model the latest version already holds adds no version.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402
from keras_resnet.images import DEFAULT_MAX_PIXELS  # noqa: E402


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("source", help="a .keras file or a training run directory")
    parser.add_argument("--export-dir", default="saved_models", help="TF Serving base folder (default: saved_models)")
    parser.add_argument("--name", help="model folder name (default: the run's <model>-<dataset>, else the model's "
                                       "name)")
    parser.add_argument("--version", type=int, help="version number (default: the next free one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--fold-batchnorm", action="store_true", help="fold batch norm into the convs")
    parser.add_argument("--top-k", type=int, default=5, help="k of the top-k outputs (default: 5)")
    parser.add_argument("--labels", help="class names, one per line (default: labels.txt beside the source)")
    parser.add_argument("--image-size", type=int, help="resize served images to this size (models of any size)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"encoded images with more pixels are refused (default: {DEFAULT_MAX_PIXELS:,})")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("top_k", "max_pixels", "image_size", "version"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    from keras_resnet import checkpoints, config, export
    from keras_resnet.files import check_folder_name, read_json

    kind, path = checkpoints.resolve_model_path(args.source, argument="source")
    if kind != "keras":
        raise ValueError(f"source must be a .keras file or a run directory, not a SavedModel. Received: {args.source!r}")
    if args.labels and not os.path.isfile(args.labels):
        raise FileNotFoundError(f"labels must be a file of class names. Received: labels={args.labels!r}")
    class_names = checkpoints.read_labels(args.labels) if args.labels else checkpoints.labels_for(path)
    name = args.name
    run_config = os.path.join(os.path.dirname(path), "config.json")
    if name is None and os.path.isfile(run_config):
        values = read_json(run_config, advice="pass --name")
        name = values.get("export_name") or config.task_name(str(values.get("model")), str(values.get("dataset")))
    if name is not None:
        check_folder_name(name, "name")
    if os.path.exists(args.export_dir) and not os.path.isdir(args.export_dir):
        raise NotADirectoryError(f"export_dir must be a folder. Received: export_dir={args.export_dir!r} (a file)")
    model = checkpoints.load_keras_model(path, argument="source")
    before = checkpoints.existing_versions(os.path.join(args.export_dir, name or model.name))
    target = export.export_saved_model(
        model, args.export_dir, name=name, version=args.version, overwrite=args.overwrite,
        class_names=class_names, top_k=args.top_k, fold_batchnorm=args.fold_batchnorm, image_size=args.image_size,
        max_pixels=args.max_pixels, source=path,
    )
    unchanged = args.version is None and int(os.path.basename(target)) in before
    print(f"exported {path} -> {target}" + (" (unchanged: this version already holds the model)" if unchanged else ""))
    print(f"inspect: saved_model_cli show --dir {target} --all")


if __name__ == "__main__":
    run_cli(main)
