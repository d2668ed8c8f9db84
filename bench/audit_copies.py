"""The audit's copy check on real photos: copies planted with each transformation
against the look-alikes the audit lists, and what the check costs.

In a temporary copy of DATA_DIR (a folder in the Kaggle layout, such as
../shared/fixtures/stanford-makes-19), copies of train photos are planted into
val/test (devtools/planted_copies.py: re-encoded, resized, cropped, watermarked,
colour-shifted, mirrored), then the audit's inspection and duplicate search run as
the `audit` stage runs them (both cores), at a pHash distance wider than the default
so that the look-alikes are many. Prints recall and the lowest copy score per kind,
precision, the highest look-alike score and the gap; seconds per image and per
checked candidate, and from them an estimate for the Kaggle set's 16,467 photos.
Draws the confirmed pairs the planting does not explain and the highest-scoring
look-alikes side by side (bench/out/audit_copies_pairs.png) for a look by eye.

    .venv/bin/python bench/audit_copies.py ../shared/fixtures/stanford-makes-19 [--per-kind N] [--distance D]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402
from carbrands.data import audit  # noqa: E402
from carbrands.data.images import load_for_model  # noqa: E402
from carbrands.data.layout import discover  # noqa: E402
from carbrands.plots import image_grid  # noqa: E402
from devtools import planted_copies  # noqa: E402

KAGGLE = {"train": 33 * 349, "val": 33 * 75, "test": 33 * 75}   # 16,467 photos
TARGET_SECONDS = 120
SHOWN = 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--tiny", action="store_true", help="2 copies per kind at the default distance: checks it runs")
    ap.add_argument("--per-kind", type=int, default=40, help="planted copies per kind of transformation")
    ap.add_argument("--distance", type=int, default=16, help="pHash distance of the candidates (default: 16)")
    ap.add_argument("--width", type=int, help="resize every photo to this width first (the Kaggle set's: 320)")
    args = ap.parse_args()
    d = yaml.safe_load((common.ROOT / "params.yaml").read_text())["data"]
    per_kind, distance = (2, d["near_duplicate_distance"]) if args.tiny else (args.per_kind, args.distance)

    with tempfile.TemporaryDirectory(prefix="bench-audit-copies-") as tmp:
        root = Path(tmp) / "data"
        planted = planted_copies.plant(args.data_dir, root, per_kind, distance, args.width)
        layout = discover(root, 0.15, 0.15, seed=0)
        start, cpu = time.perf_counter(), _cpu_seconds()
        manifest = audit.inspect_all(layout, planted_copies.MAX_PIXELS)
        inspect_s, inspect_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        start, cpu = time.perf_counter(), _cpu_seconds()
        leakage = audit.find_duplicates(manifest, distance, root, planted_copies.MAX_PIXELS,
                                        d["near_duplicate_inlier_share"], d["near_duplicate_similarity"])
        search_s, search_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        scores = planted_copies.score(leakage, planted, d["near_duplicate_distance"])
        figure = common.OUT_DIR / f"audit_copies_pairs{'-tiny' if args.tiny else ''}.png"
        _draw(leakage, planted, root, figure)

    images = int((manifest["verdict"] == "ok").sum())
    candidates = sum(len(t[t["kind"] == "near"]) for t in (leakage.copies, leakage.conflicts, leakage.lookalikes))
    timing = {"wall": _timing(manifest, leakage, inspect_s, search_s, images, candidates, d["near_duplicate_distance"]),
              # CPU seconds (this process and its workers) over 2 cores: what a quiet 2-core machine takes
              "cpu_over_2_cores": _timing(manifest, leakage, inspect_cpu / 2, search_cpu / 2, images, candidates,
                                          d["near_duplicate_distance"])}
    common.print_table(f"Planted copies ({per_kind} per kind) and look-alikes at pHash distance <= {distance}, "
                       f"inlier share >= {d['near_duplicate_inlier_share']}",
                       [{"kind": k, **v} for k, v in scores["by_kind"].items()])
    print(f"\nconfirmed {scores['confirmed']} pairs, {scores['false_copies']} not planted: precision "
          f"{scores['precision']}; {scores['lookalikes']} look-alikes turned down "
          f"({scores['lookalikes_same_make']} of one make, {scores['lookalikes_by_pixels']} judged by pixels)")
    fc = scores["fixture_copies"]
    print(f"the fixture's own cross-split copies (devtools/planted_copies.py): {fc['found']}/{fc['known']} confirmed, "
          f"scores {fc['scores']}")
    print(f"lowest copy score {scores['lowest_copy_score']}, highest look-alike score "
          f"{scores['highest_lookalike_score']}: gap {scores['gap']}")
    for pair in scores["false_copy_pairs"]:
        print(f"  confirmed, not planted: {pair}")
    for pair in scores["highest_lookalikes"][:5]:
        print(f"  look-alike: {pair}")
    print(f"\n{images} images inspected in {inspect_s:.1f} s, {candidates} candidates checked in {search_s:.1f} s")
    for name, t in timing.items():
        print(f"{name}: {t['inspect_ms_per_image']:.2f} ms per image, {t['check_ms_per_candidate']:.1f} ms per "
              f"candidate; estimate for {sum(KAGGLE.values())} photos: {t['estimate_seconds']:.0f} s (inspection "
              f"{t['estimate_inspect_seconds']:.0f} s + {t['estimate_candidates']} candidates at distance "
              f"{d['near_duplicate_distance']}); target < {TARGET_SECONDS} s"
              + (" (tiny sizes: not a measurement)" if args.tiny else ""))
    print(f"figure: {figure}")
    common.save_json(f"audit_copies{args.width or ''}", {"per_kind": per_kind, "distance": distance,
                                                        "width": args.width, "scores": scores, "timing": timing},
                     args.tiny)


def _cpu_seconds() -> float:
    t = os.times()  # children: the worker processes, once their pool has ended
    return t.user + t.system + t.children_user + t.children_system


def _timing(manifest, leakage, inspect_s, search_s, images, candidates, default_distance) -> dict:
    """Per-image and per-candidate costs, and the audit's time at the Kaggle set's size:
    its candidates estimated from this set's rate per cross-split image pair at the
    default distance (fixture photos only, so the planted copies do not inflate it)."""
    ok = manifest[(manifest["verdict"] == "ok") & ~manifest["path"].str.contains("/planted_")]
    n = {s: int((ok["split"] == s).sum()) for s in KAGGLE}
    pairs_here = n["train"] * (n["val"] + n["test"]) + n["val"] * n["test"]
    pairs_kaggle = KAGGLE["train"] * (KAGGLE["val"] + KAGGLE["test"]) + KAGGLE["val"] * KAGGLE["test"]
    tables = (leakage.copies, leakage.conflicts, leakage.lookalikes)
    at_default = sum(int(((t["kind"] == "near") & (t["distance"] <= default_distance)
                          & ~t["path_a"].str.contains("/planted_") & ~t["path_b"].str.contains("/planted_")).sum())
                     for t in tables)
    per_image, per_candidate = inspect_s / images, search_s / max(candidates, 1)
    expected = round(at_default / pairs_here * pairs_kaggle) if pairs_here else 0
    inspect_total = per_image * sum(KAGGLE.values())
    return {"inspect_ms_per_image": round(1000 * per_image, 2),
            "check_ms_per_candidate": round(1000 * per_candidate, 2),
            "candidates_at_default_distance": at_default, "estimate_candidates": expected,
            "estimate_inspect_seconds": round(inspect_total, 1),
            "estimate_seconds": round(inspect_total + per_candidate * expected, 1)}


def _draw(leakage, planted, root: Path, path: Path) -> None:
    """The confirmed pairs the planting does not explain, then the highest-scoring look-alikes."""
    truth = {frozenset(p) for p in zip(planted["source"], planted["copy"])}
    confirmed = [r for t in (leakage.copies, leakage.conflicts) for r in t.itertuples()
                 if frozenset((r.path_a, r.path_b)) not in truth]
    looks = leakage.lookalikes.sort_values("score", ascending=False).head(SHOWN)
    images, titles = [], []
    for label, rows in (("CONFIRMED, not planted", confirmed), ("look-alike", list(looks.itertuples()))):
        for r in rows:
            images += [load_for_model(root / p, 160, "pad", planted_copies.MAX_PIXELS) for p in (r.path_a, r.path_b)]
            titles += [r.path_a, f"{r.path_b}\n{label}: {r.method} {r.score:.3f}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, titles, path, "Confirmed pairs not planted, then the highest-scoring look-alikes", cols=4)


if __name__ == "__main__":
    main()
