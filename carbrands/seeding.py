"""One seed for everything random, set at the start of every stage that draws random numbers."""
from __future__ import annotations

import os
import random

import keras
import numpy as np
import tensorflow as tf


def set_global_seed(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and turn on op determinism so that the
    same seed on the same machine gives the same training history."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
