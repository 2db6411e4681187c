"""Classify image files with a .keras model or any export (SavedModel, ONNX, OpenVINO, LiteRT, int8);
prints the top-k labels.

    python scripts/predict.py saved_models/resnet20-digits digit.png      # the latest version
    python scripts/predict.py runs/resnet20-digits/best.keras a.jpg b.png --top-k 3
    python scripts/predict.py saved_models/resnet20-digits/2 *.png --json
    python scripts/predict.py saved_models/resnet20-digits-openvino-int8 digit.png

Images of any size are decoded, resized and preprocessed as the SavedModel's serve_image_bytes
signature does (for a .keras model the same function runs in process): resized to the model's input
size, or, for a model that carries an evaluation transform (pretrained weights converted by
convert_weights.py), with the shorter side resized and the centre cropped as the weights' publishers
evaluate. ONNX, OpenVINO and LiteRT exports run in their runtimes with the same decoding, resize and
outputs (keras_resnet.runtimes). Which model file or version was loaded (and its format), and how images
are resized, is said on stderr. Images whose header claims more than --max-pixels pixels are refused before decoding.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402
from keras_resnet.images import DEFAULT_MAX_PIXELS  # noqa: E402


def read_image_files(paths, channels, max_pixels):
    """The bytes of each file, checked to decode as the model will decode it (an error names a bad file)."""
    from keras_resnet import images

    contents = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"images must be image files; {path!r} does not exist. Received: images={path!r}")
        with open(path, "rb") as f:
            content = f.read()
        reason = images.check(content, channels, max_pixels)
        if reason:
            raise ValueError(f"images: {path!r} {'is ' if reason.startswith('not') else ''}{reason}. "
                             f"Received: images={path!r}")
        contents.append(content)
    return contents


def build_parser():
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a .keras file, an export's version folder or model folder (SavedModel, ONNX, "
                                      "OpenVINO, LiteRT) or a run directory")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    parser.add_argument("--top-k", type=int, default=5, help="labels to print (default: 5; a SavedModel returns at "
                        "most the k it was exported with)")
    parser.add_argument("--labels", help="class names, one per line (default: labels.txt beside the model)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"larger images are refused (default: {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("top_k", "max_pixels"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={getattr(args, name)}")
    from keras_resnet import checkpoints, runtimes

    if args.labels and not os.path.isfile(args.labels):
        raise FileNotFoundError(f"labels must be a file of class names. Received: labels={args.labels!r}")
    class_names = checkpoints.read_labels(args.labels) if args.labels else None
    classify, class_names, loaded = runtimes.load(args.model, top_k=args.top_k, class_names=class_names,
                                                  max_pixels=args.max_pixels)
    folder = os.path.dirname(loaded)
    versions = checkpoints.existing_versions(folder)
    which = f"version {os.path.basename(loaded)} of {versions}" if os.path.basename(loaded).isdigit() else "Keras model"
    if classify.format in runtimes.RUNTIME_FORMATS:
        which += f"; {runtimes.NAMES[classify.format]}, {classify.precision}"
    transform = classify.eval_transform  # None: images are resized to the input size, as before
    if transform:
        which += (f"; images: shorter side resized to {transform['resize']}, centre crop "
                  f"{transform['crop'][0]}x{transform['crop'][1]}, {transform['interpolation']}")
    print(f"model: {loaded} ({which})", file=sys.stderr)
    contents = read_image_files(args.images, classify.channels, args.max_pixels)
    outputs = classify(contents)
    for i, path in enumerate(args.images):
        classes = outputs["top_k_classes"][i].tolist()[: args.top_k]
        scores = outputs["top_k_scores"][i].tolist()[: args.top_k]
        labels = [class_names[c] if class_names else str(c) for c in classes]
        if args.json:
            print(json.dumps({"image": path, "labels": labels, "classes": classes, "scores": scores}))
        else:
            print(f"{path}: " + ", ".join(f"{label} ({score:.3f})" for label, score in zip(labels, scores)))


if __name__ == "__main__":
    run_cli(main)
