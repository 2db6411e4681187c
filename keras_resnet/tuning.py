"""Hyperparameter search with Keras Tuner over the registry, the datasets and the recipes.

`ResNetHyperModel` builds and compiles each trial's model through `training.build_model` and
`training.compile_model` (the same learning-rate schedule, weight decay and metrics as
`scripts/train.py`) from a `TrainConfig` whose searched fields come from the trial's
hyperparameters. The search space is one dict: each entry is a list (a choice), a
{"min", "max"} range (learning rate and weight decay: log scale) or a single value (fixed).
"""

import dataclasses
import hashlib
import json
import math
import os

import keras
import keras_tuner

from keras_resnet import config as config_lib, data, registry, training
from keras_resnet.files import read_json, write_json

# Augmentation strength -> (augment, flip) of data.make_pipeline.
AUGMENTATION = {"none": ("none", False), "crop": ("cifar", False), "crop+flip": ("cifar", True)}

DEFAULT_SPACE = {
    "model": ["resnet20", "resnet32"],
    "shortcut": ["A", "B"],
    "bn_momentum": [0.9, 0.99],
    "weight_decay": {"min": 1e-5, "max": 1e-3},
    "learning_rate": {"min": 1e-3, "max": 0.3},
    "optimizer": ["sgd", "adamw"],
    "label_smoothing": [0.0, 0.1],
    "batch_size": [32, 64, 128],
    "augmentation": list(AUGMENTATION),
}
RANGES = ("learning_rate", "weight_decay")  # searched on a log scale
TUNERS = ("random", "hyperband", "bayesian")


def _is_range(value):
    return isinstance(value, dict)


def validate_space(space):
    """The full space (defaults updated by `space`), or a ValueError naming the bad entry."""
    unknown = sorted(set(space) - set(DEFAULT_SPACE))
    if unknown:
        raise ValueError(f"Unknown search space keys {unknown}. Known keys: {', '.join(DEFAULT_SPACE)}")
    full = {**DEFAULT_SPACE, **space}
    for key, value in full.items():
        if _is_range(value):
            if key not in RANGES:
                raise ValueError(f"{key} takes a list of choices or one value, not a range. Received: {key}={value!r}")
            if set(value) != {"min", "max"}:
                raise ValueError(f"A range needs exactly 'min' and 'max'. Received: {key}={value!r}")
            low, high = value["min"], value["max"]
            if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and 0 < low <= high):
                raise ValueError(f"{key} range must have 0 < min <= max (log scale). Received: {key}={value!r}")
        elif isinstance(value, list):
            if not value:
                raise ValueError(f"{key} has an empty list of choices. Received: {key}=[]")
            if len(set(map(json.dumps, value))) != len(value):
                raise ValueError(f"{key} lists a choice twice. Received: {key}={value!r}")
    for model in _values(full["model"]):
        if registry.get_entry(model).family == "baseline":  # "Unknown model name ..." lists the known ones
            raise ValueError(f"model choices must be ResNets or plain nets of the registry. Received: model={model!r}")
    checks = {
        "optimizer": config_lib.OPTIMIZERS, "augmentation": tuple(AUGMENTATION), "shortcut": ("A", "B", "C"),
    }
    for key, allowed in checks.items():
        bad = [v for v in _values(full[key]) if v not in allowed]
        if bad:
            raise ValueError(f"{key} choices must be among {allowed}. Received: {key}={full[key]!r}")
    for key in ("batch_size",):
        bad = [v for v in _values(full[key]) if not (isinstance(v, int) and v >= 1)]
        if bad:
            raise ValueError(f"{key} choices must be positive integers. Received: {key}={full[key]!r}")
    for key in ("bn_momentum", "label_smoothing"):
        bad = [v for v in _values(full[key]) if not (isinstance(v, (int, float)) and 0 <= v < 1)]
        if bad:
            raise ValueError(f"{key} choices must be in [0, 1). Received: {key}={full[key]!r}")
    for key in RANGES:
        if not _is_range(full[key]):
            bad = [v for v in _values(full[key]) if not (isinstance(v, (int, float)) and v >= 0)]
            if bad or (key == "learning_rate" and 0 in _values(full[key])):
                raise ValueError(f"{key} values must be positive. Received: {key}={full[key]!r}")
    return full


def _values(value):
    if _is_range(value):
        return [value["min"], value["max"]]
    return value if isinstance(value, list) else [value]


