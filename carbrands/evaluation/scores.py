"""Scoring a trained model on a held-out split.

Models take raw 0..255 RGB images (the uint8 arrays of data/prepared, cast to float
batch by batch) and return class probabilities. Everything here works on any such
Keras model, the custom CNN and the transfer model alike. Grad-CAM is in
carbrands/evaluation/gradcam.py, the figures in carbrands/evaluation/figures.py.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import precision_recall_fscore_support

from carbrands.errors import DataError
from carbrands.models.inference import PREDICT_BATCH, predict_probabilities

# Probabilities are clipped before the log, as Keras' own cross-entropy does, so one
# confident mistake gives a large but finite loss.
EPSILON = 1e-7


# -- loading and predicting: carbrands/models/inference.py

def check_compatible(model: keras.Model, images: np.ndarray, n_classes: int, source: str) -> None:
    """Refuse a model whose input or output does not fit the data, naming both sides."""
    expected = tuple(model.input_shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise DataError(f"{source}: images are {tuple(images.shape[1:])}, the model takes {expected}: "
                        "retrain the model after changing data.image_size")
    outputs = model.output_shape[-1]
    if outputs != n_classes:
        raise DataError(f"{source}: {n_classes} classes, the model predicts {outputs}: retrain the model")


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
