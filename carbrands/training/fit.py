"""The fit loop every model stage (`train`, `transfer`, `optimizers`) trains with:
early stopping, learning-rate reduction, one log line per epoch, per-epoch metrics
through DVCLive (training/live.py), a backup after every epoch to resume from
(training/resume.py), and a FitResult holding the history as a table and the timings.

Nothing here knows which model it trains: a stage builds and compiles its model
(under `strategy.scope()`), then hands it to `fit`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras
import pandas as pd
import tensorflow as tf

from carbrands import internals
from carbrands.data.pipeline import Epochs
from carbrands.history import HISTORY_COLUMNS, in_history_order
from carbrands.progress import Progress
from carbrands.training.live import LiveLog
from carbrands.training.resume import Backup

__all__ = ["HISTORY_COLUMNS", "FitResult", "fit", "history_metrics"]


@dataclass
class FitResult:
    history: pd.DataFrame       # one row per epoch run (see fit)
    seconds: float              # wall clock of the whole fit, validation included
    train_seconds: float        # training steps only
    images_per_second: float    # training images per second of training steps, validation excluded


class _EpochLog(keras.callbacks.Callback):
    """Records each epoch's learning rate and time, and prints one line per epoch
    (progress bars are unreadable in DVC logs)."""

    def __init__(self, total: int, live: LiveLog | None, extra_columns: dict):
        super().__init__()
        self.total, self.live, self.extra_columns = total, live, extra_columns
        self.rows: list[dict] = []
        self.train_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.validation_start = None
        # the rate used during this epoch (ReduceLROnPlateau lowers it at epoch end)
        # (a float32 variable: rounded so that 0.001 is written as 0.001)
        self.lr = float(f"{float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)):.7g}")

    def on_test_begin(self, logs=None):
        self.validation_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        self.train_seconds += (self.validation_start or end) - self.start
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()
                                      if k != "learning_rate"}, "learning_rate": self.lr, **self.extra_columns}
        self.rows.append(row)
        if self.live is not None:
            self.live.log(row)
        print(f"epoch {epoch + 1}/{self.total}  loss {row.get('loss', math.nan):.4f}  "
              f"accuracy {row.get('accuracy', math.nan):.4f}  val_loss {row.get('val_loss', math.nan):.4f}  "
              f"val_accuracy {row.get('val_accuracy', math.nan):.4f}  lr {self.lr:.2e}  "
              f"{end - self.start:.1f} s", flush=True)


class _BatchProgress(keras.callbacks.Callback):
    """A progress line within an epoch at most every 30 s, for its training and its
    validation: on a CPU an epoch at 224 px can take minutes, and the per-epoch line
    alone leaves the log silent that long."""

    def __init__(self, batches_per_epoch: int, validation_batches: int | None):
        super().__init__()
        self.batches, self.validation_batches = batches_per_epoch, validation_batches

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.progress = Progress(f"epoch {epoch + 1}", self.batches, "batches")

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update()

    def on_test_begin(self, logs=None):
        self.progress = Progress(f"epoch {self.epoch + 1} validation", self.validation_batches or 0, "batches")

    def on_test_batch_end(self, batch, logs=None):
        self.progress.update()


def fit(model: keras.Model, train_ds: Epochs | tf.data.Dataset, val_ds: tf.data.Dataset, train_examples: int,
        epochs: int, patience: int | None = None, reduce_lr_patience: int | None = None,
        reduce_lr_factor: float = 0.5, initial_epoch: int = 0, extra_columns: dict | None = None,
        class_weight: dict[int, float] | None = None, live: LiveLog | None = None,
        backup: Backup | None = None, phase: str = "fit") -> FitResult:
    """Train a compiled model on `train_ds` (one pass over it holds `train_examples`
    images); return its history, one row per epoch run, and the timings.

    train_ds: an Epochs (a new order and augmentation every epoch, epoch e the same
    whenever it is drawn), or a tf.data.Dataset iterated once per epoch.
    epochs: the most epochs to run in this call (epoch numbers continue from
    initial_epoch, so two phases make one continuous history). patience: early
    stopping on val_loss with the best weights restored; None trains exactly
    `epochs` epochs. reduce_lr_patience: halve (reduce_lr_factor) the learning
    rate after that many epochs without a better val_loss; None keeps it.

    History columns: epoch (1-based), loss, accuracy, val_loss, val_accuracy,
    learning_rate, any other compiled metrics, then extra_columns (constants,
    e.g. phase). class_weight: Keras' per-class loss weights (None: all 1). An
    Epochs also gets progress lines within each epoch (it knows its length).

    live: each epoch's row is logged there as soon as the epoch ends. backup: after
    each epoch the whole training state is saved there, under `phase` (one name per
    fit call of a stage); a backup taken in this phase is continued from (one line
    says so), one of a finished phase returns its history without training. Needs
    train_ds to be an Epochs.
    """
    extra_columns = dict(extra_columns or {})
    end = initial_epoch + epochs
    log = _EpochLog(end, live, extra_columns)
    callbacks: list[keras.callbacks.Callback] = [log]
    if isinstance(train_ds, Epochs):
        cardinality = int(val_ds.cardinality())
        callbacks.append(_BatchProgress(train_ds.steps, cardinality if cardinality > 0 else None))
    early = reduce = None
    if patience is not None:
        early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        callbacks.append(early)
    if reduce_lr_patience is not None:
        reduce = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=reduce_lr_factor,
                                                   patience=reduce_lr_patience, min_lr=1e-6)
        callbacks.append(reduce)

    point = backup.point(phase) if backup is not None else None
    if point is not None and point.get("finished"):
        return _replayed(point, train_examples, live)
    start, earlier = initial_epoch, {"seconds": 0.0, "train_seconds": 0.0}
    if backup is not None:
        if not isinstance(train_ds, Epochs):
            raise TypeError("fit: a backup needs train_ds to be an Epochs (the order of epoch e known)")
        saver = _Backup(backup, phase, model, log, early, reduce)
        if point is not None:
            start, earlier = point["epoch"], point
            print(f"resume: continuing {backup.stage}{'' if phase == 'fit' else ' ' + phase} from epoch "
                  f"{start + 1} (backup taken after epoch {start} in {backup.file})", flush=True)
            log.rows = [dict(r) for r in point["rows"]]
            _log_rows(live, log.rows)
            if point["stopped"] or start >= end:
                saver.finish_restored()
                return _result(log, train_examples, earlier, 0.0, backup, phase)
            saver.restored = point
        callbacks.append(saver)   # last: it saves what the others changed at the epoch's end

    internals.work_around_multi_worker_fit(model)
    begin = time.perf_counter()
    if isinstance(train_ds, Epochs):
        # one stream of the remaining epochs, each exactly `steps` batches
        model.fit(train_ds.dataset(start, end - start), validation_data=val_ds, epochs=end, initial_epoch=start,
                  steps_per_epoch=train_ds.steps, callbacks=callbacks, verbose=0, shuffle=False,
                  class_weight=class_weight)
    else:
        model.fit(train_ds, validation_data=val_ds, epochs=end, initial_epoch=start,
                  callbacks=callbacks, verbose=0, shuffle=False,  # the datasets shuffle themselves
                  class_weight=class_weight)
    return _result(log, train_examples, earlier, time.perf_counter() - begin, backup, phase)


def _result(log: _EpochLog, train_examples: int, earlier: dict, seconds: float, backup: Backup | None,
            phase: str) -> FitResult:
    """The FitResult of rows so far; a finished phase is recorded in the backup."""
    seconds, train_seconds = earlier["seconds"] + seconds, earlier["train_seconds"] + log.train_seconds
    if backup is not None:
        backup.finish_phase(phase, {"rows": log.rows, "seconds": seconds, "train_seconds": train_seconds})
    return _fit_result(log.rows, train_examples, seconds, train_seconds)


def _replayed(record: dict, train_examples: int, live: LiveLog | None) -> FitResult:
    """A phase that finished before the stage was interrupted: its history, logged again."""
    _log_rows(live, record["rows"])
    return _fit_result(record["rows"], train_examples, record["seconds"], record["train_seconds"])


def _log_rows(live: LiveLog | None, rows: list[dict]) -> None:
    for row in rows if live is not None else []:
        live.log(row)


def _fit_result(rows: list[dict], train_examples: int, seconds: float, train_seconds: float) -> FitResult:
    history = in_history_order(pd.DataFrame(rows))
    rate = train_examples * len(history) / train_seconds if train_seconds else math.nan
    return FitResult(history, seconds, train_seconds, rate)


class _Backup(keras.callbacks.Callback):
    """Saves the training state after every epoch (resume.Backup) and puts a restored
    one back (`restored`): the model's and optimizer's variables once Keras has built
    them, early stopping's and learning-rate reduction's state once their
    on_train_begin has reset it (this callback comes after them)."""

    def __init__(self, backup: Backup, phase: str, model: keras.Model, log: _EpochLog, early, reduce):
        super().__init__()
        self.backup, self.phase, self.target, self.log = backup, phase, model, log
        self.early, self.reduce = early, reduce
        self.restored: dict | None = None
        self.begin = time.perf_counter()

    def on_train_begin(self, logs=None):
        if self.restored is None:
            return
        _assign(self.target.variables, self.backup.arrays_of("model"))
        optimizer = self.target.optimizer
        if not optimizer.built:   # Keras builds it when it first traces a step, unless distributed
            with self.target.distribute_strategy.scope():
                optimizer.build(self.target.trainable_variables)
        _assign(optimizer.variables, self.backup.arrays_of("optimizer"))
        for callback, name in ((self.early, "early_stopping"), (self.reduce, "reduce_lr")):
            for k, v in (self.restored.get(name) or {}).items() if callback is not None else ():
                setattr(callback, k, v)
        if self.early is not None:
            self.early.best_weights = self.backup.arrays_of("best")

    def finish_restored(self) -> None:
        """Nothing was left to train: the model as the uninterrupted run ended it
        (early stopping restores the best weights at the end of training)."""
        _assign(self.target.variables, self.backup.arrays_of("model"))
        best = self.backup.arrays_of("best")
        if self.early is not None and best is not None:
            self.target.set_weights(best)

    def on_epoch_end(self, epoch, logs=None):
        def state_of(callback, keys):
            return None if callback is None else {k: _plain(getattr(callback, k)) for k in keys}

        earlier = self.restored or {"seconds": 0.0, "train_seconds": 0.0}
        state = {"epoch": epoch + 1, "stopped": bool(self.target.stop_training), "rows": self.log.rows,
                 "seconds": earlier["seconds"] + time.perf_counter() - self.begin,
                 "train_seconds": earlier["train_seconds"] + self.log.train_seconds,
                 "early_stopping": state_of(self.early, ("wait", "best", "best_epoch", "stopped_epoch")),
                 "reduce_lr": state_of(self.reduce, ("wait", "best", "cooldown_counter"))}
        self.backup.save(self.phase, state, {
            "model": [_numpy(v) for v in self.target.variables],
            "optimizer": [_numpy(v) for v in self.target.optimizer.variables],
            "best": self.early.best_weights if self.early is not None else None})


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable.value if hasattr(variable, "value") else variable)


def _assign(variables, values) -> None:
    if len(variables) != len(values):
        raise ValueError(f"backup holds {len(values)} values for {len(variables)} variables")
    for variable, value in zip(variables, values):
        variable.assign(value)


def _plain(value):
    """A callback's number as JSON holds it exactly (numpy scalars become Python's)."""
    return value.item() if hasattr(value, "item") else value


def best_epoch(history: pd.DataFrame) -> pd.Series:
    """The history row with the highest val accuracy (the first such epoch on a tie)."""
    return history.loc[history["val_accuracy"].idxmax()]


# What a training stage's metrics file holds (`dvc metrics show`); the whole record,
# these included, goes to its details file.
HEADLINE = ("epochs_run", "train_seconds")


def headline(record: dict) -> dict:
    return {k: record[k] for k in HEADLINE}


def history_metrics(history: pd.DataFrame, model: keras.Model, seconds: float, images_per_second: float) -> dict:
    """The training summary for a metrics JSON."""
    return {
        "best_val_accuracy": float(history["val_accuracy"].max()),
        "epochs_run": int(len(history)),
        "train_seconds": round(float(seconds), 2),
        "images_per_second": round(float(images_per_second), 1),
        "params": int(model.count_params()),
    }
