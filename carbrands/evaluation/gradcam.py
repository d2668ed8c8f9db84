"""Grad-CAM (Selvaraju et al., 2017): where a model looks when it names a brand.

Works on any model here that has a Conv2D, directly or inside a nested backbone;
the overlays are drawn by carbrands/evaluation/figures.py."""
from __future__ import annotations

from collections.abc import Sequence

import keras
import matplotlib
import numpy as np
import tensorflow as tf
from PIL import Image

from carbrands.errors import DataError


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
    # the traced graph is checked once, on the first images: it is the same graph for every batch
    first = tf.convert_to_tensor(np.asarray(images[:batch_size], dtype=np.float32))
    if not np.allclose(np.asarray(traced(first, training=False)[1]), np.asarray(model(first, training=False)),
                       atol=1e-4):
        raise DataError(f"model {model.name!r}: cannot trace a path to its last Conv2D for Grad-CAM "
                        "(its graph is not a simple chain of layers)")
    class_ids = np.asarray(class_ids, dtype=np.int32)
    maps = [_gradcam_batch(model, traced, np.asarray(images[i:i + batch_size], dtype=np.float32),
                           class_ids[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(maps)


def _gradcam_batch(model: keras.Model, traced: keras.Model, x: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    x = tf.convert_to_tensor(x)
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
    h, w = image.shape[:2]
    scaled = np.asarray(Image.fromarray(heatmap.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR))
    colour = matplotlib.colormaps["jet"](np.clip(scaled, 0, 1))[..., :3] * 255
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * colour, 0, 255).astype(np.uint8)
