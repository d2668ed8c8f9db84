"""The augmentation built from params: each transform follows its switch, and
images stay float 0..255."""
import numpy as np
import pytest

from carbrands import params
from carbrands.augment import build_augmenter, transform_names

ROOT_PARAMS = params.load()
ALL_OFF = {"rotation": 0.0, "shift": 0.0, "zoom": 0.0, "shear": 0.0, "flip_horizontal": False,
           "flip_vertical": False, "brightness": 0.0, "contrast": 0.0}
SWITCHES = {"rotation": 0.1, "shift": 0.1, "zoom": 0.2, "shear": 0.2, "flip_horizontal": True,
            "flip_vertical": True, "brightness": 0.3, "contrast": 0.3}
LAYER = {"rotation": "rotation", "shift": "shift", "zoom": "zoom", "shear": "shear",
         "flip_horizontal": "flip", "flip_vertical": "flip", "brightness": "brightness", "contrast": "contrast"}


def _batch(n=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("key", list(SWITCHES))
def test_each_transform_follows_its_switch(key):
    assert transform_names(build_augmenter(ALL_OFF, 0)) == []
    on = build_augmenter({**ALL_OFF, key: SWITCHES[key]}, 0)
    assert transform_names(on) == [LAYER[key]]
    # and it changes a batch
    x = _batch()
    assert not np.allclose(np.asarray(on(x, training=True)), x)


def test_flip_modes():
    both = build_augmenter({**ALL_OFF, "flip_horizontal": True, "flip_vertical": True}, 0)
    assert both.get_layer("flip").mode == "horizontal_and_vertical"
    assert build_augmenter({**ALL_OFF, "flip_vertical": True}, 0).get_layer("flip").mode == "vertical"


def test_all_off_is_identity():
    x = _batch()
    np.testing.assert_array_equal(np.asarray(build_augmenter(ALL_OFF, 0)(x, training=True)), x)


def test_values_stay_in_0_255_with_everything_on():
    x = _batch(8)
    x[:2] = 255.0   # saturated images: brightness/contrast push them past the range
    x[2:4] = 0.0
    y = np.asarray(build_augmenter({**SWITCHES, "brightness": 0.9, "contrast": 0.9}, 1)(x, training=True))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert y.min() >= 0.0 and y.max() <= 255.0
    assert not np.allclose(y, x)


def test_same_seed_same_augmentation():
    x = _batch()
    a = np.asarray(build_augmenter(SWITCHES, 7)(x, training=True))
    b = np.asarray(build_augmenter(SWITCHES, 7)(x, training=True))
    np.testing.assert_array_equal(a, b)


def test_defaults_flip_horizontally_only():
    aug = ROOT_PARAMS["augment"]
    assert aug["flip_vertical"] is False
    augmenter = build_augmenter(aug, 0)
    if aug["flip_horizontal"]:
        assert augmenter.get_layer("flip").mode == "horizontal"
    else:
        assert "flip" not in transform_names(augmenter)
