"""A trained model in the forms it is served in, and one way to predict with any form.

- SavedModel (`model.export`): what TensorFlow Serving loads; the folder also holds
  carbrands.json (class names, input size, resize mode).
- TFLite (`tf.lite.TFLiteConverter`, float32, no quantisation): for the TFLite
  interpreter on a device; the same info as a metadata entry named `carbrands`.

Every form takes raw 0..255 RGB images (float32, N x size x size x 3) and returns
brand probabilities, like the .keras model it came from.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carbrands import startup
from carbrands.errors import DataError, UserError, first_line
from carbrands.models import bundle
from carbrands.models.inference import batched_probabilities, load_model, predict_probabilities

TFLITE_METADATA = b"carbrands"
TOLERANCE = 1e-4   # the largest difference in a probability the parity check accepts


class ParityError(UserError):
    """An exported form does not predict what the model it came from predicts."""


@dataclass
class Loaded:
    """A model in any form: its info (classes, image_size, resize) and a predict function."""
    source: str
    form: str                                   # keras | saved_model | tflite
    info: dict
    predict: Callable[[np.ndarray], np.ndarray]
    keras_model: object = None                  # the Keras model itself, for the keras form


# -- writing ---------------------------------------------------------------------

def write_saved_model(model, out_dir: Path, info: dict) -> None:
    model.export(str(out_dir), format="tf_saved_model", verbose=False)
    (out_dir / bundle.INFO_NAME).write_text(json.dumps(info, indent=1))


def write_tflite(saved_model_dir: Path, path: Path, info: dict) -> None:
    import tensorflow as tf

    from carbrands import internals

    content = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir)).convert()
    path.write_bytes(internals.add_tflite_metadata(content, TFLITE_METADATA, info))


# -- loading ---------------------------------------------------------------------

def load(path: str | Path) -> Loaded:
    """A .keras file, a SavedModel folder or a .tflite file; one without the info
    (classes, input size, resize mode) is refused in one line."""
    path = Path(path)
    if path.is_dir():
        return _load_saved_model(path)
    if not path.is_file():
        raise DataError(f"{path} is missing: train or export that model first")
    if path.suffix.lower() == ".tflite":
        return _load_tflite(path)
    return _load_keras(path)


def _load_keras(path: Path) -> Loaded:

    model = load_model(path)
    info = bundle.read_keras_info(path)
    _check_outputs(info, model.output_shape[-1], str(path))
    return Loaded(str(path), "keras", info, lambda x: predict_probabilities(model, x), model)


def _load_saved_model(path: Path) -> Loaded:
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise DataError(f"{path} is a folder but not a SavedModel (no saved_model.pb)")
    info_path = path / bundle.INFO_NAME
    if not info_path.is_file():
        raise DataError(f"{path} carries no class names ({bundle.INFO_NAME} is missing): export it again")
    info = bundle.check_info(json.loads(info_path.read_text()), str(path))
    try:
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    except Exception as e:  # noqa: BLE001 - any loader error means "cannot use this folder"
        raise DataError(f"{path} is not a readable SavedModel: {first_line(e)}") from None
    (output,) = serve.structured_outputs

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(serve(tf.constant(np.asarray(x, np.float32)))[output], np.float64)
    return Loaded(str(path), "saved_model", info, predict)


def _load_tflite(path: Path) -> Loaded:
    from tensorflow.lite.tools import flatbuffer_utils

    content = path.read_bytes()
    try:
        flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
        interpreter = _interpreter(content)
    except Exception as e:  # noqa: BLE001 - a file that is no TFLite model fails in many ways
        raise DataError(f"{path} is not a readable TFLite model: {first_line(e)}") from None
    entries = {m.name: m.buffer for m in flat.metadata or []}
    if TFLITE_METADATA not in entries:
        raise DataError(f"{path} carries no class names (no `carbrands` metadata): export it again")
    raw = bytes(np.asarray(flat.buffers[entries[TFLITE_METADATA]].data, np.uint8))
    info = bundle.check_info(json.loads(raw), str(path))
    return Loaded(str(path), "tflite", info, lambda x: _tflite_predict(interpreter, x))


def _interpreter(content: bytes):
    import tensorflow as tf

    with warnings.catch_warnings(), startup.notices_hidden():
        warnings.simplefilter("ignore")   # tf.lite.Interpreter's deprecation notice (LiteRT)
        interpreter = tf.lite.Interpreter(model_content=content)
        interpreter.allocate_tensors()
    return interpreter


def _tflite_predict(interpreter, x: np.ndarray) -> np.ndarray:
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = np.asarray(x, np.float32)
    if tuple(inp["shape"]) != x.shape:
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(out["index"]), np.float64)


def _check_outputs(info: dict, outputs: int, source: str) -> None:
    if len(info["classes"]) != outputs:
        raise DataError(f"{source}: {len(info['classes'])} class names for {outputs} outputs")


# -- parity ----------------------------------------------------------------------

def parity(reference: np.ndarray, probabilities: np.ndarray, form: str) -> dict:
    """Compare a form's probabilities with the Keras model's on the same images; raise
    ParityError unless every top-1 agrees and every probability is within TOLERANCE."""
    diff = np.abs(np.asarray(probabilities, np.float64) - reference)
    disagree = np.flatnonzero(probabilities.argmax(axis=1) != reference.argmax(axis=1))
    result = {"images": int(len(reference)), "top1_disagreements": int(len(disagree)),
              "max_abs_difference": float(diff.max()) if diff.size else 0.0, "tolerance": TOLERANCE}
    if len(disagree) or result["max_abs_difference"] > TOLERANCE:
        worst = int(diff.max(axis=1).argmax())
        raise ParityError(f"{form} does not match the Keras model on the test split: {len(disagree)} of "
                          f"{len(reference)} top-1 predictions differ, largest probability difference "
                          f"{result['max_abs_difference']:.2e} (image {worst}; tolerance {TOLERANCE:g})")
    return result


def probabilities(loaded: Loaded, images: np.ndarray) -> np.ndarray:
    """A form's probabilities (N, C) for uint8 images, batch by batch."""

    return batched_probabilities(loaded.predict, images, len(loaded.info["classes"]))
