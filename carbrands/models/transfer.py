"""The transfer model: a pretrained backbone without its top, a small dense head, and
the sub-graphs its two training phases train (carbrands/training/transfer.py).

The whole model is one flat Keras graph, raw 0..255 image in, class probabilities
out, so evaluation and prediction treat it like the custom CNN and
keras.models.load_model needs no custom objects. The sub-graphs share its layers
(and so its weights): the frozen part, the tail that fine-tuning trains, and the
head on pooled features.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from carbrands.errors import ParamError, WeightsError
from carbrands.models.backbones import backbone_spec, check_image_size

# ImageNet channel means in BGR order, as keras.applications' "caffe" preprocessing subtracts them
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
HEAD_LAYERS = ("avg_pool", "feature_norm", "head_dense", "head_dropout", "predictions")


def caffe_preprocess_layer(name: str = "preprocess") -> keras.layers.Layer:
    """keras.applications' "caffe" preprocessing (RGB->BGR, ImageNet mean subtracted) as a
    fixed 1x1 convolution: a built-in layer, so the saved model loads anywhere without
    custom objects (a Lambda would need unsafe deserialisation)."""
    swap = np.zeros((1, 1, 3, 3), np.float32)
    for rgb in range(3):
        swap[0, 0, rgb, 2 - rgb] = 1.0
    bias = -np.array(CAFFE_MEAN_BGR, np.float32)
    return keras.layers.Conv2D(3, 1, name=name, trainable=False,
                               kernel_initializer=keras.initializers.Constant(swap),
                               bias_initializer=keras.initializers.Constant(bias))


def build_model(backbone: str, image_size: int, n_classes: int, dense_units: int, dropout: float,
                weights_from: keras.Model | None = None) -> keras.Model:
    """The end-to-end model: float image 0..255 -> preprocessing -> backbone -> global
    average pooling -> per-feature standardisation -> dense + dropout -> softmax.
    `weights_from` is a backbone without top (e.g. from weights.load_backbone) whose
    weights are copied in.

    feature_norm (adapted to the training features before the head trains) scales
    the pooled features to unit variance, whatever the backbone's scale, so that
    the head learns at the same rate on any backbone."""
    spec = backbone_spec(backbone)
    check_image_size(backbone, image_size)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = caffe_preprocess_layer()(inputs) if spec.caffe else inputs
    base = spec.constructor(include_top=False, weights=None, input_tensor=x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    x = keras.layers.Normalization(name="feature_norm")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # zero weights: the first prediction is uniform, so the head starts at a loss of
    # ln(brands) whatever the features; gradients reach head_dense from the second step.
    # float32 probabilities under mixed precision too (a float16 softmax loses small ones)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer="zeros", dtype="float32",
                                 name="predictions")(x)
    model = keras.Model(inputs, outputs, name=f"transfer_{backbone}")
    if weights_from is not None:
        copy_backbone_weights(weights_from, backbone_layers(model))
    return model


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers inside a model from build_model, in order."""
    return [l for l in model.layers if l.name not in HEAD_LAYERS and l.name != "preprocess"
            and not isinstance(l, keras.layers.InputLayer)]


def copy_backbone_weights(source: keras.Model, layers: list[keras.layers.Layer]) -> None:
    # Matched by order, as Keras' own weights files are: auto-generated layer names
    # (re_lu_13, ...) differ between two builds in one session.
    src = [l for l in source.layers if l.weights]
    dst = [l for l in layers if l.weights]
    if len(src) != len(dst):
        raise WeightsError(f"backbone has {len(src)} layers with weights, the model {len(dst)}")
    for s, d in zip(src, dst):
        values = s.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in d.weights]:
            raise WeightsError(f"backbone layer {s.name} does not fit {d.name}")
        d.set_weights(values)


@dataclass
class Parts:
    """Sub-graphs of the end-to-end model; they share its layers (and so its weights)."""
    model: keras.Model
    frozen: keras.Model      # image -> input of unfreeze_from (never trained)
    tail: keras.Model        # frozen output -> probabilities (phase 2 trains this)
    pooled: keras.Model      # image -> pooled backbone features
    tail_pooled: keras.Model  # frozen output -> pooled features
    head: keras.Model        # pooled features -> probabilities (phase 1 trains this)
    tuned: list              # backbone layers phase 2 trains


def fine_tune_start(model: keras.Model, backbone: str, unfreeze_from: str) -> keras.layers.Layer:
    """The first layer phase 2 trains (transfer.fine_tune.unfreeze_from): `auto` (the
    backbone's default), `all` (its first layer with weights) or a layer's name."""
    if unfreeze_from == "auto":
        unfreeze_from = backbone_spec(backbone).unfreeze_from
    elif unfreeze_from == "all":
        unfreeze_from = next(l.name for l in backbone_layers(model) if l.weights)
    try:
        return model.get_layer(unfreeze_from)
    except ValueError:
        raise ParamError("transfer.fine_tune.unfreeze_from",
                         f"{unfreeze_from!r}: {backbone} has no layer of that name (auto, all, or a layer "
                         f"name such as {backbone_spec(backbone).unfreeze_from})") from None


def split(model: keras.Model, backbone: str, unfreeze_from: str = "auto") -> Parts:
    start = fine_tune_start(model, backbone, unfreeze_from)
    cut = start.input
    pooled = model.get_layer("avg_pool").output   # before feature_norm: the head includes it
    try:
        tail = keras.Model(cut, model.output, name="tail")
    except ValueError:   # a layer inside a residual block: the graph does not split there
        raise ParamError("transfer.fine_tune.unfreeze_from",
                         f"{start.name!r}: the backbone cannot be cut before this layer (a shortcut "
                         f"crosses it); choose the first layer of a block") from None
    # BatchNormalization stays frozen (inference mode) when fine-tuning: its statistics
    # from a few small batches would wreck what the backbone learnt.
    tuned = [l for l in tail.layers if l.name not in HEAD_LAYERS and l.weights
             and not isinstance(l, keras.layers.BatchNormalization)]
    return Parts(
        model=model,
        frozen=keras.Model(model.input, cut, name="frozen"),
        tail=tail,
        pooled=keras.Model(model.input, pooled, name="pooled"),
        tail_pooled=keras.Model(cut, pooled, name="tail_pooled"),
        head=keras.Model(pooled, model.output, name="head"),
        tuned=tuned,
    )


def trained_layers(parts: Parts, phase: str) -> list[keras.layers.Layer]:
    """What a phase trains: the head, and when fine-tuning also the tuned block."""
    head = [parts.model.get_layer(name) for name in HEAD_LAYERS]
    return head + (list(parts.tuned) if phase == "fine_tune" else [])


def set_phase(parts: Parts, phase: str) -> None:
    """Make trainable exactly what the phase trains (trained_layers)."""
    trained = {id(l) for l in trained_layers(parts, phase)}
    for layer in backbone_layers(parts.model) + [parts.model.get_layer(name) for name in HEAD_LAYERS]:
        layer.trainable = id(layer) in trained


def trainable_params(parts: Parts, phase: str) -> int:
    """How many weights a phase trains (trained_layers)."""
    return int(sum(np.prod(w.shape) for layer in trained_layers(parts, phase) for w in layer.weights))


def weights_label(pretrained: bool, route: str) -> str:
    """How the backbone started, for titles and reports."""
    return f"ImageNet weights via {route}" if pretrained else "not pretrained: random initial weights"
