"""Stage `train`: the custom CNN, trained with augmentation, early stopping on
val_loss (best weights restored) and learning-rate reduction on plateaus.

Outputs: models/cnn.keras (raw 0..255 images in, brand probabilities out),
plots/train/cnn.csv (history per epoch), plots/train/cnn.png (learning curves),
metrics/train/cnn.json (training summary).
"""
from pathlib import Path

from carbrands import params, plots, prepared, seeding, stage, training
from carbrands.io import atomic_path, write_csv, write_json
from carbrands.models import build_cnn

PREPARED = Path("data/prepared")
MODEL = Path("models/cnn.keras")
HISTORY = Path("plots/train/cnn.csv")
FIGURE = Path("plots/train/cnn.png")
METRICS = Path("metrics/train/cnn.json")


def main() -> None:
    p = params.load()
    cfg = p["train"]
    seeding.set_global_seed(p["seed"])
    training.set_mixed_precision(cfg["mixed_precision"])
    classes = prepared.load_classes(PREPARED)
    image_size = prepared.load_meta(PREPARED)["image_size"]
    train, val = prepared.load_split(PREPARED, "train"), prepared.load_split(PREPARED, "val")

    strategy = training.strategy_from_params(cfg["strategy"])
    batch_size = training.global_batch_size(cfg["batch_size"], strategy)
    train_ds, val_ds = training.train_val_datasets(train, val, batch_size, p["seed"], p["augment"])
    with strategy.scope():
        model = build_cnn(len(classes), image_size, cfg)
        training.compile_model(model, training.make_optimizer(cfg["optimizer"], cfg["learning_rate"],
                                                              cfg["momentum"]))
    print(f"train: {len(train)} training / {len(val)} validation images of {image_size} px, "
          f"{len(classes)} brands, {model.count_params():,} parameters, "
          f"{strategy.num_replicas_in_sync} replica(s), batch {batch_size}")

    history = training.fit(model, train_ds, val_ds, cfg["epochs"], patience=cfg["patience"],
                           reduce_lr_patience=cfg["reduce_lr_patience"], reduce_lr_factor=cfg["reduce_lr_factor"])

    with atomic_path(MODEL) as tmp:
        model.save(tmp)
    write_csv(HISTORY, history[training.HISTORY_COLUMNS])
    plots.plot_history(history, FIGURE, f"Custom CNN on {image_size}x{image_size} images ({cfg['optimizer']})")
    metrics = {**training.history_metrics(history, model), "image_size": image_size,
               "optimizer": cfg["optimizer"]}
    write_json(METRICS, metrics)
    print(f"train: best val accuracy {metrics['best_val_accuracy']:.3f} after {metrics['epochs_run']} epochs, "
          f"{metrics['train_seconds']:.0f} s, {metrics['images_per_second']:.0f} images/s")


if __name__ == "__main__":
    stage.run(main)
