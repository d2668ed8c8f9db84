"""Per-epoch metrics on disk while a stage trains, through DVCLive: one folder per
training stage (paths.live_dir), holding metrics.json (the latest epoch: `dvc
metrics`) and plots/metrics/<name>.tsv (one row per epoch, `step` = epoch - 1:
`dvc plots`). Both are stage outputs in dvc.yaml; DVCLive never writes a dvc.yaml
of its own and saves no experiment. carbrands/history.py reads such a folder back."""
from __future__ import annotations

import warnings
from pathlib import Path


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
