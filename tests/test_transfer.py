import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import randomize_batchnorm

import keras_resnet as kr
from keras_resnet import transfer

SIZE = 32


@pytest.fixture
def pretrained(rng):
    model = kr.build_resnet(stage_repeats=(1, 1, 1, 1), block_type="basic", width=4, input_shape=(SIZE, SIZE, 3),
                            num_classes=5, preprocessing="imagenet")
    return randomize_batchnorm(model, rng)


def snapshot(model):
    return {layer.name: [w.numpy().copy() for w in layer.weights] for layer in model.layers if layer.weights}


def changed(before, model):
    return {name for name, values in before.items()
            if any(not np.array_equal(v, w.numpy()) for v, w in zip(values, model.get_layer(name).weights))}


def one_step(model, rng, classes, lr=0.5):
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="categorical_crossentropy")
    x = rng.uniform(0, 255, (8, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, classes, 8), classes)
    model.train_on_batch(x, y)


def test_head_mode_trains_only_the_new_head(pretrained, rng):
    model = transfer.replace_head(pretrained, 3, hidden_units=8)
    assert [layer.name for layer in model.layers[-3:]] == ["avg_pool", "head_dense", "predictions"]
    transfer.set_trainable(model, "head")
    before = snapshot(model)
    one_step(model, rng, 3)
    assert changed(before, model) == {"head_dense", "predictions"}  # backbone and BN statistics bit-identical
    report = {row["stage"]: row for row in transfer.trainable_report(model)}
    assert report["head"]["trainable"] == 32 * 8 + 8 + 8 * 3 + 3  # 32 features (width 4 x 8)
    assert report["total"]["trainable"] == report["head"]["trainable"]
    assert report["total"]["trainable"] + report["total"]["frozen"] == model.count_params()
    assert report["stage3"]["batch norm"] == "inference (frozen)"


def test_partial_from_stage4_then_bn_statistics_stay_frozen(pretrained, rng):
    model = transfer.replace_head(pretrained, 3)
    transfer.set_trainable(model, "head")
    one_step(model, rng, 3)
    transfer.set_trainable(model, "partial", trainable_from="stage4")  # unfreeze for fine-tuning
    before = snapshot(model)
    one_step(model, rng, 3)
    moved = changed(before, model)
    early = {name for name in before if name.split("_")[0] in ("stage1", "stage2", "stage3")}
    assert early and not moved & early  # stages 1-3 and their BN statistics unchanged
    late_convs = {name for name in before if name.split("_")[0] in ("stage4", "stage5") and "conv" in name}
    assert late_convs <= moved  # stage 4 onwards trains
    assert not {name for name in moved if "_bn" in name}  # BN stays in inference mode (the Keras rule)
    # With freeze_batchnorm=False the unfrozen stages' BN train on batch statistics.
    transfer.set_trainable(model, "partial", trainable_from="stage4", freeze_batchnorm=False)
    before = snapshot(model)
    one_step(model, rng, 3)
    bns = {name for name in changed(before, model) if "_bn" in name}
    assert bns and all(name.split("_")[0] in ("stage4", "stage5") for name in bns)


def test_trainable_blocks_and_full_modes(pretrained, rng):
    transfer.set_trainable(pretrained, "partial", trainable_blocks=1)
    before = snapshot(pretrained)
    one_step(pretrained, rng, 5)
    moved = changed(before, pretrained)
    assert moved == {"stage5_block1_conv1", "stage5_block1_conv2", "stage5_block1_shortcut_conv", "predictions"}
    transfer.set_trainable(pretrained, "full")
    assert all(layer.trainable for layer in pretrained.layers)
    assert kr.count_trainable_params(pretrained) == sum(int(np.prod(w.shape)) for w in pretrained.trainable_weights)
    assert "| stage1 |" in transfer.trainable_report_markdown(pretrained)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "partial", "trainable_from": "stage9"},
         r"trainable_from must be one of \['stage1', 'stage2', 'stage3', 'stage4', 'stage5'\]. "
         r"Received: trainable_from='stage9'"),
        ({"mode": "partial"}, "exactly one of trainable_from"),
        ({"mode": "partial", "trainable_blocks": 7}, "trainable_blocks=7"),
        ({"mode": "frozen"}, "mode='frozen'"),
        ({"mode": "head", "trainable_from": "stage4"}, "apply to mode='partial'"),
    ],
)
def test_bad_arguments_are_named(pretrained, kwargs, match):
    with pytest.raises(ValueError, match=match):
        transfer.set_trainable(pretrained, **kwargs)


