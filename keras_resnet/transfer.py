"""Transfer learning: which layers train, a new head, and batch norm handled the Keras way.

The three modes of the lecture notes, after loading pretrained weights:
- "full": every layer trains;
- "partial": layers before a stage (`trainable_from="stage4"`), or all but the last N blocks
  (`trainable_blocks=N`), are frozen;
- "head": the whole backbone is frozen and only the (new) classifier trains.

Batch norm: a frozen BatchNormalization layer (`trainable=False`) runs in inference mode in
Keras 3, so its moving statistics never change. In "partial" and "head" the batch norms of the
unfrozen stages stay frozen as well (`freeze_batchnorm=True`, the Keras fine-tuning rule): small
target datasets would otherwise overwrite the pretrained statistics the convs were trained with.
"full" trains them unless `freeze_batchnorm=True`. Every change of `trainable` needs a new
`compile()`, which `two_phase_fine_tune` does.
"""

import math
import os

import keras

from keras_resnet import checkpoints, registry
from keras_resnet.analysis import markdown_table
from keras_resnet.blocks import kernel_regularizer
from keras_resnet.resnet import ResNet

MODES = ("full", "partial", "head")
HEAD_PREFIX = "head_"


def layer_stage(layer):
    """'stage3' for stage3_block2_conv1, 'input' for the preprocessing, 'head' for the rest."""
    prefix = layer.name.split("_")[0]
    if prefix.startswith("stage") and prefix[5:].isdigit():
        return prefix
    if isinstance(layer, keras.layers.InputLayer) or layer.name == "preprocessing":
        return "input"
    return "head"


def stage_names(model):
    """The model's stages in order: ['stage1', ..., 'stage5']."""
    names = []
    for layer in model.layers:
        stage = layer_stage(layer)
        if stage.startswith("stage") and stage not in names:
            names.append(stage)
    return names


def block_names(model):
    """The residual blocks in order: ['stage2_block1', ..., 'stage5_block3']."""
    names = []
    for layer in model.layers:
        parts = layer.name.split("_")
        if len(parts) > 2 and parts[1].startswith("block") and parts[0].startswith("stage"):
            block = "_".join(parts[:2])
            if block not in names:
                names.append(block)
    return names


def _block_of(layer):
    parts = layer.name.split("_")
    return "_".join(parts[:2]) if len(parts) > 2 and parts[1].startswith("block") else None


