"""The classic CNNs before ResNet, for the "revolution of depth" comparison of the lecture notes.

Each builder takes the arguments of the ResNet builders that the scripts pass (`input_shape`,
`num_classes`, `include_top`, `classifier_activation`, `preprocessing`, `weight_decay`, `name`),
so every script can train and summarise them through the registry. Parameter counts at 224x224
with 1000 classes are checked by the tests against the published references named below.
Only `keras.layers` and `keras.ops`, as for the ResNets.
"""

import keras
from keras import layers, ops

from keras_resnet.blocks import kernel_regularizer
from keras_resnet.resnet import _preprocessing_layer


@keras.saving.register_keras_serializable(package="keras_resnet")
class LocalResponseNormalization(layers.Layer):
    """AlexNet's LRN across channels (Krizhevsky et al. 2012, Section 3.3), used by VGG A-LRN:
    b = a / (k + alpha / n * sum of a^2 over n neighbouring channels) ** beta. alpha is divided by n
    as in Caffe and PyTorch (`nn.LocalResponseNorm`)."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, **kwargs):
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def call(self, x):
        channels = x.shape[-1]
        squared = ops.pad(ops.square(x), [[0, 0], [0, 0], [0, 0], [self.size // 2, (self.size - 1) // 2]])
        window = sum(squared[..., i : i + channels] for i in range(self.size))
        return x / ops.power(self.k + self.alpha / self.size * window, self.beta)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


def _start(input_shape, preprocessing, name):
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs if preprocessing is None else _preprocessing_layer(preprocessing, input_shape[-1])(inputs)
    return inputs, x


def _classifier(x, num_classes, classifier_activation, weight_decay, hidden=(), dropout=0.0, prefix="fc"):
    """Fully connected layers `hidden` (ReLU, with dropout), then `predictions` in float32."""
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(units, activation="relu", kernel_regularizer=kernel_regularizer(weight_decay),
                         name=f"{prefix}{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{prefix}{i}_dropout")(x)
    return layers.Dense(num_classes, activation=classifier_activation, dtype="float32",
                        kernel_regularizer=kernel_regularizer(weight_decay), name="predictions")(x)


def build_lenet5(input_shape=(32, 32, 1), num_classes=10, include_top=True, classifier_activation="softmax",
                 preprocessing=None, weight_decay=0.0, name="lenet5"):
    """LeNet-5 (LeCun et al. 1998): 61,706 parameters on 32x32x1 with 10 classes.

    C1 6@5x5, S2 average pooling, C3 16@5x5 (fully connected to S2, as in most re-implementations),
    S4, C5 120 (a dense layer on the 5x5x16 map), F6 84, output; tanh activations.
    """
    inputs, x = _start(input_shape, preprocessing, name)
    reg = kernel_regularizer(weight_decay)
    x = layers.Conv2D(6, 5, activation="tanh", kernel_regularizer=reg, name="c1")(x)
    x = layers.AveragePooling2D(2, name="s2")(x)
    x = layers.Conv2D(16, 5, activation="tanh", kernel_regularizer=reg, name="c3")(x)
    x = layers.AveragePooling2D(2, name="s4")(x)
    x = layers.Flatten(name="flatten")(x)
    if include_top:
        x = layers.Dense(120, activation="tanh", kernel_regularizer=reg, name="c5")(x)
        x = layers.Dense(84, activation="tanh", kernel_regularizer=reg, name="f6")(x)
        x = layers.Dense(num_classes, activation=classifier_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def build_alexnet(input_shape=(224, 224, 3), num_classes=1000, include_top=True, classifier_activation="softmax",
                  preprocessing=None, weight_decay=0.0, name="alexnet"):
    """AlexNet as torchvision's `alexnet` (the one-GPU variant of Krizhevsky's "One weird trick",
    64-192-384-256-256 filters, no LRN): 61,100,840 parameters at 224x224 with 1000 classes."""
    inputs, x = _start(input_shape, preprocessing, name)
    reg = kernel_regularizer(weight_decay)
    for i, (filters, kernel, stride, pad, pool) in enumerate(
        [(64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False),
         (256, 3, 1, 1, True)], start=1):
        x = layers.ZeroPadding2D(pad, name=f"conv{i}_pad")(x)
        x = layers.Conv2D(filters, kernel, strides=stride, activation="relu", kernel_regularizer=reg,
                          name=f"conv{i}")(x)
        if pool:
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{i}")(x)
    if include_top:  # torchvision's order: dropout before each hidden fully connected layer
        x = layers.Flatten(name="flatten")(x)
        for i in (1, 2):
            x = layers.Dropout(0.5, name=f"fc{i}_dropout")(x)
            x = layers.Dense(4096, activation="relu", kernel_regularizer=reg, name=f"fc{i}")(x)
        x = _classifier(x, num_classes, classifier_activation, weight_decay)
    return keras.Model(inputs, x, name=name)


# Simonyan & Zisserman 2015, Table 1: filters per conv, "M" for max pooling, (n, 1) for a 1x1 conv.
VGG_CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def build_vgg(config="D", input_shape=(224, 224, 3), num_classes=1000, include_top=True,
              classifier_activation="softmax", preprocessing=None, weight_decay=0.0, name=None):
    """VGG configuration A, A-LRN, B, C, D or E (11, 11, 13, 16 with 1x1 convs, 16, 19 layers).

    3x3 convs (padding 1), 2x2 max pooling, then 4096-4096-classes fully connected with dropout
    0.5. At 224x224 with 1000 classes: A 132,863,336, B 133,047,848, D 138,357,544, E 143,667,240.
    """
    if config not in VGG_CONFIGS:
        raise ValueError(f"config must be one of {tuple(VGG_CONFIGS)}. Received: config={config!r}")
    inputs, x = _start(input_shape, preprocessing, name)
    reg = kernel_regularizer(weight_decay)
    block, index = 1, 1
    for item in VGG_CONFIGS[config]:
        if item == "M":
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            block, index = block + 1, 1
        elif item == "LRN":
            x = LocalResponseNormalization(name=f"block{block}_lrn")(x)
        else:
            filters, kernel = item if isinstance(item, tuple) else (item, 3)
            x = layers.Conv2D(filters, kernel, padding="same", activation="relu", kernel_regularizer=reg,
                              name=f"block{block}_conv{index}")(x)
            index += 1
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = _classifier(x, num_classes, classifier_activation, weight_decay, hidden=(4096, 4096), dropout=0.5)
    return keras.Model(inputs, x, name=name or f"vgg-{config}")


def _conv_bn(x, filters, kernel, stride=1, *, name, weight_decay):
    """torchvision's BasicConv2d: conv without bias, BN (epsilon 1e-3), ReLU."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_regularizer=kernel_regularizer(weight_decay), name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


