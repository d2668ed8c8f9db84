"""Transfer learning: every backbone builds and splits into frozen part + trained tail,
the in-model preprocessing is the backbone's own, and fine-tuning sums small steps
into whole batches and interpolates back towards the starting weights. (The stages'
tiny two-phase run: tests/test_pipeline_e2e.py.)"""
import functools
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from carbrands import params
from carbrands.data.prepared import load_split
from carbrands.errors import ParamError
from carbrands.models import backbones, names, transfer
from carbrands.training import transfer as transfer_training

ROOT = Path(__file__).resolve().parents[1]
SLOW_TO_BUILD = {"resnet50", "efficientnetv2b0"}


@pytest.mark.parametrize("backbone", [
    pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_TO_BUILD else [])
    for name in backbones.BACKBONES])
def test_each_backbone_builds_and_its_parts_compose_to_the_whole(backbone):
    keras.utils.set_random_seed(0)
    model = transfer.build_model(backbone, 32, 3, dense_units=8, dropout=0.5)
    parts = transfer.split(model, backbone)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    whole = model.predict(x, verbose=0)
    assert whole.shape == (2, 3) and np.allclose(whole.sum(axis=1), 1, atol=1e-5)
    # what the cached-feature phases train is exactly the end-to-end model
    np.testing.assert_allclose(parts.tail.predict(parts.frozen.predict(x, verbose=0), verbose=0), whole,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(parts.head.predict(parts.pooled.predict(x, verbose=0), verbose=0), whole,
                               rtol=1e-4, atol=1e-6)
    assert parts.tuned and model.get_layer(backbones.BACKBONES[backbone].unfreeze_from) in parts.tuned


def test_phases_make_trainable_only_what_they_train():
    model = transfer.build_model("vgg16", 32, 3, dense_units=8, dropout=0.5)
    parts = transfer.split(model, "vgg16")
    transfer.set_phase(parts, "head")
    assert {l.name for l in model.layers if l.trainable_weights} == {"head_dense", "predictions"}
    transfer.set_phase(parts, "fine_tune")
    assert {l.name for l in model.layers if l.trainable_weights} == {
        "block5_conv1", "block5_conv2", "block5_conv3", "head_dense", "predictions"}


def test_unfreeze_from_all_tunes_every_layer_but_batch_norm_and_composes_to_the_whole():
    keras.utils.set_random_seed(0)
    model = transfer.build_model("efficientnet_lite0", 32, 3, dense_units=8, dropout=0.5)
    parts = transfer.split(model, "efficientnet_lite0", "all")
    assert parts.tuned[0].name == "stem_conv"
    tuned = {l.name for l in parts.tuned}
    convs = {l.name for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))}
    assert convs <= tuned and not any(isinstance(l, keras.layers.BatchNormalization) for l in parts.tuned)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(parts.tail.predict(parts.frozen.predict(x, verbose=0), verbose=0),
                               model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_unfreeze_from_a_layer_name_starts_there_and_a_bad_one_names_the_key():
    model = transfer.build_model("efficientnet_lite0", 32, 3, dense_units=8, dropout=0.5)
    parts = transfer.split(model, "efficientnet_lite0", "block4a_expand_conv")
    assert parts.tuned[0].name == "block4a_expand_conv" and "block3b_project_conv" not in {
        l.name for l in parts.tuned}
    with pytest.raises(ParamError, match=r"transfer\.fine_tune\.unfreeze_from.*'block9z'.*no layer"):
        transfer.split(model, "efficientnet_lite0", "block9z")
    # inside a residual block a shortcut crosses the cut
    with pytest.raises(ParamError, match=r"transfer\.fine_tune\.unfreeze_from.*shortcut"):
        transfer.split(model, "efficientnet_lite0", "block4b_dw_conv")


def test_image_size_below_the_backbone_minimum_names_the_key():
    with pytest.raises(ParamError, match=r"data\.image_size.*16 px is below the 32 px.*vgg16"):
        backbones.check_image_size("vgg16", 16)
    with pytest.raises(ParamError, match=r"data\.image_size"):
        transfer.build_model("mobilenetv3small", 24, 3, dense_units=8, dropout=0.5)


def test_in_model_preprocessing_is_the_backbones_own():
    model = transfer.build_model("vgg16", 32, 3, dense_units=8, dropout=0.5)
    pre = keras.Model(model.input, model.get_layer("preprocess").output)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(pre.predict(x, verbose=0),
                               keras.applications.vgg16.preprocess_input(x.copy()), atol=1e-4)


def test_the_backbone_registry_builds_exactly_the_names_params_allow():
    assert tuple(backbones.BACKBONES) == names.BACKBONES


def test_an_untrained_head_starts_at_a_loss_of_ln_brands():
    # the first loss of the head phase is ln(brands), as for a uniform guess, not twice it
    model = transfer.build_model("vgg16", 32, 7, dense_units=8, dropout=0.5)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities, 1 / 7, rtol=1e-5)
    loss = keras.losses.sparse_categorical_crossentropy(np.arange(4) % 7, probabilities)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), np.log(7), rtol=1e-5)


