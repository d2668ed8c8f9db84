"""The audit's figures: class balance, one sample per brand, image sizes, leaked pairs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker

from carbrands.data.images import UnusableImage, load_for_model
from carbrands.data.names import SPLITS
from carbrands.plots import image_grid, plt, save_figure

SPLIT_COLOURS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
_THUMB = 160


def class_distribution(table: pd.DataFrame, path: str | Path) -> None:
    """Stacked horizontal bars, one per brand, first brand at the top (readable at 33+ brands)."""
    classes = sorted(set(table["class"]))
    splits = [s for s in SPLITS if s in set(table["split"])]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.28 * max(len(classes), 1)))
    left = np.zeros(len(classes))
    y = np.arange(len(classes))
    for split in splits:
        counts = table[table["split"] == split].set_index("class")["count"].reindex(classes, fill_value=0)
        ax.barh(y, counts.to_numpy(), left=left, color=SPLIT_COLOURS[split], label=split, height=0.75)
        left += counts.to_numpy()
    for yi, total in zip(y, left):
        ax.text(total, yi, f" {int(total)}", va="center", fontsize=7)
    ax.set_yticks(y, classes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("usable images")
    ax.set_ylabel("brand")
    ax.set_title("Images per brand and split")
    ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.margins(x=0.08)
    save_figure(fig, path)


def samples(manifest: pd.DataFrame, data_dir: Path, path: str | Path, seed: int, max_pixels: int) -> None:
    """One randomly chosen (seeded) usable training image per brand."""
    rng = np.random.default_rng(seed)
    ok = manifest[(manifest["verdict"] == "ok") & (manifest["split"] == "train")]
    images, titles = [], []
    for cls, group in sorted(ok.groupby("class"), key=lambda kv: kv[0]):
        row = group.iloc[int(rng.integers(len(group)))]
        images.append(_thumb(data_dir / row["path"], max_pixels))
        titles.append(f"{cls}\n{row['width']}x{row['height']}")
    image_grid(images, titles, path, "One training image per brand", cols=6)


def image_sizes(manifest: pd.DataFrame, recommended: int, path: str | Path) -> None:
    """Histogram of heights and widths, and width x height scatter, recommended size marked."""
    ok = manifest[manifest["verdict"] == "ok"]
    w, h = ok["width"].to_numpy(float), ok["height"].to_numpy(float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    log = _wide(np.concatenate([w, h]))   # web photos span 100..5000 px: a log axis shows them all
    bins = np.geomspace(max(min(w.min(), h.min()), 1), max(w.max(), h.max()) + 1, 40) if log else 40
    if len(w):
        left.hist(h, bins=bins, alpha=0.7, label="height", color="#4C72B0")
        left.hist(w, bins=bins, alpha=0.5, label="width", color="#DD8452")
    left.axvline(recommended, color="crimson", ls="--", label=f"recommended input {recommended}px")
    left.set_xlabel("pixels" + (" (log scale)" if log else ""))
    left.set_ylabel("images")
    left.set_title("Image heights and widths")
    right.scatter(w, h, s=6, alpha=0.35, color="#4C72B0")
    right.scatter([recommended], [recommended], marker="s", s=60, color="crimson",
                  label=f"recommended {recommended}x{recommended}")
    right.set_xlabel("width (pixels)")
    right.set_ylabel("height (pixels)")
    right.set_title(f"Width x height of {len(w)} usable images")
    for ax in (left, right):
        ax.legend(fontsize=8)
    if log:
        _log_axis(left.xaxis, left.set_xscale)
    if _wide(w):
        _log_axis(right.xaxis, right.set_xscale)
    if _wide(h):
        _log_axis(right.yaxis, right.set_yscale)
    fig.tight_layout()
    save_figure(fig, path)


def leakage_pairs(duplicates: pd.DataFrame, data_dir: Path, path: str | Path, max_pixels: int,
                  limit: int = 100) -> None:
    """Every confirmed cross-split copy side by side (two pairs per row) with how it was
    confirmed and its score, the lowest score first: a person checks the audit by eye.
    The val/test image of a pair with a train image is what `prepare` drops
    (data.drop_leaked). Past `limit` pairs only the lowest-scoring are drawn (said so)."""
    if duplicates.empty:
        fig, ax = plt.subplots(figsize=(6, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "No cross-split duplicates: none found", ha="center", va="center", fontsize=12)
        ax.set_title("Cross-split duplicate pairs (leakage)")
        save_figure(fig, path)
        return
    shown = duplicates.sort_values("score", kind="stable").head(limit)
    images, titles = [], []
    for r in shown.itertuples():
        for side in ("a", "b"):
            images.append(_thumb(data_dir / getattr(r, f"path_{side}"), max_pixels))
            split, rel = getattr(r, f"split_{side}"), getattr(r, f"path_{side}")
            # derived splits (and wrapper folders) do not show in the path: name the split
            caption = rel if rel.startswith(split + "/") else f"{split}: {rel}"  # image_grid wraps it
            if side == "b":
                how = "exact copy" if r.method == "exact" else f"{r.method} score {r.score:.2f}"
                caption += f"\n{how}, pHash distance {r.distance}" + (", leak" if r.split_a == "train" else "")
            titles.append(caption)
    shown_note = "all shown" if len(shown) == len(duplicates) else f"the {len(shown)} lowest-scoring shown"
    image_grid(images, titles, path,
               f"Cross-split copies: {len(duplicates)} confirmed, {shown_note}, lowest score first "
               "(left: earlier split; a leak's right image is dropped when data.drop_leaked; "
               "geometry: share of keypoints one transform fits; pixels: correlation)",
               cols=4, cell=2.6)


def _wide(values: np.ndarray) -> bool:
    return bool(len(values)) and values.max() / max(values.min(), 1) > 8


def _log_axis(axis, set_scale) -> None:
    # plain pixel numbers (100, 200, 500...) instead of 2x10^2 labels that overlap
    set_scale("log")
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1, 2, 5)))
    axis.set_major_formatter(ticker.FormatStrFormatter("%d"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _thumb(path: Path, max_pixels: int) -> np.ndarray:
    try:
        return load_for_model(path, _THUMB, "pad", max_pixels)
    except UnusableImage:  # changed since it was inspected: show a grey tile, not a crash
        return np.full((_THUMB, _THUMB, 3), 128, np.uint8)