# GoogLeNet's inception modules (Szegedy et al. 2015, Table 1): #1x1, #3x3 reduce, #3x3,
# #5x5 reduce, #5x5, pool proj.
INCEPTION_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def _inception(x, spec, name, branch3_kernel, weight_decay):
    b1, r3, b3, r5, b5, proj = spec
    kw = dict(weight_decay=weight_decay)
    one = _conv_bn(x, b1, 1, name=f"{name}_1x1", **kw)
    three = _conv_bn(_conv_bn(x, r3, 1, name=f"{name}_3x3_reduce", **kw), b3, 3, name=f"{name}_3x3", **kw)
    five = _conv_bn(_conv_bn(x, r5, 1, name=f"{name}_5x5_reduce", **kw), b5, branch3_kernel,
                    name=f"{name}_5x5", **kw)
    pool = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    pool = _conv_bn(pool, proj, 1, name=f"{name}_pool_proj", **kw)
    return layers.Concatenate(name=f"{name}_concat")([one, three, five, pool])


def _aux_head(x, num_classes, classifier_activation, name, weight_decay):
    """An auxiliary classifier (Section 5): 5x5/3 average pooling, 1x1 conv 128, FC 1024, dropout 0.7."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = _conv_bn(x, 128, 1, name=f"{name}_conv", weight_decay=weight_decay)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", kernel_regularizer=kernel_regularizer(weight_decay),
                     name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, activation=classifier_activation, dtype="float32", name=f"{name}_predictions")(x)


def build_googlenet(input_shape=(224, 224, 3), num_classes=1000, include_top=True, classifier_activation="softmax",
                    aux_heads=False, branch3_kernel=3, preprocessing=None, weight_decay=0.0, name="googlenet"):
    """GoogLeNet (Inception v1) as torchvision's `googlenet`: 6,624,904 trainable parameters at
    224x224 with 1000 classes and no auxiliary heads.

    As torchvision: batch norm after every conv, and the "5x5" branch uses a 3x3 kernel
    (`branch3_kernel=3`, a quirk torchvision keeps for its weights; 5 gives the paper's 5x5,
    7,005,832 parameters). `aux_heads=True` adds the two auxiliary classifiers after 4a and 4d as
    extra outputs (training only, as in the paper): 13,004,888, as torchvision's aux_logits=True.
    """
    inputs, x = _start(input_shape, preprocessing, name)
    kw = dict(weight_decay=weight_decay)
    x = _conv_bn(x, 64, 7, 2, name="conv1", **kw)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _conv_bn(x, 64, 1, name="conv2_reduce", **kw)
    x = _conv_bn(x, 192, 3, name="conv2", **kw)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    aux = []
    for module, spec in INCEPTION_MODULES.items():
        if module in ("4a", "5a"):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{module[0]}")(x)
        x = _inception(x, spec, f"inception{module}", branch3_kernel, weight_decay)
        if aux_heads and include_top and module in ("4a", "4d"):
            aux.append(_aux_head(x, num_classes, classifier_activation, f"aux{len(aux) + 1}", weight_decay))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2, name="dropout")(x)
        x = _classifier(x, num_classes, classifier_activation, weight_decay)
    return keras.Model(inputs, [x, *aux] if aux else x, name=name)


def build_densenet121(input_shape=(224, 224, 3), num_classes=1000, include_top=True, classifier_activation="softmax",
                      preprocessing=None, weight_decay=0.0, name="densenet121"):
    """DenseNet-121 (Huang et al. 2017): growth rate 32, blocks of 6, 12, 24, 16 bottleneck layers
    (BN-ReLU-1x1 conv 128, BN-ReLU-3x3 conv 32), transitions halving the channels: 7,978,856
    trainable parameters at 224x224 with 1000 classes (as keras.applications.DenseNet121)."""
    inputs, x = _start(input_shape, preprocessing, name)
    reg = kernel_regularizer(weight_decay)

    def bn_relu(x, name):
        x = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, kernel_regularizer=reg, name="conv1_conv")(x)
    x = bn_relu(x, "conv1")
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for block, repeats in enumerate((6, 12, 24, 16), start=2):
        for i in range(1, repeats + 1):
            name_i = f"conv{block}_block{i}"
            y = bn_relu(x, f"{name_i}_0")
            y = layers.Conv2D(128, 1, use_bias=False, kernel_regularizer=reg, name=f"{name_i}_1_conv")(y)
            y = bn_relu(y, f"{name_i}_1")
            y = layers.Conv2D(32, 3, padding="same", use_bias=False, kernel_regularizer=reg,
                              name=f"{name_i}_2_conv")(y)
            x = layers.Concatenate(name=f"{name_i}_concat")([x, y])
        if block < 5:
            x = bn_relu(x, f"pool{block}")
            x = layers.Conv2D(x.shape[-1] // 2, 1, use_bias=False, kernel_regularizer=reg, name=f"pool{block}_conv")(x)
            x = layers.AveragePooling2D(2, name=f"pool{block}_pool")(x)
    x = bn_relu(x, "final")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = _classifier(x, num_classes, classifier_activation, weight_decay)
    return keras.Model(inputs, x, name=name)


BASELINES = {  # registry name: (builder, default input shape, fixed arguments)
    "lenet5": (build_lenet5, (32, 32, 1), {}),
    "alexnet": (build_alexnet, (224, 224, 3), {}),
    "vgg11": (build_vgg, (224, 224, 3), {"config": "A"}),
    "vgg11_lrn": (build_vgg, (224, 224, 3), {"config": "A-LRN"}),
    "vgg13": (build_vgg, (224, 224, 3), {"config": "B"}),
    "vgg16_1x1": (build_vgg, (224, 224, 3), {"config": "C"}),
    "vgg16": (build_vgg, (224, 224, 3), {"config": "D"}),
    "vgg19": (build_vgg, (224, 224, 3), {"config": "E"}),
    "googlenet": (build_googlenet, (224, 224, 3), {}),
    "densenet121": (build_densenet121, (224, 224, 3), {}),
}

# Layers with weights on the longest path, as each paper counts them, where the built graph's
# count differs (GoogLeNet's parallel branches: 22 layers deep, Szegedy et al. Table 1).
PAPER_LAYERS = {"googlenet": 22}
