"""The training probe of bench/scale.py, run in its own process (so its memory is
measured alone): times a limited number of steps of the default CNN on one
prepared directory, as the `train` stage sets it up, and writes the figures as JSON.

    python bench/_train_probe.py PREPARED_DIR STEPS OUT_JSON    (params.yaml read from the cwd)
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbrands import startup  # noqa: E402, F401  (before keras: TensorFlow's environment, oneDNN on)

# isort: split

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from carbrands import files, params, seeding  # noqa: E402
from carbrands.data import prepared  # noqa: E402
from carbrands.training.cnn import cnn_fit  # noqa: E402
from carbrands.training.compiling import compile_model, make_optimizer  # noqa: E402
from carbrands.training.devices import set_mixed_precision  # noqa: E402
from carbrands.training.session import Inputs  # noqa: E402

WARMUP = 2  # steps before timing: graph tracing, the first shuffle-buffer fill


def main(data: Path, steps: int, out: Path) -> None:
    p = params.load("params.yaml")
    cfg = p["train"]
    seeding.set_global_seed(p["seed"])
    set_mixed_precision(cfg["mixed_precision"])
    meta, classes = prepared.load_meta(data), prepared.load_classes(data)
    size = meta["image_size"]
    train, val = prepared.load_split(data, "train"), prepared.load_split(data, "val")
    bs = cfg["batch_size"]

    # built once, as the train stage builds it: its memory (the arrays) is then what the
    # stage holds; epoch 0 over and over (the stage draws a new order every epoch, at the
    # same cost)
    cnn = cnn_fit(Inputs(classes, meta, train, val, tf.distribute.get_strategy(), bs), cfg, cfg, p["seed"],
                  p["augment"])
    model, fed = cnn.fitted, cnn.fitted.input_shape[1]   # the side the augmenter works at
    train_ds, val_ds = cnn.train.dataset().repeat(), cnn.val.repeat()

    # the input pipeline alone; its first batch waits for the first batches to be read and
    # augmented, which the train stage also waits for at the start of its stream
    start = time.perf_counter()
    batches = iter(train_ds)
    next(batches)
    first_batch = time.perf_counter() - start
    input_s = _iterate_seconds(batches, steps)
    del batches  # frees its prefetched batches

    noop = keras.Sequential([keras.Input((fed, fed, 3)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(len(classes), activation="softmax")], name="noop")
    compile_model(noop, make_optimizer(cfg["optimizer"], cfg["learning_rate"]))
    noop_s = _fit_seconds(noop, train_ds, steps)

    step_s = _fit_seconds(model, train_ds, steps)
    # one augmented batch, cached and repeated: the model's speed with no input work at all
    cached_s = _fit_seconds(model, train_ds.take(1).cache().repeat(), steps)
    val_s = _evaluate_seconds(model, val_ds, max(2, steps // 2))

    steps_per_epoch, val_batches = math.ceil(len(train) / bs), math.ceil(len(val) / bs)
    result = {
        "size": size, "params": model.count_params(), "train_images": len(train), "val_images": len(val),
        "timed_steps": steps, "steps_per_epoch": steps_per_epoch,
        "step_seconds": round(step_s, 4), "cached_step_seconds": round(cached_s, 4),
        "val_batch_seconds": round(val_s, 4),
        "epoch_seconds_estimate": round(first_batch + step_s * steps_per_epoch + val_s * val_batches, 2),
        "model_pipeline_ips": round(bs / step_s, 1), "model_cached_ips": round(bs / cached_s, 1),
        # negative values are noise: the pipeline-fed model cannot beat the cached batch
        "input_stall_percent": round(max(0.0, 100 * (1 - cached_s / step_s)), 1),
        "input_only_ips": round(bs / input_s, 1), "noop_model_ips": round(bs / noop_s, 1),
        "first_batch_seconds": round(first_batch, 2), "device": _device(),
    }
    files.write_json(out, result)


def _device() -> str:
    """What the model ran on: the GPUs' names where TensorFlow sees any, else the CPU."""
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return ", ".join(gpus) if gpus else f"CPU ({os.cpu_count()} cores)"


def _iterate_seconds(batches, steps: int) -> float:
    """Seconds per batch drawn from an iterator, after warm-up."""
    for _ in range(WARMUP):
        next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return (time.perf_counter() - start) / steps


class _BatchTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def on_test_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        """From the end of the last warm-up step to the end of the last step."""
        return (self.ends[-1] - self.ends[WARMUP - 1]) / (len(self.ends) - WARMUP)


def _fit_seconds(model, ds, steps: int) -> float:
    times = _BatchTimes()
    model.fit(ds, epochs=1, steps_per_epoch=WARMUP + steps, callbacks=[times], verbose=0)
    return times.seconds_per_step()


def _evaluate_seconds(model, ds, steps: int) -> float:
    times = _BatchTimes()
    model.evaluate(ds, steps=WARMUP + steps, callbacks=[times], verbose=0)
    return times.seconds_per_step()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
