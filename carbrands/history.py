"""The history table of a training run: one row per epoch, columns HISTORY_COLUMNS
and any other (e.g. phase), as fit returns it (carbrands/training/fit.py); and
reading it back from the DVCLive folder a training stage wrote (carbrands/training/live.py).

It sits below both training and evaluation (the report draws the histories), and
needs no DVCLive: the report stage does not import it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]


def metrics_folder(directory: str | Path) -> Path:
    """DVCLive's one-TSV-per-metric folder (plots/metrics/<name>.tsv, `step` = epoch - 1)."""
    return Path(directory) / "plots" / "metrics"


def read_history(directory: str | Path) -> pd.DataFrame:
    """The history a DVCLive folder holds: one row per epoch, columns epoch,
    HISTORY_COLUMNS, then any other metric (e.g. phase), as fit returns it."""
    series = [pd.read_csv(f, sep="\t", index_col="step") for f in sorted(metrics_folder(directory).glob("*.tsv"))]
    if not series:
        raise FileNotFoundError(f"no DVCLive metrics under {directory}")
    history = pd.concat(series, axis=1).sort_index()
    history.insert(0, "epoch", history.index + 1)
    return in_history_order(history).reset_index(drop=True)


def in_history_order(history: pd.DataFrame) -> pd.DataFrame:
    """HISTORY_COLUMNS first (those present), then any other column in its order."""
    known = [c for c in HISTORY_COLUMNS if c in history.columns]
    return history[known + [c for c in history.columns if c not in known]]
