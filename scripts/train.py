"""Train a ResNet with model.fit under a tf.distribute strategy.

    python scripts/train.py                                   # ResNet-20 on digits, about a minute on a CPU
    python scripts/train.py --model resnet56 --dataset tfds:cifar10 --data-dir ~/tensorflow_datasets
    python scripts/train.py --model resnet50 --dataset tfds:imagenet2012 --recipe imagenet --strategy mirrored
    python scripts/train.py --config runs/resnet20-digits/config.json --epochs 60 --run-dir runs/longer

A run directory (default runs/<model>-<dataset>) gets config.json, history.csv, curves.png,
best.keras, final.keras, TensorBoard logs and metrics.json; rerunning a killed or failed command
resumes it where it stopped. The final model is exported as a SavedModel to
<export-dir>/<model>-<dataset>/<version>/ (--export-name to choose the folder name).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import config as config_lib  # noqa: E402
from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402


def build_parser():
    parser = ArgumentParser(description=__doc__)
    config_lib.add_config_arguments(parser)
    return parser


def main(argv=None):
    config = config_lib.resolve_config(config_lib.config_overrides(build_parser().parse_args(argv)))
    from keras_resnet import distribute, training

    if config.cpu_devices > 1:
        distribute.configure_cpu_devices(config.cpu_devices)
    metrics = training.train(config)
    print(json.dumps(metrics, indent=2))
    top5 = f", top-5 {metrics['test_top5_accuracy']:.4f}" if "test_top5_accuracy" in metrics else ""
    print(f"test accuracy {metrics['test_accuracy']:.4f}{top5} in {metrics['wall_time_s']:.0f} s; "
          f"run directory {metrics['run_dir']}" + (f"; SavedModel {metrics['export']}" if "export" in metrics else "")
          + ("" if metrics.get("export_new_version", True) else " (unchanged: that version already holds this model)"))


if __name__ == "__main__":
    run_cli(main)
