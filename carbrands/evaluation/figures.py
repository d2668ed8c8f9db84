"""Figures of a model's test-set results: the confusion heatmap, grids of right and
wrong predictions, Grad-CAM overlays. Kept apart from carbrands/evaluation/scores.py so that
stages which only need the numbers do not depend on the plotting code."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import seaborn as sns
from sklearn.metrics import confusion_matrix

from carbrands.evaluation.gradcam import gradcam_heatmaps, overlay
from carbrands.plots import image_grid, plt, save_figure


def plot_confusion(labels: np.ndarray, predicted: np.ndarray, classes: Sequence[str], path: str | Path,
                   title: str) -> None:
    """Confusion heatmap: colour is the share of each true class (so rare and common
    brands read alike), the number is the raw count; zeros are left blank."""
    n = len(classes)
    counts = confusion_matrix(labels, predicted, labels=list(range(n)))
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = max(5.0, 0.42 * n + 2.5)   # ~0.42 inch per cell keeps 33 brands readable
    # the figure grows with n, so cells stay ~0.35 inch wide: room for a 3-digit count at 7 pt
    font = 9 if n <= 12 else 7
    annot = np.where(counts > 0, counts.astype(str), "")
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    sns.heatmap(share, ax=ax, cmap="Blues", vmin=0, vmax=1, square=True, linewidths=0.4, linecolor="#e6e6e6",
                annot=annot if n <= 60 else False, fmt="", annot_kws={"fontsize": font},
                xticklabels=list(classes), yticklabels=list(classes),
                cbar_kws={"label": "Share of the true brand's images", "shrink": 0.6})
    ax.set_xlabel("Predicted brand")
    ax.set_ylabel("True brand")
    ax.tick_params(axis="both", labelsize=font + 1)
    plt.setp(ax.get_xticklabels(), rotation=60 if n > 8 else 30, ha="right", rotation_mode="anchor")
    plt.setp(ax.get_yticklabels(), rotation=0)
    ax.set_title(f"{title}\n(numbers: image counts; colour: share of each true brand)")
    save_figure(fig, path)


def pick(indices: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to `count` of `indices`, a seeded choice, in their original order."""
    indices = np.asarray(indices)
    if len(indices) <= count:
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, count, replace=False))


def captions(indices: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
             classes: Sequence[str]) -> list[str]:
    """True brand, predicted brand and its probability, for each image in `indices`."""
    predicted = probabilities.argmax(axis=1)
    return [f"true: {classes[labels[i]]}\npred: {classes[predicted[i]]} ({probabilities[i, predicted[i]]:.0%})"
            for i in indices]


def prediction_grids(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                     classes: Sequence[str], correct_path: str | Path, wrong_path: str | Path,
                     count: int, seed: int, title: str) -> tuple[int, int]:
    """Grids of up to `count` correctly and wrongly predicted images (wrong captions in
    red). Returns how many of each there were in the split."""
    predicted = probabilities.argmax(axis=1)
    right = np.flatnonzero(predicted == labels)
    wrong = np.flatnonzero(predicted != labels)
    for indices, path, what, colour in ((right, correct_path, "Correct", "black"),
                                        (wrong, wrong_path, "Wrong", "red")):
        shown = pick(indices, count, seed)
        image_grid([images[i] for i in shown], captions(shown, labels, probabilities, classes), path,
                   f"{title}: {what.lower()} predictions ({len(shown)} of {len(indices)})",
                   title_colors=[colour] * len(shown))
    return len(right), len(wrong)


def plot_gradcam(model: keras.Model, images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                 classes: Sequence[str], path: str | Path, count: int, seed: int, title: str) -> None:
    """Grad-CAM overlays for a seeded choice of `count` images, for the predicted brand;
    captions give the true and predicted brand (red when wrong)."""
    shown = pick(np.arange(len(labels)), count, seed)
    predicted = probabilities.argmax(axis=1)
    batch = np.asarray(images[shown])
    heatmaps = gradcam_heatmaps(model, batch, predicted[shown]) if len(shown) else []
    pictures = [overlay(batch[j], heatmaps[j]) for j in range(len(shown))]
    colours = ["black" if predicted[i] == labels[i] else "red" for i in shown]
    image_grid(pictures, captions(shown, labels, probabilities, classes), path,
               f"{title}: Grad-CAM for the predicted brand (red = where it looks)",
               cols=3 if len(shown) <= 6 else 4, cell=2.6, title_colors=colours)
