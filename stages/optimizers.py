"""Stage `optimizers@<run>`: the default CNN re-trained with one optimizer from
params `optimizers.runs`, for a fixed budget of `optimizers.epochs` (no early
stopping, so every run gets the same number of updates), then scored on the
test split. Adding a run to params.yaml adds a stage; no code changes.

Outputs: plots/optimizers/<run>.csv (history), metrics/optimizers/<run>.json.
"""
import sys

from carbrands import params, paths, seeding, stage
from carbrands.data import prepared
from carbrands.data.pipeline import train_val_datasets
from carbrands.errors import ParamError
from carbrands.evaluation.scores import evaluate_split
from carbrands.files import write_csv, write_json
from carbrands.models.cnn import build_cnn
from carbrands.training.fit import HISTORY_COLUMNS, fit
from carbrands.training.optimizers import compile_model, make_optimizer


def main() -> None:
    p = params.load()
    runs = p["optimizers"]["runs"]
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in runs:
        raise ParamError("optimizers.runs", f"no run named {name!r} (runs: {', '.join(runs)})")
    run, epochs, seed = runs[name], p["optimizers"]["epochs"], p["seed"]
    seeding.set_global_seed(seed)
    classes = prepared.load_classes(paths.PREPARED)
    image_size = prepared.load_meta(paths.PREPARED)["image_size"]
    train, val, test = (prepared.load_split(paths.PREPARED, s) for s in ("train", "val", "test"))

    train_ds, val_ds = train_val_datasets(train, val, p["train"]["batch_size"], seed, p["augment"])
    model = build_cnn(len(classes), image_size, p["train"])
    compile_model(model, make_optimizer(run["optimizer"], run["learning_rate"], run.get("momentum", 0.0)))
    print(f"optimizers@{name}: {run['optimizer']} lr {run['learning_rate']} for {epochs} epochs")

    result = fit(model, train_ds, val_ds, len(train), epochs)
    scores, *_ = evaluate_split(model, test.images, test.labels, classes, p["evaluate"]["bootstrap"], seed)
    metrics = {
        "run": name, **run, "epochs": epochs,
        "test_accuracy": scores["accuracy"],
        "test_accuracy_ci95_low": scores["accuracy_ci95_low"],
        "test_accuracy_ci95_high": scores["accuracy_ci95_high"],
        "test_loss": scores["test_loss"],
        "best_val_accuracy": float(result.history["val_accuracy"].max()),
        "train_seconds": round(result.seconds, 2),
    }
    write_csv(paths.optimizer_history(name), result.history[HISTORY_COLUMNS])
    write_json(paths.optimizer_metrics(name), metrics)
    print(f"optimizers@{name}: test accuracy {scores['accuracy']:.3f} "
          f"[{scores['accuracy_ci95_low']:.3f}, {scores['accuracy_ci95_high']:.3f}]")


if __name__ == "__main__":
    stage.run(main)
