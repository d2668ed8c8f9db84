"""The pretrained backbones the transfer model can use (keras.applications, and
EfficientNet-Lite from models/efficientnet_lite.py): how to build each, how it wants
its input, and where fine-tuning starts by default.

Kept apart from the training code so that the `pretrained` stage (weights only)
does not rerun when training changes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from carbrands.errors import ParamError
from carbrands.models.efficientnet_lite import efficientnet_lite0, efficientnet_lite2


@dataclass(frozen=True)
class Backbone:
    constructor: Callable          # (include_top, weights, input_tensor, input_shape) as keras.applications
    caffe: bool                    # wants keras.applications' "caffe" preprocessing (BGR, ImageNet mean
                                   # subtracted; see models/transfer.py); otherwise preprocesses inside itself
    min_size: int                  # smallest square input it accepts
    unfreeze_from: str             # first layer fine-tuned in phase 2 (transfer.fine_tune.unfreeze_from: auto)
    keras_imagenet: bool = True    # Keras publishes ImageNet weights for it (weights.keras_download)


# keyed by the names params.yaml may use (models/names.py; tests/test_models.py holds the two equal)
BACKBONES = {
    "vgg16": Backbone(keras.applications.VGG16, True, 32, "block5_conv1"),
    # the last stage (3 bottleneck blocks)
    "resnet50": Backbone(keras.applications.ResNet50, True, 32, "conv5_block1_1_conv"),
    # the last stage of MBConv blocks and the top convolution
    "efficientnetv2b0": Backbone(keras.applications.EfficientNetV2B0, False, 32, "block6a_expand_conv"),
    # the last two inverted-residual blocks and the top convolution
    "mobilenetv3small": Backbone(keras.applications.MobileNetV3Small, False, 32, "expanded_conv_9_expand"),
    # stages 3 to 7 and the head convolution: the stem and the first two stages, at the
    # highest resolution, stay frozen, which on real photos at 288 px scored level with or
    # above fine-tuning the whole network on validation, in a fifth less time (docs/benchmarks.md)
    "efficientnet_lite0": Backbone(efficientnet_lite0, False, 32, "block3a_expand_conv", keras_imagenet=False),
    "efficientnet_lite2": Backbone(efficientnet_lite2, False, 32, "block3a_expand_conv", keras_imagenet=False),
}


def backbone_spec(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ParamError("transfer.backbone", f"{name!r} is not one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def check_image_size(backbone: str, image_size: int) -> None:
    minimum = backbone_spec(backbone).min_size
    if image_size < minimum:
        raise ParamError("data.image_size", f"{image_size} px is below the {minimum} px that the "
                                            f"{backbone} backbone accepts")
