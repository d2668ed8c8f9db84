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


def augment_factor(cfg: dict, input_size: int) -> int:
    """p: a training stage averages p x p pixels of the prepared images into one before
    augmenting them, so the augmenter works on (input_size / p) px, at least twice the
    side the CNN sees: the largest divisor of the downscale factor k that leaves the
    model a downscale of 2 or more (1 when k has none: k = 2, 3, 5). Averaging all the
    way down to the seen side first (p = k) and augmenting there scored 2.5 points
    lower on validation (docs/benchmarks.md): a model average of 2 x 2 or more after
    the augmenter smooths what its resampling leaves jagged."""
    k = downscale_factor(cfg, input_size)
    return max((p for p in range(1, k // 2 + 1) if k % p == 0), default=1)


def build_cnn(num_classes: int, input_size: int, cfg: dict) -> keras.Model:
    """A Keras CNN taking (input_size, input_size, 3) float images in 0..255 (the
    prepared images, and photos prepared as they were).

    cfg keys: image_size, filters (one block per entry), convs_per_block, dropout
    (one per block), pooling (global | flatten), dense_units (0: none), head_dropout.
    Inputs larger than image_size are downscaled inside the model (downscale_factor),
    so the transfer backbone's input size does not set the CNN's cost, and every
    caller (evaluation, export, predict) feeds both models the same arrays; training
    fits the model from its layer `downscale` on (after_augment_downscale).
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
        # model (keras-team/keras-hub#2776), and its antialiased form has no TFLite op.
        # In two steps (p, then k / p: the same averages) where training augments in between
        before = augment_factor(cfg, input_size)
        if before > 1:
            x = layers.AveragePooling2D(before, name="downscale_before_augment")(x)
        x = layers.AveragePooling2D(factor // before, name="downscale")(x)
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


def after_augment_downscale(model: keras.Model) -> keras.Model:
    """The CNN from its layer `downscale` on: the same layers and weights (shared),
    fed images that a training stage averaged down by augment_factor and augmented
    (data.prepared.downscaled). The CNN itself when it has no downscale before that."""
    if "downscale_before_augment" not in {layer.name for layer in model.layers}:
        return model
    return keras.Model(model.get_layer("downscale").input, model.output, name=f"{model.name}_after_augment")
