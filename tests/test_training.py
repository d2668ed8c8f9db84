"""The shared training library on a tiny prepared dataset (32x32, a tiny CNN)."""

import numpy as np
import pytest
import tensorflow as tf

from carbrands import seeding
from carbrands.data import pipeline, prepared
from carbrands.data.augment import build_augmenter
from carbrands.models.cnn import build_cnn
from carbrands.training import compiling, devices, names
from carbrands.training.cnn import cnn_fit
from carbrands.training.fit import HISTORY_COLUMNS, fit, history_metrics
from carbrands.training.session import Inputs
from tests.helpers import epoch_lines

TINY_CNN = {"image_size": 1024, "filters": [8, 16], "convs_per_block": 1, "dropout": [0.0, 0.1], "pooling": "global",
            "dense_units": 16, "head_dropout": 0.0}
AUGMENT = {"rotation": 0.03, "shift": 0.1, "zoom": 0.1, "shear": 0.1, "flip_horizontal": True,
           "flip_vertical": False, "brightness": 0.2, "contrast": 0.2}


def _train(prepared_dir, epochs=2, seed=3, patience=None, reduce_lr_patience=None, strategy="default",
           extra_columns=None):
    seeding.set_global_seed(seed)
    train, val = prepared.load_split(prepared_dir, "train"), prepared.load_split(prepared_dir, "val")
    strat = devices.strategy_from_params(strategy)
    bs = devices.global_batch_size(16, strat)
    train_ds, val_ds = pipeline.train_val_datasets(train, val, bs, seed, AUGMENT)
    with strat.scope():
        model = build_cnn(3, 32, TINY_CNN)
        compiling.compile_model(model, compiling.make_optimizer("adam", 0.01))
    result = fit(model, train_ds, val_ds, len(train), epochs, patience=patience,
                 reduce_lr_patience=reduce_lr_patience, extra_columns=extra_columns)
    return model, result


def test_fit_writes_a_sensible_history(tiny_prepared, capsys):
    model, result = _train(tiny_prepared, epochs=2, patience=5, reduce_lr_patience=3,
                           extra_columns={"phase": "head"})
    history = result.history
    assert list(history.columns) == HISTORY_COLUMNS + ["phase"]
    assert history["epoch"].tolist() == [1, 2]
    assert (history["phase"] == "head").all()
    assert history["learning_rate"].tolist() == pytest.approx([0.01, 0.01])
    for col in ("loss", "val_loss"):
        assert np.isfinite(history[col]).all() and (history[col] > 0).all()
    for col in ("accuracy", "val_accuracy"):
        assert history[col].between(0, 1).all()
    assert result.seconds >= result.train_seconds > 0 and result.images_per_second > 0
    # 72 training images an epoch, 2 epochs
    assert result.images_per_second == pytest.approx(72 * 2 / result.train_seconds)
    # one plain line per epoch, no progress bar
    lines = epoch_lines(capsys.readouterr().out)
    assert [l.split()[1] for l in lines] == ["1/2", "2/2"]
    assert all("val_accuracy" in l and "lr" in l for l in lines)

    metrics = history_metrics(history, model, result.seconds, result.images_per_second)
    assert metrics["epochs_run"] == 2
    assert metrics["best_val_accuracy"] == pytest.approx(history["val_accuracy"].max())
    assert metrics["params"] == model.count_params() > 0
    assert metrics["train_seconds"] == pytest.approx(result.seconds, abs=0.01)


def test_a_cnn_that_downscales_by_4_is_fitted_on_images_averaged_down_by_2(tiny_prepared):
    seeding.set_global_seed(0)
    train, val = prepared.load_split(tiny_prepared, "train"), prepared.load_split(tiny_prepared, "val")
    data = Inputs(prepared.load_classes(tiny_prepared), prepared.load_meta(tiny_prepared), train, val,
                  tf.distribute.get_strategy(), 16)
    cnn = cnn_fit(data, {**TINY_CNN, "image_size": 8}, {"optimizer": "adam", "learning_rate": 0.01}, 0, AUGMENT)
    assert cnn.model.input_shape[1:3] == (32, 32) and cnn.fitted.input_shape[1:3] == (16, 16)
    x, _ = next(iter(cnn.train.dataset()))
    assert x.shape[1:3] == (16, 16)
    before = cnn.model.predict_on_batch(val.images.astype(np.float32))
    fit(cnn.fitted, cnn.train, cnn.val, len(train), epochs=1)
    after = cnn.model.predict_on_batch(val.images.astype(np.float32))
    assert not np.allclose(before, after)   # fitting the view trained the model it saves
    small = prepared.downscaled(val, 2).images.astype(np.float32)
    np.testing.assert_allclose(cnn.fitted.predict_on_batch(small), after, atol=0.02)


@pytest.mark.slow  # two trainings, ~12 s
def test_same_seed_gives_the_same_history(tiny_prepared):
    _, a = _train(tiny_prepared, epochs=2, seed=5)
    _, b = _train(tiny_prepared, epochs=2, seed=5)
    np.testing.assert_array_equal(a.history.to_numpy(), b.history.to_numpy())


