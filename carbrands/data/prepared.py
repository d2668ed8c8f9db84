"""The training-ready arrays under data/prepared/: the one format every stage after
`prepare` reads, so no later stage decodes a JPEG again.

Layout:
    classes.json          class names; the index of a name is its label
    meta.json             image_size, resize mode, counts
    <split>/images.npy    uint8 (N, size, size, 3), RGB
    <split>/labels.npy    int32 (N,)
    <split>/paths.txt     source file of each row, one per line (for grids and reports)
Arrays are opened memory-mapped, so a dataset larger than memory still works;
readers release() the pages they have read, so a split read whole does not stay
in the process' memory either.
"""
from __future__ import annotations

import json
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carbrands.errors import DataError


@dataclass
class Split:
    images: np.ndarray   # uint8 (N, H, W, 3), memory-mapped
    labels: np.ndarray   # int32 (N,)
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load_classes(prepared_dir: str | Path) -> list[str]:
    path = Path(prepared_dir) / "classes.json"
    if not path.exists():
        raise DataError(f"{path} is missing: run the `prepare` stage first")
    return json.loads(path.read_text())


def load_meta(prepared_dir: str | Path) -> dict:
    return json.loads((Path(prepared_dir) / "meta.json").read_text())


def load_split(prepared_dir: str | Path, split: str) -> Split:
    d = Path(prepared_dir) / split
    if not (d / "images.npy").exists():
        raise DataError(f"{d}/images.npy is missing: run the `prepare` stage first")
    images = np.load(d / "images.npy", mmap_mode="r")
    labels = np.load(d / "labels.npy")
    paths = (d / "paths.txt").read_text().splitlines() if (d / "paths.txt").exists() else []
    return Split(images=images, labels=labels, paths=paths)


def release(images: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped array that reading has mapped into this
    process (a no-op for an array in memory). Mapped pages stay mapped until the
    array is closed: a stage that reads the Kaggle set's training array at 288 px
    (2.9 GB) whole would hold 2.9 GB more for the rest of its run. Released, they
    stay in the kernel's file cache, so reading them again costs no disk read, and
    the kernel can reclaim them; the array's values are unchanged (the mapping is
    of the file, which a later read maps again)."""
    mapping = getattr(images, "_mmap", None)   # np.memmap's (and its views') mmap.mmap
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def float_batches(images: np.ndarray, batch_size: int):
    """(first row, float32 batch) over a uint8 array, batch by batch, so a memory-mapped
    split is never copied to float32 whole; each batch's pages are released once read."""
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        release(images)
        yield start, batch


def downscaled(split: Split, factor: int, rows: int = 256) -> Split:
    """The split with each factor x factor block of pixels averaged into one, as the
    CNN's AveragePooling2D layers do it, rows and columns that fill no whole block
    dropped, held in memory. Averages are rounded to uint8: within half a grey level
    of the layer's own, far inside what augmentation changes. The split itself for
    factor 1."""
    if factor == 1:
        return split
    n, height, width, channels = split.images.shape
    h, w = height // factor, width // factor
    out = np.empty((n, h, w, channels), np.uint8)
    for start, block in float_batches(split.images, rows):
        block = block[:, :h * factor, :w * factor]
        out[start:start + rows] = np.rint(block.reshape(-1, h, factor, w, factor, channels).mean(axis=(2, 4)))
    return Split(out, split.labels, split.paths)


RELEASE_EVERY = 256   # rows the writer writes between releases of its pages


class SplitWriter:
    """Writes one split's arrays row by row into a memory-mapped .npy, so the whole
    dataset is never held in memory at once."""

    def __init__(self, directory: Path, count: int, image_size: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.images = np.lib.format.open_memmap(
            directory / "images.npy", mode="w+", dtype=np.uint8,
            shape=(count, image_size, image_size, 3))
        self.labels = np.zeros(count, dtype=np.int32)
        self.paths = [""] * count

    def put(self, row: int, image: np.ndarray, label: int, path: str) -> None:
        self.images[row] = image
        self.labels[row] = label
        self.paths[row] = path
        if (row + 1) % RELEASE_EVERY == 0:   # rows are put in order (data/selection.py)
            release(self.images)   # written pages stay in the file's cache: nothing is lost

    def close(self) -> None:
        self.images.flush()
        del self.images
        np.save(self.directory / "labels.npy", self.labels)
        (self.directory / "paths.txt").write_text("".join(p + "\n" for p in self.paths))
