"""The dataset audit: one row per file (what it really is, its size, its hashes, and
whether it is usable), duplicates across splits (leakage), and a summary.

Files are inspected in parallel worker processes; each worker returns a small row
and never hands pixels back, so memory stays flat however large the dataset is.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.fft import dctn

from carbrands.data import copies
from carbrands.data.images import UnusableImage, decode_bytes, read_bytes
from carbrands.data.layout import Layout
from carbrands.data.names import SPLITS
from carbrands.data.planted import planted_scores
from carbrands.parallel import default_workers, parallel_map

PHASHES = ("phash", "phash_mirrored", "phash_centre")  # the columns of perceptual_hashes()
MANIFEST_COLUMNS = ["split", "class", "path", "origin", "format", "width", "height", "bytes",
                    "sha256", "pixel_hash", *PHASHES, "verdict", "reason", "copy_check"]
# the centre hash covers this share of each side: a copy cropped by 10 % hashes close to it
CENTRE = 0.9
# method: exact | geometry | pixels (carbrands.data.copies); score: 1.0 | inlier share | correlation
DUPLICATE_COLUMNS = ["kind", "distance", "method", "score", "path_a", "split_a", "path_b", "split_b",
                     "class_a", "class_b"]
# candidate model input sides; see recommended_size
INPUT_SIZES = (32, 48, 64, 96, 128, 160, 192, 224, 256, 288)
_LISTED = 50  # label conflicts listed in the summary (all are in label_conflicts.csv)
_BLOCK = 512  # rows per block of the Hamming-distance matrix (512 x 16k uint64 = 64 MB)


# -- per file ----------------------------------------------------------------

def perceptual_hashes(pixels: np.ndarray) -> tuple[int, int, int]:
    """64-bit pHashes of the image, of its mirror image and of its centre (CENTRE of each
    side): the signs of the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail against
    their median. One survives resizing, re-encoding and colour changes; the other two
    make mirrored and cropped copies candidates as well."""
    image = Image.fromarray(pixels).convert("L")
    w, h = image.size
    margin = (1 - CENTRE) / 2
    centre = (w * margin, h * margin, w * (1 - margin), h * (1 - margin))
    grey, middle = (np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR, box=box), np.float64)
                    for box in (None, centre))
    return _phash(grey), _phash(grey[:, ::-1]), _phash(middle)


def _phash(grey: np.ndarray) -> int:
    # unnormalised DCT-II: a constant factor, which no sign against the median sees
    low = dctn(grey, type=2)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def inspect_file(task: tuple[str, int]) -> dict:
    """Measure one file: real format, size, file and pixel hashes, pHash, verdict."""
    path, max_pixels = task
    row = {"format": "", "width": 0, "height": 0, "bytes": 0, "sha256": "", "pixel_hash": "",
           **dict.fromkeys(PHASHES, ""), "verdict": "ok", "reason": "", "copy_check": ""}
    try:
        data = read_bytes(path)
        row["bytes"] = len(data)
        row["sha256"] = hashlib.sha256(data).hexdigest()
        pixels, row["format"] = decode_bytes(data, max_pixels)
    except UnusableImage as e:
        row.update(format=e.format, verdict="unusable", reason=str(e))
        return row
    h, w = pixels.shape[:2]
    # same pixels with different bytes (re-saved, other format, other metadata) are still exact copies
    digest = hashlib.sha256(f"{h}x{w}".encode())
    digest.update(pixels.tobytes())
    row.update(width=w, height=h, pixel_hash=digest.hexdigest()[:32],
               **{c: f"{v:016x}" for c, v in zip(PHASHES, perceptual_hashes(pixels))})
    return row


def inspect_all(layout: Layout, max_pixels: int, workers: int | None = None) -> pd.DataFrame:
    """The manifest: one row per file found by the layout, in MANIFEST_COLUMNS."""
    candidates = layout.candidates
    tasks = [(str(layout.data_dir / e.path), max_pixels) for e in candidates]
    measured = dict(zip((e.path for e in candidates),
                        parallel_map(inspect_file, tasks, workers or default_workers(), "audit")))
    rows = []
    for e in layout.entries:
        row = {"split": e.split, "class": e.cls, "path": e.path, "origin": e.origin}
        if e.skip:
            size = (layout.data_dir / e.path).stat().st_size
            row.update(format="", width=0, height=0, bytes=size, sha256="", pixel_hash="",
                       **dict.fromkeys(PHASHES, ""), verdict="skipped", reason=e.skip, copy_check="")
        else:
            row.update(measured[e.path])
        rows.append(row)
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def read_manifest(audit_dir: str | Path) -> pd.DataFrame:
    # text stays text: a brand named "NA" or "1", a hex hash made only of digits
    text = {c: str for c in MANIFEST_COLUMNS if c not in ("width", "height", "bytes")}
    return pd.read_csv(Path(audit_dir) / "manifest.csv", keep_default_na=False, dtype=text)


def read_duplicates(audit_dir: str | Path) -> pd.DataFrame:
    """duplicates.csv: the confirmed cross-split copies of one brand (the leaks)."""
    text = {c: str for c in DUPLICATE_COLUMNS if c not in ("distance", "score")}
    return pd.read_csv(Path(audit_dir) / "duplicates.csv", keep_default_na=False, dtype=text)


# -- duplicates across splits --------------------------------------------------

@dataclass
class Leakage:
    """The audit's cross-split pairs. path_a is always in the earlier split (train
    before val before test)."""
    copies: pd.DataFrame      # confirmed copies of one brand: leaks (prepare drops them)
    conflicts: pd.DataFrame   # confirmed copies labelled with two brands: a label is wrong; kept
    lookalikes: pd.DataFrame  # candidates the copy check turned down: kept
    checks: dict[str, str]    # path -> how its candidate pairs were checked (the manifest's copy_check)


def find_duplicates(manifest: pd.DataFrame, max_distance: int, data_dir: Path, max_pixels: int,
                    min_inlier_share: float, min_similarity: float) -> Leakage:
    """Pairs of usable images in different splits that are copies: exact (same pixels)
    or near: a pHash Hamming distance <= max_distance makes a candidate, confirmed by
    carbrands.data.copies (geometry: inlier share >= min_inlier_share; images with too
    few keypoints: pixel correlation >= min_similarity).

    Near pairs are found by XOR + popcount over blocks of rows (16k x 16k images take
    seconds); only the candidates are decoded again and compared, in worker processes."""
    ok = manifest[(manifest["verdict"] == "ok") & manifest["split"].isin(SPLITS)].reset_index(drop=True)
    order = {s: i for i, s in enumerate(SPLITS)}
    found: dict[tuple[int, int], tuple[str, int, bool]] = {}  # (a, b) -> kind, distance, b mirrored
    # same bytes mean same pixels: grouping by the pixel hash finds both
    for _, group in ok.groupby("pixel_hash"):
        idx = list(group.index)
        for a in idx:
            for b in idx:
                if order[ok.at[a, "split"]] < order[ok.at[b, "split"]]:
                    found[(a, b)] = ("exact", 0, False)
    hashes = {c: np.array([int(h, 16) for h in ok[c]], dtype=np.uint64) for c in PHASHES}
    rows_of = {s: np.flatnonzero(ok["split"].to_numpy() == s) for s in SPLITS}
    # a as it is against b as it is, b mirrored, b's centre, and a's centre against b (either
    # image may be the cropped one): the nearest counts
    compared = (("phash", "phash"), ("phash", "phash_mirrored"), ("phash", "phash_centre"), ("phash_centre", "phash"))
    for i, split_a in enumerate(SPLITS):
        for split_b in SPLITS[i + 1:]:
            ia, ib = rows_of[split_a], rows_of[split_b]
            for col_a, col_b in compared:
                for a, b, d in _close_pairs(hashes[col_a][ia], hashes[col_b][ib], max_distance):
                    pair = (int(ia[a]), int(ib[b]))
                    kind, nearest, _ = found.get(pair, ("near", 65, False))
                    if kind == "near" and d < nearest:
                        found[pair] = ("near", int(d), col_b == "phash_mirrored")
    near = [pair for pair, (kind, _, _) in found.items() if kind == "near"]
    tasks = [(str(data_dir / ok.at[a, "path"]), str(data_dir / ok.at[b, "path"]), found[(a, b)][2], max_pixels)
             for a, b in near]
    checked = dict(zip(near, parallel_map(copies.compare_files, tasks, default_workers(),
                                          "audit: checking near pairs")))
    rows = []
    for (a, b), (kind, d, _) in found.items():
        check = checked.get((a, b), copies.Check("exact", 1.0, (0, 0)))
        rows.append({"kind": kind, "distance": d, "method": check.method, "score": check.score,
                     "path_a": ok.at[a, "path"], "split_a": ok.at[a, "split"],
                     "path_b": ok.at[b, "path"], "split_b": ok.at[b, "split"],
                     "class_a": ok.at[a, "class"], "class_b": ok.at[b, "class"],
                     "copy": kind == "exact" or check.is_copy(min_inlier_share, min_similarity)})
    frame = pd.DataFrame(rows, columns=[*DUPLICATE_COLUMNS, "copy"])
    frame = frame.sort_values(["split_a", "split_b", "path_a", "path_b"], key=_split_key).reset_index(drop=True)
    is_copy = frame.pop("copy").astype(bool)
    one_brand = frame["class_a"] == frame["class_b"]
    return Leakage(copies=frame[is_copy & one_brand].reset_index(drop=True),
                   conflicts=frame[is_copy & ~one_brand].reset_index(drop=True),
                   lookalikes=frame[~is_copy].reset_index(drop=True),
                   checks=_copy_checks(ok, checked))


def _copy_checks(ok: pd.DataFrame, checked: dict) -> dict[str, str]:
    """path -> "geometry", or "pixels (N keypoints)" where the file had too few keypoints
    in one of its comparisons (its fewest is given)."""
    fewest: dict[str, int] = {}
    for (a, b), check in checked.items():
        for i, n in zip((a, b), check.keypoints):
            path = ok.at[i, "path"]
            fewest[path] = min(n, fewest.get(path, n))
    return {p: "geometry" if n >= copies.MIN_KEYPOINTS else f"pixels ({n} keypoints)" for p, n in fewest.items()}


def _split_key(col: pd.Series) -> pd.Series:
    return col.map({s: i for i, s in enumerate(SPLITS)}) if col.name.startswith("split") else col


def _close_pairs(a: np.ndarray, b: np.ndarray, max_distance: int) -> Iterator[tuple[int, int, int]]:
    if not len(a) or not len(b):
        return
    for start in range(0, len(a), _BLOCK):
        dist = np.bitwise_count(a[start:start + _BLOCK, None] ^ b[None, :])
        rows, cols = np.nonzero(dist <= max_distance)
        for r, c in zip(rows, cols):
            yield start + int(r), int(c), int(dist[r, c])


def leaked_from_train(duplicates: pd.DataFrame) -> set[str]:
    """val/test paths that are an exact or near copy of a train image."""
    leaks = duplicates[(duplicates["split_a"] == "train") & duplicates["split_b"].isin(("val", "test"))]
    return set(leaks["path_b"])


# -- the copies the synthetic generator planted (scored in data/planted.py) ------

def read_planted(layout: Layout) -> pd.DataFrame | None:
    """<data.dir>/planted.csv (kind, source, copy), written by the synthetic generator, if any.
    Its paths are relative to the dataset root; they are returned relative to data.dir."""
    path = layout.data_dir / "planted.csv"
    if not path.is_file():
        return None
    planted = pd.read_csv(path, keep_default_na=False)
    if layout.root != ".":
        for col in ("source", "copy"):
            planted[col] = [p if (layout.data_dir / p).exists() else f"{layout.root}/{p}" for p in planted[col]]
    return planted


# -- summary -------------------------------------------------------------------

def recommended_size(widths: np.ndarray, heights: np.ndarray, resize: str) -> int:
    """The model input side to suggest for this data, prepared with data.resize `resize`.

    Rule: the largest of INPUT_SIZES not above the median of the side that the resize
    mode maps onto the model's side (upscaling adds no information, only cost): the
    long side for pad (the whole image fits the square, so a 320 x 240 photo keeps all
    its pixels at 320), the short side for crop and stretch. At least 32 and at most
    288: there Lite0, fine-tuned, scored 2.5 points higher on validation than at 224
    for 1.3x the time (docs/benchmarks.md); VGG16 costs 1.65x at 288."""
    if not len(widths):
        return INPUT_SIZES[0]
    side = np.maximum(widths, heights) if resize == "pad" else np.minimum(widths, heights)
    median = float(np.median(side))
    return max([s for s in INPUT_SIZES if s <= median], default=INPUT_SIZES[0])


def class_distribution(manifest: pd.DataFrame) -> pd.DataFrame:
    """Usable images per class and split (every class in every split, zeros included)."""
    ok = manifest[(manifest["verdict"] == "ok") & manifest["split"].isin(SPLITS)]
    splits = [s for s in SPLITS if s in set(ok["split"])]
    counts = ok.groupby(["class", "split"]).size()
    rows = [{"class": c, "split": s, "count": int(counts.get((c, s), 0))}
            for c in sorted(set(ok["class"])) for s in splits]
    return pd.DataFrame(rows, columns=["class", "split", "count"])


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    q = np.quantile(values, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1])
    return {k: round(float(v), 3) for k, v in zip(("min", "p05", "p25", "median", "p75", "p95", "max"), q)}


def summarize(layout: Layout, manifest: pd.DataFrame, leakage: Leakage, resize: str,
              planted: pd.DataFrame | None = None) -> dict:
    ok = manifest[manifest["verdict"] == "ok"]
    duplicates, conflicts = leakage.copies, leakage.conflicts
    w, h = ok["width"].to_numpy(float), ok["height"].to_numpy(float)
    table = class_distribution(manifest)
    # original: read from a split folder; derived: drawn by the seeded split (a flat folder: all)
    per_split = {s: {"images": int(table.loc[table["split"] == s, "count"].sum()),
                     "origin": "+".join(sorted(set(ok.loc[ok["split"] == s, "origin"])))}
                 for s in SPLITS if s in set(table["split"])}
    train_ok = set(ok.loc[ok["split"] == "train", "class"])
    train_folders = {e.cls for e in layout.candidates if e.split == "train"}
    # redundant images inside one split (not a leak, but they weigh twice in training)
    exact_within = int((ok.groupby(["split", "pixel_hash"]).size() - 1).sum()) if len(ok) else 0
    leaks = duplicates[duplicates["split_a"] == "train"]
    summary = {
        "data_dir": str(layout.data_dir), "dataset_root": layout.root,
        "files": len(manifest),
        "verdicts": {v: int((manifest["verdict"] == v).sum()) for v in ("ok", "unusable", "skipped")},
        "classes": len(train_ok),
        "splits": per_split,
        "per_class": {c: {r.split: int(r.count) for r in g.itertuples()} for c, g in table.groupby("class")},
        "unusable_by_reason": _value_counts(manifest.loc[manifest["verdict"] == "unusable", "reason"]),
        "skipped_by_reason": _value_counts(manifest.loc[manifest["verdict"] == "skipped", "reason"]),
        "formats": _value_counts(ok["format"]),
        "empty_class_folders": layout.empty_class_folders,
        "train_classes_without_usable_images": sorted(train_folders - train_ok),
        "image_size": {"width": _quantiles(w), "height": _quantiles(h),
                       "aspect_w_over_h": _quantiles(w / np.maximum(h, 1)),
                       "short_side": _quantiles(np.minimum(w, h))},
        "recommended_size": recommended_size(w, h, resize),
        "duplicates": {
            "cross_split_pairs": len(duplicates),
            "cross_split_exact": int((duplicates["kind"] == "exact").sum()),
            "cross_split_near": int((duplicates["kind"] == "near").sum()),
            # pHash candidates the copy check turned down (lookalikes.csv): kept
            "lookalikes_not_copies": len(leakage.lookalikes),
            "near_checked_by": _value_counts(pd.concat([leakage.copies, conflicts, leakage.lookalikes])
                                             .query("kind == 'near'")["method"]),
            "leaked_from_train": {s: int(leaks.loc[leaks["split_b"] == s, "path_b"].nunique())
                                  for s in ("val", "test")},
            "val_test_pairs": int(((duplicates["split_a"] == "val") & (duplicates["split_b"] == "test")).sum()),
            # copies labelled with two brands (label_conflicts.csv): not leaks, kept for the user to decide
            "label_conflicts": len(conflicts),
            "label_conflict_pairs": [
                {k: r[k] for k in ("path_a", "class_a", "path_b", "class_b", "method", "score")}
                for r in conflicts.head(_LISTED).to_dict("records")],
            "exact_copies_within_a_split": exact_within,
        },
    }
    if planted is not None:  # a planted copy confirmed under another brand is still found
        summary["planted"] = planted_scores(pd.concat([duplicates, conflicts]), planted)
    return summary


def _value_counts(series: pd.Series) -> dict:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}