def parse_space_arguments(pairs, space_file=None):
    """`KEY=JSON` strings (and a JSON file) -> a space dict: `model=["resnet20"]`,
    `learning_rate={"min":0.01,"max":0.1}`, `optimizer=sgd` (one value fixes it)."""
    space = {}
    if space_file:
        space.update(config_lib.load_config_file(space_file, argument="space_file"))
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--space takes KEY=VALUE (JSON). Received: {pair!r}")
        try:
            space[key] = json.loads(text)
        except json.JSONDecodeError:
            space[key] = text
    return space


def _hp(hp, key, value):
    if _is_range(value):
        if value["min"] == value["max"]:
            return hp.Fixed(key, value["min"])
        return hp.Float(key, value["min"], value["max"], sampling="log")
    if isinstance(value, list):
        return hp.Choice(key, value) if len(value) > 1 else hp.Fixed(key, value[0])
    return hp.Fixed(key, value)


class ResNetHyperModel(keras_tuner.HyperModel):
    """A HyperModel over registry models and the training recipe.

    `base_config` (a TrainConfig) fixes everything not searched (dataset, epochs, recipe,
    schedule); `space` (validated) says what is searched. The batch size and augmentation are
    sampled with the rest and applied in `fit`, where the data pipelines are made.
    """

    def __init__(self, base_config, dataset, space=None, **kwargs):
        super().__init__(**kwargs)
        self.base_config = base_config
        self.dataset = dataset
        self.space = validate_space(space or {})
        too_large = [b for b in _values(self.space["batch_size"]) if b > dataset.train_size]
        if too_large:  # such a trial would train zero steps and still "complete"
            raise ValueError(f"batch_size choices must not exceed the {dataset.train_size} training images of "
                             f"{dataset.name}. Received: batch_size={self.space['batch_size']!r}")
        self.image_size = base_config.image_size or dataset.image_shape[0]
        self.trials_run = 0  # fits in this process (how the trials of a distributed search split)

    def trial_config(self, hp):
        values = {key: _hp(hp, key, value) for key, value in self.space.items()}
        model_kwargs = {**self.base_config.model_kwargs, "bn_momentum": values["bn_momentum"]}
        if not values["model"].startswith("plain"):
            model_kwargs["shortcut"] = values["shortcut"]
        augment, flip = AUGMENTATION[values["augmentation"]]
        return dataclasses.replace(
            self.base_config, model=values["model"], model_kwargs=model_kwargs, weight_decay=values["weight_decay"],
            learning_rate=values["learning_rate"], optimizer=values["optimizer"],
            label_smoothing=values["label_smoothing"], batch_size=values["batch_size"], augment=augment, flip=flip,
        )

    def build(self, hp):
        config = self.trial_config(hp)
        model = training.build_model(config, self.dataset, self.image_size)
        training.compile_model(model, config, self.steps_per_epoch(config), self.dataset.num_classes)
        return model

    def steps_per_epoch(self, config):
        return self.dataset.train_size // config.batch_size

    def pipelines(self, config):
        def pipeline(split, train):
            return data.make_pipeline(split, batch_size=config.batch_size, num_classes=self.dataset.num_classes,
                                      image_size=self.image_size, training=train, augment=config.augment,
                                      flip=config.flip, seed=config.seed)

        return pipeline(self.dataset.train, True), pipeline(self.dataset.validation, False)

    def fit(self, hp, model, *args, **kwargs):
        config = self.trial_config(hp)
        train, validation = self.pipelines(config)
        kwargs.setdefault("epochs", config.epochs)
        kwargs.setdefault("verbose", 0 if config.quiet else 1)
        kwargs.setdefault("shuffle", False)  # the pipeline shuffles, seeded
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), keras.callbacks.TerminateOnNaN()]
        self.trials_run += 1
        history = model.fit(train, validation_data=validation, **kwargs)
        losses = history.history.get("loss", [])
        if not losses or not all(math.isfinite(v) for v in losses):
            # A diverged model must never be the best (its validation accuracy is chance, its weights NaN):
            # with NaN metrics Keras Tuner marks the trial INVALID.
            history.history = {key: [math.nan] * len(values) for key, values in history.history.items()}
        return history


def search_settings(kind, space, base_config, objective, epochs):
    """What defines a search (its trials are comparable only under the same settings)."""
    return {"tuner": kind, "space": validate_space(space), "objective": objective, "epochs": epochs,
            "dataset": base_config.dataset, "image_size": base_config.image_size,
            "model_kwargs": base_config.model_kwargs, "seed": base_config.seed}


def default_project_name(settings):
    """<tuner>-<dataset>-<8 hex digits of the settings>: another search never resumes this one's trials."""
    from keras_resnet.config import dataset_slug

    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{settings['tuner']}-{dataset_slug(settings['dataset'])}-{digest}"