def test_feature_norm_does_not_blow_up_units_silent_in_training():
    layer = keras.layers.Normalization()
    train = np.random.default_rng(0).uniform(0, 1, (50, 4)).astype(np.float32)
    train[:, 2] = 0                                  # a ReLU unit that never fires in training
    transfer_training.adapt_feature_norm(layer, train)
    z = keras.ops.convert_to_numpy(layer(np.array([[0.5, 0.5, 0.5, 0.5]], np.float32)))
    assert np.abs(z).max() < 20                     # without the floor: 0.5 / 1e-7 = 5e6
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(train)).mean(axis=0), 0, atol=1e-5)


def test_cached_features_do_not_depend_on_the_backbone_batch_size():
    # transfer.backbone_batch_size only sets the peak memory; the cache, mirrored copies
    # after the originals, is the frozen part's output for each image
    model = transfer.build_model("vgg16", 32, 3, dense_units=8, dropout=0.5)
    frozen = transfer.split(model, "vgg16").frozen
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    by_batch = {bs: transfer_training.frozen_features(frozen, images, bs, "test", (False, True)) for bs in (1, 3, 7)}
    assert by_batch[1].dtype == np.float16 and len(by_batch[1]) == 14
    expected = frozen.predict(images[:, :, ::-1].astype(np.float32), verbose=0)
    np.testing.assert_allclose(by_batch[3][7:], expected.astype(np.float16), rtol=1e-2, atol=1e-2)
    for bs in (3, 7):
        np.testing.assert_allclose(by_batch[bs].astype(np.float32), by_batch[1].astype(np.float32),
                                   rtol=1e-2, atol=1e-2)