def set_trainable(model, mode, *, trainable_from=None, trainable_blocks=None, freeze_batchnorm=None):
    """Set `trainable` on every layer for `mode`; returns the model (compile it afterwards).

    mode: "full", "partial" (with `trainable_from` a stage name or `trainable_blocks` N) or "head".
    freeze_batchnorm: keep the batch norms of trainable stages frozen too (inference mode);
        None means True for "partial" and "head", False for "full".
    The model must have our stage layer names (`stage1_...`, a keras_resnet ResNet or a model made
    from one by `replace_head`): for another model nothing could be frozen by stage.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    stages, blocks = stage_names(model), block_names(model)
    if not stages:
        raise ValueError(f"model has no stage layers (stage1_conv, ...): set_trainable works on keras_resnet models "
                         f"(and those made from them by replace_head). Received: model={model.name!r}")
    if mode == "partial":
        if (trainable_from is None) == (trainable_blocks is None):
            raise ValueError(
                "mode='partial' needs exactly one of trainable_from (a stage name) and trainable_blocks. "
                f"Received: trainable_from={trainable_from!r}, trainable_blocks={trainable_blocks!r}"
            )
        if trainable_from is not None and trainable_from not in stages:
            raise ValueError(f"trainable_from must be one of {stages}. Received: trainable_from={trainable_from!r}")
        if trainable_blocks is not None and not (
            isinstance(trainable_blocks, int) and not isinstance(trainable_blocks, bool)
            and 0 <= trainable_blocks <= len(blocks)
        ):
            raise ValueError(
                f"trainable_blocks must be an integer from 0 to the model's {len(blocks)} blocks. "
                f"Received: trainable_blocks={trainable_blocks!r}"
            )
    elif trainable_from is not None or trainable_blocks is not None:
        raise ValueError(f"trainable_from and trainable_blocks apply to mode='partial'. Received: mode={mode!r}")
    if freeze_batchnorm is None:
        freeze_batchnorm = mode != "full"

    def trains(layer):
        stage = layer_stage(layer)
        if stage == "head" or mode == "full":
            return True
        if stage == "input" or mode == "head":
            return False
        if trainable_from is not None:
            return stages.index(stage) >= stages.index(trainable_from)
        block = _block_of(layer)
        # A stage's `_out` layer has no weights; the stem (no block) is frozen.
        return block is not None and block in blocks[len(blocks) - trainable_blocks:]

    model.trainable = True
    for layer in model.layers:
        train = trains(layer)
        if isinstance(layer, keras.layers.BatchNormalization) and layer_stage(layer) != "head":
            train = train and not freeze_batchnorm
        layer.trainable = train
    return model


def trainable_report(model):
    """Rows per stage: trainable and frozen parameters, and how its batch norms run."""
    rows = {}
    for layer in model.layers:
        stage = layer_stage(layer)
        row = rows.setdefault(stage, {"stage": stage, "trainable": 0, "frozen": 0, "batch norm": set()})
        row["trainable"] += sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
        row["frozen"] += sum(int(math.prod(w.shape)) for w in layer.non_trainable_weights)
        if isinstance(layer, keras.layers.BatchNormalization):
            row["batch norm"].add("batch statistics" if layer.trainable else "inference (frozen)")
    result = []
    for row in rows.values():
        row["batch norm"] = ", ".join(sorted(row["batch norm"])) or "-"
        result.append(row)
    total = {"stage": "total", "trainable": sum(r["trainable"] for r in result),
             "frozen": sum(r["frozen"] for r in result), "batch norm": ""}
    return result + [total]


def report_markdown(rows):
    """`trainable_report` rows as a markdown table."""
    return markdown_table(rows, ["stage", "trainable", "frozen", "batch norm"],
                          {"trainable": "{:,}".format, "frozen": "{:,}".format})


def trainable_report_markdown(model):
    return report_markdown(trainable_report(model))


def replace_head(model, num_classes, *, hidden_units=0, dropout=0.0, classifier_activation="softmax",
                 weight_decay=0.0, name=None):
    """A model with the backbone of `model` and a new classifier for `num_classes`.

    The features are the last stage's output, globally average-pooled; with `hidden_units` a
    ReLU fully connected layer comes before the new `predictions` Dense (float32 under mixed
    precision). The backbone's layers (and weights) are shared with `model`.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer. Received: num_classes={num_classes!r}")
    stages = stage_names(model)
    if not stages:
        raise ValueError(f"model has no stage layers (stage1_out, ...); is it a keras_resnet model? {model.name!r}")
    x = model.get_layer(f"{stages[-1]}_out").output
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    regularizer = kernel_regularizer(weight_decay)
    if hidden_units:
        x = keras.layers.Dense(hidden_units, activation="relu", kernel_regularizer=regularizer,
                               name=f"{HEAD_PREFIX}dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{HEAD_PREFIX}dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation=classifier_activation, dtype="float32",
                                 kernel_regularizer=regularizer, name="predictions")(x)
    return keras.Model(model.input, outputs, name=name or model.name)


def two_phase_fine_tune(
    model,
    train_data,
    validation_data=None,
    *,
    head_epochs=5,
    fine_tune_epochs=5,
    trainable_from="stage4",
    head_learning_rate=1e-3,
    fine_tune_learning_rate=1e-4,
    make_optimizer=lambda lr: keras.optimizers.Adam(lr),
    loss=None,
    metrics=("accuracy",),
    callbacks=None,
    verbose=1,
):
    """Train the head with the backbone frozen, then unfreeze from `trainable_from` at a lower
    learning rate (recompiling, as Keras requires after changing `trainable`).

    `model` already has its new head (`replace_head`). `train_data` is a tf.data.Dataset of
    (images, labels) batches or a tuple (x, y) of arrays; `loss=None` picks sparse categorical
    cross-entropy for integer labels and categorical cross-entropy for one-hot labels. Returns the
    two History objects; the second continues the epoch count of the first.
    """
    loss = loss or _loss_for_labels(train_data)
    set_trainable(model, "head")
    model.compile(optimizer=make_optimizer(head_learning_rate), loss=loss, metrics=list(metrics))
    fit_data = dict(zip(("x", "y"), train_data)) if isinstance(train_data, tuple) else {"x": train_data}
    first = model.fit(**fit_data, validation_data=validation_data, epochs=head_epochs, callbacks=callbacks,
                      verbose=verbose)
    set_trainable(model, "partial", trainable_from=trainable_from)
    model.compile(optimizer=make_optimizer(fine_tune_learning_rate), loss=loss, metrics=list(metrics))
    second = model.fit(**fit_data, validation_data=validation_data, initial_epoch=head_epochs,
                       epochs=head_epochs + fine_tune_epochs, callbacks=callbacks, verbose=verbose)
    return first, second


