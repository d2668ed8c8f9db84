"""The custom CNN built from params' `train` section."""
import copy
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from carbrands import params
from carbrands.data.prepared import Split, downscaled
from carbrands.errors import ParamError
from carbrands.models.cnn import after_augment_downscale, augment_factor, build_cnn

ROOT = Path(__file__).resolve().parents[1]

TINY = {"image_size": 1024, "filters": [8, 16], "convs_per_block": 1, "dropout": [0.1, 0.2], "pooling": "global",
        "dense_units": 0, "head_dropout": 0.0}


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize("pooling", ["global", "flatten"])
def test_output_is_a_float32_distribution_over_classes(pooling):
    model = build_cnn(5, 32, {**TINY, "pooling": pooling, "dense_units": 12, "head_dropout": 0.2})
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 5)
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.float32)
    p = np.asarray(model(x, training=False))
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert (p >= 0).all()


def test_input_is_rescaled_first():
    model = build_cnn(3, 32, TINY)
    assert _layer_types(model)[:2] == ["InputLayer", "Rescaling"]
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)


def test_larger_inputs_are_averaged_down_to_at_most_image_size_and_smaller_ones_kept():
    model = build_cnn(3, 64, {**TINY, "image_size": 40})   # 2 x 2 blocks: 32 px
    assert model.input_shape == (None, 64, 64, 3)
    assert _layer_types(model)[:3] == ["InputLayer", "AveragePooling2D", "Rescaling"]
    assert model.get_layer("block1_conv1").output.shape[1:3] == (32, 32)
    assert build_cnn(3, 224, {**TINY, "image_size": 112}).get_layer("block1_conv1").output.shape[1:3] == (112, 112)
    assert build_cnn(3, 224, {**TINY, "image_size": 80}).get_layer("block1_conv1").output.shape[1:3] == (74, 74)
    small = build_cnn(3, 32, {**TINY, "image_size": 40})   # never enlarged
    assert "downscale" not in [layer.name for layer in small.layers]
    assert small.get_layer("block1_conv1").output.shape[1:3] == (32, 32)


def test_a_downscale_of_4_or_more_is_split_where_training_augments():
    """k = 4 (288 px seen at 72): averaged 2 x 2 before the augmenter, 2 x 2 in the model
    after it; k = 3 (224 px seen at 74) stays one layer: the augmenter works on the prepared
    images."""
    assert [augment_factor({"image_size": 75}, size) for size in (64, 150, 224, 288, 450, 600)] == [1, 1, 1, 2, 3, 4]
    model = build_cnn(3, 288, {**TINY, "image_size": 75})
    assert [layer.name for layer in model.layers][1:4] == ["downscale_before_augment", "downscale", "rescale"]
    assert model.get_layer("downscale").output.shape[1:3] == (72, 72)
    single = build_cnn(3, 224, {**TINY, "image_size": 75})
    assert "downscale_before_augment" not in [layer.name for layer in single.layers]
    assert after_augment_downscale(single) is single


def test_the_fitted_cnn_is_the_same_cnn_fed_images_averaged_down_beforehand():
    model = build_cnn(3, 66, {**TINY, "image_size": 17})   # 4 x 4 blocks: 16 px, the last 2 rows and columns dropped
    fitted = after_augment_downscale(model)
    assert fitted.input_shape == (None, 33, 33, 3) and fitted.count_params() == model.count_params()
    assert {id(v) for v in fitted.weights} == {id(v) for v in model.weights}   # shared, not copied
    images = np.random.default_rng(0).integers(0, 256, (4, 66, 66, 3), dtype=np.uint8)
    small = downscaled(Split(images, np.zeros(4, np.int32), []), 2).images
    assert small.dtype == np.uint8 and small.shape == (4, 33, 33, 3)
    layer = model.get_layer("downscale_before_augment")(images.astype(np.float32))
    assert np.abs(small - keras.ops.convert_to_numpy(layer)).max() <= 0.5   # rounded to uint8
    np.testing.assert_allclose(fitted.predict_on_batch(keras.ops.convert_to_numpy(layer)),
                               model.predict_on_batch(images.astype(np.float32)), atol=1e-6)


def test_blocks_follow_filters_and_convs_per_block():
    model = build_cnn(3, 32, {**TINY, "filters": [4, 8, 16], "dropout": [0.1, 0.0, 0.3], "convs_per_block": 2})
    convs = [l for l in model.layers if type(l).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [4, 4, 8, 8, 16, 16]
    assert _layer_types(model).count("BatchNormalization") == 6
    assert _layer_types(model).count("MaxPooling2D") == 3
    # a rate of 0 adds no dropout layer
    assert [l.name for l in model.layers if type(l).__name__ == "Dropout"] == ["block1_dropout", "block3_dropout"]
    assert "dense" not in [l.name for l in model.layers]   # dense_units 0: straight to the softmax


def test_notebook_layout_is_expressible_in_params():
    """Three blocks of conv-BN-conv-pool-dropout (32/64/128), flatten, dense 128."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"].update(filters=[32, 64, 128], convs_per_block=2, dropout=[0.25, 0.25, 0.25],
                        pooling="flatten", dense_units=128, head_dropout=0.5)
    cfg = params.validate(raw)["train"]
    model = build_cnn(33, 64, cfg)
    types = _layer_types(model)
    assert types.count("Conv2D") == 6 and types.count("MaxPooling2D") == 3
    assert "Flatten" in types and "GlobalAveragePooling2D" not in types
    assert model.get_layer("dense").units == 128
    assert model.get_layer("flatten").output.shape[-1] == 8 * 8 * 128
    assert model.output_shape == (None, 33)


def test_dropout_and_filters_of_different_lengths_are_rejected():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["train"]["filters"] = [8, 16, 32]
    raw["train"]["dropout"] = [0.1, 0.2]
    with pytest.raises(ParamError, match="train.dropout"):
        params.validate(raw)
    with pytest.raises(ValueError):
        build_cnn(3, 32, {**TINY, "filters": [8, 16, 32]})


def test_default_params_build():
    p = params.load(ROOT / "params.yaml")
    model = build_cnn(10, p["data"]["image_size"], p["train"])
    assert model.output_shape == (None, 10)
