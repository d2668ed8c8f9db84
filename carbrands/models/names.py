"""The names params.yaml may use for the models, free of imports so that validating
params stays fast (carbrands/params.py reads them): the registry of backbones that
carbrands/models/backbones.py builds, and the poolings of carbrands/models/cnn.py."""

BACKBONES = ("vgg16", "resnet50", "efficientnetv2b0", "mobilenetv3small", "efficientnet_lite0", "efficientnet_lite2")
POOLINGS = ("global", "flatten")
TRAINED_MODELS = ("cnn", "transfer")   # the models the pipeline trains (export.model names one)
