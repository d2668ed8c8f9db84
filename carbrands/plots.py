"""Figures for people: matplotlib/seaborn PNGs, written atomically. The data
series that `dvc plots` draws are CSV files written by the stages themselves."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from carbrands.files import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], path: str | Path,
               title: str, cols: int = 4, cell: float = 2.2, title_colors: Sequence[str] | None = None) -> None:
    """Save a grid of uint8 RGB images, each with a (possibly multi-line) caption.

    Lines too long for their cell (a long brand name) are wrapped: they would run into
    the next caption. The figure title is wrapped to the grid's width likewise."""
    n = max(len(images), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    # "compressed" (not tight_layout) makes room for every caption and the title, however
    # many lines they wrap to: tight_layout let 3-line captions run over the row above
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * (cell + 0.5)), squeeze=False,
                             layout="compressed")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(np.asarray(images[i]).astype(np.uint8))
            color = title_colors[i] if title_colors else "black"
            ax.set_title(wrap_caption(titles[i], int(cell * 14)), fontsize=8, color=color)
    if not images:
        axes.flat[0].text(0.5, 0.5, "(none)", ha="center", va="center")
    fig.suptitle(wrap_caption(title, max(50, int(cols * cell * 11))))   # a 1-image grid may be wider than its cell
    save_figure(fig, path)


def wrap_caption(text: str, width: int) -> str:
    """Each line of `text` wrapped to `width` characters (about 14 per inch at 8 pt, 11 at
    12 pt), breaking at spaces and after a path's slashes, never inside a word:
    "Mercedes-Benz" and "8d15e692b511c5.jpg" stay whole (a word longer than `width`
    runs over rather than being cut)."""
    # textwrap breaks only at whitespace: a space after each slash, dropped again after
    return "\n".join(textwrap.fill(line.replace("/", "/ "), width, break_on_hyphens=False,
                                   break_long_words=False).replace("/ ", "/")
                     for line in text.split("\n"))


def _epoch_ticks() -> MaxNLocator:
    """Matplotlib's default tick placement (AutoLocator's settings), whole epochs only:
    the same ticks as the default from about 6 epochs on, and no "1.5" below."""
    return MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True)


# how a phase's start is named in the legend (others: "<phase> starts")
PHASE_STARTS = {"fine_tune": "fine-tuning starts"}


def plot_history(history, path: str | Path, title: str) -> None:
    """Accuracy and loss per epoch, train and validation together, in two panels
    (a `history` table as training.fit returns it). Where the history has a `phase`
    column with more than one phase (transfer learning: head, then fine_tune),
    a dashed line marks where each phase after the first starts."""
    starts = []
    if "phase" in history and history["phase"].nunique() > 1:
        first = history[history["phase"] != history["phase"].shift()].iloc[1:]
        starts = list(zip(first["epoch"], first["phase"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        ax.plot(history["epoch"], history[metric], marker=".", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], marker=".", label="validation")
        for epoch, phase in starts:
            ax.axvline(epoch - 0.5, color="grey", linestyle="--", label=PHASE_STARTS.get(phase, f"{phase} starts"))
        ax.xaxis.set_major_locator(_epoch_ticks())
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
