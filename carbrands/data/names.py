"""The data side's fixed vocabulary, free of imports so that params.py can check
against it without loading the image code."""

SPLITS = ("train", "val", "test")
RESIZE_MODES = ("pad", "crop", "stretch")   # how carbrands/data/images.py fits an image to a square
