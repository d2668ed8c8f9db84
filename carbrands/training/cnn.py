"""The custom CNN set up for fitting, as `train` and `optimizers@<run>-<seed>` both fit it.

The CNN averages k x k pixels of images larger than train.image_size into one inside
the model (models/cnn.py), so evaluation, export and predict feed it the prepared
arrays as they are. Where k is 4 or more, fitting averages the prepared arrays down
by a factor p first (models.cnn.augment_factor: 2 of the 4 at 288 px) and fits the
same layers and weights from the model's last downscale on: the augmenter, which
sets the pace of a CNN epoch on 2 cores, then works on a quarter of the pixels, still
at twice the side the CNN sees."""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from carbrands.data.pipeline import Epochs, train_val_datasets
from carbrands.data.prepared import downscaled
from carbrands.models.cnn import after_augment_downscale, augment_factor, build_cnn
from carbrands.training.compiling import compile_model, make_optimizer
from carbrands.training.session import Inputs


@dataclass
class CnnFit:
    model: keras.Model     # the whole CNN, prepared images in: what the stage saves and evaluates
    fitted: keras.Model    # the same layers and weights from the last downscale on, compiled: what fit trains
    train: Epochs          # the training split as `fitted` takes it, shuffled and augmented
    val: tf.data.Dataset   # the validation split as `fitted` takes it


def cnn_fit(data: Inputs, cfg: dict, optimizer: dict, seed: int, augment: dict) -> CnnFit:
    """The CNN of params' `train` section (cfg) and what fit needs to train it.
    optimizer: optimizer, learning_rate and (sgd) momentum, as params name them."""
    factor = augment_factor(cfg, data.image_size)
    train, val = train_val_datasets(downscaled(data.train, factor), downscaled(data.val, factor),
                                    data.batch_size, seed, augment)
    with data.strategy.scope():
        model = build_cnn(len(data.classes), data.image_size, cfg)
        fitted = after_augment_downscale(model)
        compile_model(fitted, make_optimizer(optimizer["optimizer"], optimizer["learning_rate"],
                                             optimizer.get("momentum", 0.0)))
    return CnnFit(model, fitted, train, val)
