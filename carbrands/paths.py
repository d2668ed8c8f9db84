"""Every path the pipeline's stages read and write, relative to the project root.

dvc.yaml names the same paths in its deps, outs and metrics; tests/test_paths.py
holds each stage there to exactly these, so a path changes in one place here and
one in dvc.yaml, and a mismatch fails a test instead of a run. (The two inputs
that are params, `data.dir` and `synth.out_dir`, live in params.yaml.)
"""
from pathlib import Path

AUDIT = Path("data/audit")                    # manifest.csv, duplicates.csv, summary.json
AUDIT_PLOTS = Path("plots/data")
PREPARED = Path("data/prepared")              # the format: carbrands/data/prepared.py
DATA_METRICS = Path("metrics/data.json")      # the audit summary and what was prepared
AUGMENT_PLOTS = Path("plots/augment")
AUGMENT_GRID = AUGMENT_PLOTS / "grid.png"
PRETRAINED = Path("models/pretrained")        # <backbone>_notop.weights.h5
PRETRAINED_METRICS = Path("metrics/pretrained.json")
METRICS = Path("metrics")
TRAIN_PLOTS = Path("plots/train")              # the learning-curve figures
EVALUATE_PLOTS = Path("plots/evaluate")
LIVE = Path("dvclive")                        # DVCLive's per-epoch metrics of each training stage
REPORT = Path("REPORT.md")
REPORT_PLOTS = Path("plots/report")

MODELS = ("cnn", "transfer")                  # the trained models (dvc.yaml's evaluate matrix)


def model(name: str) -> Path:
    return Path("models") / f"{name}.keras"


def train_figure(name: str) -> Path:
    return TRAIN_PLOTS / f"{name}.png"


def train_metrics(name: str) -> Path:
    return METRICS / "train" / f"{name}.json"


def evaluate_plots(name: str) -> Path:
    return EVALUATE_PLOTS / name


def evaluate_metrics(name: str) -> Path:
    return METRICS / "evaluate" / f"{name}.json"


def optimizer_metrics(run: str) -> Path:
    return METRICS / "optimizers" / f"{run}.json"


def live_dir(stage: str) -> Path:
    """DVCLive's folder of a training stage (train, transfer, optimizers/<run>): the
    history of its epochs (training/live.py reads it back)."""
    return LIVE / stage


def live_metrics(stage: str) -> Path:
    return live_dir(stage) / "metrics.json"


def live_plots(stage: str) -> Path:
    return live_dir(stage) / "plots"


def optimizer_live(run: str) -> str:
    """The live_dir stage name of an optimizer run."""
    return f"optimizers/{run}"
