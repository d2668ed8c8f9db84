"""Transfer recipe choices: the default recipe against one change at a time, on any
folder in the Kaggle layout (real photos), in one temporary copy of the project.

audit, prepare and pretrained run once; then, per variant, `transfer` and
`evaluate transfer` run as their own processes with that variant's params. Printed
per variant: the saved model's validation accuracy (what a choice is made on), the
interpolation it was saved with (transfer.fine_tune.interpolate as applied), its
test accuracy with the 95 % bootstrap interval and macro F1 (reported, not chosen
on), and the transfer stage's seconds. A variant with another backbone runs
`pretrained` again first. One seed each: on a couple of hundred validation
photos, differences of 2 to 3 points are within the noise.

    .venv/bin/python bench/transfer_choices.py DATA_DIR [--image-size auto] [--only NAME ...] [--seed N] [--tiny]
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _choices  # noqa: E402
from bench import _common as common  # noqa: E402
from carbrands import paths  # noqa: E402
from carbrands.files import read_json  # noqa: E402
from devtools.projects import merge  # noqa: E402

VGG16_RECIPE = {"backbone": "vgg16", "mirror_features": False, "fine_tune": {
    "unfreeze_from": "auto", "augment": False, "learning_rate": 0.0001, "epochs": 5, "interpolate": 1.0}}

# each a change from params.yaml's transfer section, which the first row runs as it is
VARIANTS = {
    "defaults": {},
    "fine-tuned from block6a, cached": {"fine_tune": {"unfreeze_from": "block6a_expand_conv", "augment": False,
                                                      "epochs": 5}},
    "no fine-tuning": {"fine_tune": {"epochs": 0}},
    "fine_tune epochs 2": {"fine_tune": {"epochs": 2}},
    "fine-tuned whole": {"fine_tune": {"unfreeze_from": "all"}},
    "fine-tuned from block4a": {"fine_tune": {"unfreeze_from": "block4a_expand_conv"}},
    "fine_tune epochs 4": {"fine_tune": {"epochs": 4}},
    "fine_tune epochs 5": {"fine_tune": {"epochs": 5}},
    "fine_tune learning_rate 1e-4": {"fine_tune": {"learning_rate": 0.0001}},
    "fine_tune learning_rate 3e-4": {"fine_tune": {"learning_rate": 0.0003}},
    "fine_tune learning_rate 5e-4": {"fine_tune": {"learning_rate": 0.0005}},
    "fine_tune interpolate 1": {"fine_tune": {"interpolate": 1.0}},   # the backbone as fine-tuned
    "mirror_features false": {"mirror_features": False},
    "batch_size 16": {"batch_size": 16},
    "class_weight none": {"class_weight": "none"},
    "efficientnet_lite2": {"backbone": "efficientnet_lite2"},
    # the notebook's backbone, with the recipe that suits it (cached block-4 outputs, last block),
    # as it was measured: as fine-tuned; and with the default interpolation on top
    "vgg16 (last block, cached)": VGG16_RECIPE,
    "vgg16 (last block, cached), interpolate auto": merge(copy.deepcopy(VGG16_RECIPE),
                                                          {"fine_tune": {"interpolate": "auto"}}),
}


def pretrained_for(project: Path, variant: dict, name: str) -> None:
    """The variant's backbone weights: `pretrained` runs unless its last run in this copy
    was for the same backbone (one backbone's weights file is kept at a time)."""
    record = project / paths.PRETRAINED_RECORD
    last = read_json(record) if record.is_file() else {}
    # the record is committed; the file it names is there once the stage ran in the copy
    if last.get("backbone") != variant["transfer"]["backbone"] or not (project / last["file"]).is_file():
        common.run_measured(f"pretrained {name}", [sys.executable, "-m", "stages.pretrained"], project)


def main() -> None:
    args = _choices.parse_args(__doc__, VARIANTS)
    _choices.run_variants(
        "transfer_choices", args, VARIANTS, "transfer", "transfer",
        lambda d: {"val_accuracy": round(d["final_val_accuracy"], 4), "epochs": d["epochs_run_per_phase"],
                   "interpolate": d["fine_tune_interpolate"]},
        before=pretrained_for)


if __name__ == "__main__":
    main()
