"""Training shared by every model stage (`train`, `transfer`, `optimizers`):
input pipelines from the prepared arrays, optimizers by name, distribution
strategy, mixed precision, and a `fit` that returns its history as a table.

Nothing here knows which model it trains: a stage builds and compiles its model
(under `strategy.scope()`), then hands it to `fit`.
"""
from __future__ import annotations

import math
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from carbrands.augment import Augmenter, build_augmenter
from carbrands.prepared import Split

# Splits up to this size are held in memory as uint8 (1,500 images of 64x64 are
# 18 MB); larger ones are read batch by batch from the memory-mapped .npy. An
# in-memory split costs about three times its size (the array, the tensor, the
# shuffle buffer): the real dataset's train split at 224 px (1.7 GB) held in memory
# took the train stage to 4.5 GB, so it streams.
IN_MEMORY_BYTES = 512 * 1024**2

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
LOSS = "sparse_categorical_crossentropy"
METRICS = ["accuracy"]


# -- input pipelines -----------------------------------------------------------

def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 augmenter: Augmenter | None = None) -> tf.data.Dataset:
    """Batches of (float32 images in 0..255, int32 labels) from uint8 arrays.

    shuffle: a new order every epoch, the same sequence of orders for the same
    seed. augmenter: applied to whole batches in parallel; batch after batch and
    epoch after epoch it gets new seeds, the same sequence of seeds for the same
    seed.
    The dataset's `num_examples` attribute holds len(labels) (fit reads it to
    report images per second).
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    n = len(labels)
    labels = np.asarray(labels, dtype=np.int32)
    if images.nbytes <= IN_MEMORY_BYTES:
        # one read of the memmap; slicing in-memory tensors is the fastest source
        ds = in_memory_batches(np.ascontiguousarray(images), labels, batch_size, shuffle, seed)
    else:
        ds = _streamed_batches(images, labels, batch_size, shuffle, seed)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        # a stateless seed per batch (new ones each epoch) keeps the map parallel under op
        # determinism and its result independent of which thread ran which batch
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(lambda batch, s: (augmenter(batch[0], s), batch[1]),
                                                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.num_examples = n
    return ds


def in_memory_batches(x: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool,
                      seed: int) -> tf.data.Dataset:
    """Batches of (x, int32 labels) from arrays in memory (images or cached features),
    in a new order every epoch when shuffling, the same sequence of orders for a seed."""
    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(labels, np.int32)))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def train_val_datasets(train: Split, val: Split, batch_size: int, seed: int,
                       augment: dict) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """What a model is fitted on: the training split shuffled and augmented (params'
    `augment` section), the validation split as it is."""
    return (make_dataset(train.images, train.labels, batch_size, True, seed, build_augmenter(augment)),
            make_dataset(val.images, val.labels, batch_size, False, seed))


def _streamed_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool,
                      seed: int) -> tf.data.Dataset:
    """Batches read from the memmap by index, so only a few batches are in memory:
    only the indices are shuffled."""
    shape = images.shape[1:]

    def read(idx):
        rows = np.sort(idx)  # ascending rows read the file front to back
        return images[rows], labels[rows]

    ds = tf.data.Dataset.range(len(labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(
        lambda idx: tf.numpy_function(read, [idx], (tf.uint8, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda x, y: (tf.ensure_shape(x, (None, *shape)), tf.ensure_shape(y, (None,))))


# -- optimizers, strategy, precision ---------------------------------------------

def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9) -> keras.optimizers.Optimizer:
    """A Keras optimizer by params name: adam, adamw, nadam, rmsprop or sgd
    (momentum is used by sgd only)."""
    makers = {
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
        "nadam": lambda: keras.optimizers.Nadam(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=momentum),
    }
    if name not in makers:
        raise ValueError(f"unknown optimizer {name!r} (known: {', '.join(makers)})")
    return makers[name]()


def strategy_from_params(name: str) -> tf.distribute.Strategy:
    """default: the current (single-device) strategy; mirrored: all local GPUs;
    multi_worker: synchronous training across machines, each started with a
    TF_CONFIG environment variable describing the cluster and its own role.

    Build and compile the model under `strategy.scope()`, and batch the data with
    global_batch_size(): each replica then sees `batch_size` images per step."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r} (known: default, mirrored, multi_worker)")