def test_without_patience_runs_exactly_epochs_and_continues_numbering(tiny_prepared):
    seeding.set_global_seed(0)
    train, val = prepared.load_split(tiny_prepared, "train"), prepared.load_split(tiny_prepared, "val")
    model = build_cnn(3, 32, TINY_CNN)
    # a rate this small cannot improve val_loss much: early stopping with patience 1 would stop
    compiling.compile_model(model, compiling.make_optimizer("sgd", 1e-7))
    result = fit(model, pipeline.make_dataset(train.images, train.labels, 32, True, 0),
                 pipeline.make_dataset(val.images, val.labels, 32, False, 0), len(train), epochs=3,
                 initial_epoch=2)
    assert result.history["epoch"].tolist() == [3, 4, 5]


def test_strategy_default_on_cpu():
    strategy = devices.strategy_from_params("default")
    assert strategy.num_replicas_in_sync == 1
    assert devices.global_batch_size(32, strategy) == 32
    with pytest.raises(ValueError):
        devices.strategy_from_params("parameter_server")


@pytest.mark.parametrize("name", names.OPTIMIZERS)
def test_make_optimizer(name):
    opt = compiling.make_optimizer(name, 0.005, momentum=0.8)
    assert float(opt.learning_rate) == pytest.approx(0.005)
    if name == "sgd":
        assert opt.momentum == pytest.approx(0.8)
    with pytest.raises(ValueError):
        compiling.make_optimizer("adagrad", 0.1)


def test_make_dataset_batches_float_images_and_int_labels(tiny_prepared):
    train = prepared.load_split(tiny_prepared, "train")
    ds = pipeline.make_dataset(train.images, train.labels, 10, False, 0)
    batches = list(ds)
    assert [len(y) for _, y in batches] == [10] * 7 + [2]
    x, y = batches[0]
    assert x.dtype == tf.float32 and y.dtype == tf.int32
    np.testing.assert_array_equal(x.numpy(), np.asarray(train.images[:10], dtype=np.float32))


@pytest.mark.parametrize("streamed", [False, True])
def test_shuffle_is_seeded_and_changes_each_epoch(tiny_prepared, monkeypatch, streamed):
    """Epoch e's order is a pure function of (seed, e): a new order every epoch, the
    same one whether epoch e is drawn alone or after the epochs before it (what
    resuming at epoch e relies on)."""
    if streamed:  # the memmap-streaming path used for splits too large for memory
        monkeypatch.setattr(pipeline, "IN_MEMORY_BYTES", 0)
    train = prepared.load_split(tiny_prepared, "train")

    def order(ds):
        return np.concatenate([y.numpy() for _, y in ds])

    epochs = pipeline.Epochs(train.images, train.labels, 16, 1)
    first, second = order(epochs.dataset(0)), order(epochs.dataset(1))
    assert sorted(first) == sorted(train.labels.tolist())
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(order(epochs.dataset(0, 2)), np.concatenate([first, second]))
    np.testing.assert_array_equal(order(pipeline.Epochs(train.images, train.labels, 16, 1).dataset(1)), second)
    assert epochs.steps == 5 and int(epochs.dataset(0, 2).cardinality()) == 10
    # images still travel with their labels
    x, y = next(iter(epochs.dataset(3)))
    rows = [np.flatnonzero((train.images == img.astype(np.uint8)).all(axis=(1, 2, 3)))[0] for img in x.numpy()]
    np.testing.assert_array_equal(train.labels[rows], y.numpy())


def test_augmentation_is_seeded_and_changes_each_epoch(tiny_prepared):
    """Each batch gets its own augmentation, new every epoch, the same for the same seed
    and epoch (the stateless seeds are a function of seed, epoch and batch)."""
    train = prepared.load_split(tiny_prepared, "train")
    augmenter = build_augmenter(AUGMENT)

    def epoch(ds):
        return np.concatenate([x.numpy() for x, _ in ds])

    epochs = pipeline.Epochs(train.images, train.labels, 16, 1, shuffle=False, augmenter=augmenter)
    first, second = epoch(epochs.dataset(0)), epoch(epochs.dataset(1))
    assert not np.allclose(first, np.asarray(train.images, np.float32))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(epoch(epochs.dataset(0, 2))[len(first):], second)
    again = pipeline.make_dataset(train.images, train.labels, 16, False, 1, augmenter)
    np.testing.assert_array_equal(epoch(again), first)


def test_mixed_precision_stays_float32_without_gpu(capsys):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present")
    try:
        assert devices.set_mixed_precision(True) == "float32"
        assert "no GPU" in capsys.readouterr().out
        assert devices.set_mixed_precision(False) == "float32"
    finally:
        import keras
        keras.mixed_precision.set_global_policy("float32")


def test_the_registries_build_exactly_the_names_params_allow():
    assert tuple(compiling._MAKERS) == names.OPTIMIZERS
    assert tuple(devices._STRATEGIES) == names.STRATEGIES


def test_the_cnn_learns_the_tiny_dataset(tiny_prepared):
    """Training works end to end: the CNN must learn, not only run. Three classes, 8
    validation images each: chance is 1/3, and guessing reaches 20 of 24 right with a
    probability below 1e-6 (binomial, p = 1/3), so 0.8 can only be passed by learning.
    The classes differ in colour and a stripe, so a working CNN gets there in a few epochs."""
    _, result = _train(tiny_prepared, epochs=8, seed=3)
    assert result.history["val_accuracy"].max() >= 0.8, result.history
