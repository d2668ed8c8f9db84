"""Copies of real photos planted across splits, and how the audit's copy check scores
on them (used by tests/test_audit.py and bench/audit_copies.py).

The hard negatives are the look-alikes the audit itself finds on the real photos:
pHash candidates across splits (same make, same pose, often on white). The fixture
keeps near duplicates within one split, so a candidate across its splits is two
different photos; a train photo with a pHash neighbour in its own split may have a
copy there, so such photos are not used as sources (a family is then exactly one
source and its planted copy)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageEnhance

from carbrands.data import audit
from carbrands.data.layout import discover

MAX_PIXELS = 40_000_000
# Cross-split copies the fixture holds itself (found by this check, each looked at by eye:
# one photo cropped, squeezed to another aspect ratio or mirrored): true copies, not look-alikes.
FIXTURE_COPIES = {frozenset(p) for p in [
    ("train/Bugatti/07491.jpg", "val/Bugatti/02541.jpg"),
    ("train/Maybach/01271.jpg", "val/Maybach/01505.jpg"),
    ("train/Maybach/02229.jpg", "val/Maybach/06766.jpg"),
    ("train/Maybach/02501.jpg", "val/Maybach/04033.jpg"),
    ("train/Maybach/06473.jpg", "val/Maybach/01505.jpg"),
    ("train/Lamborghini/01013.jpg", "test/Lamborghini/00587.jpg"),
    ("train/Lamborghini/01013.jpg", "test/Lamborghini/03605.jpg"),
    ("train/Lamborghini/02955.jpg", "test/Lamborghini/01586.jpg"),
]}


def _watermark(image: Image.Image) -> Image.Image:
    w, h = image.size
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle([int(w * .55), int(h * .88), int(w * .98), int(h * .97)], fill=(255, 255, 255, 140))
    draw.text((int(w * .57), int(h * .89)), "(c) carsphoto.example", fill=(0, 0, 0, 255))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def _crop(image: Image.Image) -> Image.Image:
    # 10 % of each side taken off, unevenly (a copy cut by another hand)
    w, h = image.size
    return image.crop((round(w * .06), round(h * .03), w - round(w * .04), h - round(h * .07)))


def _colour_shift(image: Image.Image) -> Image.Image:
    warm = Image.merge("RGB", [c.point(lambda v, k=k: min(255, round(v * k))) for c, k in
                               zip(image.split(), (1.12, 1.0, 0.85))])
    return ImageEnhance.Color(ImageEnhance.Brightness(warm).enhance(1.15)).enhance(0.6)


# how a planted copy is made from its source; every copy is then saved as a JPEG at quality 85
COPIES = {
    "reencoded": lambda im: im,
    "resized": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.BILINEAR),
    "cropped": _crop,
    "watermarked": _watermark,
    "colour_shifted": _colour_shift,
    "mirrored": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


def plant(fixture: Path, root: Path, per_kind: int, max_distance: int, width: int | None = None) -> pd.DataFrame:
    """Copy the fixture to root (its README and manifest left out; every photo resized
    to `width` pixels wide if given, as the Kaggle set's are 320), plant per_kind copies
    of distinct train photos per kind of COPIES into val/test; returns planted (kind,
    source, copy; paths relative to root)."""
    shutil.copytree(fixture, root, ignore=shutil.ignore_patterns("README.md", "manifest.csv"))
    for path in sorted(root.rglob("*.jpg")) if width else ():
        image = Image.open(path).convert("RGB")
        image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.BICUBIC
                     ).save(path, quality=90)
    manifest = audit.inspect_all(discover(root, 0.15, 0.15, seed=0), MAX_PIXELS)
    ok = manifest[manifest["verdict"] == "ok"].reset_index(drop=True)
    full, mirrored = (np.array([int(h, 16) for h in ok[c]], dtype=np.uint64) for c in ("phash", "phash_mirrored"))
    same_split = ok["split"].to_numpy()[:, None] == ok["split"].to_numpy()[None, :]
    near = same_split & ((np.bitwise_count(full[:, None] ^ full[None, :]) <= max_distance)
                         | (np.bitwise_count(full[:, None] ^ mirrored[None, :]) <= max_distance))
    alone = near.sum(axis=1) == 1                      # only itself
    sources = list(ok.loc[alone & (ok["split"] == "train").to_numpy(), "path"])
    step = max(1, len(sources) // (per_kind * len(COPIES)))
    sources = sources[::step][:per_kind * len(COPIES)]
    planted = []
    for i, src in enumerate(sources):
        kind = list(COPIES)[i % len(COPIES)]
        dest = root / ("val" if i % 2 else "test") / Path(src).parent.name / f"planted_{kind}_{i}.jpg"
        COPIES[kind](Image.open(root / src).convert("RGB")).save(dest, quality=85)
        planted.append({"kind": kind, "source": src, "copy": str(dest.relative_to(root))})
    planted = pd.DataFrame(planted)
    planted.to_csv(root / "planted.csv", index=False)
    return planted


def score(leakage: audit.Leakage, planted: pd.DataFrame, default_distance: int | None = None) -> dict:
    """Recall and lowest score per kind of copy; precision over all confirmed pairs; the
    highest look-alike score and the gap to the lowest copy score (geometry scores only:
    a pixel-fallback score is another scale, counted apart). The fixture's own copies
    (FIXTURE_COPIES) are scored apart: neither planted nor look-alikes. With
    default_distance (the audit may have searched wider), recall among the copies whose
    pHash distance is within it too."""
    confirmed = pd.concat([leakage.copies, leakage.conflicts]).assign(confirmed=True)
    pairs = pd.concat([confirmed, leakage.lookalikes.assign(confirmed=False)], ignore_index=True)
    truth = {frozenset(p): k for p, k in zip(zip(planted["source"], planted["copy"]), planted["kind"])}
    pairs["planted"] = [truth.get(frozenset(p)) for p in zip(pairs["path_a"], pairs["path_b"])]
    known = pd.Series([frozenset(p) in FIXTURE_COPIES for p in zip(pairs["path_a"], pairs["path_b"])], pairs.index)
    copies, lookalikes = pairs[pairs["planted"].notna()], pairs[pairs["planted"].isna() & ~known]
    by_kind = {}
    for kind in COPIES:
        of_kind = copies[copies["planted"] == kind]
        n = int((planted["kind"] == kind).sum())
        geometry = of_kind.loc[of_kind["method"] == "geometry", "score"]
        by_kind[kind] = {"planted": n, "found": int(of_kind["confirmed"].sum()),
                         "recall": round(of_kind["confirmed"].sum() / n, 4) if n else None,
                         "lowest_score": float(geometry.min()) if len(geometry) else None,
                         "pixel_fallback": int((of_kind["method"] == "pixels").sum()),
                         "not_a_candidate": n - len(of_kind)}
        if default_distance is not None:
            within = of_kind["confirmed"] & (of_kind["distance"] <= default_distance)
            by_kind[kind]["recall_at_default_distance"] = round(within.sum() / n, 4) if n else None
    geometry_looks = lookalikes[lookalikes["method"] == "geometry"]
    lowest_copy = min((k["lowest_score"] for k in by_kind.values() if k["lowest_score"] is not None), default=None)
    highest_look = float(geometry_looks["score"].max()) if len(geometry_looks) else None
    false = lookalikes[lookalikes["confirmed"]]
    confirmed_n = int(pairs["confirmed"].sum()) - int(pairs.loc[known, "confirmed"].sum())
    return {
        "by_kind": by_kind,
        "fixture_copies": {"known": len(FIXTURE_COPIES), "found": int(pairs.loc[known, "confirmed"].sum()),
                           "scores": sorted(pairs.loc[known, "score"].tolist())},
        "confirmed": confirmed_n, "false_copies": len(false),
        "precision": round(1 - len(false) / confirmed_n, 4) if confirmed_n else None,
        "lookalikes": len(lookalikes),
        "lookalikes_same_make": int((lookalikes["class_a"] == lookalikes["class_b"]).sum()),
        "lookalikes_by_pixels": int((lookalikes["method"] == "pixels").sum()),
        "highest_lookalike_score": highest_look, "lowest_copy_score": lowest_copy,
        "gap": round(lowest_copy - highest_look, 4) if lowest_copy is not None and highest_look is not None else None,
        "false_copy_pairs": [f"{r.path_a} ~ {r.path_b} ({r.method} {r.score})" for r in false.itertuples()][:20],
        "highest_lookalikes": [f"{r.path_a} ~ {r.path_b} ({r.score})" for r in geometry_looks[~geometry_looks[
            "confirmed"]].sort_values("score", ascending=False).head(10).itertuples()],
    }
