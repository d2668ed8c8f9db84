"""The fit loop every model stage (`train`, `transfer`, `optimizers`) trains with:
early stopping, learning-rate reduction, one log line per epoch, and a FitResult
holding the history as a table and the timings.

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

from carbrands.progress import Progress

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]


@dataclass
class FitResult:
    history: pd.DataFrame       # one row per epoch run (see fit)
    seconds: float              # wall clock of the whole fit, validation included
    train_seconds: float        # training steps only
    images_per_second: float    # training images per second of training steps, validation excluded


class _EpochLog(keras.callbacks.Callback):
    """Records each epoch's learning rate and time, and prints one line per epoch
    (progress bars are unreadable in DVC logs)."""

    def __init__(self, total: int):
        super().__init__()
        self.total = total
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
                                      if k != "learning_rate"}, "learning_rate": self.lr}
        self.rows.append(row)
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


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, train_examples: int,
        epochs: int, patience: int | None = None, reduce_lr_patience: int | None = None,
        reduce_lr_factor: float = 0.5, initial_epoch: int = 0, extra_columns: dict | None = None,
        class_weight: dict[int, float] | None = None, batches_per_epoch: int | None = None) -> FitResult:
    """Train a compiled model on `train_ds` (one pass over it holds `train_examples`
    images); return its history, one row per epoch run, and the timings.

    epochs: the most epochs to run in this call (epoch numbers continue from
    initial_epoch, so two phases make one continuous history). patience: early
    stopping on val_loss with the best weights restored; None trains exactly
    `epochs` epochs. reduce_lr_patience: halve (reduce_lr_factor) the learning
    rate after that many epochs without a better val_loss; None keeps it.

    History columns: epoch (1-based), loss, accuracy, val_loss, val_accuracy,
    learning_rate, any other compiled metrics, then extra_columns (constants,
    e.g. phase). class_weight: Keras' per-class loss weights (None: all 1).
    batches_per_epoch: for the progress lines within an epoch (None: none).
    """
    log = _EpochLog(initial_epoch + epochs)
    callbacks: list[keras.callbacks.Callback] = [log]
    if batches_per_epoch:
        cardinality = int(val_ds.cardinality())
        callbacks.append(_BatchProgress(batches_per_epoch, cardinality if cardinality > 0 else None))
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                       restore_best_weights=True))
    if reduce_lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=reduce_lr_factor,
                                                           patience=reduce_lr_patience, min_lr=1e-6))
    start = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=initial_epoch + epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, verbose=0, shuffle=False,  # the datasets shuffle themselves
              class_weight=class_weight)
    seconds = time.perf_counter() - start

    history = pd.DataFrame(log.rows)
    known = [c for c in HISTORY_COLUMNS if c in history.columns]
    history = history[known + [c for c in history.columns if c not in known]]
    for name, value in (extra_columns or {}).items():
        history[name] = value
    rate = train_examples * len(history) / log.train_seconds if log.train_seconds else math.nan
    return FitResult(history, seconds, log.train_seconds, rate)


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
