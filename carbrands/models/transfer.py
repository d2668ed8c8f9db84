"""Transfer learning: a pretrained backbone without its top, a small dense head,
two training phases (head only, then the backbone's last block too).

The whole model is one flat Keras graph, raw 0..255 image in, class probabilities
out, so evaluation and prediction treat it like the custom CNN and
keras.models.load_model needs no custom objects. The two phases train sub-graphs
of that same model (shared layers): where a phase does not augment, the frozen
part's outputs are computed once and the phase trains on those cached features,
which on a CPU is many times faster than pushing every image through the frozen
convolutions every epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from carbrands.data.pipeline import Epochs, train_val_datasets
from carbrands.data.prepared import Split
from carbrands.errors import ParamError, WeightsError
from carbrands.models.backbones import backbone_spec, check_image_size
from carbrands.progress import Progress
from carbrands.training.fit import fit
from carbrands.training.live import LiveLog
from carbrands.training.optimizers import class_weights, compile_model, make_optimizer
from carbrands.training.resume import Backup

# ImageNet channel means in BGR order, as keras.applications' "caffe" preprocessing subtracts them
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
HEAD_LAYERS = ("avg_pool", "feature_norm", "head_dense", "head_dropout", "predictions")


def caffe_preprocess_layer(name: str = "preprocess") -> keras.layers.Layer:
    """keras.applications' "caffe" preprocessing (RGB->BGR, ImageNet mean subtracted) as a
    fixed 1x1 convolution: a built-in layer, so the saved model loads anywhere without
    custom objects (a Lambda would need unsafe deserialisation)."""
    swap = np.zeros((1, 1, 3, 3), np.float32)
    for rgb in range(3):
        swap[0, 0, rgb, 2 - rgb] = 1.0
    bias = -np.array(CAFFE_MEAN_BGR, np.float32)
    return keras.layers.Conv2D(3, 1, name=name, trainable=False,
                               kernel_initializer=keras.initializers.Constant(swap),
                               bias_initializer=keras.initializers.Constant(bias))


def build_model(backbone: str, image_size: int, n_classes: int, dense_units: int, dropout: float,
                weights_from: keras.Model | None = None) -> keras.Model:
    """The end-to-end model: float image 0..255 -> preprocessing -> backbone -> global
    average pooling -> per-feature standardisation -> dense + dropout -> softmax.
    `weights_from` is a backbone without top (e.g. from weights.load_backbone) whose
    weights are copied in.

    Pooled VGG16 features reach norms of about 100: fed raw to the head, its first
    loss was twice ln(brands) and it learnt slowly. feature_norm (adapted to the
    training features before the head trains) scales them to unit variance."""
    spec = backbone_spec(backbone)
    check_image_size(backbone, image_size)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = caffe_preprocess_layer()(inputs) if spec.caffe else inputs
    base = spec.constructor(include_top=False, weights=None, input_tensor=x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    x = keras.layers.Normalization(name="feature_norm")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # zero weights: the first prediction is uniform, so the head starts at a loss of
    # ln(brands) whatever the features; gradients reach head_dense from the second step.
    # float32 probabilities under mixed precision too (a float16 softmax loses small ones)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer="zeros", dtype="float32",
                                 name="predictions")(x)
    model = keras.Model(inputs, outputs, name=f"transfer_{backbone}")
    if weights_from is not None:
        copy_backbone_weights(weights_from, backbone_layers(model))
    return model


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone's layers inside a model from build_model, in order."""
    return [l for l in model.layers if l.name not in HEAD_LAYERS and l.name != "preprocess"
            and not isinstance(l, keras.layers.InputLayer)]


def copy_backbone_weights(source: keras.Model, layers: list[keras.layers.Layer]) -> None:
    # Matched by order, as Keras' own weights files are: auto-generated layer names
    # (re_lu_13, ...) differ between two builds in one session.
    src = [l for l in source.layers if l.weights]
    dst = [l for l in layers if l.weights]
    if len(src) != len(dst):
        raise WeightsError(f"backbone has {len(src)} layers with weights, the model {len(dst)}")
    for s, d in zip(src, dst):
        values = s.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in d.weights]:
            raise WeightsError(f"backbone layer {s.name} does not fit {d.name}")
        d.set_weights(values)


@dataclass
class Parts:
    """Sub-graphs of the end-to-end model; they share its layers (and so its weights)."""
    model: keras.Model
    frozen: keras.Model      # image -> input of unfreeze_from (never trained)
    tail: keras.Model        # frozen output -> probabilities (phase 2 trains this)
    pooled: keras.Model      # image -> pooled backbone features
    tail_pooled: keras.Model  # frozen output -> pooled features
    head: keras.Model        # pooled features -> probabilities (phase 1 trains this)
    tuned: list              # backbone layers phase 2 trains


