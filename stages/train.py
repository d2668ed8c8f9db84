"""Stage `train`: the custom CNN, trained with augmentation, early stopping on
val_loss (best weights restored) and learning-rate reduction on plateaus.

Outputs: models/cnn.keras (raw 0..255 images in, brand probabilities out; carries its
class names, input size and resize mode: carbrands/models/bundle.py),
dvclive/train/ (per-epoch metrics through DVCLive, written as each epoch ends),
plots/train/cnn.png (learning curves), metrics/train/cnn.json (epochs, seconds),
details/train/cnn.json (the whole summary), metrics/train/cnn.machine.json (where it ran).
Killed and run again, it resumes from the last finished epoch (training/resume.py).
"""
from carbrands import params, paths, plots, stage
from carbrands.models import bundle
from carbrands.models.cnn import input_side
from carbrands.training import session
from carbrands.training.cnn import cnn_fit
from carbrands.training.compiling import class_weights
from carbrands.training.fit import fit, headline, history_metrics


def main() -> None:
    p = params.load()
    cfg = p["train"]
    data = session.inputs(p["seed"], cfg, cfg["batch_size"])
    train, classes, image_size = data.train, data.classes, data.image_size
    cnn = cnn_fit(data, cfg, cfg, p["seed"], p["augment"])
    model = cnn.model
    side = input_side(cfg, image_size)
    print(f"train: {len(train)} training / {len(data.val)} validation images of {image_size} px"
          f"{f' seen at {side} px' if side < image_size else ''}, "
          f"{len(classes)} brands, {model.count_params():,} parameters, "
          f"{data.strategy.num_replicas_in_sync} replica(s), batch {data.batch_size}")

    class_weight = class_weights(cfg["class_weight"], train.labels, len(classes))
    s = session.Session.start("train", params.declared("train", p), [paths.PREPARED])
    result = fit(cnn.fitted, cnn.train, cnn.val, len(train), cfg["epochs"], patience=cfg["patience"],
                 reduce_lr_patience=cfg["reduce_lr_patience"], reduce_lr_factor=cfg["reduce_lr_factor"],
                 class_weight=class_weight, live=s.live, backup=s.backup)

    bundle.save_keras(model, s.root / paths.model("cnn"), bundle.make_info(
        classes, image_size, data.meta["resize"]))
    plots.plot_history(result.history, s.root / paths.train_figure("cnn"),
                       f"Custom CNN on {side}x{side} images ({cfg['optimizer']})")
    metrics = {**history_metrics(result.history, model, result.seconds, result.images_per_second),
               "image_size": side, "optimizer": cfg["optimizer"]}
    s.finish(paths.train_metrics("cnn"), headline(metrics), paths.train_details("cnn"), metrics)
    print(f"train: best val accuracy {metrics['best_val_accuracy']:.3f} after {metrics['epochs_run']} epochs, "
          f"{metrics['train_seconds']:.0f} s, {metrics['images_per_second']:.0f} images/s")


if __name__ == "__main__":
    stage.run(main)
