"""Per-epoch metrics on disk while a stage trains, through DVCLive: one folder per
training stage (paths.live_dir), holding metrics.json (the latest epoch: `dvc
metrics`) and plots/metrics/<name>.tsv (one row per epoch, `step` = epoch - 1:
`dvc plots`). Both are stage outputs in dvc.yaml; DVCLive never writes a dvc.yaml
of its own and saves no experiment.

read_history turns such a folder back into the history table fit returns, for the
report and the figures; it needs no DVCLive (the report stage does not import it)."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]


class LiveLog:
    """DVCLive in `directory`: log(row) writes one epoch (a history row, as fit makes
    it) and its metrics.json at once. Starting one clears what an earlier run left."""

    def __init__(self, directory: str | Path):
        with warnings.catch_warnings():
            # pynvml (a DVCLive dependency for GPU monitoring, unused here) warns on import
            warnings.simplefilter("ignore", FutureWarning)
            from dvclive import Live
        self.directory = Path(directory)
        self.live = Live(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None)

    def log(self, row: dict) -> None:
        self.live.step = int(row["epoch"]) - 1
        for name, value in row.items():
            if name != "epoch":
                self.live.log_metric(name, value)
        self.live.next_step()

    def close(self) -> None:
        self.live.end()


def metrics_folder(directory: str | Path) -> Path:
    return Path(directory) / "plots" / "metrics"


def read_history(directory: str | Path) -> pd.DataFrame:
    """The history a LiveLog folder holds: one row per epoch, columns epoch,
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
