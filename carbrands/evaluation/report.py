"""REPORT.md: one page that puts a run's numbers and figures side by side.

Every number comes from the metrics and details files the stages wrote; every figure is
linked by a path relative to the report and must exist."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from carbrands import paths
from carbrands.data.planted import planted_summary
from carbrands.errors import DataError
from carbrands.evaluation import comparison
from carbrands.files import read_json


def percent(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _ci(m: dict, prefix: str) -> str:
    lo, hi = m.get(f"{prefix}_ci95_low"), m.get(f"{prefix}_ci95_high")
    return "" if lo is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"


def _table(header: list[str], rows: list[list]) -> str:
    # the cells are formatted already: tabulate must not re-parse "0.500" or "1,234" as numbers
    return pd.DataFrame(rows, columns=header).to_markdown(index=False, disable_numparse=True)


class Report:
    """Collects markdown sections; figures are checked to exist when linked."""

    def __init__(self, root: Path):
        self.root = root
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text.strip() + "\n")

    def figure(self, path: Path, caption: str) -> None:
        path = Path(path).as_posix()
        if not (self.root / path).is_file():
            raise DataError(f"report: figure {path} is missing; rerun the stage that draws it")
        self.parts.append(f"![{caption}]({path})\n\n*{caption}*\n")

    def text(self) -> str:
        return "\n".join(self.parts)


def _spread(row) -> str:
    if row["seeds"] < 2:
        return "one seed"
    return f"{100 * row['std']:.1f} ({percent(row['min'])} - {percent(row['max'])})"


def machine_records(root: Path, runs: pd.DataFrame) -> dict[str, dict]:
    """Training stage -> the record of where it ran (carbrands.training.devices.machine_record)."""
    stages = {"train": paths.train_metrics("cnn"), "transfer": paths.train_metrics("transfer")}
    stages |= {f"optimizers@{row.run}-{row.seed}": paths.optimizer_metrics(row.run, row.seed)
               for row in runs.itertuples(index=False)}
    return {name: read_json(root / paths.machine_record(m)) for name, m in stages.items()}


def machine_table(records: dict[str, dict]) -> str:
    """One row per distinct machine record, naming the stages that ran there."""
    groups: dict[str, tuple[list[str], dict]] = {}
    for stage, rec in records.items():
        groups.setdefault(repr(sorted(rec.items())), ([], rec))[0].append(stage)
    return _table(["stages", "CPU (cores)", "instruction sets", "GPU", "TensorFlow / Keras", "oneDNN",
                   "op determinism", "platform"],
                  [[", ".join(stages), f"{rec['cpu']} ({rec['cpu_cores']})", " ".join(rec["cpu_flags"]) or "-",
                    ", ".join(rec["gpus"]) or "none", f"{rec['tensorflow']} / {rec['keras']}",
                    "on" if rec["onednn"] else "off", "on" if rec["op_determinism"] else "off", rec["platform"]]
                   for stages, rec in groups.values()])


def optimizer_section(r: Report, runs: pd.DataFrame) -> None:
    """The optimizer comparison: ranked on validation over seeds, test for the chosen run only."""
    summary = comparison.rank(runs)
    chosen = summary["run"].iloc[0]
    settings = runs.drop_duplicates("run").set_index("run")
    r.add("## Optimizer comparison\n\nThe CNN re-trained with each optimizer run for the same fixed "
          f"number of epochs ({runs['epochs'].iloc[0]}), no early stopping, once per seed "
          f"({', '.join(map(str, sorted(runs['seed'].unique())))}). Each run is judged on the validation split: "
          "its best validation accuracy over the epochs and the validation loss at that epoch. "
          "Ranked on the mean over seeds; the test split plays no part in the choice.")
    r.add(_table(["rank", "run", "optimizer", "learning rate", "seeds", "best val accuracy, mean",
                  "std, points (min - max)", "val loss at best, mean"],
                 [[i + 1, row.run, settings.loc[row.run, "optimizer"], settings.loc[row.run, "learning_rate"],
                   row.seeds, percent(row.mean), _spread(row._asdict()), f"{row.val_loss:.3f}"]
                  for i, row in enumerate(summary.itertuples(index=False))]))
    r.add(f"Best on validation: **{chosen}**. " + comparison.lead_statement(summary))
    test = comparison.chosen_test_rows(runs, chosen)
    r.add(f"Test accuracy of the chosen run `{chosen}` (final weights; shown for information, "
          "**not used for ranking**):")
    r.add(_table(["seed", "test accuracy [95 % CI]", "test loss"],
                 [[row.seed, percent(row.test_accuracy) + _ci(row._asdict(), "test_accuracy"),
                   f"{row.test_loss:.3f}"] for row in test.itertuples(index=False)]))
    r.figure(paths.REPORT_PLOTS / "optimizers_accuracy.png",
             "Best validation accuracy per optimizer run: mean over seeds, min-max bars, one dot per seed")
    r.figure(paths.REPORT_PLOTS / "optimizers_curves.png", "Validation curves per optimizer run and seed")


def _model_row(root: Path, name: str, label: str) -> list:
    ev = read_json(root / paths.evaluate_metrics(name))
    tr = read_json(root / paths.train_details(name))
    return [label, percent(ev["accuracy"]) + _ci(ev, "accuracy"), percent(ev["top3_accuracy"]),
            f"{ev['macro_f1']:.3f}", f"{ev['test_loss']:.3f}", tr["epochs_run"],
            f"{tr['train_seconds']:.0f}", f"{tr['params']:,}"]


def build(root: Path, runs: pd.DataFrame, transfer_label: str, pretrained: bool) -> str:
    """The text of REPORT.md for the outputs under `root` (runs: comparison.optimizer_runs;
    the comparison figures it links are drawn by report_figures.draw_comparisons)."""
    data = read_json(root / paths.DATA_DETAILS)
    audit, prep = data["audit"], data["prepared"]
    weights = read_json(root / paths.PRETRAINED_RECORD)

    r = Report(root)
    r.add("# Run report\n\nGenerated by the `report` stage from this run's `metrics/`, `details/` and `plots/`; "
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
            f"dropped from val/test: {sum(dropped.values())}.")
    if audit.get("planted"):
        leak += f" The synthesizer's {planted_summary(audit['planted'])}."
    checked = dup["near_checked_by"]
    r.add(leak + f" Near candidates (close perceptual hashes) are confirmed as copies by geometry, the share of "
          f"keypoints one transform fits ({checked.get('geometry', 0)} candidates), or by pixels where an image has "
          f"too few keypoints ({checked.get('pixels', 0)}); {dup['lookalikes_not_copies']} turned down as "
          "look-alikes (`data/audit/lookalikes.csv`).")
    conflicts = dup["label_conflict_pairs"]
    r.add(f"Label conflicts: {dup['label_conflicts']} copies across splits carry two different brands, "
          "so one of the labels is wrong. They are not counted as leaks and not dropped: decide which label is "
          "right (`data/audit/label_conflicts.csv`)." + ("" if conflicts else " None found.")
          + (f" The first {len(conflicts)} are listed." if dup["label_conflicts"] > len(conflicts) else ""))
    if conflicts:
        r.add(_table(["image", "brand", "copy", "brand", "score"],
                     [[f"`{c['path_a']}`", c["class_a"], f"`{c['path_b']}`", c["class_b"],
                       f"{c['method']} {c['score']:.2f}"] for c in conflicts]))
    r.add(f"Input size: recommended {audit['recommended_size']} px from the image-size distribution; "
          f"used {prep['image_size']} px (`data.image_size`, resize mode `{prep['resize']}`).")
    r.figure(paths.AUDIT_PLOTS / "class_distribution.png", "Images per brand and split")
    r.figure(paths.AUDIT_PLOTS / "samples.png", "One sample per brand")
    r.figure(paths.AUDIT_PLOTS / "image_sizes.png", "Image sizes")
    r.figure(paths.AUDIT_PLOTS / "leakage_pairs.png",
             "Every copy found across splits, side by side with its score (a leak's val/test image is dropped)")
    r.figure(paths.AUGMENT_GRID, "Training augmentation: original and augmented")

    r.add("## CNN and transfer model (test split)")
    if not pretrained:
        r.add("**Transfer model not pretrained**: `transfer.weights` is `none`, so its backbone "
              "started from random weights.")
    r.add(_table(["model", "test accuracy [95 % CI]", "top-3", "macro F1", "test loss", "epochs",
                  "training s", "parameters"],
                 [_model_row(root, "cnn", "CNN"), _model_row(root, "transfer", transfer_label)]))
    r.add(f"Transfer weights: route `{weights['route']}`, weight hash `{weights['sha256'][:16]}`.")
    r.figure(paths.REPORT_PLOTS / "cnn_vs_transfer.png", "Validation curves, CNN vs transfer")
    r.figure(paths.train_figure("cnn"), "CNN learning curves")
    r.figure(paths.train_figure("transfer"), "Transfer learning curves")
    for name, label in (("cnn", "CNN"), ("transfer", transfer_label)):
        r.figure(paths.evaluate_plots(name) / "confusion.png", f"{label}: confusion matrix")
        r.figure(paths.evaluate_plots(name) / "correct.png", f"{label}: correct predictions")
        r.figure(paths.evaluate_plots(name) / "wrong.png", f"{label}: wrong predictions")
        r.figure(paths.evaluate_plots(name) / "gradcam.png", f"{label}: Grad-CAM")

    optimizer_section(r, runs)

    r.add("## Where the training ran\n\nThe same seed on the same machine and software gives a byte-identical "
          "training history when op determinism is on; on another CPU (other instruction sets, other oneDNN "
          "kernels) the numbers differ, by about as much as a change of seed (the spread measured above).")
    r.add(machine_table(machine_records(root, runs)))
    return r.text()
