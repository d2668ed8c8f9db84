"""The custom CNN, built from params' `train` section.

Blocks of conv-BN-conv-pool-dropout, then pooling and a dense head. Global average
pooling is the default because it has far fewer weights than flatten: it overfits
less on a few thousand images and trains faster on a CPU (`pooling: flatten` with
filters 32/64/128 and dense 128 is the notebook's layout).
"""
from __future__ import annotations

import keras
from keras import layers

BN_MOMENTUM = 0.9


def downscale_factor(cfg: dict, input_size: int) -> int:
    """k: the CNN averages k x k pixels into one, the smallest k that brings the
    input's side to at most cfg's image_size (1: the input as it is; never enlarged)."""
    return max(1, -(-input_size // cfg["image_size"]))


def input_side(cfg: dict, input_size: int) -> int:
    """The side the CNN's convolutions see."""
    return input_size // downscale_factor(cfg, input_size)


def build_cnn(num_classes: int, input_size: int, cfg: dict) -> keras.Model:
    """A Keras CNN taking (input_size, input_size, 3) float images in 0..255 (the
    prepared images, and photos prepared as they were).

    cfg keys: image_size, filters (one block per entry), convs_per_block, dropout
    (one per block), pooling (global | flatten), dense_units (0: none), head_dropout.
    Inputs larger than image_size are downscaled inside the model (downscale_factor),
    so the transfer backbone's input size does not set the CNN's cost, and every
    caller (evaluation, export, predict) feeds both models the same arrays.
    Each block is (conv3x3-BN-ReLU) x convs_per_block, 2x2 max-pool, dropout.
    The softmax output is float32 even under mixed precision, where float16
    probabilities would lose the small ones.
    """
    if len(cfg["dropout"]) != len(cfg["filters"]):
        raise ValueError("cfg['dropout'] needs one value per entry of cfg['filters']")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x, factor = inputs, downscale_factor(cfg, input_size)
    if factor > 1:
        # averaging k x k blocks is an antialiased downscale that TFLite runs; Keras' Resizing
        # layer is not used: it sets training=True for the batch norms after it in an exported
        # model (keras-team/keras-hub#2776), and its antialiased form has no TFLite op
        x = layers.AveragePooling2D(factor, name="downscale")(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    for b, (filters, rate) in enumerate(zip(cfg["filters"], cfg["dropout"]), start=1):
        for c in range(1, cfg["convs_per_block"] + 1):
            # no conv bias: batch norm's shift does that job
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{b}_conv{c}")(x)
            # momentum 0.9, not 0.99: with ~50 steps an epoch the inference statistics must catch
            # up within an epoch, or val_loss is noise early on and early stopping acts on it
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{b}_bn{c}")(x)
            x = layers.ReLU(name=f"block{b}_relu{c}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        if rate:
            x = layers.Dropout(rate, name=f"block{b}_dropout")(x)
    if cfg["pooling"] == "global":
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    if cfg["dense_units"]:
        x = layers.Dense(cfg["dense_units"], activation="relu", name="dense")(x)
    if cfg["head_dropout"]:
        x = layers.Dropout(cfg["head_dropout"], name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="brand")(x)
    return keras.Model(inputs, outputs, name="cnn")
