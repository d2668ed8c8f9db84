"""Scoring a trained model on a held-out split, and Grad-CAM heatmaps of what it looks at.

Models take raw 0..255 RGB images (the uint8 arrays of data/prepared, cast to float
batch by batch) and return class probabilities. Everything here works on any such
Keras model, the custom CNN and the transfer model alike. The figures built from
these results live in carbrands/evaluation_plots.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd

from carbrands.errors import DataError

# Probabilities are clipped before the log, as Keras' own cross-entropy does, so one
# confident mistake gives a large but finite loss.
EPSILON = 1e-7


# -- loading and predicting ----------------------------------------------------

def load_model(path: str | Path) -> keras.Model:
    """A saved .keras model; a missing or unreadable file is one DataError naming it.

    The transfer model is built from Keras' own layers only (see carbrands/transfer.py),
    so no custom objects need registering before loading."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing: train that model first")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - zip, HDF5 and config errors all mean "cannot use this file"
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise DataError(f"{path} is not a readable Keras model: {first}") from None


def check_compatible(model: keras.Model, images: np.ndarray, n_classes: int, source: str) -> None:
    """Refuse a model whose input or output does not fit the data, naming both sides."""
    expected = tuple(model.input_shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise DataError(f"{source}: images are {tuple(images.shape[1:])}, the model takes {expected}: "
                        "retrain the model after changing data.image_size")
    outputs = model.output_shape[-1]
    if outputs != n_classes:
        raise DataError(f"{source}: {n_classes} classes, the model predicts {outputs}: retrain the model")


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (N, C) for uint8 images (N, H, W, 3), batch by batch: a
    memory-mapped split is never copied to float32 as a whole."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], dtype=np.float32)
        out.append(np.asarray(model.predict_on_batch(batch), dtype=np.float64))
    if not out:
        return np.zeros((0, model.output_shape[-1]))
    return np.concatenate(out)


# -- metrics ---------------------------------------------------------------------

def bootstrap_accuracy_ci(y_true: np.ndarray, y_pred: np.ndarray, n_resamples: int, seed: int,
                          level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy: the test set resampled with replacement."""
    correct = np.asarray(y_true) == np.asarray(y_pred)
    n = len(correct)
    if n == 0:
        raise DataError("cannot bootstrap the accuracy of an empty test set")
    rng = np.random.default_rng(seed)
    # in blocks, so that resamples x n_test indices never need much memory
    block = max(1, 2_000_000 // n)
    accs = np.concatenate([correct[rng.integers(0, n, (min(block, n_resamples - i), n))].mean(axis=1)
                           for i in range(0, n_resamples, block)])
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(accs, [tail, 100 - tail])
    return float(lo), float(hi)


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy, from probabilities."""
    p = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, EPSILON, 1.0)).mean())


def evaluate_split(model: keras.Model, images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   bootstrap: int, seed: int, batch_size: int = 64):
    """Score a model on one split.

    Returns (metrics dict, per-class DataFrame, confusion DataFrame in long form with
    one row per image: `actual`, `predicted` class names, probabilities (N, C))."""
    from sklearn.metrics import precision_recall_fscore_support

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


# -- Grad-CAM --------------------------------------------------------------------

def last_conv_path(model: keras.Model) -> list[keras.layers.Layer]:
    """The chain of layers from `model` down to its last Conv2D: [conv] when it sits in
    the model itself, [backbone, conv] when it sits in a nested sub-model, and so on."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return [layer]
        if isinstance(layer, keras.Model):
            try:
                return [layer] + last_conv_path(layer)
            except DataError:
                continue
    raise DataError(f"model {model.name!r} has no Conv2D layer: Grad-CAM needs one")


def gradcam_model(model: keras.Model) -> keras.Model:
    """A model mapping the input to [last Conv2D output, model output]."""
    return _with_conv_output(model, last_conv_path(model))


def _with_conv_output(model: keras.Model, path: list[keras.layers.Layer]) -> keras.Model:
    if len(path) == 1 and not isinstance(model, keras.Sequential):
        return keras.Model(model.inputs, [path[0].output, model.outputs[0]])
    # The conv's symbolic output is not on this model's graph: it sits in a nested
    # sub-model, or (a loaded Sequential) the layers were called on another graph than
    # model.outputs. So call the layers again on a fresh input, taking the conv output
    # on the way (from a copy of the sub-model that also returns it). That needs a chain
    # of single-input layers, as a Sequential or a backbone-in-model is; a result that
    # does not match the model is refused by gradcam_heatmaps.
    inner = _with_conv_output(path[0], path[1:]) if len(path) > 1 else None
    inputs = keras.Input(model.input_shape[1:])
    x, conv = inputs, None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer is path[0] and inner is not None:
            conv, x = inner(x)
        else:
            x = layer(x)
            if layer is path[0]:
                conv = x
    return keras.Model(inputs, [conv, x])


class _Logits:
    """Grad-CAM differentiates the class score before softmax: a confident softmax output
    has gradients near zero (exactly zero in float32 at p = 1). When the model ends in a
    softmax layer, switch that activation off while the heatmaps are computed."""

    def __init__(self, model: keras.Model):
        last = model.layers[-1]
        softmax = getattr(last, "activation", None) is keras.activations.softmax
        self.layer = last if softmax else None

    def __enter__(self):
        if self.layer is not None:
            self.layer.activation = keras.activations.linear
        return self

    def __exit__(self, *exc):
        if self.layer is not None:
            self.layer.activation = keras.activations.softmax


def gradcam_heatmaps(model: keras.Model, images: np.ndarray, class_ids: Sequence[int],
                     batch_size: int = 16) -> np.ndarray:
    """Grad-CAM heatmaps (N, h, w) in 0..1 at the last Conv2D's resolution, for the
    class `class_ids[i]` of image i (Selvaraju et al., 2017)."""
    traced = gradcam_model(model)
    class_ids = np.asarray(class_ids, dtype=np.int32)
    maps = [_gradcam_batch(model, traced, np.asarray(images[i:i + batch_size], dtype=np.float32),
                           class_ids[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(maps)


def _gradcam_batch(model: keras.Model, traced: keras.Model, x: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    if not np.allclose(np.asarray(traced(x, training=False)[1]), np.asarray(model(x, training=False)), atol=1e-4):
        raise DataError(f"model {model.name!r}: cannot trace a path to its last Conv2D for Grad-CAM "
                        "(its graph is not a simple chain of layers)")
    with _Logits(model):
        with tf.GradientTape() as tape:
            conv, scores = traced(x, training=False)
            chosen = tf.gather(scores, tf.constant(class_ids), axis=1, batch_dims=1)
        grads = tape.gradient(chosen, conv)
    conv, grads = tf.cast(conv, tf.float32), tf.cast(grads, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)        # one weight per channel
    cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1)).numpy()   # only what speaks for the class
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heatmap, scaled to the image and coloured (jet), blended over it; uint8 RGB."""
    import matplotlib
    from PIL import Image

    h, w = image.shape[:2]
    scaled = np.asarray(Image.fromarray(heatmap.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR))
    colour = matplotlib.colormaps["jet"](np.clip(scaled, 0, 1))[..., :3] * 255
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * colour, 0, 255).astype(np.uint8)
