"""Seeds and op determinism, set at the start of every stage that draws random numbers.

The seed alone decides the data order and the augmentation (tf.data's seeded shuffle,
the augmenter's stateless draws): that holds with op determinism on or off. Op
determinism also makes the kernels deterministic, so that the same seed on the same
machine and software gives a byte-identical training history; it costs speed, mainly
because Keras then compiles no XLA (see README, "Reproducibility").
"""
from __future__ import annotations

import random

import keras
import numpy as np
import tensorflow as tf

from carbrands import internals


def set_global_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and turn op determinism on or off
    (params `train.deterministic` in the training stages; always on elsewhere).

    PYTHONHASHSEED is not set: it takes effect only when an interpreter starts, so it
    cannot change this one, and nothing here depends on str hashes (no set or dict of
    strings is iterated to decide an order that reaches a result)."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    set_op_determinism(deterministic)


def set_op_determinism(enabled: bool) -> None:
    """Turn TensorFlow's op determinism on or off for this process; set it before a
    model is compiled (Keras decides then whether to compile with XLA)."""
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        internals.disable_op_determinism()


def op_determinism_enabled() -> bool:
    return internals.op_determinism_enabled()