def claim_project(folder, settings):
    """search.json in the project folder: written by the first run, compared by every later one, so a
    rerun resumes only the same search (another tuner or space is refused, naming what differs)."""
    path = os.path.join(folder, "search.json")
    if os.path.exists(path):
        previous = read_json(path, advice="delete the project folder or pass another --project-name")
        changed = sorted(k for k in settings if json.dumps(previous.get(k), sort_keys=True)
                         != json.dumps(settings[k], sort_keys=True))
        if changed:
            raise ValueError(f"{folder} holds another search ({', '.join(changed)} differ); rerun with the same "
                             "settings to resume it, or pass another --project-name or --directory.")
        return
    os.makedirs(folder, exist_ok=True)
    write_json(path, settings)


def objectives(num_classes):
    """The names a trial's model reports: its metrics, and the same on the validation split."""
    names = training.metric_names(num_classes)
    return names + [f"val_{name}" for name in names]


def check_objective(objective, num_classes):
    reported = objectives(num_classes)
    if objective not in reported:
        raise ValueError(f"objective must be one of the metrics the models report: {', '.join(reported)}. "
                         f"Received: objective={objective!r}")


def make_tuner(kind, hypermodel, *, objective="val_accuracy", max_trials=10, epochs=10, directory="runs/tuning",
               project_name="resnet", seed=0, distribution_strategy=None):
    """A Keras Tuner `kind` tuner; rerunning with the same directory and project resumes it.

    The objective must be one the compiled models report (`objectives`): a misspelled one would
    fail every trial.
    """
    if kind not in TUNERS:
        raise ValueError(f"tuner must be one of {TUNERS}. Received: tuner={kind!r}")
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"max_trials must be a positive integer. Received: max_trials={max_trials!r}")
    check_objective(objective, hypermodel.dataset.num_classes)
    direction = "min" if "loss" in objective else "max"
    common = dict(hypermodel=hypermodel, objective=keras_tuner.Objective(objective, direction),
                  directory=directory, project_name=project_name, seed=seed, overwrite=False,
                  distribution_strategy=distribution_strategy)
    if kind == "random":
        return keras_tuner.RandomSearch(max_trials=max_trials, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(max_trials=max_trials, **common)
    # Hyperband budgets in epochs: max_epochs per model, factor 3; max_trials is not used by it.
    return keras_tuner.Hyperband(max_epochs=epochs, factor=3, **common)


def trials_table(tuner):
    """One row per trial: id, status, score and every hyperparameter, best first."""
    rows = []
    for trial in tuner.oracle.trials.values():
        row = {"trial": trial.trial_id, "status": trial.status, "score": trial.score}
        row.update(trial.hyperparameters.values)
        rows.append(row)
    direction = tuner.oracle.objective.direction

    def key(row):
        score = row["score"]
        if score is None or (isinstance(score, float) and math.isnan(score)):
            return math.inf, row["trial"]
        return (-score if direction == "max" else score), row["trial"]

    return sorted(rows, key=key)  # ties: the earlier trial first, whatever order the oracle reloaded them in


def write_results(tuner, folder):
    """trials.csv, trials.md and best_hyperparameters.json in `folder`; returns (rows, best values)."""
    from keras_resnet.experiments import write_table

    rows = trials_table(tuner)
    columns = ["trial", "status", "score"] + sorted({k for row in rows for k in row} - {"trial", "status", "score"})
    os.makedirs(folder, exist_ok=True)
    formats = {key: "{:.3g}".format for key in RANGES}
    formats["score"] = "{:.4f}".format
    write_table(rows, columns, os.path.join(folder, "trials"), formats)
    best = best_trial(tuner)
    values = best.hyperparameters.values if best else {}
    write_json(os.path.join(folder, "best_hyperparameters.json"), values)
    return rows, values


def completed_trials(tuner):
    """Trials that finished with a finite score (failed and invalid trials are never 'best')."""
    return [t for t in tuner.oracle.trials.values()
            if t.status == "COMPLETED" and t.score is not None and math.isfinite(t.score)]


def best_trial(tuner):
    """The completed trial with the best score; of equal scores the earliest (by trial id), so a rerun that
    reloads the trials in another order picks (and exports) the same one. None when no trial completed."""
    ranked = {row["trial"]: index for index, row in enumerate(trials_table(tuner))}
    completed = completed_trials(tuner)
    return min(completed, key=lambda trial: ranked[trial.trial_id]) if completed else None