def fine_tune_start(model: keras.Model, backbone: str, unfreeze_from: str) -> keras.layers.Layer:
    """The first layer phase 2 trains (transfer.fine_tune.unfreeze_from): `auto` (the
    backbone's default), `all` (its first layer with weights) or a layer's name."""
    if unfreeze_from == "auto":
        unfreeze_from = backbone_spec(backbone).unfreeze_from
    elif unfreeze_from == "all":
        unfreeze_from = next(l.name for l in backbone_layers(model) if l.weights)
    try:
        return model.get_layer(unfreeze_from)
    except ValueError:
        raise ParamError("transfer.fine_tune.unfreeze_from",
                         f"{unfreeze_from!r}: {backbone} has no layer of that name (auto, all, or a layer "
                         f"name such as {backbone_spec(backbone).unfreeze_from})") from None


def split(model: keras.Model, backbone: str, unfreeze_from: str = "auto") -> Parts:
    start = fine_tune_start(model, backbone, unfreeze_from)
    cut = start.input
    pooled = model.get_layer("avg_pool").output   # before feature_norm: the head includes it
    try:
        tail = keras.Model(cut, model.output, name="tail")
    except ValueError:   # a layer inside a residual block: the graph does not split there
        raise ParamError("transfer.fine_tune.unfreeze_from",
                         f"{start.name!r}: the backbone cannot be cut before this layer (a shortcut "
                         f"crosses it); choose the first layer of a block") from None
    # BatchNormalization stays frozen (inference mode) when fine-tuning: its statistics
    # from a few small batches would wreck what the backbone learnt.
    tuned = [l for l in tail.layers if l.name not in HEAD_LAYERS and l.weights
             and not isinstance(l, keras.layers.BatchNormalization)]
    return Parts(
        model=model,
        frozen=keras.Model(model.input, cut, name="frozen"),
        tail=tail,
        pooled=keras.Model(model.input, pooled, name="pooled"),
        tail_pooled=keras.Model(cut, pooled, name="tail_pooled"),
        head=keras.Model(pooled, model.output, name="head"),
        tuned=tuned,
    )


def trained_layers(parts: Parts, phase: str) -> list[keras.layers.Layer]:
    """What a phase trains: the head, and when fine-tuning also the tuned block."""
    head = [parts.model.get_layer(name) for name in HEAD_LAYERS]
    return head + (list(parts.tuned) if phase == "fine_tune" else [])


def set_phase(parts: Parts, phase: str) -> None:
    """Make trainable exactly what the phase trains (trained_layers)."""
    trained = {id(l) for l in trained_layers(parts, phase)}
    for layer in backbone_layers(parts.model) + [parts.model.get_layer(name) for name in HEAD_LAYERS]:
        layer.trainable = id(layer) in trained


# -- training -------------------------------------------------------------------

PHASES = ("head", "fine_tune")


