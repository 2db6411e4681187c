"""The benchmark script in a tiny configuration: it runs, prints its tables and writes the JSON
the benchmark issue specifies. (Speed itself is measured by the script, never asserted here.)"""

import importlib.util
import json
import os
import subprocess
import sys

from keras_resnet import benchmark, data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_benchmark_script_tables_and_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"), "--model", "resnet20", "--input-size", "32",
         "--batch-size", "4", "--warmup", "1", "--repeats", "2", "--serving", "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Throughput (images/s)" in done.stdout and "## Exported SavedModel" in done.stdout
    results = json.loads(out.read_text())
    assert results["settings"]["model"] == "resnet20" and results["settings"]["batch_size"] == 4
    for key in ("train_images_per_sec", "infer_images_per_sec", "peak_rss_bytes"):
        assert results["ours"][key] > 0
    assert set(results["serving"]) == {"unfolded", "folded"} and set(results["serving"]["folded"]) == {"1", "32"}
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"), "--model", "resnet20",
                          "--compare", "keras-applications", "--input-size", "32", "--batch-size", "2"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "needs model resnet50" in bad.stderr and "Traceback" not in bad.stderr


def test_compare_json_holds_both_models(tmp_path):
    out = tmp_path / "compare.json"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"), "--model", "resnet50", "--input-size", "32",
         "--batch-size", "2", "--warmup", "1", "--repeats", "1", "--compare", "keras-applications", "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    for side in ("ours", "keras_applications"):
        assert results[side]["train_images_per_sec"] > 0 and results[side]["infer_images_per_sec"] > 0
    assert "ours / keras.applications: training" in done.stdout


def test_all_turns_on_every_measurement():
    spec = importlib.util.spec_from_file_location("benchmark_script", os.path.join(ROOT, "scripts", "benchmark.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    args = script.parse_args(["--all"])
    assert args.compare == "keras-applications" and args.serving and args.pipeline and args.depth_scaling
    assert not any((lambda a: (a.serving, a.pipeline, a.depth_scaling, a.compare))(script.parse_args([])))


def test_models_measured_in_turn_report_medians_over_rounds():
    import keras

    calls = []

    def build(name, filters):
        def make():
            calls.append(name)
            inputs = keras.Input((8, 8, 1))
            x = keras.layers.Conv2D(filters, 3)(inputs)
            return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))
        return make

    results = benchmark.measure_in_turn({"a": build("a", 2), "b": build("b", 4)}, rounds=3, batch_size=2,
                                        input_shape=(8, 8, 1), warmup=1, repeats=2)
    assert calls == ["a", "b"] * 3
    assert set(results) == {"a", "b"}
    assert results["a"]["train_images_per_sec"] > 0 and results["b"]["infer_step_s"] > 0
    assert benchmark._combine("train_step_s", [3.0, 1.0, 2.0]) == 2.0
    assert benchmark._combine("peak_rss_bytes", [1, 3, 2]) == 3
    assert benchmark._combine("device", ["H100", "H100"]) == "H100"


def test_pipeline_measurement_on_digits():
    delivered = benchmark.measure_pipeline(data.load_digits_dataset(), batch_size=64, image_size=8, augment="cifar",
                                           flip=False, batches=5, warmup=1)
    assert delivered > 0


def test_runtimes_table_measures_every_runtime_in_turn(tmp_path, capsys):
    """--runtimes: one row per runtime, figures from rounds taken in turn, a progress line per measurement,
    and the ratios the goals are about. In this process (the script's main) to keep it quick."""
    from keras_resnet.runtimes import measure

    spec = importlib.util.spec_from_file_location("benchmark_script", os.path.join(ROOT, "scripts", "benchmark.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "runtimes.json"
    script.main(["--runtimes", "--no-throughput", "--model", "resnet8", "--input-size", "16", "--batch-size", "4",
                 "--warmup", "0", "--repeats", "1", "--calibration-images", "4", "--json", str(out)])
    stdout, stderr = capsys.readouterr()
    names = [name for name, _ in measure.ROWS]
    table = stdout.split("## Runtimes (resnet8, 16x16, medians of 1 round(s) in turn)")[1]
    assert [line.split("|")[1].strip() for line in table.strip().splitlines()[2:2 + len(names)]] == names
    assert "batch 1 images/s" in table and "batch 4 images/s" in table and "peak RSS GiB" in table
    started = [line.split(": ", 1)[1].split(", round")[0] for line in stderr.splitlines()
               if "measurement " in line and line.endswith(" ...")]
    assert started == names and sum("measurement " in line and "images_per_sec" in line
                                    for line in stderr.splitlines()) == len(names)
    results = json.loads(out.read_text())["runtimes"]
    for name in names:
        figures = results["figures"][name]
        assert figures["images_per_sec_batch1"] > 0 and figures["images_per_sec_batch4"] > 0
        assert len(figures["rounds"]) == 1 and figures["peak_rss_bytes"] > 0
        assert ("file_bytes" in figures) == (not name.startswith("Keras"))
    assert results["figures"]["Keras mixed_bfloat16"]["train_images_per_sec"] > 0
    assert set(results["ratios"]) == {"ONNX Runtime int8 / SavedModel, batch 4", "OpenVINO int8 / SavedModel, batch 4",
                                      "LiteRT int8 / SavedModel, batch 4",
                                      "Keras mixed_bfloat16 / float32, inference batch 4",
                                      "Keras mixed_bfloat16 / float32, training"}
    assert keras_policy() == "float32"  # the measurements leave the global policy as they found it


def keras_policy():
    import keras

    return keras.mixed_precision.global_policy().name
