"""The names params.yaml may use for optimizers and strategies: the registries that
carbrands/training/optimizers.py and devices.py build from, kept free of TensorFlow
so that validating params stays fast (carbrands/params.py reads them)."""

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
STRATEGIES = ("default", "mirrored", "multi_worker")
