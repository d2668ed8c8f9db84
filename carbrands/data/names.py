"""The data side's fixed vocabulary, free of imports so that params.py can check
against it without loading the image code."""

SPLITS = ("train", "val", "test")
RESIZE_MODES = ("pad", "crop", "stretch")   # how carbrands/data/images.py fits an image to a square
# Larger images are refused before decoding (decompression bombs): the default of
# params' data.max_image_pixels (tests/test_predict.py holds params.yaml to it) and of
# `predict --max-pixels`, which runs where no params.yaml is.
MAX_IMAGE_PIXELS = 40_000_000
