"""The dataset audit: one row per file (what it really is, its size, its hashes, and
whether it is usable), duplicates across splits (leakage), and a summary.

Files are inspected in parallel worker processes; each worker returns a small row
and never hands pixels back, so memory stays flat however large the dataset is.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from carbrands.data.images import UnusableImage, decode_bytes, read_bytes
from carbrands.data.layout import Layout
from carbrands.data.names import SPLITS
from carbrands.parallel import default_workers, parallel_map

MANIFEST_COLUMNS = ["split", "class", "path", "origin", "format", "width", "height", "bytes",
                    "sha256", "pixel_hash", "phash", "verdict", "reason"]
DUPLICATE_COLUMNS = ["kind", "distance", "similarity", "path_a", "split_a", "path_b", "split_b", "class_a", "class_b"]
# candidate model input sides; see recommended_size
INPUT_SIZES = (32, 48, 64, 96, 128, 160, 192, 224)
_BLOCK = 512  # rows per block of the Hamming-distance matrix (512 x 16k uint64 = 64 MB)


# -- per file ----------------------------------------------------------------

def perceptual_hash(pixels: np.ndarray) -> int:
    """64-bit pHash: the signs of the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail
    against their median. Survives resizing, re-encoding and small colour changes."""
    grey = Image.fromarray(pixels).convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    low = (_DCT @ np.asarray(grey, dtype=np.float64) @ _DCT.T)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n))


_DCT = _dct_matrix(32)


def inspect_file(task: tuple[str, int]) -> dict:
    """Measure one file: real format, size, file and pixel hashes, pHash, verdict."""
    path, max_pixels = task
    row = {"format": "", "width": 0, "height": 0, "bytes": 0, "sha256": "", "pixel_hash": "",
           "phash": "", "verdict": "ok", "reason": ""}
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
    row.update(width=w, height=h, pixel_hash=digest.hexdigest()[:32], phash=f"{perceptual_hash(pixels):016x}")
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
            row.update(format="", width=0, height=0, bytes=size, sha256="", pixel_hash="", phash="",
                       verdict="skipped", reason=e.skip)
        else:
            row.update(measured[e.path])
        rows.append(row)
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def read_manifest(audit_dir: str | Path) -> pd.DataFrame:
    # text stays text: a brand named "NA" or "1", a hex hash made only of digits
    text = {c: str for c in MANIFEST_COLUMNS if c not in ("width", "height", "bytes")}
    return pd.read_csv(Path(audit_dir) / "manifest.csv", keep_default_na=False, dtype=text)


def read_duplicates(audit_dir: str | Path) -> pd.DataFrame:
    text = {c: str for c in DUPLICATE_COLUMNS if c not in ("distance", "similarity")}
    return pd.read_csv(Path(audit_dir) / "duplicates.csv", keep_default_na=False, dtype=text)


# -- duplicates across splits --------------------------------------------------

def find_duplicates(manifest: pd.DataFrame, max_distance: int, data_dir: Path, max_pixels: int,
                    min_similarity: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairs of usable images in different splits that are copies: exact (same pixels)
    or near (pHash Hamming distance <= max_distance, confirmed by `similarity` >=
    min_similarity). Returns (duplicates, lookalikes): the confirmed pairs, and the
    pHash candidates that the pixel comparison turned down (for a look, never dropped).

    path_a is always in the earlier split (train before val before test). Near pairs
    are found by XOR + popcount over blocks of rows: 16k x 16k images take seconds."""
    ok = manifest[(manifest["verdict"] == "ok") & manifest["split"].isin(SPLITS)].reset_index(drop=True)
    order = {s: i for i, s in enumerate(SPLITS)}
    found: dict[tuple[int, int], tuple[str, int]] = {}
    # same bytes mean same pixels: grouping by the pixel hash finds both
    for _, group in ok.groupby("pixel_hash"):
        idx = list(group.index)
        for a in idx:
            for b in idx:
                if order[ok.at[a, "split"]] < order[ok.at[b, "split"]]:
                    found[(a, b)] = ("exact", 0)
    hashes = np.array([int(h, 16) for h in ok["phash"]], dtype=np.uint64)
    rows_of = {s: np.flatnonzero(ok["split"].to_numpy() == s) for s in SPLITS}
    for i, split_a in enumerate(SPLITS):
        for split_b in SPLITS[i + 1:]:
            ia, ib = rows_of[split_a], rows_of[split_b]
            for a, b, d in _close_pairs(hashes[ia], hashes[ib], max_distance):
                found.setdefault((int(ia[a]), int(ib[b])), ("near", int(d)))
    near = sorted({i for (a, b), (kind, _) in found.items() if kind == "near" for i in (a, b)})
    tasks = [(str(data_dir / ok.at[i, "path"]), max_pixels) for i in near]
    views = dict(zip(near, parallel_map(_views_of_file, tasks, default_workers(), "audit: comparing near pairs")))
    rows = [{"kind": kind, "distance": d,
             "similarity": 1.0 if kind == "exact" else round(similarity(views[a], views[b]), 4),
             "path_a": ok.at[a, "path"], "split_a": ok.at[a, "split"],
             "path_b": ok.at[b, "path"], "split_b": ok.at[b, "split"],
             "class_a": ok.at[a, "class"], "class_b": ok.at[b, "class"]}
            for (a, b), (kind, d) in found.items()]
    frame = pd.DataFrame(rows, columns=DUPLICATE_COLUMNS)
    frame = frame.sort_values(["split_a", "split_b", "path_a", "path_b"], key=_split_key).reset_index(drop=True)
    copies = frame["similarity"] >= min_similarity
    return frame[copies].reset_index(drop=True), frame[~copies].reset_index(drop=True)