def _fine_tune(tiny_prepared, backbone_batch_size: int, interpolate: float | str = 1.0):
    """How the weights move in one epoch of end-to-end fine-tuning in batches of 8 (no
    head phase, no augmentation, no dropout, no stochastic depth), from one start;
    with the model and the TrainResult."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = {**p["transfer"], "batch_size": 8, "backbone_batch_size": backbone_batch_size,
           "head": {**p["transfer"]["head"], "epochs": 0},
           "fine_tune": {**p["transfer"]["fine_tune"], "epochs": 1, "schedule": "constant",
                         "interpolate": interpolate}}
    keras.utils.set_random_seed(0)
    model = transfer.build_model("efficientnet_lite0", 32, 3, dense_units=8, dropout=0.0)
    for layer in model.layers:   # one flat graph: the backbone's stochastic-depth layers are among them
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    start = model.get_weights()
    parts = transfer.split(model, "efficientnet_lite0", "all")
    no_augmentation = {name: False if isinstance(v, bool) else 0 for name, v in p["augment"].items()}
    result = transfer_training.train_two_phases(parts, load_split(tiny_prepared, "train"),
                                                load_split(tiny_prepared, "val"), cfg, no_augmentation, seed=0)
    return [end - begin for end, begin in zip(model.get_weights(), start)], model, result


@pytest.fixture(scope="module")
def fine_tuned(module_tiny_prepared):
    """_fine_tune on one dataset, each setting run once for the whole module (a run
    builds and traces Lite0: about 10 s); the tests only read what it returns."""
    run = functools.cache(functools.partial(_fine_tune, module_tiny_prepared))
    return lambda backbone_batch_size, interpolate=1.0: run(backbone_batch_size, interpolate)


@pytest.mark.slow
def test_fine_tuning_in_smaller_steps_makes_the_updates_of_whole_batches(fine_tuned):
    # transfer.backbone_batch_size bounds the memory of a training step; with batch norm
    # frozen, steps of 4 whose gradients are averaged in pairs update as batches of 8 do
    whole, in_steps = fine_tuned(8)[0], fine_tuned(4)[0]
    moved = [(a, b) for a, b in zip(whole, in_steps) if np.abs(a).max() > 0]
    assert len(moved) > 50   # the backbone's weights, not only the head's
    for a, b in moved:
        assert np.linalg.norm(b - a) < 1e-3 * np.linalg.norm(a)


@pytest.mark.slow
def test_interpolation_keeps_the_head_and_moves_the_backbone_part_of_the_way(fine_tuned):
    # transfer.fine_tune.interpolate 0.25: the tuned backbone layers end a quarter of the
    # way from where they started to the fine-tuned weights; the head as fine-tuned
    moved, quarter = fine_tuned(8)[0], fine_tuned(8, 0.25)[0]
    model = transfer.build_model("efficientnet_lite0", 32, 3, dense_units=8, dropout=0.0)
    head = [l.name in transfer.HEAD_LAYERS for l in model.layers for _ in l.weights]
    assert len(head) == len(moved) and sum(head) == 7   # feature_norm: mean, variance, count; two dense layers
    backbone = [(a, b) for a, b, in_head in zip(moved, quarter, head) if not in_head and np.abs(a).max() > 0]
    assert len(backbone) > 40   # every convolution of the backbone
    for a, b in backbone:
        np.testing.assert_allclose(b, 0.25 * a, rtol=1e-4, atol=1e-7)
    for a, b, in_head in zip(moved, quarter, head):
        if in_head:
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_auto_interpolation_keeps_the_candidate_with_the_lower_validation_loss(fine_tuned, module_tiny_prepared):
    _, model, result = fine_tuned(8, "auto")
    losses = result.interpolate_val_loss
    assert set(losses) == {0.5, 1.0} and result.interpolate == min(losses, key=losses.get)
    val = load_split(module_tiny_prepared, "val")

    def scored(m):
        return m.evaluate(np.asarray(val.images, np.float32), val.labels, batch_size=8, verbose=0)
    # the model is left as chosen, and scored as it is
    loss, accuracy = scored(model)
    assert loss == pytest.approx(losses[result.interpolate], abs=1e-4)
    assert accuracy == pytest.approx(result.final_val_accuracy, abs=1e-6)
    # the fine-tuned weights' loss, taken from their epoch, is theirs
    _, as_fine_tuned_model, as_fine_tuned = fine_tuned(8, 1.0)
    assert scored(as_fine_tuned_model)[0] == pytest.approx(losses[1.0], abs=1e-4)
    assert as_fine_tuned.interpolate == 1 and as_fine_tuned.interpolate_val_loss == {}


def test_interpolate_is_auto_or_a_fraction_and_a_bad_one_names_the_key():
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    for good in ("auto", 0, 0.5, 1):
        p["transfer"]["fine_tune"]["interpolate"] = good
        assert params.validate(p)["transfer"]["fine_tune"]["interpolate"] == good
    for bad, why in (("half", "expected a number"), (1.5, "outside")):
        p["transfer"]["fine_tune"]["interpolate"] = bad
        with pytest.raises(ParamError, match=rf"transfer\.fine_tune\.interpolate.*{why}"):
            params.validate(p)


def test_a_backbone_batch_size_that_does_not_divide_the_batch_size_names_the_key():
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["transfer"].update(batch_size=32, backbone_batch_size=12)
    with pytest.raises(ParamError, match=r"transfer\.backbone_batch_size: 12 does not divide transfer\.batch_size"):
        params.validate(p)
    p["transfer"].update(backbone_batch_size=64)   # larger: steps of whole batches
    assert transfer_training.end_to_end_batches(32, params.validate(p)["transfer"]["backbone_batch_size"]) == (32, 1)
    assert transfer_training.end_to_end_batches(32, 8) == (8, 4)
