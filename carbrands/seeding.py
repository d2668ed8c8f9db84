"""Seeds and op determinism, set at the start of every stage that draws random numbers.

The seed alone decides the data order and the augmentation (tf.data's seeded shuffle,
the augmenter's stateless draws): that holds with op determinism on or off. Op
determinism also makes the kernels deterministic, so that the same seed on the same
machine and software gives a byte-identical training history; it costs speed, mainly
because Keras then compiles no XLA (see README, "Reproducibility").
"""
from __future__ import annotations

import os
import random

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config


def set_global_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and turn op determinism on or off
    (params `train.deterministic` in the training stages; always on elsewhere)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
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
        tf_config.disable_op_determinism()  # no public API for turning it off


def op_determinism_enabled() -> bool:
    return bool(tf_config.is_op_determinism_enabled())