# -- confirming near copies ------------------------------------------------------
# A pHash match is a candidate only: studio photos of two different cars in the same
# pose on white share their coarse layout, hence their hash. A copy (resized,
# re-encoded, watermarked, lightly cropped) also shares its fine structure: edges in
# the same places. So a candidate is confirmed by the correlation of band-passed
# (difference-of-Gaussians) grey thumbnails, the best over small crops and shifts of
# either image, which aligns a lightly cropped copy with its source. Measured on the
# real photos of ../shared/fixtures/stanford-makes-19 (tests/test_audit.py): copies
# score 0.72-1.0, the most alike different photos up to 0.66.
_SIDE = 128            # the grey image crops are cut from
_THUMB = 32            # side of the compared thumbnails
_BLUR = 3.0            # sigma, in thumbnail pixels, of the coarse layout taken away
_SCALES = (1.0, 0.92, 0.84)
_OFFSETS = (-1, 0, 1)  # crop window at the left/top edge, centred, at the right/bottom edge


def structure_views(pixels: np.ndarray) -> np.ndarray:
    """(views, _THUMB**2) float32 unit vectors: the band-passed thumbnail of the whole
    image first, then of crops of it (scales x offsets)."""
    grey = Image.fromarray(pixels).convert("L").resize((_SIDE, _SIDE), Image.Resampling.BILINEAR)
    views = []
    for scale in _SCALES:
        w = scale * _SIDE
        for dx in _OFFSETS:
            for dy in _OFFSETS:
                if scale == 1.0 and (dx or dy):
                    continue
                x0, y0 = (_SIDE - w) / 2 * (1 + dx), (_SIDE - w) / 2 * (1 + dy)
                t = np.asarray(grey.resize((_THUMB, _THUMB), Image.Resampling.BILINEAR,
                                           box=(x0, y0, x0 + w, y0 + w)), np.float64)
                t = (t - gaussian_filter(t, _BLUR)).ravel()
                t -= t.mean()
                views.append(t / (np.linalg.norm(t) + 1e-9))
    return np.stack(views).astype(np.float32)


def similarity(views_a: np.ndarray, views_b: np.ndarray) -> float:
    """How alike two images' fine structure is (-1..1): each whole image against the
    other's crops, at the best alignment."""
    return float(max((views_a[:1] @ views_b.T).max(), (views_b[:1] @ views_a.T).max()))


