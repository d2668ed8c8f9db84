"""Stage `transfer`: a pretrained backbone with a new dense head, trained in two
phases (head only, then the last backbone block too).

Outputs: models/transfer.keras (raw 0..255 images in, like the CNN),
plots/train/transfer.csv (history of both phases), plots/train/transfer.png,
metrics/train/transfer.json.
"""
import time
from pathlib import Path

import numpy as np

from carbrands import params, plots, prepared, seeding, stage, training, transfer, weights
from carbrands.errors import WeightsError
from carbrands.io import atomic_path, read_json, write_csv, write_json

PREPARED = Path("data/prepared")
PRETRAINED_DIR = Path("models/pretrained")
PRETRAINED_METRICS = Path("metrics/pretrained.json")
MODEL = Path("models/transfer.keras")
HISTORY = Path("plots/train/transfer.csv")
FIGURE = Path("plots/train/transfer.png")
METRICS = Path("metrics/train/transfer.json")
COLUMNS = [*training.HISTORY_COLUMNS, "phase"]


def pretrained_backbone(backbone: str):
    """The backbone with the `pretrained` stage's weights, and that stage's record."""
    if not PRETRAINED_METRICS.is_file():
        raise WeightsError(f"{PRETRAINED_METRICS} is missing: run the `pretrained` stage first")
    record = read_json(PRETRAINED_METRICS)
    if record.get("backbone") != backbone:
        raise WeightsError(f"{PRETRAINED_METRICS} is for backbone {record.get('backbone')!r}, params say "
                           f"{backbone!r}: run the `pretrained` stage again")
    path = PRETRAINED_DIR / weights.weights_filename(backbone)
    model = weights.load_backbone(backbone, path)
    if weights.values_sha256(model) != record.get("sha256"):
        raise WeightsError(f"{path} does not hold the weights {PRETRAINED_METRICS} records: "
                           f"run the `pretrained` stage again")
    return model, record


def main() -> None:
    p = params.load()
    cfg = p["transfer"]
    backbone = cfg["backbone"]
    seeding.set_global_seed(p["seed"])
    image_size = prepared.load_meta(PREPARED)["image_size"]
    transfer.check_image_size(backbone, image_size)
    classes = prepared.load_classes(PREPARED)
    train, val = prepared.load_split(PREPARED, "train"), prepared.load_split(PREPARED, "val")
    source, record = pretrained_backbone(backbone)

    model = transfer.build_model(backbone, image_size, len(classes), cfg["dense_units"], cfg["dropout"],
                                 weights_from=source)
    parts = transfer.split(model, backbone)
    start = time.perf_counter()
    result = transfer.train_two_phases(parts, train, val, cfg, p["augment"], p["seed"])
    train_seconds = time.perf_counter() - start
    history = result.history
    # the assembled end-to-end model, scored on raw images: what evaluation will load
    _, final_val_accuracy = model.evaluate(
        training.make_dataset(val.images, val.labels, cfg["batch_size"], False, p["seed"]), verbose=0)

    with atomic_path(MODEL) as tmp:
        model.save(tmp)
    write_csv(HISTORY, history[COLUMNS])
    label = transfer.weights_label(record["pretrained"], record["route"])
    plots.plot_history(history, FIGURE, f"{backbone.upper()} transfer learning ({label})")
    metrics = {
        "backbone": backbone,
        "pretrained": bool(record["pretrained"]),
        "weights_route": record["route"],
        "weights": label,
        "image_size": image_size,
        # train_seconds includes computing the cached features; images_per_second counts
        # training steps only (as for the CNN), on cached features where a phase has them
        **training.history_metrics(history, model, train_seconds, result.images_per_second),
        "epochs_run_per_phase": result.epochs_run,
        "best_val_accuracy_per_phase": {
            phase: float(rows["val_accuracy"].max()) for phase, rows in history.groupby("phase", sort=False)},
        "final_val_accuracy": float(final_val_accuracy),
        "feature_seconds": round(result.feature_seconds, 2),
        "trainable_params_fine_tune": int(sum(np.prod(w.shape) for layer in transfer.trained_layers(
            parts, "fine_tune") for w in layer.weights)),
    }
    write_json(METRICS, metrics)
    print(f"transfer ({backbone}, {label}): best val accuracy {metrics['best_val_accuracy']:.3f} "
          f"(per phase {metrics['best_val_accuracy_per_phase']}), saved model {final_val_accuracy:.3f}, "
          f"{train_seconds:.0f} s")


if __name__ == "__main__":
    stage.run(main)