def global_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    return batch_size * strategy.num_replicas_in_sync


def set_mixed_precision(enabled: bool) -> str:
    """Use float16 compute (float32 weights) when enabled and a GPU is present;
    on a CPU float16 is slower, not faster, so the policy stays float32.
    Returns the policy name in effect."""
    policy = "float32"
    if enabled:
        if tf.config.list_physical_devices("GPU"):
            policy = "mixed_float16"
        else:
            print("mixed precision: requested, but no GPU found: training in float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """The one loss and metric every classifier here is trained with."""
    model.compile(optimizer=optimizer, loss=LOSS, metrics=METRICS)


# -- fitting ----------------------------------------------------------------------

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
        row["seconds"] = end - self.start
        self.rows.append(row)
        print(f"epoch {epoch + 1}/{self.total}  loss {row.get('loss', math.nan):.4f}  "
              f"accuracy {row.get('accuracy', math.nan):.4f}  val_loss {row.get('val_loss', math.nan):.4f}  "
              f"val_accuracy {row.get('val_accuracy', math.nan):.4f}  lr {self.lr:.2e}  "
              f"{row['seconds']:.1f} s", flush=True)


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset, epochs: int,
        patience: int | None = None, reduce_lr_patience: int | None = None, reduce_lr_factor: float = 0.5,
        initial_epoch: int = 0, extra_columns: dict | None = None) -> pd.DataFrame:
    """Train a compiled model; return its history, one row per epoch run.

    epochs: the most epochs to run in this call (epoch numbers continue from
    initial_epoch, so two phases make one continuous history). patience: early
    stopping on val_loss with the best weights restored; None trains exactly
    `epochs` epochs. reduce_lr_patience: halve (reduce_lr_factor) the learning
    rate after that many epochs without a better val_loss; None keeps it.

    Columns: epoch (1-based), loss, accuracy, val_loss, val_accuracy,
    learning_rate, any other compiled metrics, then extra_columns (constants,
    e.g. phase). Timings are in `.attrs`: "seconds" (wall clock of the whole
    fit, validation included), "train_seconds" (training steps only),
    "images_per_second" (training images per second of training steps,
    validation excluded), "epoch_seconds" (list).
    """
    log = _EpochLog(initial_epoch + epochs)
    callbacks: list[keras.callbacks.Callback] = [log]
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                       restore_best_weights=True))
    if reduce_lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=reduce_lr_factor,
                                                           patience=reduce_lr_patience, min_lr=1e-6))
    start = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=initial_epoch + epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, verbose=0, shuffle=False)  # the datasets shuffle themselves
    seconds = time.perf_counter() - start

    history = pd.DataFrame(log.rows)
    epoch_seconds = history.pop("seconds").tolist() if len(history) else []
    known = [c for c in HISTORY_COLUMNS if c in history.columns]
    history = history[known + [c for c in history.columns if c not in known]]
    for name, value in (extra_columns or {}).items():
        history[name] = value
    examples = _num_examples(train_ds)
    history.attrs.update(
        seconds=seconds,
        epoch_seconds=epoch_seconds,
        train_seconds=log.train_seconds,
        images_per_second=examples * len(history) / log.train_seconds if log.train_seconds else math.nan,
    )
    return history


def _num_examples(ds: tf.data.Dataset) -> int:
    n = getattr(ds, "num_examples", None)
    if n is None:  # a dataset not from make_dataset: count it once
        n = int(ds.reduce(np.int64(0), lambda count, batch: count + tf.cast(tf.shape(batch[1])[0], tf.int64)))
    return n


def history_metrics(history: pd.DataFrame, model: keras.Model, seconds: float | None = None,
                    images_per_second: float | None = None) -> dict:
    """The training summary for a metrics JSON. seconds/images_per_second default
    to the ones `fit` recorded in history.attrs."""
    seconds = history.attrs.get("seconds") if seconds is None else seconds
    images_per_second = history.attrs.get("images_per_second") if images_per_second is None else images_per_second
    return {
        "best_val_accuracy": float(history["val_accuracy"].max()),
        "epochs_run": int(len(history)),
        "train_seconds": round(float(seconds), 2),
        "images_per_second": round(float(images_per_second), 1),
        "params": int(model.count_params()),
    }