def _views_of_file(task: tuple[str, int]) -> np.ndarray:
    path, max_pixels = task
    pixels, _ = decode_bytes(read_bytes(path), max_pixels, draft_size=2 * _SIDE)
    return structure_views(pixels)


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


# -- checking the detection against planted copies ------------------------------

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


def planted_scores(duplicates: pd.DataFrame, planted: pd.DataFrame) -> dict:
    """Recall and precision of the cross-split duplicate detection against the planted truth.

    recall: planted (source, copy) pairs detected (as exact or near) / planted pairs.
    precision: detected pairs that the planting explains / all detected cross-split pairs.
    A pair is explained when both images belong to one planted family (a source and its
    copies: two copies of one source in val and test are duplicates too). An unexplained
    pair may still be a true duplicate that arose by chance, so this precision is a lower
    bound; the unexplained pairs are listed so a person can look at them."""
    family = _families(zip(planted["source"], planted["copy"]))
    detected = {frozenset(p): k for p, k in zip(zip(duplicates["path_a"], duplicates["path_b"]), duplicates["kind"])}
    hits = [frozenset((s, c)) in detected for s, c in zip(planted["source"], planted["copy"])]
    by_kind = {}
    for kind in sorted(set(planted["kind"])):
        of_kind = [h for h, k in zip(hits, planted["kind"]) if k == kind]
        by_kind[kind] = {"planted": len(of_kind), "found": sum(of_kind), "recall": _ratio(sum(of_kind), len(of_kind))}
    explained = [family.get(a) is not None and family.get(a) == family.get(b)
                 for a, b in zip(duplicates["path_a"], duplicates["path_b"])]
    unexplained = [f"{a} ~ {b}" for (a, b), e in zip(zip(duplicates["path_a"], duplicates["path_b"]), explained)
                   if not e]
    return {
        "planted_pairs": len(hits), "found": sum(hits), "recall": _ratio(sum(hits), len(hits)),
        "detected_pairs": len(explained), "explained_by_planting": sum(explained),
        "precision": _ratio(sum(explained), len(explained)),
        "by_kind": by_kind,
        "missed": [f"{s} -> {c}" for (s, c), h in zip(zip(planted["source"], planted["copy"]), hits) if not h][:20],
        "unexplained_pairs": unexplained[:20],
        "note": "precision is a lower bound: an unplanted detected pair may still be a real duplicate",
    }


def _families(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def root(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[root(a)] = root(b)
    return {x: root(x) for x in parent}


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


# -- summary -------------------------------------------------------------------

def recommended_size(short_sides: np.ndarray) -> int:
    """The model input side to suggest for this data.

    Rule: the largest of INPUT_SIZES not above the median short side of the usable
    images (upscaling adds no information, only cost), capped at 224 (where common
    ImageNet backbones work and a CPU can still train), and at least 32."""
    if not len(short_sides):
        return INPUT_SIZES[0]
    median = float(np.median(short_sides))
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


def summarize(layout: Layout, manifest: pd.DataFrame, duplicates: pd.DataFrame, lookalikes: pd.DataFrame,
              planted: pd.DataFrame | None = None) -> dict:
    ok = manifest[manifest["verdict"] == "ok"]
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
        "recommended_size": recommended_size(np.minimum(w, h)),
        "duplicates": {
            "cross_split_pairs": len(duplicates),
            "cross_split_exact": int((duplicates["kind"] == "exact").sum()),
            "cross_split_near": int((duplicates["kind"] == "near").sum()),
            # pHash candidates the pixel comparison turned down (lookalikes.csv): kept
            "lookalikes_not_copies": len(lookalikes),
            "leaked_from_train": {s: int(leaks.loc[leaks["split_b"] == s, "path_b"].nunique())
                                  for s in ("val", "test")},
            "val_test_pairs": int(((duplicates["split_a"] == "val") & (duplicates["split_b"] == "test")).sum()),
            "cross_class_pairs": int((duplicates["class_a"] != duplicates["class_b"]).sum()),
            "exact_copies_within_a_split": exact_within,
        },
    }
    if planted is not None:
        summary["planted"] = planted_scores(duplicates, planted)
    return summary


def _value_counts(series: pd.Series) -> dict:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}
