"""A saved model that carries what it takes to use it: its class names in label order,
its square input size and the resize mode its images were prepared with.

In a .keras file (a zip archive) they are one more member, `carbrands.json`, which
Keras' loader leaves alone; an exported SavedModel holds the same file in its folder,
a .tflite file as a metadata entry named `carbrands` (carbrands/models/export.py).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from carbrands.data.names import RESIZE_MODES
from carbrands.errors import DataError
from carbrands.files import atomic_path

INFO_NAME = "carbrands.json"


def make_info(classes: list[str], image_size: int, resize: str) -> dict:
    return {"classes": [str(c) for c in classes], "image_size": int(image_size), "resize": resize}


def check_info(info, source: str) -> dict:
    """The info, refused in one line when a field is missing or malformed."""
    ok = (isinstance(info, dict) and isinstance(info.get("classes"), list) and info["classes"]
          and isinstance(info.get("image_size"), int) and info.get("resize") in RESIZE_MODES)
    if not ok:
        raise DataError(f"{source}: its {INFO_NAME} does not hold classes, image_size and resize")
    return info


def save_keras(model, path: str | Path, info: dict) -> None:
    """model.save(path), with the info added to the archive; atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(INFO_NAME, json.dumps(info, indent=1))


def read_keras_info(path: str | Path) -> dict:
    """The info inside a .keras file, refused in one line when it has none (a model
    not saved through save_keras)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if INFO_NAME not in archive.namelist():
                raise DataError(f"{path} carries no class names (no {INFO_NAME} inside): train it with "
                                "this project's `train` or `transfer` stage")
            raw = archive.read(INFO_NAME)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a Keras model file: {e}") from None
    try:
        return check_info(json.loads(raw), str(path))
    except json.JSONDecodeError:
        raise DataError(f"{path}: its {INFO_NAME} is not JSON") from None
