"""Fine-tune pretrained weights onto a dataset in one of the three transfer modes.

    python scripts/transfer.py --init-from runs/resnet20-digits-0-4 --dataset digits:5-9 --transfer-mode head
    python scripts/transfer.py --init-from imagenet --model resnet50 --dataset folder:/data/flowers \\
        --image-size 224 --transfer-mode partial --trainable-from stage5 --learning-rate 0.01
    python scripts/transfer.py --init-from runs/resnet50-folder-data-flowers/best.keras \\
        --dataset folder:/data/flowers --transfer-mode partial --trainable-from stage4 --learning-rate 0.001

--init-from: "imagenet" (keras.applications' weights for --model resnet50/101/152; cached by Keras,
or pass the .h5 file), a torchvision or timm ResNet state dict (.safetensors, .pth; --model of its
depth, e.g. --init-from resnet50.safetensors --model resnet50), a .keras file or a training run
directory. The backbone keeps the
preprocessing its weights were trained with, a new classifier is added for the dataset's classes,
and --transfer-mode says what trains: full (everything), partial (--trainable-from stageN or
--trainable-blocks N; batch norms stay frozen) or head (only the new classifier; the default
here). Every other flag is the training script's (run directory, resuming, export).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_resnet import config as config_lib  # noqa: E402
from keras_resnet.cli import ArgumentParser, run_cli  # noqa: E402


def build_parser():
    parser = ArgumentParser(description=__doc__)
    config_lib.add_config_arguments(parser, defaults={"transfer_mode": "head"})
    return parser


def main(argv=None):
    overrides = config_lib.config_overrides(build_parser().parse_args(argv))
    if not overrides.get("init_from"):
        raise ValueError("init_from is required: --init-from imagenet, a weights or .keras file, or a run directory. "
                         "Received: init_from=None")
    config = config_lib.resolve_config(overrides)
    from keras_resnet import distribute, training, transfer

    if config.cpu_devices > 1:
        distribute.configure_cpu_devices(config.cpu_devices)
    metrics = training.train(config)
    rows = metrics.pop("trainable_params_per_stage")
    print(json.dumps(metrics, indent=2))
    print(transfer.report_markdown(rows))
    print(f"{config.transfer_mode} transfer from {config.init_from}: test accuracy {metrics['test_accuracy']:.4f}; "
          f"run directory {metrics['run_dir']}")


if __name__ == "__main__":
    run_cli(main)
