"""Scoring a trained model on a held-out split.

Models take raw 0..255 RGB images (the uint8 arrays of data/prepared, cast to float
batch by batch) and return class probabilities. Everything here works on any such
Keras model, the custom CNN and the transfer model alike. Grad-CAM is in
carbrands/evaluation/gradcam.py, the figures in carbrands/evaluation/figures.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import precision_recall_fscore_support

from carbrands.errors import DataError, first_line

# Probabilities are clipped before the log, as Keras' own cross-entropy does, so one
# confident mistake gives a large but finite loss.
EPSILON = 1e-7


# -- loading and predicting ----------------------------------------------------

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


def check_compatible(model: keras.Model, images: np.ndarray, n_classes: int, source: str) -> None:
    """Refuse a model whose input or output does not fit the data, naming both sides."""
    expected = tuple(model.input_shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise DataError(f"{source}: images are {tuple(images.shape[1:])}, the model takes {expected}: "
                        "retrain the model after changing data.image_size")
    outputs = model.output_shape[-1]
    if outputs != n_classes:
        raise DataError(f"{source}: {n_classes} classes, the model predicts {outputs}: retrain the model")


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """A Keras model's class probabilities (N, C) for uint8 images (N, H, W, 3)."""
    return batched_probabilities(model.predict_on_batch, images, model.output_shape[-1], batch_size)


def batched_probabilities(predict, images: np.ndarray, n_classes: int, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """predict(float32 batch) -> probabilities, batch by batch, as float64 (N, C): a
    memory-mapped split is never copied to float32 as a whole."""
    out = [np.asarray(predict(np.asarray(images[start:start + batch_size], np.float32)), np.float64)
           for start in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, n_classes))


# -- metrics ---------------------------------------------------------------------

def bootstrap_accuracy_ci(y_true: np.ndarray, y_pred: np.ndarray, n_resamples: int, seed: int,
                          level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy: the test set resampled with replacement
    (scipy.stats.bootstrap, seeded by `seed`)."""
    correct = np.asarray(y_true) == np.asarray(y_pred)
    n = len(correct)
    if n == 0:
        raise DataError("cannot bootstrap the accuracy of an empty test set")
    # in batches, so that resamples x n_test indices never need much memory
    result = stats.bootstrap((correct,), np.mean, n_resamples=n_resamples, batch=max(1, 2_000_000 // n),
                             method="percentile", confidence_level=level, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    # kept over sklearn's top_k_accuracy_score, which refuses the (N, 2) scores of a two-brand
    # project and warns whenever k >= the number of classes (min(3, classes) here)
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy, from probabilities, clipped as Keras clips its
    loss (so test_loss compares with the training curves' val_loss). Kept over sklearn's
    log_loss, which clips at float64 eps (p = 0 costs 36.0, not 16.1), renormalises each
    row and warns on float32 softmax rows that do not sum to 1 in float64."""
    p = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, EPSILON, 1.0)).mean())


# What an evaluation's metrics file holds (`dvc metrics show`); macro precision and
# recall and the test count go to its details file with these.
HEADLINE = ("accuracy", "accuracy_ci95_low", "accuracy_ci95_high", "top3_accuracy", "macro_f1", "test_loss")


def evaluate_split(model: keras.Model, images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   bootstrap: int, seed: int, batch_size: int = PREDICT_BATCH):
    """Score a model on one split.

    Returns (metrics dict, per-class DataFrame, confusion DataFrame in long form with
    one row per image: `actual`, `predicted` class names, probabilities (N, C))."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise DataError("the split to evaluate holds no images")
    probabilities = predict_probabilities(model, images, batch_size)
    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=ids, zero_division=0)
    macro = precision_recall_fscore_support(labels, predicted, labels=ids, average="macro", zero_division=0)
    lo, hi = bootstrap_accuracy_ci(labels, predicted, bootstrap, seed)
    metrics = {
        "test_loss": cross_entropy(probabilities, labels),
        "accuracy": float((predicted == labels).mean()),
        "accuracy_ci95_low": lo,
        "accuracy_ci95_high": hi,
        "top3_accuracy": top_k_accuracy(probabilities, labels, min(3, len(classes))),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "n_test": int(len(labels)),
    }
    per_class = pd.DataFrame({"class": list(classes), "precision": precision, "recall": recall,
                              "f1": f1, "support": support.astype(int)})
    names = np.asarray(classes, dtype=object)
    confusion = pd.DataFrame({"actual": names[labels], "predicted": names[predicted]})
    return metrics, per_class, confusion, probabilities
