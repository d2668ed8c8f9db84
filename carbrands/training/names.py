"""The names params.yaml may use for optimizers and strategies: the registries that
carbrands/training/compiling.py and devices.py build from, kept free of TensorFlow
so that validating params stays fast (carbrands/params.py reads them)."""

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
STRATEGIES = ("default", "mirrored", "multi_worker")
SCHEDULES = ("constant", "cosine")          # a phase's learning rate: fixed, or cosine decay to 0 over its epochs
CLASS_WEIGHTS = ("balanced", "none")        # balanced: each class weighs the same in the loss, however many images
