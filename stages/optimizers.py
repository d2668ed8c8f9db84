"""Stage `optimizers@<run>-<seed>`: the default CNN re-trained with one optimizer run
from params `optimizers.runs` and one seed from `optimizers.seeds`, for a fixed
budget of `optimizers.epochs` (no early stopping, so every run gets the same number
of updates). It is judged on validation: the best val accuracy over its epochs and
the val loss at that epoch; the report ranks the runs on those. Test accuracy is
recorded too, for the chosen run only to be shown, never to rank on.

Adding a run or a seed to params.yaml adds stages; no code changes, and the other
stages stay up to date (each lists only its own run's params; its seed is in its
command).

    python -m stages.optimizers RUN SEED

Outputs: dvclive/optimizers/<run>-<seed>/ (per-epoch metrics through DVCLive),
metrics/optimizers/<run>-<seed>.json (what the runs are ranked on),
details/optimizers/<run>-<seed>.json (the whole record), metrics/optimizers/<run>-<seed>.machine.json
(where it ran). Trains under `train.strategy` and `train.mixed_precision`, as `train`
does; killed and run again, it resumes from the last finished epoch.
"""
import sys

from carbrands import params, paths, stage
from carbrands.data import prepared
from carbrands.errors import ParamError
from carbrands.evaluation.scores import evaluate_split
from carbrands.training import session
from carbrands.training.cnn import cnn_fit
from carbrands.training.compiling import class_weights
from carbrands.training.fit import best_epoch, fit

# what `dvc metrics show` lists of a run: what the runs are ranked on (the whole record,
# test figures, params and time included, goes to the details file)
RANKED_ON = ("best_val_accuracy", "val_loss_at_best")


def _run_and_seed(p: dict) -> tuple[str, int]:
    runs, seeds = p["optimizers"]["runs"], p["optimizers"]["seeds"]
    args = sys.argv[1:]
    name = args[0] if args else ""
    if name not in runs:
        raise ParamError("optimizers.runs", f"no run named {name!r} (runs: {', '.join(runs)})")
    seed = args[1] if len(args) > 1 else ""
    if not seed.isdigit() or int(seed) not in seeds:
        raise ParamError("optimizers.seeds", f"no seed {seed!r} (seeds: {', '.join(map(str, seeds))})")
    return name, int(seed)


def main() -> None:
    p = params.load()
    name, seed = _run_and_seed(p)
    run, epochs = p["optimizers"]["runs"][name], p["optimizers"]["epochs"]
    data = session.inputs(seed, p["train"], p["train"]["batch_size"])
    train, classes = data.train, data.classes
    test = prepared.load_split(paths.PREPARED, "test")
    cnn = cnn_fit(data, p["train"], run, seed, p["augment"])
    print(f"optimizers@{name}-{seed}: {run['optimizer']} lr {run['learning_rate']} for {epochs} epochs, seed {seed}")

    class_weight = class_weights(p["train"]["class_weight"], train.labels, len(classes))
    # (the seed is in the stage's name: optimizers@<run>-<seed>)
    reads = params.declared("optimizers", p, {"run": name})
    s = session.Session.start(paths.optimizer_live(name, seed), reads, [paths.PREPARED])
    result = fit(cnn.fitted, cnn.train, cnn.val, len(train), epochs, class_weight=class_weight, live=s.live,
                 backup=s.backup)
    best = best_epoch(result.history)
    scores, *_ = evaluate_split(cnn.model, test.images, test.labels, classes, p["evaluate"]["bootstrap"], seed)
    record = {
        "run": name, "seed": seed, **run, "epochs": epochs,
        # what the runs are ranked on
        "best_val_accuracy": float(best["val_accuracy"]),
        "val_loss_at_best": float(best["val_loss"]),
        "best_epoch": int(best["epoch"]),
        # the final weights on test: shown for the chosen run, not used for ranking
        "test_accuracy": scores["accuracy"],
        "test_accuracy_ci95_low": scores["accuracy_ci95_low"],
        "test_accuracy_ci95_high": scores["accuracy_ci95_high"],
        "test_loss": scores["test_loss"],
        "train_seconds": round(result.seconds, 2),
    }
    s.finish(paths.optimizer_metrics(name, seed), {k: record[k] for k in RANKED_ON},
             paths.optimizer_details(name, seed), record)
    print(f"optimizers@{name}-{seed}: best val accuracy {record['best_val_accuracy']:.3f} "
          f"(epoch {record['best_epoch']}, val loss {record['val_loss_at_best']:.3f})")


if __name__ == "__main__":
    stage.run(main)
