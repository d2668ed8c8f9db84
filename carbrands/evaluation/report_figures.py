"""The figures only the report stage can draw, since they span several stages:
CNN vs transfer validation curves, and the optimizer comparison."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from carbrands import paths
from carbrands.evaluation import comparison
from carbrands.evaluation.report import percent
from carbrands.files import write_csv
from carbrands.history import read_history
from carbrands.plots import plt, save_figure


def validation_curves(histories: dict[str, pd.DataFrame], path: Path, title_suffix: str = "") -> None:
    """Validation accuracy and validation loss against epochs in two panels, one line
    per history table (label -> table with epoch, val_accuracy, val_loss)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, h in histories.items():
        axes[0].plot(h["epoch"], h["val_accuracy"], marker=".", label=label)
        axes[1].plot(h["epoch"], h["val_loss"], marker=".", label=label)
    for ax, what in zip(axes, ("Validation accuracy", "Validation loss")):
        ax.set_xlabel("Epoch")
        ax.set_ylabel(what)
        ax.set_title(what + title_suffix)
        ax.legend()
    save_figure(fig, path)


def draw_comparisons(root: Path, runs: pd.DataFrame, transfer_label: str) -> None:
    """The figures only the report stage can draw, since they span several stages."""
    out = root / paths.REPORT_PLOTS
    # CNN vs transfer: validation curves against epochs, as the notebook drew them
    validation_curves({"CNN": read_history(root / paths.live_dir("train")),
                       transfer_label: read_history(root / paths.live_dir("transfer"))},
                      out / "cnn_vs_transfer.png")

    # the optimizer runs as they are ranked: on validation, over seeds
    summary = comparison.rank(runs)
    fig, ax = plt.subplots(figsize=(1.6 * len(summary) + 2, 4))
    x = range(len(summary))
    err = [summary["mean"] - summary["min"], summary["max"] - summary["mean"]]
    ax.bar(x, summary["mean"], yerr=err, capsize=6, color="#4c72b0")
    for i, row in enumerate(summary.itertuples(index=False)):
        seeds = runs[runs["run"] == row.run][comparison.RANKED_ON]
        ax.scatter([i] * len(seeds), seeds, color="black", s=14, zorder=3)
        ax.text(i, row.mean / 2, percent(row.mean), ha="center", color="white")
    ax.set_xticks(list(x), summary["run"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("Best validation accuracy (mean; min-max over seeds)")
    ax.set_xlabel("Optimizer run, best first")
    ax.set_title("Optimizer comparison on validation")
    save_figure(fig, out / "optimizers_accuracy.png")

    histories = pd.concat([read_history(root / paths.live_dir(paths.optimizer_live(row.run, row.seed))).assign(
        run=row.run, seed=row.seed) for row in runs.itertuples(index=False)])
    # long form, one row per run, seed and epoch: `dvc plots` draws one line per run and seed
    write_csv(out / "optimizers_history.csv",
              histories[["run", "seed", "epoch", "val_accuracy", "val_loss", "accuracy", "loss"]])
    validation_curves({f"{run}, seed {seed}": h for (run, seed), h in histories.groupby(["run", "seed"], sort=False)},
                      out / "optimizers_curves.png", title_suffix=" per optimizer run")
