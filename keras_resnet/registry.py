"""Model names -> builders. Every script, the tuner and export pick models here.

`get_model("resnet50", num_classes=10)` calls the registered builder with the
registered defaults updated by the keyword arguments.
"""

import dataclasses
import inspect

from keras_resnet.baselines import BASELINES
from keras_resnet.resnet import RESNET_SPECS, build_cifar_resnet, build_resnet

# ResNet-8 / plain-8 (n = 1) are the tiny members of the family, for tests and quick checks.
CIFAR_DEPTHS = (8, 20, 32, 44, 56, 110, 1202)
PLAIN_CIFAR_DEPTHS = (8, 20, 32, 44, 56, 110)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, fixed arguments and the family it belongs to."""

    name: str
    builder: object
    defaults: dict
    family: str  # "imagenet", "cifar" or "baseline": what input size and data it expects
    default_input_shape: tuple


_REGISTRY = {}


def register(name, builder, family, default_input_shape, **defaults):
    """Add a model name; used for the ResNets below and by the baselines module."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(name, builder, defaults, family, tuple(default_input_shape))


def list_models(family=None):
    """Registered model names, optionally only one family ("imagenet", "cifar", ...)."""
    return [n for n, e in _REGISTRY.items() if family is None or e.family == family]


def get_entry(name):
    """The `ModelEntry` for `name`; ValueError listing the known names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model name {name!r}. Known models: {', '.join(list_models())}")
    return _REGISTRY[name]


def accepted_arguments(name):
    """Keyword arguments the builder of `name` takes, less those its name fixes (depth, residual)."""
    entry = get_entry(name)
    parameters = inspect.signature(entry.builder).parameters
    return [p for p in parameters if p not in entry.defaults and parameters[p].kind != inspect.Parameter.VAR_KEYWORD]


def check_arguments(name, kwargs, argument="kwargs", reserved=()):
    """ValueError naming `argument` for a keyword the builder of `name` does not take, one that its
    name fixes (resnet50 with depth=18), or one in `reserved` (set by the caller)."""
    entry = get_entry(name)
    for key, value in kwargs.items():
        if key in entry.defaults and value != entry.defaults[key]:
            raise ValueError(f"{key} is fixed by the model name {name!r} ({key}={entry.defaults[key]!r}); choose "
                             f"the model by name instead. Received: {argument} {key}={value!r}")
        if key in reserved:
            raise ValueError(f"{key} is set by the caller ({reserved[key]}), not by {argument}. "
                             f"Received: {argument} {key}={value!r}")
        if key not in entry.defaults and key not in accepted_arguments(name):
            raise ValueError(f"{key} is not an argument of the {name} builder; it takes "
                             f"{', '.join(accepted_arguments(name))}. Received: {argument} {key}={value!r}")


def get_model(name, **kwargs):
    """Build the registered model `name`; keyword arguments override its defaults.

    Arguments that the name fixes (the depth of resnet50) cannot be overridden: the model would
    carry a name that lies about it.
    """
    entry = get_entry(name)
    check_arguments(name, {k: v for k, v in kwargs.items() if k != "name"})
    arguments = {**entry.defaults, "name": name, **kwargs}
    return entry.builder(**arguments)


for _depth in RESNET_SPECS:
    register(f"resnet{_depth}", build_resnet, "imagenet", (224, 224, 3), depth=_depth)
for _depth in (18, 34):
    register(f"plain{_depth}", build_resnet, "imagenet", (224, 224, 3), depth=_depth, residual=False)
for _depth in CIFAR_DEPTHS:
    register(f"resnet{_depth}", build_cifar_resnet, "cifar", (32, 32, 3), depth=_depth)
for _depth in PLAIN_CIFAR_DEPTHS:
    register(f"plain{_depth}", build_cifar_resnet, "cifar", (32, 32, 3), depth=_depth, residual=False)

for _name, (_builder, _shape, _fixed) in BASELINES.items():
    register(_name, _builder, "baseline", _shape, **_fixed)
