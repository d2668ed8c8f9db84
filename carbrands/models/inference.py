"""Loading a saved Keras model and predicting class probabilities with it, batch by
batch: what evaluation, export and predict share.

Models take raw 0..255 RGB images (the uint8 arrays of data/prepared, cast to float
batch by batch) and return class probabilities.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from carbrands.data.prepared import float_batches
from carbrands.errors import DataError, first_line

# images a prediction batch: at 224 px VGG16 holds about 40 MB of activations per image,
# and 64 a batch took evaluation to a 3.2 GB peak (a memory target of 4 GB for the run)
PREDICT_BATCH = 16


def load_model(path: str | Path) -> keras.Model:
    """A saved .keras model; a missing or unreadable file is one DataError naming it.

    The transfer model is built from Keras' own layers only (see carbrands/models/transfer.py),
    so no custom objects need registering before loading."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing: train that model first")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - zip, HDF5 and config errors all mean "cannot use this file"
        raise DataError(f"{path} is not a readable Keras model: {first_line(e)}") from None


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """A Keras model's class probabilities (N, C) for uint8 images (N, H, W, 3)."""
    return batched_probabilities(model.predict_on_batch, images, model.output_shape[-1], batch_size)


def batched_probabilities(predict, images: np.ndarray, n_classes: int, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """predict(float32 batch) -> probabilities, batch by batch (prepared.float_batches),
    as float64 (N, C)."""
    out = [np.asarray(predict(batch), np.float64) for _, batch in float_batches(images, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, n_classes))
