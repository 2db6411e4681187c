"""A wheelhouse for a machine that has JAX and a GPU but no TensorFlow (too large to copy there), and its
installation there: what `scripts/gpu_benchmark.py` needs to measure in one command.

What such a machine lacks is Keras, this package and the few pure-Python packages that Keras imports and
JAX does not bring (`PACKAGES`): about 4 MiB of wheels. Keras and its dependencies are repacked from the
distributions installed here (`repack`: the exact versions tested here, no registry needed); this package
is built with `pip wheel --no-deps`. There, `install` unpacks into a folder of its own (put first on
PYTHONPATH) Keras and this package always, and each dependency only when the machine lacks it. (Keras
imports optree and h5py when they are there and works without them: they are left out.)

Only the standard library here: the script loads this file by its path before Keras is installed.
"""

import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import zipfile

PROJECT = "keras-resnet-cvpr16"
# Keras and what `import keras` needs that a JAX installation does not bring (JAX brings numpy, ml_dtypes).
PACKAGES = ("keras", "namex", "absl-py", "packaging", "rich", "markdown-it-py", "mdurl", "pygments")
ALWAYS = ("keras", PROJECT)  # installed even where some version is present: the code needs these versions


def _normalise(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack(name, folder):
    """A wheel of the installed distribution `name` in `folder`, from the files its RECORD lists (not the
    compiled .pyc files, nor the installer's own records); returns its path."""
    distribution = importlib.metadata.distribution(name)
    info = next(str(f).split("/")[0] for f in distribution.files if str(f).split("/")[0].endswith(".dist-info"))
    wheel_text = distribution.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")]
    tag = tags[0] if tags else "py3-none-any"
    filename = f"{_normalise(distribution.metadata['Name'])}-{distribution.version}-{tag}.whl"
    skipped = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    path = os.path.join(folder, filename)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in sorted(distribution.files, key=str):
            relative = str(file)
            if relative.startswith("..") or relative.endswith(".pyc") or "__pycache__" in relative.split("/"):
                continue
            if relative.startswith(info + "/") and relative.split("/", 1)[1] in skipped:
                continue
            data = file.locate().read_bytes()
            wheel.writestr(relative, data)
            writer.writerow([relative, _digest(data), len(data)])
        writer.writerow([f"{info}/RECORD", "", ""])
        wheel.writestr(f"{info}/RECORD", record.getvalue())
    return path


def build(folder, root):
    """The wheelhouse in `folder`: `PACKAGES` repacked and this project (at `root`) built; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".whl"):
            os.remove(os.path.join(folder, name))
    paths = [repack(name, folder) for name in PACKAGES]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "--wheel-dir", folder, root], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip wheel of {root} failed: {' '.join(done.stderr.split())[-500:]}")
    paths += [os.path.join(folder, name) for name in os.listdir(folder) if name.startswith(_normalise(PROJECT) + "-")]
    return sorted(paths)


def _installed(name):
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def install(folder, target, only_missing=True):
    """Unpack the wheels of `folder` into `target`: `ALWAYS`, and the others where this Python lacks them
    (all with `only_missing=False`). Returns the distribution names unpacked."""
    wheels = sorted(name for name in os.listdir(folder) if name.endswith(".whl")) if os.path.isdir(folder) else []
    if not any(name.startswith("keras-") for name in wheels):
        raise FileNotFoundError(f"wheelhouse must be a folder of wheels with keras (build it with --build where "
                                f"keras is installed). Received: wheelhouse={folder!r}")
    os.makedirs(target, exist_ok=True)
    unpacked = []
    for name in wheels:
        distribution = name.split("-")[0]
        if only_missing and _normalise(distribution) not in map(_normalise, ALWAYS) and _installed(distribution):
            continue
        with zipfile.ZipFile(os.path.join(folder, name)) as wheel:
            wheel.extractall(target)
        unpacked.append(distribution)
    return unpacked
