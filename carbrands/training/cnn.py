"""The custom CNN set up for fitting, as `train` and `optimizers@<run>-<seed>` both fit it.

The CNN averages k x k pixels of images larger than train.image_size into one inside
the model (models/cnn.py), so evaluation, export and predict feed it the prepared
arrays as they are. Fitting takes the same layers and weights without that first
layer, on arrays downscaled once beforehand: the augmenter then transforms the pixels
the CNN sees (74 px of 224 prepared: a ninth of them), not the prepared ones, which
on 2 cores cost more than the CNN's own step."""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from carbrands.data.pipeline import Epochs, train_val_datasets
from carbrands.data.prepared import downscaled
from carbrands.models.cnn import after_downscale, build_cnn, downscale_factor
from carbrands.training.compiling import compile_model, make_optimizer
from carbrands.training.session import Inputs


@dataclass
class CnnFit:
    model: keras.Model     # the whole CNN, prepared images in: what the stage saves and evaluates
    fitted: keras.Model    # the same layers and weights from the downscale on, compiled: what fit trains
    train: Epochs          # the training split at the side the CNN sees, shuffled and augmented
    val: tf.data.Dataset   # the validation split at that side


def cnn_fit(data: Inputs, cfg: dict, optimizer: dict, seed: int, augment: dict) -> CnnFit:
    """The CNN of params' `train` section (cfg) and what fit needs to train it.
    optimizer: optimizer, learning_rate and (sgd) momentum, as params name them."""
    factor = downscale_factor(cfg, data.image_size)
    train, val = train_val_datasets(downscaled(data.train, factor), downscaled(data.val, factor),
                                    data.batch_size, seed, augment)
    with data.strategy.scope():
        model = build_cnn(len(data.classes), data.image_size, cfg)
        fitted = after_downscale(model)
        compile_model(fitted, make_optimizer(optimizer["optimizer"], optimizer["learning_rate"],
                                             optimizer.get("momentum", 0.0)))
    return CnnFit(model, fitted, train, val)
