"""scripts/gpu_benchmark.py, measured here under JAX on the CPU with a tiny model: the wheelhouse is small
and complete, unpacks into a folder of its own, and the benchmark runs from it with bfloat16 and XLA,
so that where a GPU machine is at hand it measures in one command."""

import json
import os
import zipfile

from conftest import no_traceback, script

from keras_resnet import wheelhouse


def test_wheelhouse_then_one_command_measures_under_jax(tmp_path):
    house = tmp_path / "wheelhouse"
    built = script("gpu_benchmark.py", "--build", house)
    assert built.returncode == 0, built.stderr[-2000:]
    wheels = sorted(os.listdir(house))
    names = {name.split("-")[0] for name in wheels}
    assert names == {"keras", "keras_resnet_cvpr16", "namex", "absl_py", "packaging", "rich", "markdown_it_py",
                     "mdurl", "pygments"}, wheels
    assert all(name.endswith("-py3-none-any.whl") for name in wheels)  # pure Python: any Python 3, any machine
    size = sum(os.path.getsize(house / name) for name in wheels)
    assert size < 8 * 2**20 and f"{len(wheels)} wheels" in built.stdout
    ours = next(name for name in wheels if name.startswith("keras_resnet_cvpr16-"))
    with zipfile.ZipFile(house / ours) as wheel:
        assert "keras_resnet/runtimes/__init__.py" in wheel.namelist()
    with zipfile.ZipFile(house / next(name for name in wheels if name.startswith("keras-"))) as wheel:
        listed = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))).decode()
        assert "keras/__init__.py,sha256=" in listed and ".pyc" not in listed

    # A machine that lacks them all gets them all; here only Keras and this package are unpacked (the run below).
    target = tmp_path / "site"
    assert set(wheelhouse.install(str(house), str(target), only_missing=False)) == names
    assert all((target / module / "__init__.py").is_file() for module in ("keras", "rich", "namex", "keras_resnet"))

    out = tmp_path / "gpu.json"
    done = script("gpu_benchmark.py", "--wheelhouse", house, "--target", tmp_path / "site2", "--model", "resnet8",
                  "--input-size", 8, "--batch-size", 4, "--warmup", 1, "--repeats", 2, "--json", out, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"unpacked into {tmp_path / 'site2'}: keras, keras_resnet_cvpr16\n" in done.stdout
    results = json.loads(out.read_text())
    settings = results["settings"]
    assert (settings["backend"], settings["precision"], settings["jit_compile"]) == ("jax", "mixed_bfloat16", True)
    assert results["ours"]["train_images_per_sec"] > 0 and results["ours"]["infer_images_per_sec"] > 0
    assert "mixed_bfloat16, XLA, batch 4 on the CPU (JAX): training" in done.stdout


def test_a_missing_wheelhouse_is_one_line(tmp_path):
    done = script("gpu_benchmark.py", "--wheelhouse", tmp_path / "nothing")
    assert "wheelhouse must be a folder of wheels with keras" in no_traceback(done)
