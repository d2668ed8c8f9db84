"""Optimizers by params name, and the one loss and metric every classifier is compiled with."""
from __future__ import annotations

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

LOSS = "sparse_categorical_crossentropy"
METRICS = ["accuracy"]

_MAKERS = {
    "adam": lambda lr, momentum, **kw: keras.optimizers.Adam(lr, **kw),
    "adamw": lambda lr, momentum, **kw: keras.optimizers.AdamW(lr, **kw),
    "nadam": lambda lr, momentum, **kw: keras.optimizers.Nadam(lr, **kw),
    "rmsprop": lambda lr, momentum, **kw: keras.optimizers.RMSprop(lr, **kw),
    "sgd": lambda lr, momentum, **kw: keras.optimizers.SGD(lr, momentum=momentum, **kw),
}


def make_optimizer(name: str, learning_rate, momentum: float = 0.9, accumulate: int = 1) -> keras.optimizers.Optimizer:
    """A Keras optimizer by params name (training.names.OPTIMIZERS); momentum is used by sgd only.
    accumulate > 1: the variables are updated every `accumulate` steps with the mean of
    their gradients (Keras' gradient accumulation); a learning-rate schedule counts steps."""
    if name not in _MAKERS:
        raise ValueError(f"unknown optimizer {name!r} (known: {', '.join(_MAKERS)})")
    return _MAKERS[name](learning_rate, momentum, gradient_accumulation_steps=accumulate if accumulate > 1 else None)


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """The one loss and metric every classifier here is trained with: cross-entropy on
    integer labels."""
    model.compile(optimizer=optimizer, loss=LOSS, metrics=METRICS)


def class_weights(mode: str, labels: np.ndarray, n_classes: int) -> dict[int, float] | None:
    """Keras class_weight for params' `class_weight` (training.names.CLASS_WEIGHTS):
    balanced_class_weights for "balanced", None (all 1) for "none"."""
    return balanced_class_weights(labels, n_classes) if mode == "balanced" else None


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float] | None:
    """Keras class_weight that gives every class the same total weight (n / (k * n_c)),
    so that small brands count; None when the classes are balanced already (every
    weight would be 1)."""
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == counts[0]).all():
        return None
    present = np.flatnonzero(counts)
    # sklearn divides by the number of classes present; k counts the absent ones too, so that
    # a brand missing from train changes no other weight (the factor is exactly 1 when all are there)
    weights = compute_class_weight("balanced", classes=present, y=labels) * (len(present) / n_classes)
    return dict(zip(present.tolist(), weights.tolist()))
