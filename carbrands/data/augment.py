"""The training-time augmentation: one function that `train`, `transfer`,
`optimizers` and `augment_check` all call, so the grid people look at shows
exactly what the models are trained on.

Each param means what it means for the Keras preprocessing layer of the same
name (RandomRotation's factor is a fraction of a full turn, RandomTranslation's
a fraction of the side, RandomZoom's and RandomShear's are the largest change,
RandomBrightness's a fraction of 0..255, RandomContrast's the largest change of
the contrast factor), drawn per image. We do not chain those layers, though:
each geometric layer resamples the image once more (four bilinear passes blur
it four times and cost four times as much), and their random draws come from a
stateful SeedGenerator, which under op determinism makes tf.data run the whole
map on one core. Here rotation, shift, zoom, shear and the flips compose into
one affine matrix per image and one resample, and every draw is a stateless
function of a seed that the caller passes in, so the map runs on every core and
the same seed gives the same images. `bench/input_pipeline.py` measures it.

Images are float32 in 0..255 on the way in and on the way out (the models
rescale internally), so the augmenter can sit in a tf.data pipeline in front
of any of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

VALUE_RANGE = (0.0, 255.0)
GEOMETRIC = ("rotation", "shift", "zoom", "shear", "flip_horizontal", "flip_vertical")
PHOTOMETRIC = ("brightness", "contrast")
# Borders uncovered by a geometric transform repeat the nearest edge pixel: "reflect"
# (Keras' default) mirrors the car itself into ghost wheels and bumpers at the border.
FILL = "NEAREST"


@dataclass(frozen=True)
class Augmenter:
    """params' `augment` section as a function of (images, seed); 0/false switches
    a transform off."""
    rotation: float
    shift: float
    zoom: float
    shear: float
    flip_horizontal: bool
    flip_vertical: bool
    brightness: float
    contrast: float

    @property
    def transforms(self) -> list[str]:
        """The transforms switched on, in the order they act (for titles and tests)."""
        return [name for name in GEOMETRIC + PHOTOMETRIC if getattr(self, name)]

    def __call__(self, images, seed) -> tf.Tensor:
        """A batch (n, h, w, c) of float32 0..255 images, augmented; `seed` is a pair of
        integers (a stateless seed). Geometry first, then brightness and contrast, so
        that those act on the whole frame, filled borders included."""
        images = tf.convert_to_tensor(images, tf.float32)
        geometric_seed, photometric_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if any(getattr(self, name) for name in GEOMETRIC):
            images = tf.raw_ops.ImageProjectiveTransformV3(
                images=images, transforms=self._affine(tf.shape(images), geometric_seed),
                output_shape=tf.shape(images)[1:3], fill_value=0.0, interpolation="BILINEAR",
                fill_mode=FILL)
        if self.brightness or self.contrast:
            images = self._photometric(images, photometric_seed)
        return images

    def _affine(self, shape, seed) -> tf.Tensor:
        """Per image, the 8 numbers of ImageProjectiveTransform that map an output
        pixel (x, y) to where it samples the input: p_in = A (p_out - c) + c + t, with
        A = rotation x shear x zoom x flips about the centre c and a shift t."""
        n, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        seeds = iter(tf.unstack(tf.random.experimental.stateless_split(seed, 9)))

        # every draw takes its own seed, so switching one transform off leaves the others'
        # draws unchanged; a switched-off range (-0, 0) draws exactly 0
        def uniform(limit):
            return tf.random.stateless_uniform([n], next(seeds), -limit, limit)

        def sign(on):
            coin = tf.random.stateless_uniform([n], next(seeds))
            return tf.where(coin < 0.5, -1.0, 1.0) if on else tf.ones([n])

        angle = uniform(self.rotation * 2 * math.pi)
        shift_x, shift_y = uniform(self.shift) * width, uniform(self.shift) * height
        zoom_x, zoom_y = 1 + uniform(self.zoom), 1 + uniform(self.zoom)
        shear_x, shear_y = uniform(self.shear), uniform(self.shear)
        flip_x, flip_y = sign(self.flip_horizontal), sign(self.flip_vertical)

        cos, sin = tf.cos(angle), tf.sin(angle)
        # S = shear x zoom x flips: [[sx, shear_x * sy], [shear_y * sx, sy]]
        sx, sy = zoom_x * flip_x, zoom_y * flip_y
        s00, s01, s10, s11 = sx, shear_x * sy, shear_y * sx, sy
        a00, a01 = cos * s00 - sin * s10, cos * s01 - sin * s11
        a10, a11 = sin * s00 + cos * s10, sin * s01 + cos * s11
        cx, cy = (width - 1) / 2, (height - 1) / 2
        b0 = cx + shift_x - (a00 * cx + a01 * cy)
        b1 = cy + shift_y - (a10 * cx + a11 * cy)
        zeros = tf.zeros([n])
        return tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)

    def _photometric(self, images, seed) -> tf.Tensor:
        n = tf.shape(images)[0]
        brightness_seed, contrast_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        limit = self.brightness * VALUE_RANGE[1]
        # as in _affine, a switched-off transform draws its neutral value exactly (0, 1)
        delta = tf.random.stateless_uniform([n, 1, 1, 1], brightness_seed, -limit, limit)
        factor = tf.random.stateless_uniform([n, 1, 1, 1], contrast_seed, 1 - self.contrast, 1 + self.contrast)
        return _brightness_contrast(images, delta, factor)


@tf.function(jit_compile=True)
def _brightness_contrast(images, delta, factor):
    """RandomBrightness then RandomContrast (about each channel's mean), then the clip
    to 0..255, fused by XLA into one pass over the batch instead of five."""
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    return tf.clip_by_value(images * factor + (mean * (1 - factor) + delta), *VALUE_RANGE)


def build_augmenter(aug: dict) -> Augmenter:
    """The augmenter for params' `augment` section; with every transform off it is the
    identity."""
    return Augmenter(**{name: aug[name] for name in GEOMETRIC + PHOTOMETRIC})
