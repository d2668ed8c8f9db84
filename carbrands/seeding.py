"""One seed for everything random, set at the start of every stage that draws random numbers."""
from __future__ import annotations

import os
import random

import numpy as np


def set_global_seed(seed: int, deterministic_tf: bool = True) -> None:
    """Seed Python, NumPy and (when installed) TensorFlow/Keras, and turn on op determinism
    so that the same seed on the same machine gives the same training history."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    try:
        import tensorflow as tf
    except ImportError:
        return
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic_tf:
        tf.config.experimental.enable_op_determinism()
