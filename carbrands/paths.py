"""Every path the pipeline's stages read and write, relative to the project root.

dvc.yaml names the same paths in its deps, outs and metrics; tests/test_paths.py
holds each stage there to exactly these, so a path changes in one place here and
one in dvc.yaml, and a mismatch fails a test instead of a run. (The two inputs
that are params, `data.dir` and `synth.out_dir`, live in params.yaml.)
"""
from pathlib import Path

AUDIT = Path("data/audit")                    # manifest, duplicates, label_conflicts, lookalikes (csv); summary.json
AUDIT_PLOTS = Path("plots/data")
PREPARED = Path("data/prepared")              # the format: carbrands/data/prepared.py
DATA_METRICS = Path("metrics/data.json")      # headline numbers: images per split, brands, leaks
DATA_DETAILS = Path("details/data.json")      # the whole audit summary and what was prepared
AUGMENT_PLOTS = Path("plots/augment")
AUGMENT_GRID = AUGMENT_PLOTS / "grid.png"
PRETRAINED = Path("models/pretrained")        # <backbone>_notop.weights.h5
PRETRAINED_RECORD = Path("details/pretrained.json")  # route, pretrained or not, weight hash
METRICS = Path("metrics")                     # what `dvc metrics show` lists: a handful of numbers a stage
DETAILS = Path("details")                     # everything else a stage records (plain JSON in git)
TRAIN_PLOTS = Path("plots/train")              # the learning-curve figures
EVALUATE_PLOTS = Path("plots/evaluate")
LIVE = Path("dvclive")                        # DVCLive's per-epoch metrics of each training stage
REPORT = Path("REPORT.md")
REPORT_PLOTS = Path("plots/report")

EXPORTED = Path("models/exported")            # the `export` stage's forms of one model
EXPORTED_SAVED_MODEL = EXPORTED / "saved_model"
EXPORTED_TFLITE = EXPORTED / "model.tflite"


def model(name: str) -> Path:
    return Path("models") / f"{name}.keras"


def train_figure(name: str) -> Path:
    return TRAIN_PLOTS / f"{name}.png"


def train_metrics(name: str) -> Path:
    return METRICS / "train" / f"{name}.json"


def train_details(name: str) -> Path:
    return DETAILS / "train" / f"{name}.json"


def evaluate_plots(name: str) -> Path:
    return EVALUATE_PLOTS / name


def evaluate_metrics(name: str) -> Path:
    return METRICS / "evaluate" / f"{name}.json"


def evaluate_details(name: str) -> Path:
    return DETAILS / "evaluate" / f"{name}.json"


def optimizer_metrics(run: str, seed: int | str) -> Path:
    """One optimizer run with one seed (stage optimizers@<run>-<seed>)."""
    return METRICS / "optimizers" / f"{run}-{seed}.json"


def optimizer_details(run: str, seed: int | str) -> Path:
    return DETAILS / "optimizers" / f"{run}-{seed}.json"


def machine_record(metrics: Path) -> Path:
    """Where a training stage ran, beside its metrics file (an out, not a metric):
    metrics/train/cnn.json -> metrics/train/cnn.machine.json."""
    return metrics.with_name(f"{metrics.stem}.machine.json")


def live_dir(stage: str) -> Path:
    """DVCLive's folder of a training stage (train, transfer, optimizers/<run>): the
    history of its epochs (carbrands/history.py reads it back)."""
    return LIVE / stage


def optimizer_live(run: str, seed: int | str) -> str:
    """The live_dir stage name of an optimizer run with one seed."""
    return f"optimizers/{run}-{seed}"
