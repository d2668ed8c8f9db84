"""The figures only the report stage can draw, since they span several stages:
CNN vs transfer validation curves, and the optimizer comparison."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from carbrands import paths
from carbrands.evaluation.report import percent
from carbrands.files import write_csv
from carbrands.plots import plt, save_figure
from carbrands.training.live import read_history


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

    fig, ax = plt.subplots(figsize=(1.6 * len(runs) + 2, 4))
    acc = runs["test_accuracy"]
    err = [acc - runs["test_accuracy_ci95_low"], runs["test_accuracy_ci95_high"] - acc]
    ax.bar(runs["run"], acc, yerr=err, capsize=6, color="#4c72b0")
    for i, a in enumerate(acc):
        ax.text(i, a / 2, percent(a), ha="center", color="white")
    ax.set_ylim(0, 1)
    ax.set_ylabel("Test accuracy (95 % bootstrap interval)")
    ax.set_xlabel("Optimizer run")
    ax.set_title("Optimizer comparison: test accuracy")
    save_figure(fig, out / "optimizers_accuracy.png")

    histories = pd.concat([read_history(root / paths.live_dir(paths.optimizer_live(name))).assign(run=name)
                           for name in runs["run"]])
    # long form, one row per run and epoch: `dvc plots` draws one line per run
    write_csv(out / "optimizers_history.csv",
              histories[["run", "epoch", "val_accuracy", "val_loss", "accuracy", "loss"]])
    validation_curves({name: h for name, h in histories.groupby("run", sort=False)},
                      out / "optimizers_curves.png", title_suffix=" per optimizer")
