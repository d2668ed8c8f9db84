"""CNN choices: the custom CNN's defaults against one change at a time (its input
size first), on any folder in the Kaggle layout (real photos), in one temporary copy
of the project.

audit and prepare run once (at --image-size: by default the audit's choice, the size the
transfer backbone gets);
then, per variant, `train` and `evaluate cnn` run as their own processes with that
variant's params. Printed per variant: the best validation accuracy (what a choice
is made on), test accuracy with the 95 % bootstrap interval and macro F1 (reported,
not chosen on), epochs, training images/s and the train stage's seconds.

    .venv/bin/python bench/cnn_choices.py DATA_DIR [--image-size auto] [--only NAME ...] [--seed N] [--tiny]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _choices  # noqa: E402

# each a change from params.yaml's train section, which the first row runs as it is
VARIANTS = {
    "defaults": {},
    "image_size 224": {"image_size": 224},
    "image_size 75": {"image_size": 75},
    "batch_size 64": {"batch_size": 64},
    "filters 32/64/128": {"filters": [32, 64, 128]},
    # under a third of the convolutions' work: one conv a block
    "convs_per_block 1": {"convs_per_block": 1},
    # the default's work, spent on twice the channels with one conv a block
    "convs_per_block 1, filters 32/64/128": {"convs_per_block": 1, "filters": [32, 64, 128]},
}


def main() -> None:
    args = _choices.parse_args(__doc__, VARIANTS)
    _choices.run_variants(
        "cnn_choices", args, VARIANTS, "train", "cnn",
        lambda d: {"val_accuracy": round(d["best_val_accuracy"], 4), "seen_px": d["image_size"],
                   "epochs": d["epochs_run"], "images_per_second": d["images_per_second"]})


if __name__ == "__main__":
    main()