@pytest.mark.parametrize("labels", ["one-hot", "integers", "arrays"])
def test_two_phase_fine_tune_continues_epochs(pretrained, rng, labels):
    """Works with one-hot labels and with the usual Keras integer class labels (a dataset or arrays)."""
    model = transfer.replace_head(pretrained, 2)
    x = rng.uniform(0, 255, (16, SIZE, SIZE, 3)).astype("float32")
    y = rng.integers(0, 2, 16)
    frozen = snapshot(model)
    if labels == "one-hot":
        train = tf.data.Dataset.from_tensor_slices((x, keras.utils.to_categorical(y, 2))).batch(8)
    elif labels == "integers":
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    else:
        train = (x, y)
    first, second = transfer.two_phase_fine_tune(model, train, head_epochs=1, fine_tune_epochs=2,
                                                 trainable_from="stage5", verbose=0)
    assert first.epoch == [0] and second.epoch == [1, 2]
    assert np.isfinite(second.history["loss"]).all()
    moved = changed(frozen, model)
    assert "predictions" in moved and "stage5_block1_conv1" in moved and "stage4_block1_conv1" not in moved


def test_set_trainable_refuses_a_model_without_stages():
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)), name="other")
    with pytest.raises(ValueError, match="model has no stage layers .* Received: model='other'"):
        transfer.set_trainable(other, "head")


# --- through the training configuration and the scripts ------------------------------------

import os  # noqa: E402

from conftest import no_traceback, run_main  # noqa: E402

from keras_resnet import config, data, training  # noqa: E402

TINY = {"width": 4}


def test_digit_subsets_and_few_labels():
    target = data.load_dataset("digits:5-9")
    assert (target.name, target.num_classes, target.class_names) == ("digits:5-9", 5, ["5", "6", "7", "8", "9"])
    labels = [int(y) for _, y in target.test.as_numpy_iterator()]
    assert sorted(set(labels)) == [0, 1, 2, 3, 4] and len(labels) == 180
    few = data.limit_per_class(target, 3)
    assert few.train_size == 15 and few.train.cardinality().numpy() == 15
    assert sorted(int(y) for _, y in few.train.as_numpy_iterator()) == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
    with pytest.raises(ValueError, match="dataset='digits:7'"):
        data.load_dataset("digits:7")


def test_transfer_run_loads_the_pretrained_backbone_and_trains_only_the_head(tmp_path):
    base = dict(model="resnet8", model_kwargs=TINY, epochs=1, batch_size=16, quiet=True, export=False)
    pre = training.train(config.resolve_config({**base, "dataset": "digits:0-4", "run_dir": str(tmp_path / "pre")}))
    pretrained = keras.saving.load_model(os.path.join(pre["run_dir"], "best.keras"), safe_mode=True)
    cfg = config.resolve_config({**base, "dataset": "digits:5-9", "train_per_class": 8, "init_from": pre["run_dir"],
                                 "transfer_mode": "head", "run_dir": str(tmp_path / "head")})
    metrics = training.train(cfg)
    assert metrics["trainable_params"] == 16 * 5 + 5  # the new head only: 16 features x 5 classes
    tuned = keras.saving.load_model(os.path.join(metrics["run_dir"], "final.keras"), safe_mode=True)
    for layer in pretrained.layers:  # the backbone is the run's best.keras, bit for bit
        if layer.weights and layer.name != "predictions":
            for a, b in zip(layer.weights, tuned.get_layer(layer.name).weights):
                np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="transfer_mode needs init_from"):
        config.resolve_config({"transfer_mode": "head"})
    # The run is named after --model: a file of another architecture is refused, naming both.
    for model, kwargs in (("resnet20", {}), ("resnet8", {"width": 8})):
        other = config.resolve_config({**base, "model": model, "model_kwargs": kwargs, "dataset": "digits:5-9",
                                       "init_from": pre["run_dir"], "run_dir": str(tmp_path / "other")})
        with pytest.raises(ValueError, match=f"holds a ResNet .* but the model asked for is {model} "
                                             r"\((stage_repeats|stage_widths)"):
            training.train(other)
    assert not os.path.exists(tmp_path / "other")


def test_transfer_demo_script_writes_table_and_plot(tmp_path):
    done = run_main("transfer_demo.py", "--model", "resnet8", "--model-arg", "width=4", "--pretrain-epochs", "1",
                    "--epochs", "1", "--per-class", "5", "--seeds", "0", "--out-dir", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr[-3000:]
    # Progress: a line per epoch of each of the 5 runs, numbered.
    assert "[1/5] pretrain epoch 1/1:" in done.stderr and "[5/5] head-seed0 epoch 1/1:" in done.stderr
    table = (tmp_path / "demo" / "results.md").read_text().splitlines()
    assert [line.split("|")[1].strip() for line in table[2:]] == ["scratch", "full", "partial", "head"]
    assert (tmp_path / "demo" / "accuracy.png").stat().st_size > 5000
    assert "| head | 85 |" in (tmp_path / "demo" / "results.md").read_text()
    assert "init_from is required" in no_traceback(run_main("transfer.py", "--dataset", "digits"))
