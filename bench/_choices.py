"""The loop that bench/transfer_choices.py and bench/cnn_choices.py share: one model's
params section against one change at a time, on a folder in the Kaggle layout, in one
temporary copy of the project (audit and prepare run once)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import _common as common
from bench.real_photos import overrides, scores
from carbrands import paths
from carbrands.data import prepared
from devtools.projects import merge


def parse_args(doc: str, variants: dict) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--image-size", default="auto",
                    help="data.image_size: auto (the audit's choice, as at the real-photo settings) or pixels")
    ap.add_argument("--only", nargs="+", choices=list(variants), help="run these variants only")
    ap.add_argument("--seed", type=int, help="params' seed (default: params.yaml's): another draw of every variant")
    ap.add_argument("--tiny", action="store_true")
    return ap.parse_args()


def run_variants(bench: str, args: argparse.Namespace, variants: dict, stage: str, model: str,
                 row: Callable[[dict], dict], before: Callable | None = None) -> None:
    """Per variant (a change to params' section of `stage`, which trains `model`):
    `before(project, variant params, name)` when given, then `stage` and
    `evaluate <model>` as their own processes; prints and saves one row per variant:
    row(the stage's details) beside the test scores and the stage's seconds."""
    base = merge(overrides(args), {} if args.seed is None else {"seed": args.seed})
    py = [sys.executable, "-m"]
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench}-") as tmp:
        project = common.committed_copy(Path(tmp) / "project", base)
        for name in ("audit", "prepare"):
            common.run_measured(name, [*py, f"stages.{name}"], project)
        meta = prepared.load_meta(project / paths.PREPARED)
        for name in args.only or variants:
            # project_params gives a fresh dict each time: no variant leaks into the next
            variant = merge(common.project_params(base), {stage: variants[name]})
            common.write_params(project, variant)
            if before:
                before(project, variant, name)
            step = common.run_measured(name, [*py, f"stages.{stage}"], project, meta["counts"]["train"])
            common.run_measured(f"evaluate {name}", [*py, "stages.evaluate", model], project)
            details = json.loads((project / paths.train_details(model)).read_text())
            rows.append({"variant": name, **row(details), **scores(project / paths.evaluate_metrics(model)),
                         f"{stage}_seconds": round(step.seconds)})
    title = f"{bench.replace('_', ' ').capitalize()} on {args.data_dir} at {meta['image_size']} px ({meta['counts']})"
    common.print_table(title, rows)
    common.save_json(bench, {"data_dir": str(args.data_dir), "image_size": meta["image_size"],
                             "counts": meta["counts"], "rows": rows}, args.tiny)
