"""Optimizers by params name, and the one loss and metric every classifier is compiled with."""
from __future__ import annotations

import keras

LOSS = "sparse_categorical_crossentropy"
METRICS = ["accuracy"]

_MAKERS = {
    "adam": lambda lr, momentum: keras.optimizers.Adam(lr),
    "adamw": lambda lr, momentum: keras.optimizers.AdamW(lr),
    "nadam": lambda lr, momentum: keras.optimizers.Nadam(lr),
    "rmsprop": lambda lr, momentum: keras.optimizers.RMSprop(lr),
    "sgd": lambda lr, momentum: keras.optimizers.SGD(lr, momentum=momentum),
}


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9) -> keras.optimizers.Optimizer:
    """A Keras optimizer by params name (training.names.OPTIMIZERS); momentum is used by sgd only."""
    if name not in _MAKERS:
        raise ValueError(f"unknown optimizer {name!r} (known: {', '.join(_MAKERS)})")
    return _MAKERS[name](learning_rate, momentum)


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """The one loss and metric every classifier here is trained with."""
    model.compile(optimizer=optimizer, loss=LOSS, metrics=METRICS)
