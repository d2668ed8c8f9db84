"""REPORT.md: one page that puts a run's numbers and figures side by side.

Every number comes from the metrics files the stages wrote; every figure is
linked by a path relative to the report and must exist."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from carbrands.errors import DataError
from carbrands.io import read_json, write_csv
from carbrands.plots import plt, save_figure, transfer_title


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _ci(m: dict, prefix: str) -> str:
    lo, hi = m.get(f"{prefix}_ci95_low"), m.get(f"{prefix}_ci95_high")
    return "" if lo is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """Collects markdown sections; figures are checked to exist when linked."""

    def __init__(self, root: Path):
        self.root = root
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text.strip() + "\n")

    def figure(self, path: str, caption: str) -> None:
        if not (self.root / path).is_file():
            raise DataError(f"report: figure {path} is missing; rerun the stage that draws it")
        self.parts.append(f"![{caption}]({path})\n\n*{caption}*\n")

    def text(self) -> str:
        return "\n".join(self.parts)


def optimizer_runs(root: Path, names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        m = read_json(root / "metrics" / "optimizers" / f"{name}.json")
        rows.append({"run": name, **m})
    return pd.DataFrame(rows)


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
    out = root / "plots" / "report"
    # CNN vs transfer: validation curves against epochs, as the notebook drew them
    validation_curves({"CNN": pd.read_csv(root / "plots/train/cnn.csv"),
                       transfer_label: pd.read_csv(root / "plots/train/transfer.csv")},
                      out / "cnn_vs_transfer.png")

    fig, ax = plt.subplots(figsize=(1.6 * len(runs) + 2, 4))
    acc = runs["test_accuracy"]
    err = [acc - runs["test_accuracy_ci95_low"], runs["test_accuracy_ci95_high"] - acc]
    ax.bar(runs["run"], acc, yerr=err, capsize=6, color="#4c72b0")
    for i, a in enumerate(acc):
        ax.text(i, a / 2, _pct(a), ha="center", color="white")
    ax.set_ylim(0, 1)
    ax.set_ylabel("Test accuracy (95 % bootstrap interval)")
    ax.set_xlabel("Optimizer run")
    ax.set_title("Optimizer comparison: test accuracy")
    save_figure(fig, out / "optimizers_accuracy.png")

    histories = pd.concat([pd.read_csv(root / "plots" / "optimizers" / f"{name}.csv").assign(run=name)
                           for name in runs["run"]])
    # long form, one row per run and epoch: `dvc plots` draws one line per run
    write_csv(out / "optimizers_history.csv", histories[["run", "epoch", "val_accuracy", "val_loss", "accuracy", "loss"]])
    validation_curves({name: h for name, h in histories.groupby("run", sort=False)},
                      out / "optimizers_curves.png", title_suffix=" per optimizer")


def _model_row(root: Path, name: str, label: str) -> list:
    ev = read_json(root / "metrics" / "evaluate" / f"{name}.json")
    tr = read_json(root / "metrics" / "train" / f"{name}.json")
    return [label, _pct(ev["accuracy"]) + _ci(ev, "accuracy"), _pct(ev["top3_accuracy"]),
            f"{ev['macro_f1']:.3f}", f"{ev['test_loss']:.3f}", tr["epochs_run"],
            f"{tr['train_seconds']:.0f}", f"{tr['params']:,}"]


def build(root: Path, run_names: list[str]) -> str:
    """The text of REPORT.md for the outputs under `root`."""
    data = read_json(root / "metrics" / "data.json")
    audit, prep = data["audit"], data["prepared"]
    pretrained = read_json(root / "metrics" / "pretrained.json")
    transfer_label = transfer_title(pretrained["backbone"], pretrained["pretrained"])
    runs = optimizer_runs(root, run_names)
    draw_comparisons(root, runs, transfer_label)

    r = Report(root)
    r.add("# Run report\n\nGenerated by the `report` stage from this run's `metrics/` and `plots/`; "
          "do not edit by hand.")

    splits = list(audit["splits"])
    r.add("## Dataset and audit\n\n"
          f"Dataset `{audit['data_dir']}`: {audit['files']} files, {audit['classes']} brands.")
    r.add(_table(["split", "images found", "origin", "used after leak removal"],
                 [[s, audit["splits"][s]["images"], audit["splits"][s]["origin"], prep["counts"].get(s, 0)]
                  for s in splits]))
    verdicts = audit["verdicts"]
    unusable = audit.get("unusable_by_reason") or {}
    skipped = audit.get("skipped_by_reason") or {}
    r.add(f"Verdicts: {verdicts.get('ok', 0)} usable, {verdicts.get('unusable', 0)} unusable, "
          f"{verdicts.get('skipped', 0)} skipped (see `data/audit/manifest.csv`).")
    if unusable or skipped:
        r.add(_table(["verdict", "reason", "files"],
                     [["unusable", k, v] for k, v in unusable.items()] +
                     [["skipped", k, v] for k, v in skipped.items()]))
    dup = audit["duplicates"]
    dropped = prep["dropped_leaked"]
    leak = (f"Leakage: {dup['cross_split_pairs']} duplicate pairs across splits "
            f"({dup['cross_split_exact']} exact, {dup['cross_split_near']} near); "
            f"dropped from val/test: {sum(dropped.values()) if isinstance(dropped, dict) else dropped}.")
    planted = audit.get("planted")
    if planted:
        leak += (f" Against the synthesizer's planted copies: recall {planted['recall']:.2f}, "
                 f"precision {planted['precision']:.2f} ({planted['found']}/{planted['planted_pairs']} found).")
    r.add(leak)
    r.add(f"Input size: recommended {audit['recommended_size']} px from the image-size distribution; "
          f"used {prep['image_size']} px (`data.image_size`, resize mode `{prep['resize']}`).")
    r.figure("plots/data/class_distribution.png", "Images per brand and split")
    r.figure("plots/data/samples.png", "One sample per brand")
    r.figure("plots/data/image_sizes.png", "Image sizes")
    r.figure("plots/data/leakage_pairs.png", "Duplicate pairs found across splits")
    r.figure("plots/augment/grid.png", "Training augmentation: original and augmented")

    r.add("## CNN and transfer model (test split)")
    if not pretrained["pretrained"]:
        r.add("**Transfer model not pretrained**: `transfer.weights` is `none`, so its backbone "
              "started from random weights.")
    r.add(_table(["model", "test accuracy [95 % CI]", "top-3", "macro F1", "test loss", "epochs",
                  "training s", "parameters"],
                 [_model_row(root, "cnn", "CNN"), _model_row(root, "transfer", transfer_label)]))
    r.add(f"Transfer weights: route `{pretrained['route']}`, weight hash `{pretrained['sha256'][:16]}`.")
    r.figure("plots/report/cnn_vs_transfer.png", "Validation curves, CNN vs transfer")
    r.figure("plots/train/cnn.png", "CNN learning curves")
    r.figure("plots/train/transfer.png", "Transfer learning curves")
    for name, label in (("cnn", "CNN"), ("transfer", transfer_label)):
        r.figure(f"plots/evaluate/{name}/confusion.png", f"{label}: confusion matrix")
        r.figure(f"plots/evaluate/{name}/correct.png", f"{label}: correct predictions")
        r.figure(f"plots/evaluate/{name}/wrong.png", f"{label}: wrong predictions")
        r.figure(f"plots/evaluate/{name}/gradcam.png", f"{label}: Grad-CAM")

    r.add("## Optimizer comparison\n\nThe CNN re-trained with each optimizer for the same fixed "
          "number of epochs, no early stopping.")
    r.add(_table(["run", "optimizer", "learning rate", "epochs", "test accuracy [95 % CI]", "test loss",
                  "best val accuracy", "training s"],
                 [[row.run, row.optimizer, row.learning_rate, row.epochs,
                   _pct(row.test_accuracy) + _ci(row._asdict(), "test_accuracy"), f"{row.test_loss:.3f}",
                   _pct(row.best_val_accuracy), f"{row.train_seconds:.0f}"]
                  for row in runs.itertuples(index=False)]))
    r.figure("plots/report/optimizers_accuracy.png", "Test accuracy per optimizer")
    r.figure("plots/report/optimizers_curves.png", "Validation curves per optimizer")
    return r.text()
