"""Export a trained model for TF Serving (a SavedModel) or another runtime: ONNX, OpenVINO, LiteRT, int8.

    python scripts/export.py runs/resnet20-digits      # best.keras -> saved_models/resnet20-digits/<next>/
    python scripts/export.py model.keras --name flowers --version 3 --overwrite --top-k 3
    python scripts/export.py runs/resnet50-imagenet --fold-batchnorm
    python scripts/export.py runs/resnet20-digits --format onnx      # saved_models/resnet20-digits-onnx/<next>/
    python scripts/export.py runs/resnet20-digits --format openvino --int8

The source is a .keras file or a training run directory (its best.keras, else final.keras, and
its labels.txt). The model folder is --name, else the run's <model>-<dataset> (as the training
script exports it), else the model's name, with -<format>[-int8] appended for the other formats; a
name is one folder name (no '/', no '..') and holds one format. The SavedModel has the signatures
serving_default (float images of any size), serve_uint8 and serve_image_bytes (encoded
JPEG/PNG/BMP/GIF), each returning probabilities, top_k_classes, top_k_scores and top_k_labels;
model.keras, labels.txt and export.json lie beside it. --format onnx|openvino|litert writes
model.onnx, model.xml + model.bin or model.tflite instead, which scripts/predict.py and
keras_resnet.runtimes.load serve with the same preprocessing and outputs. --int8 quantizes them
after training, calibrated on --calibration-images images drawn from the training data (the run's
dataset, or --calibration-dataset), and reports the top-1 agreement with the float model and both
accuracies on the held-out (test) split. Exporting the model the latest version already holds adds
no version.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402
from keras_resnet.images import DEFAULT_MAX_PIXELS  # noqa: E402

FORMATS = ("saved_model", "onnx", "openvino", "litert")  # keras_resnet.runtimes.FORMATS (not imported for --help)
CALIBRATION_IMAGES = 300  # keras_resnet.runtimes.DEFAULT_CALIBRATION_IMAGES
EVALUATION_IMAGES = 2000


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("source", help="a .keras file or a training run directory")
    parser.add_argument("--format", default="saved_model", choices=FORMATS,
                        help="saved_model (TF Serving), onnx (ONNX Runtime), openvino (OpenVINO IR) or litert "
                             "(.tflite) (default: saved_model)")
    parser.add_argument("--int8", action="store_true",
                        help="post-training int8 quantization (onnx, openvino, litert), calibrated on training images")
    parser.add_argument("--calibration-dataset",
                        help="dataset of the calibration and evaluation images, as train.py takes it (default: the "
                             "run's dataset)")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                        help=f"training images that calibrate --int8 (default: {CALIBRATION_IMAGES})")
    parser.add_argument("--evaluation-images", type=int, default=EVALUATION_IMAGES,
                        help=f"held-out images of the --int8 report, at most (default: {EVALUATION_IMAGES})")
    parser.add_argument("--data-dir", help="TFDS data folder of the calibration dataset (default: the run's)")
    parser.add_argument("--manual-dir", help="archives of a manual TFDS calibration dataset (default: the run's)")
    parser.add_argument("--download", action="store_true",
                        help="download and prepare a TFDS calibration dataset that is not prepared (needs the internet)")
    parser.add_argument("--export-dir", default="saved_models", help="TF Serving base folder (default: saved_models)")
    parser.add_argument("--name", help="model folder name (default: the run's <model>-<dataset>, else the model's "
                                       "name; -<format>[-int8] appended for other formats)")
    parser.add_argument("--version", type=int, help="version number (default: the next free one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--fold-batchnorm", action="store_true", help="fold batch norm into the convs (saved_model)")
    parser.add_argument("--top-k", type=int, default=5, help="k of the top-k outputs (default: 5)")
    parser.add_argument("--labels", help="class names, one per line (default: labels.txt beside the source)")
    parser.add_argument("--image-size", type=int, help="resize served images to this size (models of any size)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"encoded images with more pixels are refused (default: {DEFAULT_MAX_PIXELS:,})")
    return parser


def check_args(args):
    for name in ("top_k", "max_pixels", "image_size", "version", "calibration_images", "evaluation_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    if args.int8 and args.format == "saved_model":
        raise ValueError("--int8 is for --format onnx, openvino or litert; a SavedModel serves the model's own "
                         "precision. Received: format='saved_model'")
    if args.fold_batchnorm and args.format != "saved_model":
        raise ValueError(f"--fold-batchnorm is for --format saved_model: ONNX Runtime, OpenVINO and LiteRT fold "
                         f"batch norm themselves. Received: format={args.format!r}")


def calibration_data(args, model, run_values):
    """(calibration images, their source, (test images, labels)) for --int8, from the training data."""
    from keras_resnet import data, export, runtimes

    name = args.calibration_dataset or run_values.get("dataset")
    if not name:
        raise ValueError("--int8 needs calibration images from the training data: pass a run directory (its "
                         "dataset is used) or --calibration-dataset. Received: calibration_dataset=None")
    dataset = data.load_dataset(str(name), data_dir=args.data_dir or run_values.get("data_dir"),
                                manual_dir=args.manual_dir or run_values.get("manual_dir"),
                                download=args.download, image_size=run_values.get("image_size"),
                                seed=int(run_values.get("seed") or 0),
                                max_pixels=int(run_values.get("max_image_pixels") or DEFAULT_MAX_PIXELS))
    classes = int(model.output_shape[-1])
    if dataset.num_classes != classes:
        raise ValueError(f"calibration_dataset must be the model's training data: it has {dataset.num_classes} "
                         f"classes, the model {classes}. Received: calibration_dataset={name!r}")
    height, width, channels = export.input_size(model, args.image_size)
    if dataset.image_shape[-1] != channels:
        raise ValueError(f"calibration_dataset has {dataset.image_shape[-1]} channel(s), the model {channels}. "
                         f"Received: calibration_dataset={name!r}")
    transform = export.serving_transform(model, args.image_size)
    calibration = runtimes.calibration_images(dataset, (height, width), args.calibration_images, transform=transform)
    evaluation = runtimes.split_arrays(dataset.test, (height, width), channels, args.evaluation_images, transform)
    return calibration, f"{name}: {len(calibration)} training images", evaluation


def describe_report(report):
    text = (f"report: {report['file_bytes'] / 2**20:.2f} MiB, latency at batch 1 {report['latency_batch1_ms']:.2f} ms, "
            f"{report['images_per_sec_batch32']:,.1f} images/s at batch 32")
    if "top1_agreement" in report:
        text += (f"; top-1 agreement with the float model {report['top1_agreement']:.2%} on "
                 f"{report['evaluation_images']} held-out images, accuracy {report['accuracy']:.2%} "
                 f"(float {report['float_accuracy']:.2%})")
    return text


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_args(args)
    from keras_resnet import checkpoints, config, export, runtimes
    from keras_resnet.files import check_folder_name, read_json

    kind, path = checkpoints.resolve_model_path(args.source, argument="source")
    if kind != "keras":
        raise ValueError(f"source must be a .keras file or a run directory, not a SavedModel. Received: {args.source!r}")
    if args.labels and not os.path.isfile(args.labels):
        raise FileNotFoundError(f"labels must be a file of class names. Received: labels={args.labels!r}")
    class_names = checkpoints.read_labels(args.labels) if args.labels else checkpoints.labels_for(path)
    name = args.name
    run_config = os.path.join(os.path.dirname(path), "config.json")
    run_values = read_json(run_config, advice="pass --name") if os.path.isfile(run_config) else {}
    if name is None and run_values:
        base = run_values.get("export_name") or config.task_name(str(run_values.get("model")),
                                                                  str(run_values.get("dataset")))
        check_folder_name(base, "name")
        name = runtimes.default_name(base, args.format, args.int8)
    if name is not None:
        check_folder_name(name, "name")
    if os.path.exists(args.export_dir) and not os.path.isdir(args.export_dir):
        raise NotADirectoryError(f"export_dir must be a folder. Received: export_dir={args.export_dir!r} (a file)")
    if args.format != "saved_model":
        runtimes.runtime(args.format, "export", int8=args.int8)  # a missing runtime fails before any work
    model = checkpoints.load_keras_model(path, argument="source")
    name = name or runtimes.default_name(model.name, args.format, args.int8)
    before = checkpoints.existing_versions(os.path.join(args.export_dir, name))
    calibration = source_of_calibration = evaluation = None
    if args.int8:
        calibration, source_of_calibration, evaluation = calibration_data(args, model, run_values)
    target = runtimes.export_model(
        model, args.export_dir, args.format, int8=args.int8, calibration=calibration,
        calibration_source=source_of_calibration, evaluation=evaluation, name=name, version=args.version,
        overwrite=args.overwrite, class_names=class_names, top_k=args.top_k, fold_batchnorm=args.fold_batchnorm,
        image_size=args.image_size, max_pixels=args.max_pixels, source=path,
    )
    unchanged = args.version is None and int(os.path.basename(target)) in before
    print(f"exported {path} -> {target}" + (" (unchanged: this version already holds the model)" if unchanged else ""))
    if args.format == "saved_model":
        print(f"inspect: saved_model_cli show --dir {target} --all")
    else:
        report = (export.read_card(target) or {}).get("report")
        if report:
            print(describe_report(report))
        print(f"run: python scripts/predict.py {target} IMAGE...")


if __name__ == "__main__":
    run_cli(main)
