"""Real photos: the pipeline at the real-photo settings on any folder in the Kaggle
layout, in a temporary copy of the project, against a linear probe as the floor.

Prints per stage its wall time, images/s and peak memory (each stage its own
process, as `dvc repro` runs it), per model the test accuracy with its 95 %
bootstrap interval and macro F1, and beside them a logistic regression on the
frozen backbone's pooled features at the same input size (C chosen on val).

    .venv/bin/python bench/real_photos.py DATA_DIR [--image-size auto] [--all] [--no-probe] [--tiny]

By default it runs the transfer model's path (audit, prepare, pretrained,
transfer, evaluate@transfer). --all runs the whole `dvc repro`, every stage in
dvc.yaml's order through `dvc repro --single-item` (DVC's own hashing and
caching included), then scores the CNN too and ranks the optimizer runs on
validation. --no-probe skips the probe (for timing a large set: it computes the
features of every split once more). --tiny: 32 px, random backbone weights, one
epoch per phase (the tests).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402
from carbrands import params, paths  # noqa: E402
from carbrands.data import prepared  # noqa: E402
from devtools.projects import merge  # noqa: E402

TINY = {"transfer": {"weights": "none", "dense_units": 16, "head": {"epochs": 2}, "fine_tune": {"epochs": 1}},
        "train": {"epochs": 1}, "optimizers": {"epochs": 1, "seeds": [42]},
        "evaluate": {"bootstrap": 50, "grid_images": 4, "gradcam_images": 1}}
TRANSFER_PATH = ["audit", "prepare", "pretrained", "transfer", "evaluate@transfer"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--image-size", default="auto", help="data.image_size: auto (the audit's choice) or pixels")
    ap.add_argument("--all", action="store_true", help="the whole dvc repro, every stage")
    ap.add_argument("--no-probe", action="store_true", help="skip the linear probe")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        project = common.committed_copy(Path(tmp) / "project", overrides(args))
        steps = run_stages(project, args.all)
        size = prepared.load_meta(project / paths.PREPARED)["image_size"]
        models = {name: scores(project / paths.evaluate_metrics(name))
                  for name in (["transfer", "cnn"] if args.all else ["transfer"])}
        ranking = optimizer_ranking(project) if args.all else []
        up_to_date = "up to date" in common.run([sys.executable, "-m", "dvc", "status"], project) if args.all else None
        if not args.no_probe:
            models["probe (frozen features)"] = probe(project)
    total = round(sum(s.seconds for s in steps), 1)
    common.print_table(f"Stages on {args.data_dir} at {size} px ({total:.0f} s in all)", [s.row() for s in steps],
                       ["name", "seconds", "images_per_second", "tree_pss_mb", "tree_anon_mb"])
    common.print_table("Models (test split)", [{"model": k, **v} for k, v in models.items()])
    if ranking:
        common.print_table("Optimizer runs (ranked on validation, mean over seeds)", ranking)
    common.save_json("real_photos", {"data_dir": str(args.data_dir), "image_size": size, "seconds": total,
                                     "stages": [s.row() for s in steps], "models": models,
                                     "optimizers": ranking, "dvc_status_up_to_date": up_to_date}, args.tiny)


def overrides(args: argparse.Namespace) -> dict:
    """The params a benchmark on a real-photo folder changes: data.dir and
    data.image_size (--image-size: auto or pixels), and with --tiny the tiny settings."""
    size = 32 if args.tiny else (args.image_size if args.image_size == "auto" else int(args.image_size))
    return merge({"data": {"dir": str(args.data_dir.resolve()), "image_size": size}}, TINY if args.tiny else {})


def run_stages(project: Path, everything: bool) -> list[common.Step]:
    """Each stage a measured process: the transfer path as `python -m stages.<name>`, or
    (everything) every stage as `dvc repro --single-item`, in dvc.yaml's order."""
    if everything:
        listed = common.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], project).split()
        commands = {name: [sys.executable, "-m", "dvc", "repro", "--single-item", name] for name in listed}
    else:
        commands = {name: [sys.executable, "-m", "stages.evaluate", name.split("@")[1]] if "@" in name
                    else [sys.executable, "-m", f"stages.{name}"] for name in TRANSFER_PATH}
    steps = []
    for name, command in commands.items():
        counts = _counts(project)
        images = (sum(counts.values()) if name in ("audit", "prepare") else
                  counts.get("test", 0) if name.startswith("evaluate") else
                  counts.get("train", 0) if name in ("train", "transfer") or name.startswith("optimizers") else 0)
        steps.append(common.run_measured(name, command, project, images))
    return steps


def _counts(project: Path) -> dict:
    """The prepared split sizes, once `prepare` has run ({} before)."""
    prepared_dir = project / paths.PREPARED
    return prepared.load_meta(prepared_dir)["counts"] if (prepared_dir / "meta.json").is_file() else {}


def optimizer_ranking(project: Path) -> list[dict]:
    """The optimizer runs ranked as the report ranks them (on validation, over seeds),
    with each run's mean training seconds."""
    from carbrands.evaluation import comparison

    p = params.load(project / "params.yaml")["optimizers"]
    runs = comparison.optimizer_runs(project, list(p["runs"]), p["seeds"])
    seconds = runs.groupby("run")["train_seconds"].mean()
    return [{**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
             "train_seconds": round(float(seconds[row["run"]]))}
            for row in comparison.rank(runs).to_dict("records")]


def scores(path: Path) -> dict:
    m = json.loads(path.read_text())
    return {"accuracy": round(m["accuracy"], 4), "ci95": [round(m["accuracy_ci95_low"], 4),
                                                          round(m["accuracy_ci95_high"], 4)],
            "macro_f1": round(m["macro_f1"], 4)}


def probe(project: Path) -> dict:
    """Logistic regression on the pooled features of the frozen backbone (the pretrained
    stage's weights), standardised; C chosen on val, scored once on test."""
    import os

    os.chdir(project)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    from carbrands import startup

    startup.import_tensorflow()
    from carbrands.evaluation.scores import bootstrap_accuracy_ci
    from carbrands.models import transfer, weights
    from carbrands.training import transfer as transfer_training

    p = params.load()
    backbone = p["transfer"]["backbone"]
    size = prepared.load_meta(paths.PREPARED)["image_size"]
    source, _ = weights.load_pretrained(backbone, paths.PRETRAINED, paths.PRETRAINED_RECORD)
    model = transfer.build_model(backbone, size, len(prepared.load_classes(paths.PREPARED)), 8, 0.0,
                                 weights_from=source)
    pooled = transfer.split(model, backbone).pooled
    feats, labels = {}, {}
    for split in ("train", "val", "test"):
        s = prepared.load_split(paths.PREPARED, split)
        feats[split] = transfer_training.frozen_features(pooled, s.images, p["transfer"]["backbone_batch_size"],
                                                f"probe {split}").astype(np.float32)
        labels[split] = s.labels
    scaler = StandardScaler().fit(feats["train"])
    fitted = {c: LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(feats["train"]), labels["train"])
              for c in (0.01, 0.1, 1.0)}
    best = max(fitted, key=lambda c: fitted[c].score(scaler.transform(feats["val"]), labels["val"]))
    predicted = fitted[best].predict(scaler.transform(feats["test"]))
    low, high = bootstrap_accuracy_ci(labels["test"], predicted, 1000, 0)
    return {"accuracy": round(float(np.mean(predicted == labels["test"])), 4),
            "ci95": [round(low, 4), round(high, 4)],
            "macro_f1": round(float(f1_score(labels["test"], predicted, average="macro")), 4), "C": best}


if __name__ == "__main__":
    main()
