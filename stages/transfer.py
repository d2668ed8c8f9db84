"""Stage `transfer`: a pretrained backbone with a new dense head, trained in two
phases (the head alone, then the backbone from transfer.fine_tune.unfreeze_from on
with it).

Outputs: models/transfer.keras (raw 0..255 images in, like the CNN, with its class names),
dvclive/transfer/ (per-epoch metrics of both phases through DVCLive),
plots/train/transfer.png, metrics/train/transfer.json (epochs, seconds),
details/train/transfer.json (backbone, weights, per-phase figures),
metrics/train/transfer.machine.json (where it ran). Trains under
`train.strategy` and `train.mixed_precision`, as `train` does; killed and run
again, it resumes in the phase and from the epoch where it stopped.
"""
import time

from carbrands import params, paths, plots, stage
from carbrands.models import bundle, transfer, weights
from carbrands.training import session
from carbrands.training import transfer as transfer_training
from carbrands.training.fit import headline, history_metrics


def main() -> None:
    p = params.load()
    cfg = p["transfer"]
    backbone = cfg["backbone"]
    data = session.inputs(p["seed"], p["train"], cfg["batch_size"])
    classes, image_size, train, val = data.classes, data.image_size, data.train, data.val
    transfer.check_image_size(backbone, image_size)
    source, record = weights.load_pretrained(backbone, paths.PRETRAINED, paths.PRETRAINED_RECORD)

    interpolate = cfg["fine_tune"]["interpolate"]
    if not record["pretrained"] and interpolate != 1:
        # halfway back to random weights would undo half the training
        print(f"transfer: transfer.fine_tune.interpolate {interpolate} not applied (1 used): the backbone "
              "started from random weights, not pretrained ones", flush=True)
        interpolate = 1
    cfg = {**cfg, "batch_size": data.batch_size, "fine_tune": {**cfg["fine_tune"], "interpolate": interpolate}}
    with data.strategy.scope():   # the phases compile under the model's strategy (train_two_phases)
        model = transfer.build_model(backbone, image_size, len(classes), cfg["dense_units"], cfg["dropout"],
                                     weights_from=source)
        parts = transfer.split(model, backbone, cfg["fine_tune"]["unfreeze_from"])
    s = session.Session.start("transfer", params.declared("transfer", p), [paths.PREPARED, paths.PRETRAINED])
    start = time.perf_counter()
    result = transfer_training.train_two_phases(parts, train, val, cfg, p["augment"], p["seed"],
                                                live=s.live, backup=s.backup)
    train_seconds = time.perf_counter() - start
    history, final_val_accuracy = result.history, result.final_val_accuracy

    bundle.save_keras(model, s.root / paths.model("transfer"), bundle.make_info(
        classes, image_size, data.meta["resize"]))
    label = transfer.weights_label(record["pretrained"], record["route"])
    plots.plot_history(history, s.root / paths.train_figure("transfer"),
                       f"{backbone.upper()} transfer learning ({label})")
    metrics = {
        "backbone": backbone,
        "pretrained": bool(record["pretrained"]),
        "weights_route": record["route"],
        "weights": label,
        "image_size": image_size,
        # train_seconds includes computing the cached features; images_per_second counts
        # training steps only (as for the CNN), on cached features where a phase has them
        **history_metrics(history, model, train_seconds, result.images_per_second),
        "epochs_run_per_phase": result.epochs_run,
        "best_val_accuracy_per_phase": {
            phase: float(rows["val_accuracy"].max()) for phase, rows in history.groupby("phase", sort=False)},
        # the saved model's, after transfer.fine_tune.interpolate (the per-phase bests are the epochs')
        "final_val_accuracy": final_val_accuracy,
        "fine_tune_interpolate": result.interpolate,
        # auto: the validation loss of each candidate, the lowest kept
        "fine_tune_interpolate_val_loss": {str(a): loss for a, loss in result.interpolate_val_loss.items()},
        # where train_seconds went: the cached features, then each phase's epochs
        "feature_seconds": round(result.feature_seconds, 2),
        "seconds_per_phase": result.phase_seconds,
        "phases_stopped_by_cap": result.capped,
        "trainable_params_fine_tune": transfer.trainable_params(parts, "fine_tune"),
    }
    s.finish(paths.train_metrics("transfer"), headline(metrics), paths.train_details("transfer"), metrics)
    print(f"transfer ({backbone}, {label}): best val accuracy {metrics['best_val_accuracy']:.3f} "
          f"(per phase {metrics['best_val_accuracy_per_phase']}), saved model {final_val_accuracy:.3f}, "
          f"{train_seconds:.0f} s")


if __name__ == "__main__":
    stage.run(main)
