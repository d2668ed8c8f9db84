"""Figures for people: matplotlib/seaborn PNGs, written atomically. The data
series that `dvc plots` draws are CSV files written by the stages themselves."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from carbrands.io import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], path: str | Path,
               title: str, cols: int = 4, cell: float = 2.2, title_colors: Sequence[str] | None = None) -> None:
    """Save a grid of uint8 RGB images, each with a (possibly multi-line) caption."""
    n = max(len(images), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * (cell + 0.5)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(np.asarray(images[i]).astype(np.uint8))
            color = title_colors[i] if title_colors else "black"
            ax.set_title(titles[i], fontsize=8, color=color)
    if not images:
        axes.flat[0].text(0.5, 0.5, "(none)", ha="center", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_history(history, path: str | Path, title: str) -> None:
    """Accuracy and loss per epoch, train and validation together, in two panels
    (a `history` table as training.fit returns it)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        ax.plot(history["epoch"], history[metric], marker=".", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], marker=".", label="validation")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
