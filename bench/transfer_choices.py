"""Transfer recipe choices: the default recipe against one change at a time, on any
folder in the Kaggle layout (real photos), in one temporary copy of the project.

audit, prepare and pretrained run once; then, per variant, `transfer` and
`evaluate transfer` run as their own processes with that variant's params. Printed
per variant: the saved model's validation accuracy (what a choice is made on), its
test accuracy with the 95 % bootstrap interval and macro F1 (reported, not chosen
on), and the transfer stage's seconds. A variant with another backbone runs
`pretrained` again first. One seed each: on a couple of hundred
validation photos, differences of 2 to 3 points are within the noise.

    .venv/bin/python bench/transfer_choices.py DATA_DIR [--image-size 224] [--only NAME ...] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402
from bench.real_photos import TINY, scores  # noqa: E402
from carbrands import paths  # noqa: E402
from carbrands.data import prepared  # noqa: E402
from carbrands.models.weights import weights_filename  # noqa: E402
from devtools.projects import merge  # noqa: E402

# each a change from params.yaml's transfer section, which the first row runs as it is
VARIANTS = {
    "defaults": {},
    "fine-tuned from block6a, cached": {"fine_tune": {"unfreeze_from": "auto", "augment": False, "epochs": 5}},
    "no fine-tuning": {"fine_tune": {"epochs": 0}},
    "fine_tune epochs 5": {"fine_tune": {"epochs": 5}},
    "fine_tune learning_rate 1e-4": {"fine_tune": {"learning_rate": 0.0001}},
    "mirror_features false": {"mirror_features": False},
    "class_weight none": {"class_weight": "none"},
    "efficientnet_lite2": {"backbone": "efficientnet_lite2"},
    # the notebook's backbone, with the recipe that suits it (cached block-4 outputs, last block)
    "vgg16 (last block, cached)": {"backbone": "vgg16", "mirror_features": False, "fine_tune": {
        "unfreeze_from": "auto", "augment": False, "learning_rate": 0.0001, "epochs": 5}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--only", nargs="+", choices=list(VARIANTS), help="run these variants only")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    size = 32 if args.tiny else args.image_size
    base = merge({"data": {"dir": str(args.data_dir.resolve()), "image_size": size}}, TINY if args.tiny else {})
    py = [sys.executable, "-m"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-choices-") as tmp:
        project = common.committed_copy(Path(tmp) / "project", base)
        for name in ("audit", "prepare"):
            common.run_measured(name, [*py, f"stages.{name}"], project)
        counts = prepared.load_meta(project / paths.PREPARED)["counts"]
        for name in args.only or VARIANTS:
            # project_params gives a fresh dict each time: no variant leaks into the next
            variant = merge(common.project_params(base), {"transfer": VARIANTS[name]})
            common.write_params(project, variant)
            backbone = variant["transfer"]["backbone"]
            if not (project / paths.PRETRAINED / weights_filename(backbone)).is_file():   # one backbone's at a time
                common.run_measured(f"pretrained {name}", [*py, "stages.pretrained"], project)
            step = common.run_measured(name, [*py, "stages.transfer"], project, counts["train"])
            common.run_measured(f"evaluate {name}", [*py, "stages.evaluate", "transfer"], project)
            details = json.loads((project / paths.train_details("transfer")).read_text())
            rows.append({"variant": name, "val_accuracy": round(details["final_val_accuracy"], 4),
                         **scores(project / paths.evaluate_metrics("transfer")),
                         "transfer_seconds": round(step.seconds), "epochs": details["epochs_run_per_phase"]})
    common.print_table(f"Transfer choices on {args.data_dir} at {size} px ({counts})", rows)
    common.save_json("transfer_choices", {"data_dir": str(args.data_dir), "image_size": size, "counts": counts,
                                          "rows": rows}, args.tiny)


if __name__ == "__main__":
    main()
