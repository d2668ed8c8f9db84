"""Stage `optimizers@<run>`: the default CNN re-trained with one optimizer from
params `optimizers.runs`, for a fixed budget of `optimizers.epochs` (no early
stopping, so every run gets the same number of updates), then scored on the
test split. Adding a run to params.yaml adds a stage; no code changes.

Outputs: plots/optimizers/<run>.csv (history), metrics/optimizers/<run>.json.
"""
import sys
from pathlib import Path

from carbrands import params, prepared, seeding, stage, training
from carbrands.errors import ParamError
from carbrands.evaluation import evaluate_split
from carbrands.io import write_csv, write_json
from carbrands.models import build_cnn

PREPARED = Path("data/prepared")


def main() -> None:
    p = params.load()
    runs = p["optimizers"]["runs"]
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in runs:
        raise ParamError("optimizers.runs", f"no run named {name!r} (runs: {', '.join(runs)})")
    run, epochs, seed = runs[name], p["optimizers"]["epochs"], p["seed"]
    seeding.set_global_seed(seed)
    classes = prepared.load_classes(PREPARED)
    image_size = prepared.load_meta(PREPARED)["image_size"]
    train, val, test = (prepared.load_split(PREPARED, s) for s in ("train", "val", "test"))

    batch_size = p["train"]["batch_size"]
    train_ds, val_ds = training.train_val_datasets(train, val, batch_size, seed, p["augment"])
    model = build_cnn(len(classes), image_size, p["train"])
    optimizer = training.make_optimizer(run["optimizer"], run["learning_rate"], run.get("momentum", 0.0))
    training.compile_model(model, optimizer)
    print(f"optimizers@{name}: {run['optimizer']} lr {run['learning_rate']} for {epochs} epochs")

    history = training.fit(model, train_ds, val_ds, epochs)
    scores, *_ = evaluate_split(model, test.images, test.labels, classes, p["evaluate"]["bootstrap"], seed)
    summary = training.history_metrics(history, model)
    metrics = {
        "run": name, **run, "epochs": epochs,
        "test_accuracy": scores["accuracy"],
        "test_accuracy_ci95_low": scores["accuracy_ci95_low"],
        "test_accuracy_ci95_high": scores["accuracy_ci95_high"],
        "test_loss": scores["test_loss"],
        "best_val_accuracy": summary["best_val_accuracy"],
        "train_seconds": summary["train_seconds"],
    }
    write_csv(Path("plots/optimizers") / f"{name}.csv", history[training.HISTORY_COLUMNS])
    write_json(Path("metrics/optimizers") / f"{name}.json", metrics)
    print(f"optimizers@{name}: test accuracy {scores['accuracy']:.3f} "
          f"[{scores['accuracy_ci95_low']:.3f}, {scores['accuracy_ci95_high']:.3f}]")


if __name__ == "__main__":
    stage.run(main)