def _loss_for_labels(train_data):
    """Sparse categorical cross-entropy for class indices ([batch] or integer labels), categorical for
    one-hot rows ([batch, classes] floats)."""
    if isinstance(train_data, tuple):
        labels = train_data[1]
        shape, dtype = tuple(keras.ops.shape(labels)), keras.backend.standardize_dtype(labels.dtype)
    else:
        spec = train_data.element_spec[1]
        shape, dtype = tuple(spec.shape), spec.dtype.name
    sparse = "int" in dtype or len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)
    return "sparse_categorical_crossentropy" if sparse else "categorical_crossentropy"


ARCHITECTURE = ("block_type", "stage_repeats", "stage_widths", "stem", "stem_width", "residual", "shortcut",
                "stride_in", "expansion")


def load_backbone(init_from, *, input_shape, model_name="resnet50", weight_decay=0.0, model_kwargs=None):
    """A headless `ResNet` for `input_shape` holding pretrained weights.

    init_from: "imagenet" or a keras.applications .h5 file (the architecture is `model_name`,
    resnet50/101/152, with the "caffe" preprocessing those weights expect), a torchvision/timm
    ResNet state dict (.safetensors, .pth: `model_name` of its depth, with the v1.5 stride placement
    and ImageNet normalisation they expect; the fc head is dropped), or our own `.keras` file or
    training run directory (its architecture and its own preprocessing layer), which must be the
    architecture `model_name` and `model_kwargs` build: the run is named after them.
    """
    model_kwargs = dict(model_kwargs or {})
    weight_file = os.path.isfile(init_from) and init_from.endswith((".h5", *checkpoints.STATE_DICT_SUFFIXES))
    if init_from == "imagenet" or (weight_file and checkpoints.source_kind(init_from) != "weights_h5"):
        # What the weights were trained with; their blocks are checked against model_name by the loader. The
        # evaluation transform stays None: the new model is trained and served at the dataset's size here.
        if input_shape[-1] != 3:
            raise ValueError(f"init_from={init_from!r} holds weights for RGB images; the dataset has {input_shape[-1]} "
                             "channel(s).")
        implied = checkpoints.builder_defaults(init_from, argument="init_from")
        settings = {key: implied[key] for key in checkpoints.SETTINGS if key in implied}
        model = registry.get_model(model_name, input_shape=input_shape, include_top=False, weight_decay=weight_decay,
                                   **{**settings, **model_kwargs})
        return checkpoints.load_weights(model, init_from, argument="init_from")
    kind, path = checkpoints.resolve_model_path(init_from, argument="init_from")
    if kind != "keras":
        raise ValueError(f"init_from must be 'imagenet', an .h5 file, a .keras file or a run directory. "
                         f"Received: init_from={init_from!r}")
    source = checkpoints.load_keras_model(path, argument="init_from")
    if not isinstance(source, ResNet):
        raise ValueError(f"init_from={init_from!r} is not a keras_resnet ResNet ({type(source).__name__}).")
    channels = source.input_shape[-1]
    if channels != input_shape[-1]:
        raise ValueError(f"init_from={init_from!r} takes {channels}-channel images; the dataset has "
                         f"{input_shape[-1]} channels.")
    expected = registry.get_model(model_name, input_shape=input_shape, include_top=False, **model_kwargs)
    differ = [f"{key} {getattr(source, key)!r} != {getattr(expected, key)!r}" for key in ARCHITECTURE
              if getattr(source, key) != getattr(expected, key)]
    if differ:
        raise ValueError(
            f"init_from={os.fspath(init_from)!r} holds {checkpoints.describe(source)} but the model asked for is "
            f"{model_name} ({'; '.join(differ)}); pass the --model (and --model-arg) the file was trained with."
        )
    config = {**source.get_config(), "include_top": False, "pooling": None, "input_shape": tuple(input_shape),
              "weight_decay": weight_decay, "name": source.name, "dtype_policy": None}  # this run's precision
    backbone = ResNet.from_config(config)
    return checkpoints.copy_weights(source, backbone, weights_name=f"init_from={os.fspath(init_from)!r}")


def build_transfer_model(init_from, *, input_shape, num_classes, mode="full", trainable_from=None,
                         trainable_blocks=None, hidden_units=0, model_name="resnet50", weight_decay=0.0,
                         freeze_batchnorm=None, model_kwargs=None):
    """Pretrained backbone + new head for `num_classes`, with `mode`'s layers trainable."""
    backbone = load_backbone(init_from, input_shape=input_shape, model_name=model_name, weight_decay=weight_decay,
                             model_kwargs=model_kwargs)
    model = replace_head(backbone, num_classes, hidden_units=hidden_units, weight_decay=weight_decay)
    return set_trainable(model, mode, trainable_from=trainable_from, trainable_blocks=trainable_blocks,
                         freeze_batchnorm=freeze_batchnorm)
