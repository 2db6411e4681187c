"""SavedModels in TF Serving's layout: `<export_dir>/<name>/<version>/`, written atomically.

A version folder is built in a temporary folder beside it and renamed into place, so a
server watching `<export_dir>/<name>` never sees a half-written version, and an existing
version is never replaced without `overwrite=True`.
"""

import os
import shutil
import tempfile


def existing_versions(model_dir):
    """Integer version folders under `model_dir`, sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit() and os.path.isdir(os.path.join(model_dir, d)))


def next_version(model_dir):
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def write_version_atomically(model_dir, version, write, overwrite=False):
    """Call `write(tmp_folder)`, then rename the folder to `model_dir/version`."""
    if version is None:
        version = next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer. Received: version={version!r}")
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it.")
    os.makedirs(model_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    try:
        write(tmp)
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".old-{version}-", dir=model_dir)
            os.replace(target, os.path.join(old, "v"))
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def export_saved_model(model, export_dir="saved_models", name=None, version=None, overwrite=False, class_names=None):
    """Export `model` as a SavedModel version for TF Serving; returns the version folder.

    Beside `saved_model.pb`: `model.keras` and, when known, `labels.txt`.
    """
    name = name or model.name

    def write(folder):
        model.export(folder, format="tf_saved_model", verbose=False)
        model.save(os.path.join(folder, "model.keras"))
        if class_names:
            with open(os.path.join(folder, "labels.txt"), "w") as f:
                f.write("\n".join(map(str, class_names)) + "\n")

    return write_version_atomically(os.path.join(export_dir, name), version, write, overwrite)
