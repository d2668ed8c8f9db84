"""Training the transfer model (models/transfer.py) in two phases: the head on the
frozen backbone's pooled features, then the backbone from
transfer.fine_tune.unfreeze_from on, with the head.

A phase that does not augment trains on outputs of the frozen part computed once
(cached), which on a CPU is many times faster than pushing every image through the
frozen layers every epoch; one that augments trains the end-to-end model through
the augmenter.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from carbrands.data.pipeline import Epochs, make_dataset, train_val_datasets
from carbrands.data.prepared import Split, float_batches
from carbrands.errors import ParamError
from carbrands.models.transfer import Parts, set_phase
from carbrands.progress import Progress
from carbrands.training.compiling import class_weights, compile_model, make_optimizer
from carbrands.training.fit import fit
from carbrands.training.live import LiveLog
from carbrands.training.resume import Backup

PHASES = ("head", "fine_tune")
AUTO_INTERPOLATE = 0.5   # what transfer.fine_tune.interpolate: auto weighs against 1 (docs/benchmarks.md)


@dataclass
class TrainResult:
    history: pd.DataFrame       # both phases, continuous epochs, a `phase` column
    epochs_run: dict            # {phase: epochs}
    feature_seconds: float      # computing the cached features
    phase_seconds: dict         # {phase: wall clock of its epochs, validation included}
    images_per_second: float    # training images per second of training steps, both phases
    capped: list                # phases that ran all their epochs while val_loss still improved
    interpolate: float          # transfer.fine_tune.interpolate as applied (auto: as chosen)
    interpolate_val_loss: dict  # auto: {alpha: validation loss} of the candidates scored
    final_val_accuracy: float   # of the end-to-end model as it ends, on raw validation images


def feature_dataset(features: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> Epochs:
    """Batches of cached backbone features (float16 in memory, float32 out), shuffled
    per epoch like the image datasets; read by index, so the cache is never copied."""
    return Epochs(features, labels, batch_size, seed, shuffle, streamed=True)


def frozen_features(frozen: keras.Model, images: np.ndarray, batch_size: int, label: str,
                    mirrors: tuple[bool, ...] = (False,)) -> np.ndarray:
    """The outputs of a frozen sub-model (the frozen part, or image -> pooled) for
    uint8 images, once per entry of `mirrors` (True: the left-right mirror image),
    stacked in that order; computed batch by batch from the memory-mapped array,
    with a progress line every 30 s (at 224 px on 2 CPU cores this is minutes).
    Kept as float16 in one array, which halves the memory.

    The batch size sets the peak memory: at 224 px VGG16's first block holds about
    40 MB of activations per image, and the allocator keeps what a batch needed.
    Measured on 2 CPU cores: batches of 32 peaked at 2.9 GB, of 8 at 1.4 GB, 5 %
    slower (transfer.backbone_batch_size)."""
    progress = Progress(f"features {label}", len(images) * len(mirrors))
    out = None
    for copy, mirror in enumerate(mirrors):
        for start, batch in float_batches(images, batch_size):
            # predict_on_batch runs the compiled graph: calling the model eagerly was 3x
            # slower for EfficientNet-Lite (many small layers) on 2 CPU cores
            values = np.asarray(frozen.predict_on_batch(np.ascontiguousarray(batch[:, :, ::-1]) if mirror else batch))
            if out is None:
                out = np.empty((len(images) * len(mirrors), *values.shape[1:]), np.float16)
            row = copy * len(images) + start
            out[row:row + len(batch)] = values
            progress.update(len(batch))
    return out


def adapt_feature_norm(layer: keras.layers.Normalization, features: np.ndarray) -> None:
    """Standardise each pooled feature with the training features' mean and variance.
    Variances are floored at 1 % of their mean: a unit that never fires on a training
    image (variance 0) would otherwise be multiplied by 1/epsilon where it fires on a
    validation or test image, and one such image took the head's val_loss to hundreds."""
    layer.adapt(features)
    mean, variance, count = layer.get_weights()
    layer.set_weights([mean, np.maximum(variance, 0.01 * variance.mean()), count])
    layer.finalize_state()


def end_to_end_batches(batch_size: int, backbone_batch_size: int) -> tuple[int, int]:
    """(images a step, steps whose gradients make one update) for training through the
    whole backbone: transfer.batch_size images an update, at most
    transfer.backbone_batch_size of them through the network at a time."""
    if backbone_batch_size >= batch_size:
        return batch_size, 1
    return backbone_batch_size, batch_size // backbone_batch_size   # params.validate: it divides


