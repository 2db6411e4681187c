"""keras_resnet: the ResNets of He et al., "Deep Residual Learning for Image Recognition"
(CVPR 2016), as Keras 3 functional models, with training, tuning, transfer and export.
"""

from keras_resnet._startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before Keras imports TensorFlow: its start-up log lines are filtered

from keras_resnet.analysis import count_macs, count_trainable_params, stage_summary
from keras_resnet.blocks import FastBatchNormalization, ZeroPadShortcut, basic_block, bottleneck_block
from keras_resnet.registry import get_model, list_models
from keras_resnet.resnet import RESNET_SPECS, ResNet, build_cifar_resnet, build_resnet, feature_pyramid

__version__ = "0.1.0"

__all__ = [
    "FastBatchNormalization",
    "RESNET_SPECS",
    "ResNet",
    "ZeroPadShortcut",
    "basic_block",
    "bottleneck_block",
    "build_cifar_resnet",
    "build_resnet",
    "count_macs",
    "count_trainable_params",
    "feature_pyramid",
    "get_model",
    "list_models",
    "stage_summary",
]
