"""The training-time augmentation: one function that `train`, `transfer`,
`optimizers` and `augment_check` all call, so the grid people look at shows
exactly what the models are trained on.

Images are float32 in 0..255 on the way in and on the way out (the models
rescale internally), so the augmenter can sit in a tf.data pipeline in front
of any of them.
"""
from __future__ import annotations

import keras

VALUE_RANGE = (0, 255)
# Borders uncovered by a geometric transform repeat the nearest edge pixel: "reflect"
# (Keras' default) mirrors the car itself into ghost wheels and bumpers at the border.
FILL = "nearest"


def build_augmenter(aug: dict, seed: int) -> keras.Sequential:
    """A Sequential of Keras preprocessing layers from params' `augment` section.

    Each transform whose value is 0/false is left out; with all of them off the
    result is an identity (apart from the final clip, a no-op on 0..255 input).
    Geometric transforms come first and the photometric ones last, so that
    brightness/contrast act on the whole frame, filled borders included.
    """
    layers: list[keras.layers.Layer] = []
    # a different seed per layer: layers seeded alike would draw correlated factors
    seeds = iter(range(seed, seed + 100))
    if aug["rotation"]:
        layers.append(keras.layers.RandomRotation(aug["rotation"], fill_mode=FILL, seed=next(seeds),
                                                  name="rotation"))
    if aug["shift"]:
        layers.append(keras.layers.RandomTranslation(aug["shift"], aug["shift"], fill_mode=FILL,
                                                     seed=next(seeds), name="shift"))
    if aug["zoom"]:
        layers.append(keras.layers.RandomZoom(aug["zoom"], aug["zoom"], fill_mode=FILL, seed=next(seeds),
                                              name="zoom"))
    if aug["shear"]:
        # a float x gives magnitudes in (0, x); the layer draws the sign itself
        layers.append(keras.layers.RandomShear(aug["shear"], aug["shear"], fill_mode=FILL, seed=next(seeds),
                                               name="shear"))
    flip = "_and_".join(m for m, on in (("horizontal", aug["flip_horizontal"]),
                                        ("vertical", aug["flip_vertical"])) if on)
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=next(seeds), name="flip"))
    if aug["brightness"]:
        layers.append(keras.layers.RandomBrightness(aug["brightness"], value_range=VALUE_RANGE,
                                                    seed=next(seeds), name="brightness"))
    if aug["contrast"]:
        layers.append(keras.layers.RandomContrast(aug["contrast"], value_range=VALUE_RANGE,
                                                  seed=next(seeds), name="contrast"))
    # interpolation can overshoot a little; the models expect 0..255
    layers.append(keras.layers.Lambda(lambda x: keras.ops.clip(x, *VALUE_RANGE), name="clip"))
    return keras.Sequential(layers, name="augment")


def transform_names(augmenter: keras.Sequential) -> list[str]:
    """Names of the random transforms in an augmenter (for titles and tests)."""
    return [layer.name for layer in augmenter.layers if layer.name != "clip"]