def interpolate_tuned(layers: list[keras.layers.Layer], start: list[list[np.ndarray]],
                      tuned: list[list[np.ndarray]], alpha: float) -> None:
    """Set each layer's weights to start + alpha x (tuned - start): 1 gives the
    fine-tuned weights (exactly), 0 the ones fine-tuning started from (ImageNet's)."""
    for layer, before, after in zip(layers, start, tuned, strict=True):
        layer.set_weights(after if alpha == 1 else [b + alpha * (a - b) for b, a in zip(before, after, strict=True)])


def interpolate_on_validation(parts: Parts, start: list[list[np.ndarray]], setting: float | str,
                              val_ds: tf.data.Dataset, known: dict) -> tuple[float, dict, float]:
    """transfer.fine_tune.interpolate applied to the tuned backbone layers (the head
    keeps its fine-tuned weights): a number, or `auto`, which keeps AUTO_INTERPOLATE
    where its validation loss is below the fine-tuned weights' and 1 otherwise.
    known: {alpha: (val loss, val accuracy)} already measured on val_ds, not
    measured again. Returns (alpha, {alpha: val loss} of the candidates, the final
    model's val accuracy).

    Averaging the weights of the pretrained and the fine-tuned model (Wortsman et
    al., "Robust fine-tuning of zero-shot models", 2022) keeps part of what the
    pretrained backbone knew and works like an ensemble of the two at the cost of
    one model: on the tuning set of real photos 0.5 lowered every seed's validation
    loss; on the built-in synthetic set at 64 px, far from ImageNet, it raised it
    (docs/benchmarks.md), hence the choice on validation."""
    tuned = [layer.get_weights() for layer in parts.tuned]
    candidates = (AUTO_INTERPOLATE, 1.0) if setting == "auto" else (float(setting),)
    scores = dict(known)
    for alpha in candidates:
        if alpha not in scores:
            interpolate_tuned(parts.tuned, start, tuned, alpha)
            scores[alpha] = parts.model.evaluate(val_ds, verbose=0)   # [loss, accuracy]
    alpha = min(candidates, key=lambda a: scores[a][0])
    interpolate_tuned(parts.tuned, start, tuned, alpha)
    losses = {a: round(float(scores[a][0]), 4) for a in candidates} if setting == "auto" else {}
    return alpha, losses, float(scores[alpha][1])


