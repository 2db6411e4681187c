import pytest

from keras_resnet import count_trainable_params, get_model, list_models
from keras_resnet.registry import get_entry

REQUIRED = (
    [f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110, 1202)]
    + ["plain18", "plain34"]
    + [f"plain{d}" for d in (20, 32, 44, 56, 110)]
)


def test_list_models_has_every_required_name():
    assert set(REQUIRED) <= set(list_models())
    assert set(list_models("cifar")) >= {"resnet20", "plain110"}
    assert "resnet20" not in list_models("imagenet")


def test_get_model_builds_the_named_network_with_overrides():
    model = get_model("resnet20", num_classes=7)
    assert model.name == "resnet20" and model.output.shape == (None, 7)
    assert count_trainable_params(get_model("resnet20")) == 269_722
    plain = get_model("plain20")
    assert plain.residual is False and not any("_add" in l.name for l in plain.layers)
    assert get_entry("resnet50").default_input_shape == (224, 224, 3)


def test_a_name_fixes_its_architecture():
    with pytest.raises(ValueError, match=r"depth is fixed by the model name 'resnet50' \(depth=50\).*depth=18"):
        get_model("resnet50", depth=18)
    with pytest.raises(ValueError, match="residual is fixed by the model name 'plain20'"):
        get_model("plain20", residual=True)
    with pytest.raises(ValueError, match="foo is not an argument of the resnet20 builder"):
        get_model("resnet20", foo=1)
    assert get_model("resnet50", depth=50, input_shape=(32, 32, 3)).name == "resnet50"  # the same value is fine
    tiny = get_model("resnet8", width=4)
    assert tiny.depth == 8 and tiny.stage_repeats == (1, 1, 1) and "resnet8" in list_models("cifar")


def test_unknown_model_name_lists_known_ones():
    with pytest.raises(ValueError, match="Unknown model name 'resnet21'.*resnet20.*plain110"):
        get_model("resnet21")