@dataclass
class TrainResult:
    history: pd.DataFrame       # both phases, continuous epochs, a `phase` column
    epochs_run: dict            # {phase: epochs}
    feature_seconds: float      # computing the cached features
    images_per_second: float    # training images per second of training steps, both phases
    capped: list                # phases that ran all their epochs while val_loss still improved


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
    slower (transfer.feature_batch_size)."""
    progress = Progress(f"features {label}", len(images) * len(mirrors))
    out = None
    for copy, mirror in enumerate(mirrors):
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start:start + batch_size], np.float32)
            values = keras.ops.convert_to_numpy(frozen(batch[:, :, ::-1] if mirror else batch, training=False))
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


def train_two_phases(parts: Parts, train: Split, val: Split, cfg: dict, aug_params: dict, seed: int,
                     live: LiveLog | None = None, backup: Backup | None = None) -> TrainResult:
    """Phase 1 (head, backbone frozen), then phase 2 (the tuned block + head), each
    with its own learning rate, epochs, early stopping and schedule from `cfg`
    (params' `transfer` section). `train`/`val` are prepared Splits.

    A phase without augmentation trains on cached outputs of the frozen part, of the
    training images and (transfer.mirror_features) of their mirror images, which is
    the augmentation cached features can carry. One with augmentation trains the
    end-to-end model through the augmenter. Both phases weight classes
    (transfer.class_weight) and smooth labels (transfer.label_smoothing).

    live, backup: as for fit, each phase under its own name in the backup, so a run
    interrupted in fine-tuning resumes fine-tuning (the cached features are
    computed again, which gives the same features)."""
    if not cfg["head"]["epochs"] and not cfg["fine_tune"]["epochs"]:
        raise ParamError("transfer.head.epochs", "0 here and in transfer.fine_tune.epochs: nothing to train")
    bs, n_classes = cfg["batch_size"], parts.model.output.shape[-1]
    cached = {phase: not cfg[phase]["augment"] and cfg[phase]["epochs"] > 0 for phase in PHASES}
    start = time.perf_counter()
    mirrors = (False, True) if cfg["mirror_features"] else (False,)
    feature_batch = cfg["feature_batch_size"]
    cached_labels = np.concatenate([train.labels] * len(mirrors))
    # the pooled features feed the head phase and adapt feature_norm; the frozen part's
    # outputs are kept only where fine-tuning trains on them (deep cuts are large)
    if cached["fine_tune"]:
        cut = {"train": frozen_features(parts.frozen, train.images, feature_batch, "train", mirrors),
               "val": frozen_features(parts.frozen, val.images, feature_batch, "val")}
        labels = {"train": cached_labels, "val": val.labels}
        pooled = {name: parts.tail_pooled.predict(feature_dataset(f, labels[name], bs, False, seed).dataset(),
                                                  verbose=0)
                  for name, f in cut.items()}
    else:
        pooled = {"train": frozen_features(parts.pooled, train.images, feature_batch, "train", mirrors),
                  "val": frozen_features(parts.pooled, val.images, feature_batch, "val")}
    adapt_feature_norm(parts.model.get_layer("feature_norm"), pooled["train"])
    feature_seconds = time.perf_counter() - start
    class_weight = class_weights(cfg["class_weight"], train.labels, n_classes)

    def model_and_data(phase):
        if cached[phase]:
            feats = pooled if phase == "head" else cut
            return (parts.head if phase == "head" else parts.tail,
                    feature_dataset(feats["train"], cached_labels, bs, True, seed),
                    feature_dataset(feats["val"], val.labels, bs, False, seed).dataset())
        return (parts.model, *train_val_datasets(train, val, bs, seed, aug_params))

    histories, epochs_run, step_seconds, images_seen, capped = [], {phase: 0 for phase in PHASES}, 0.0, 0, []
    for phase in PHASES:
        pc = cfg[phase]
        if pc["epochs"] == 0:
            continue
        set_phase(parts, phase)
        model, train_ds, val_ds = model_and_data(phase)
        rate = (keras.optimizers.schedules.CosineDecay(pc["learning_rate"], pc["epochs"] * train_ds.steps)
                if pc["schedule"] == "cosine" else pc["learning_rate"])
        with parts.model.distribute_strategy.scope():   # the strategy the model was built under
            compile_model(model, make_optimizer("adam", rate), cfg["label_smoothing"])
        result = fit(model, train_ds, val_ds, len(train_ds), epochs=pc["epochs"], patience=pc["patience"],
                     initial_epoch=sum(epochs_run.values()), extra_columns={"phase": phase},
                     class_weight=class_weight, live=live, backup=backup, phase=phase)
        histories.append(result.history)
        epochs_run[phase] = len(result.history)
        step_seconds += result.train_seconds
        images_seen += len(train_ds) * len(result.history)
        losses = result.history["val_loss"].to_numpy()
        # (a cosine schedule ends its phase by design, at a rate near 0: only a constant
        # rate's phase is stopped by its cap while it still improves)
        if pc["schedule"] == "constant" and len(losses) == pc["epochs"] and losses.argmin() == len(losses) - 1:
            capped.append(phase)
            print(f"transfer: the {phase} phase ran all its {pc['epochs']} epochs and val_loss still improved: "
                  f"raise transfer.{phase}.epochs", flush=True)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    # the end-to-end model was trained through its parts: compile it so that it can be
    # evaluated, and is saved ready to use
    with parts.model.distribute_strategy.scope():
        compile_model(parts.model, make_optimizer("adam", cfg["fine_tune"]["learning_rate"]))
        # built now, so the saved optimizer matches the model's variables when loaded
        parts.model.optimizer.build(parts.model.trainable_variables)
    return TrainResult(history, epochs_run, feature_seconds,
                       images_seen / step_seconds if step_seconds else float("nan"), capped)


def trainable_params(parts: Parts, phase: str) -> int:
    """How many weights a phase trains (trained_layers)."""
    return int(sum(np.prod(w.shape) for layer in trained_layers(parts, phase) for w in layer.weights))


def weights_label(pretrained: bool, route: str) -> str:
    """How the backbone started, for titles and reports."""
    return f"ImageNet weights via {route}" if pretrained else "not pretrained: random initial weights"
