"""EfficientNet-Lite (Tan and Le, 2019; Google's edge variant) as a Keras functional model.

Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish,
and with the stem (32 channels) and head (1280 channels) not scaled with the width.
keras.applications has no builder for it, so this one follows Google's
efficientnet_lite_builder.py; the layer names here are the ones weights.py maps
ImageNet weights onto.

Strided convolutions pad as TensorFlow's "same" does at the variant's own input
size (224 px for Lite0, 260 for Lite2), whatever size the model is built for: that
is what the reference implementation of the converted weights does (static "same"
padding), so our outputs match its outputs at every size, and match Google's
TensorFlow model at the size it was trained at.
"""
from __future__ import annotations

import math

import keras

# (repeats, kernel, stride, expand ratio, input filters, output filters) per stage, Lite0
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# width multiplier, depth multiplier, the input size it was trained at
VARIANTS = {"lite0": (1.0, 1.0, 224), "lite2": (1.1, 1.2, 260)}
STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON = 1e-3
DROP_CONNECT_RATE = 0.2   # stochastic depth, growing linearly with the block's index


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Filters scaled by the width multiplier, rounded to a multiple of 8 and never
    more than 10 % below the exact value (Google's rule)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def blocks(variant: str) -> list[tuple[str, int, int, int, int, int]]:
    """One (name, kernel, stride, expand, in, out) per MBConv block, named as
    keras.applications names them (block1a, block2a, block2b, ...). The first and last
    stages keep their single block at every depth (Lite's fixed stem and head)."""
    width, depth, _ = VARIANTS[variant]
    out = []
    for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(STAGES):
        fixed = i in (0, len(STAGES) - 1)
        c_in = STEM_FILTERS if i == 0 else round_filters(c_in, width)
        c_out = round_filters(c_out, width)
        for r in range(repeats if fixed else math.ceil(depth * repeats)):
            out.append((f"block{i + 1}{chr(ord('a') + r)}", kernel, stride if r == 0 else 1, expand,
                        c_in if r == 0 else c_out, c_out))
    return out


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) of one side of `size` pixels."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_bn(x, filters: int, kernel: int, stride: int, name: str, activate: bool = True, depthwise: bool = False,
            native_size: int = 0):
    """Convolution, batch norm, ReLU6. A strided one pads for `native_size` (see above)."""
    padding = "same"
    if stride > 1:
        pad = same_padding(native_size, kernel, stride)
        x = keras.layers.ZeroPadding2D((pad, pad), name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if activate else x


def mbconv(x, kernel: int, stride: int, expand: int, c_in: int, c_out: int, drop_rate: float, name: str,
           native_size: int):
    """Inverted residual: 1x1 expansion, depthwise kxk, 1x1 linear projection; the
    identity shortcut where shapes allow, with stochastic depth on the residual."""
    inputs = x
    if expand != 1:
        x = conv_bn(x, c_in * expand, 1, 1, f"{name}_expand")
    x = conv_bn(x, 0, kernel, stride, f"{name}_dw", depthwise=True, native_size=native_size)
    x = conv_bn(x, c_out, 1, 1, f"{name}_project", activate=False)
    if stride == 1 and c_in == c_out:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite(variant: str, include_top: bool = False, weights=None, input_tensor=None,
                      input_shape=None, classes: int = 1000) -> keras.Model:
    """EfficientNet-Lite0 or -Lite2 for raw 0..255 RGB input (the (x - 127) / 128 scaling
    of Google's preprocessing is the first layer). Without top, the output is the head
    convolution's ReLU6 map, 1280 channels; with top, ImageNet logits (no softmax, as in
    the reference implementation). `weights` must be None: ImageNet weights come
    through weights.py, which has no Keras download to call."""
    if weights is not None:
        raise ValueError(f"efficientnet_lite builds with weights=None; got {weights!r}")
    if input_tensor is None:
        input_tensor = keras.Input(input_shape or (None, None, 3), name="image")
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="rescaling")(input_tensor)
    size = VARIANTS[variant][2]   # the side of the feature map at the native input size
    x = conv_bn(x, STEM_FILTERS, 3, 2, "stem", native_size=size)
    size = math.ceil(size / 2)
    specs = blocks(variant)
    for index, (name, kernel, stride, expand, c_in, c_out) in enumerate(specs):
        x = mbconv(x, kernel, stride, expand, c_in, c_out, DROP_CONNECT_RATE * index / len(specs), name, size)
        size = math.ceil(size / stride)
    x = conv_bn(x, HEAD_FILTERS, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="top_pool")(x)
        x = keras.layers.Dense(classes, name="logits")(x)
    inputs = keras.utils.get_source_inputs(input_tensor)
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


def efficientnet_lite0(**kwargs) -> keras.Model:
    return efficientnet_lite("lite0", **kwargs)


def efficientnet_lite2(**kwargs) -> keras.Model:
    return efficientnet_lite("lite2", **kwargs)
