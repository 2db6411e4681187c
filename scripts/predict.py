"""Classify image files with a .keras model or an exported SavedModel; prints the top-k labels.

    python scripts/predict.py saved_models/resnet20 digit.png          # the latest version
    python scripts/predict.py runs/resnet20-digits/best.keras a.jpg b.png --top-k 3
    python scripts/predict.py saved_models/resnet20/2 *.png --json

Images of any size are decoded, resized and preprocessed as the SavedModel's serve_image_bytes
signature does (for a .keras model the same function runs in process).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import export  # noqa: E402
from keras_resnet.cli import run_cli  # noqa: E402


def read_image_files(paths):
    """The bytes of each file, checked to decode as an image (a clear error names a bad file)."""
    import tensorflow as tf

    contents = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"images must be image files. Received: {path!r} (no such file)")
        with open(path, "rb") as f:
            content = f.read()
        try:
            tf.io.decode_image(content, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            raise ValueError(f"images: {path!r} is not a readable JPEG/PNG/BMP/GIF image.") from None
        contents.append(content)
    return contents


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .keras file, a SavedModel version folder, a model folder or a run directory")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    parser.add_argument("--top-k", type=int, default=export.DEFAULT_TOP_K, help="labels to print (5; a SavedModel "
                        "returns the k it was exported with)")
    parser.add_argument("--labels", help="class names, one per line (default: labels.txt beside the model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        raise ValueError(f"top_k must be at least 1. Received: top_k={args.top_k}")

    contents = read_image_files(args.images)
    class_names = export.read_labels(args.labels) if args.labels else None
    classify, class_names = export.load_classifier(args.model, top_k=args.top_k, class_names=class_names)
    outputs = classify(contents)
    for i, path in enumerate(args.images):
        classes = outputs["top_k_classes"][i].numpy().tolist()[: args.top_k]
        scores = outputs["top_k_scores"][i].numpy().tolist()[: args.top_k]
        labels = [class_names[c] if class_names else str(c) for c in classes]
        if args.json:
            print(json.dumps({"image": path, "labels": labels, "classes": classes, "scores": scores}))
        else:
            print(f"{path}: " + ", ".join(f"{label} ({score:.3f})" for label, score in zip(labels, scores)))


if __name__ == "__main__":
    run_cli(main)
