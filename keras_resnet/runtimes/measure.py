"""One table of every way to run a model here: Keras in float32 and mixed_bfloat16, the SavedModel
with and without folded batch norm, ONNX Runtime, OpenVINO and LiteRT in float32 and int8
(`scripts/benchmark.py --runtimes`).

Every export is made once, then the runtimes are measured in turn, `rounds` times, each round loading
each one afresh and timing `warmup` + `repeats` calls at each batch size (the same random images, at
the input size, through each format's classify function: what a server pays per request, top-k
included). A figure is the median over the rounds of the median call; the peak resident memory is the
maximum over the rounds of the process's peak while that runtime was loaded and ran (the peak is reset
before each, so earlier runtimes' peaks do not count), and `peak_added_bytes` that peak less the memory in
use before it was loaded (what the runtime itself needed). The Keras rows also train (`benchmark.measure_model`) at the
largest batch size, which gives the mixed_bfloat16 speed-up over float32.
"""

import gc
import os
import statistics
import tempfile

import keras
import numpy as np

from keras_resnet import benchmark
from keras_resnet.runtimes import export_model, load

# (row, how): "precision" rows run the Keras model in process; the others are exports (`export_model`).
ROWS = (
    ("Keras float32", {"precision": "float32"}),
    ("Keras mixed_bfloat16", {"precision": "mixed_bfloat16"}),
    ("SavedModel", {"format": "saved_model"}),
    ("SavedModel, folded BN", {"format": "saved_model", "fold_batchnorm": True}),
    ("ONNX Runtime float32", {"format": "onnx"}),
    ("ONNX Runtime int8", {"format": "onnx", "int8": True}),
    ("OpenVINO float32", {"format": "openvino"}),
    ("OpenVINO int8", {"format": "openvino", "int8": True}),
    ("LiteRT float32", {"format": "litert"}),
    ("LiteRT int8", {"format": "litert", "int8": True}),
)
SAVED_MODEL_FILES = ("saved_model.pb", "variables")


def _size(folder, names):
    total = 0
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            total += sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
        else:
            total += os.path.getsize(path)
    return total


def _keras_classifier(build, precision, weights):
    """The Keras model under `precision` with `weights`, as a function images -> probabilities."""
    with benchmark.precision_policy(precision):
        model = build()
    model.set_weights(weights)
    return model.predict_on_batch, model


def measure_runtimes(build, *, input_shape, batch_sizes=(1, 32), rounds=3, warmup=2, repeats=5,
                     calibration_images=64, rows=None, train=True):
    """{row: figures} for the model `build()` returns (float32), measured in turn (module doc).

    Figures: `file_bytes` (exports), `latency_batch{b}_s` and `images_per_sec_batch{b}` for each batch
    size, `train_images_per_sec` (Keras rows, with `train`), `peak_rss_bytes`, `peak_added_bytes` (Linux),
    and `rounds`: each round's figures.
    The int8 exports are calibrated on `calibration_images` random images (their speed does not depend
    on what the images show).
    """
    rows = [row for row in ROWS if rows is None or row[0] in rows]
    model = build()
    weights = model.get_weights()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (max(batch_sizes), *input_shape)).astype(np.float32)
    calibration = rng.uniform(0, 255, (calibration_images, *input_shape)).astype(np.float32)
    results = {name: [] for name, _ in rows}
    with tempfile.TemporaryDirectory() as folder:
        exports = {}
        for name, how in rows:
            if "format" in how:
                benchmark.progress(f"exporting {name} ...")
                slug = "".join(c if c.isalnum() else "-" for c in name.lower())
                exports[name] = export_model(model, folder, how["format"], int8=how.get("int8", False),
                                             calibration=calibration if how.get("int8") else None, name=slug,
                                             fold_batchnorm=how.get("fold_batchnorm", False), report=False)
        del model
        total, step = rounds * len(rows), 0
        for round_ in range(rounds):
            for name, how in rows:
                step += 1
                benchmark.progress(f"measurement {step}/{total}: {name}, round {round_ + 1}/{rounds} ...")
                gc.collect()
                before = benchmark.resident_memory()[0]
                benchmark.reset_peak_memory()
                result = {}
                if "precision" in how:
                    classify, keep = _keras_classifier(build, how["precision"], weights)
                else:
                    classify, _, keep = load(exports[name])
                    card_files = getattr(classify, "files", None)
                    result["file_bytes"] = _size(exports[name], card_files or SAVED_MODEL_FILES)
                for batch in batch_sizes:
                    seconds = benchmark.time_calls(classify, images[:batch], warmup, repeats)
                    result.update({f"latency_batch{batch}_s": seconds, f"images_per_sec_batch{batch}": batch / seconds})
                del classify, keep
                if "precision" in how and train:
                    trained = benchmark.measure_model(build, batch_size=max(batch_sizes), input_shape=input_shape,
                                                      precision=how["precision"], warmup=warmup, repeats=repeats,
                                                      infer=False)
                    result["train_images_per_sec"] = trained["train_images_per_sec"]
                peak = benchmark.resident_memory()[1]
                result["peak_rss_bytes"] = peak or benchmark.peak_memory()["peak_rss_bytes"]
                if peak and before:
                    result["peak_added_bytes"] = max(0, peak - before)
                results[name].append(result)
                figures = ", ".join(f"{key} {value:.3g}" for key, value in result.items() if "images_per_sec" in key)
                benchmark.progress(f"measurement {step}/{total}: {name}: {figures}")
                keras.backend.clear_session()
    figures = {}
    for name, runs in results.items():
        figures[name] = {key: (max if "peak" in key else statistics.median)([run[key] for run in runs])
                         for key in runs[-1]}
        figures[name]["rounds"] = runs
    return figures


def summary(results, batch_size):
    """The goals' ratios, each the median over the rounds of that round's ratio (a slower minute falls on
    both sides of it): int8 over the float32 SavedModel at `batch_size`, mixed_bfloat16 over float32."""
    key = f"images_per_sec_batch{batch_size}"

    def ratio(top, bottom, figure):
        pairs = zip(results[top]["rounds"], results[bottom]["rounds"])
        return statistics.median(a[figure] / b[figure] for a, b in pairs)

    ratios = {}
    if "SavedModel" in results:
        for name in results:
            if "int8" in name:
                ratios[f"{name} / SavedModel, batch {batch_size}"] = ratio(name, "SavedModel", key)
    if "Keras float32" in results and "Keras mixed_bfloat16" in results:
        ratios[f"Keras mixed_bfloat16 / float32, inference batch {batch_size}"] = ratio(
            "Keras mixed_bfloat16", "Keras float32", key)
        if "train_images_per_sec" in results["Keras float32"]:
            ratios["Keras mixed_bfloat16 / float32, training"] = ratio("Keras mixed_bfloat16", "Keras float32",
                                                                       "train_images_per_sec")
    return ratios