def train_two_phases(parts: Parts, train: Split, val: Split, cfg: dict, aug_params: dict, seed: int,
                     live: LiveLog | None = None, backup: Backup | None = None) -> TrainResult:
    """Phase 1 (head, backbone frozen), then phase 2 (the tuned block + head), each
    with its own learning rate, epochs, early stopping and schedule from `cfg`
    (params' `transfer` section). `train`/`val` are prepared Splits.

    A phase without augmentation trains on cached outputs of the frozen part, of the
    training images and (transfer.mirror_features) of their mirror images, which is
    the augmentation cached features can carry. One with augmentation trains the
    end-to-end model through the augmenter. Both phases weight classes
    (transfer.class_weight).

    After fine-tuning, the tuned backbone layers are moved back towards the weights
    they started from (interpolate_on_validation, transfer.fine_tune.interpolate; the
    stage passes 1, as fine-tuned, for a backbone that started from random weights).

    live, backup: as for fit, each phase under its own name in the backup, so a run
    interrupted in fine-tuning resumes fine-tuning (the cached features are
    computed again, which gives the same features)."""
    if not cfg["head"]["epochs"] and not cfg["fine_tune"]["epochs"]:
        raise ParamError("transfer.head.epochs", "0 here and in transfer.fine_tune.epochs: nothing to train")
    batch_size, n_classes = cfg["batch_size"], parts.model.output.shape[-1]
    step_batch, accumulated = end_to_end_batches(batch_size, cfg["backbone_batch_size"])
    cached = {phase: not cfg[phase]["augment"] and cfg[phase]["epochs"] > 0 for phase in PHASES}
    start = time.perf_counter()
    mirrors = (False, True) if cfg["mirror_features"] else (False,)
    feature_batch = cfg["backbone_batch_size"]
    cached_labels = np.concatenate([train.labels] * len(mirrors))
    # the pooled features feed the head phase and adapt feature_norm; the frozen part's
    # outputs are kept only where fine-tuning trains on them (deep cuts are large)
    if cached["fine_tune"]:
        frozen_outputs = {"train": frozen_features(parts.frozen, train.images, feature_batch, "train", mirrors),
               "val": frozen_features(parts.frozen, val.images, feature_batch, "val")}
        labels = {"train": cached_labels, "val": val.labels}
        pooled = {name: parts.tail_pooled.predict(feature_dataset(f, labels[name], batch_size, False, seed).dataset(),
                                                  verbose=0)
                  for name, f in frozen_outputs.items()}
    else:
        pooled = {"train": frozen_features(parts.pooled, train.images, feature_batch, "train", mirrors),
                  "val": frozen_features(parts.pooled, val.images, feature_batch, "val")}
    adapt_feature_norm(parts.model.get_layer("feature_norm"), pooled["train"])
    feature_seconds = time.perf_counter() - start
    class_weight = class_weights(cfg["class_weight"], train.labels, n_classes)

    def model_and_data(phase):
        if cached[phase]:
            feats = pooled if phase == "head" else frozen_outputs
            return (parts.head if phase == "head" else parts.tail,
                    feature_dataset(feats["train"], cached_labels, batch_size, True, seed),
                    feature_dataset(feats["val"], val.labels, batch_size, False, seed).dataset())
        # through the whole backbone: batches of backbone_batch_size, their gradients
        # averaged over batch_size before each update (batch norm is frozen, so this is
        # the update of one batch_size batch), which bounds the memory the steps hold
        return (parts.model, *train_val_datasets(train, val, step_batch, seed, aug_params))

    histories, epochs_run, step_seconds, images_seen, capped = [], {phase: 0 for phase in PHASES}, 0.0, 0, []
    phase_seconds = {}
    for phase in PHASES:
        phase_cfg = cfg[phase]
        if phase_cfg["epochs"] == 0:
            continue
        set_phase(parts, phase)
        if phase == "fine_tune":
            # before fit, which restores a backup: the backbone as built (the head phase
            # does not change it), so a resumed run interpolates from the same weights
            start_weights, fine_tuned_score = [layer.get_weights() for layer in parts.tuned], {}
        model, train_ds, val_ds = model_and_data(phase)
        steps = phase_cfg["epochs"] * train_ds.steps
        rate = (keras.optimizers.schedules.CosineDecay(phase_cfg["learning_rate"], steps)
                if phase_cfg["schedule"] == "cosine" else phase_cfg["learning_rate"])
        with parts.model.distribute_strategy.scope():   # the strategy the model was built under
            compile_model(model, make_optimizer("adam", rate, accumulate=1 if cached[phase] else accumulated))
        result = fit(model, train_ds, val_ds, len(train_ds), epochs=phase_cfg["epochs"],
                     patience=phase_cfg["patience"],
                     initial_epoch=sum(epochs_run.values()), extra_columns={"phase": phase},
                     class_weight=class_weight, live=live, backup=backup, phase=phase)
        histories.append(result.history)
        if phase == "fine_tune" and not cached[phase]:
            # early stopping left the epoch of the lowest val_loss in place, scored on
            # the raw validation images in batches of step_batch, as below
            best = result.history.loc[result.history["val_loss"].idxmin()]
            fine_tuned_score = {1.0: (float(best["val_loss"]), float(best["val_accuracy"]))}
        epochs_run[phase] = len(result.history)
        step_seconds += result.train_seconds
        phase_seconds[phase] = round(result.seconds, 2)
        images_seen += len(train_ds) * len(result.history)
        losses = result.history["val_loss"].to_numpy()
        # (a cosine schedule ends its phase by design, at a rate near 0: only a constant
        # rate's phase is stopped by its cap while it still improves)
        ran_all = len(losses) == phase_cfg["epochs"]
        if phase_cfg["schedule"] == "constant" and ran_all and losses.argmin() == len(losses) - 1:
            capped.append(phase)
            print(f"transfer: the {phase} phase ran all its {phase_cfg['epochs']} epochs and val_loss still improved: "
                  f"raise transfer.{phase}.epochs", flush=True)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    # the end-to-end model was trained through its parts: compile it so that it can be
    # evaluated, and is saved ready to use
    with parts.model.distribute_strategy.scope():
        compile_model(parts.model, make_optimizer("adam", cfg["fine_tune"]["learning_rate"]))
        # built now, so the saved optimizer matches the model's variables when loaded
        parts.model.optimizer.build(parts.model.trainable_variables)
    # scored as evaluation will see it: raw images through the whole backbone, in
    # batches that bound the memory
    val_ds = make_dataset(val.images, val.labels, step_batch, False, seed)
    if epochs_run["fine_tune"]:
        alpha, alpha_losses, final_val_accuracy = interpolate_on_validation(
            parts, start_weights, cfg["fine_tune"]["interpolate"], val_ds, fine_tuned_score)
    else:
        alpha, alpha_losses, final_val_accuracy = 1.0, {}, float(parts.model.evaluate(val_ds, verbose=0)[1])
    return TrainResult(history, epochs_run, feature_seconds, phase_seconds,
                       images_seen / step_seconds if step_seconds else float("nan"), capped,
                       alpha, alpha_losses, final_val_accuracy)
