"""`python -m carbrands predict`: the top-k brands for new photos.

The model is a .keras file, an exported SavedModel folder or a .tflite file; each
carries its class names, input size and resize mode (carbrands/models/bundle.py), so
the file alone is enough: no params.yaml and no data/prepared are read. Each image
is decoded and resized exactly as `prepare` did for training (carbrands/data/images.py).
A file that is no usable image gets one line on stderr saying why; the others are
still predicted, and the exit status says that something was skipped. A file that is
no model, or a model without class names, is one line and exit status 2. Installed
(`pip install .`), the command is `carbrands predict`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from carbrands.data.images import UnusableImage, load_for_model
from carbrands.data.names import MAX_IMAGE_PIXELS, RESIZE_MODES
from carbrands.errors import UserError
from carbrands.files import write_csv
from carbrands.models import export

# Files taken from a folder; a file named on the command line is always tried.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
BATCH = 32
EXIT_SKIPPED = 1   # some files were not usable images
EXIT_SETUP = 2     # nothing could be predicted: model, classes or arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--model", default="models/cnn.keras",
                        help="a .keras model, an exported SavedModel folder or a .tflite file (default: %(default)s)")
    parser.add_argument("--top-k", type=_positive, default=3, help="brands shown per image (default: %(default)s)")
    parser.add_argument("--resize", choices=RESIZE_MODES,
                        help="how images are fitted to the square input (default: what the model was "
                             "trained with, as it records)")
    parser.add_argument("--max-pixels", type=_positive, default=MAX_IMAGE_PIXELS,
                        help="refuse larger images, decompression bombs (default: %(default)s, as "
                             "data.max_image_pixels in the project's params.yaml)")
    parser.add_argument("--csv", help="also write the predictions to this CSV file (path, rank, brand, probability)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def image_files(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The files to predict, in command-line order, each folder expanded recursively
    (sorted); and one problem line per argument that gave no file."""
    files, problems = [], []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                problems.append(f"{path}: no image files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def top_k(probabilities: np.ndarray, k: int) -> list[tuple[int, float]]:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(i), float(probabilities[i])) for i in order]


def _batches(files: list[Path], size: int, mode: str, max_pixels: int, problems: list[str]
             ) -> Iterator[tuple[list[Path], np.ndarray]]:
    """Decoded images in batches; an unusable file is reported at once and left out."""
    ready, pixels = [], []
    for path in files:
        try:
            pixels.append(load_for_model(path, size, mode, max_pixels))
            ready.append(path)
        except UnusableImage as e:
            problems.append(f"{path}: {e}")
            print(f"skipped {path}: {e}", file=sys.stderr)
        if len(ready) == BATCH:
            yield ready, np.stack(pixels)
            ready, pixels = [], []
    if ready:
        yield ready, np.stack(pixels)


def run(args: argparse.Namespace) -> int:
    """Predict every file; return the exit status (0 all predicted, 1 some skipped)."""
    model = export.load(args.model)
    classes, size = model.info["classes"], model.info["image_size"]
    mode = args.resize or model.info["resize"]
    if not size:
        raise UserError(f"{args.model} does not take square images of a fixed size")
    k = min(args.top_k, len(classes))

    files, problems = image_files(args.paths)
    for line in problems:
        print(f"skipped {line}", file=sys.stderr)
    rows, predicted = [], 0
    width = max((len(c) for c in classes), default=0)
    for paths, pixels in _batches(files, size, mode, args.max_pixels, problems):
        probabilities = model.predict(pixels.astype(np.float32))
        for path, probs in zip(paths, probabilities):
            predicted += 1
            print(path)
            for rank, (label, p) in enumerate(top_k(probs, k), start=1):
                print(f"  {rank}. {classes[label]:<{width}}  {p:6.1%}")
                rows.append({"path": str(path), "rank": rank, "brand": classes[label], "probability": round(p, 6)})
    if args.csv:
        write_csv(args.csv, pd.DataFrame(rows, columns=["path", "rank", "brand", "probability"]))
    if problems:
        print(f"{len(problems)} path(s) skipped, {predicted} image(s) predicted", file=sys.stderr)
        return EXIT_SKIPPED
    return 0
