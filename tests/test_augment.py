"""The augmentation built from params: each transform follows its switch and does
what its name says, images stay float 0..255, and the seed alone decides the result."""
import numpy as np
import pytest

from carbrands import params
from carbrands.data.augment import build_augmenter

ROOT_PARAMS = params.load()
ALL_OFF = {"rotation": 0.0, "shift": 0.0, "zoom": 0.0, "shear": 0.0, "flip_horizontal": False,
           "flip_vertical": False, "brightness": 0.0, "contrast": 0.0}
SWITCHES = {"rotation": 0.1, "shift": 0.1, "zoom": 0.2, "shear": 0.2, "flip_horizontal": True,
            "flip_vertical": True, "brightness": 0.3, "contrast": 0.3}
SEED = (1, 2)


def _batch(n=8, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.float32)


def _augment(switches, x, seed=SEED):
    return np.asarray(build_augmenter({**ALL_OFF, **switches})(x, seed))


@pytest.mark.parametrize("key", list(SWITCHES))
def test_each_transform_follows_its_switch(key):
    assert build_augmenter(ALL_OFF).transforms == []
    assert build_augmenter({**ALL_OFF, key: SWITCHES[key]}).transforms == [key]
    x = _batch()
    assert not np.allclose(_augment({key: SWITCHES[key]}, x), x)


def test_all_off_is_identity():
    x = _batch()
    np.testing.assert_array_equal(_augment({}, x), x)


@pytest.mark.parametrize("key, mirror", [("flip_horizontal", np.s_[:, ::-1]), ("flip_vertical", np.s_[::-1, :])])
def test_flips_mirror_about_half_the_images(key, mirror):
    x = _batch(64)
    y = _augment({key: True}, x)
    mirrored = [np.allclose(out, img[mirror], atol=1e-3) for img, out in zip(x, y)]
    unchanged = [np.allclose(out, img, atol=1e-3) for img, out in zip(x, y)]
    assert all(m != u for m, u in zip(mirrored, unchanged))  # each image one or the other
    assert 16 < sum(mirrored) < 48


def test_brightness_shifts_each_image_by_one_amount_within_the_factor():
    x = np.full((64, 8, 8, 3), 128.0, np.float32)
    y = _augment({"brightness": 0.2}, x)
    delta = y - x
    np.testing.assert_allclose(delta, delta[:, :1, :1, :1] * np.ones_like(delta), atol=1e-3)
    assert np.abs(delta).max() <= 0.2 * 255 + 1e-3 and delta.std() > 10


def test_contrast_keeps_each_channels_mean_and_scales_the_spread():
    x = _batch(32)
    y = _augment({"contrast": 0.3}, x)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=2.0)  # up to the clip
    ratio = y.std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3))
    assert ratio.min() >= 0.7 - 0.01 and ratio.max() <= 1.3 + 0.01 and ratio.std() > 0.05


@pytest.mark.parametrize("key, value", [("shift", 0.25), ("rotation", 0.05), ("zoom", 0.3), ("shear", 0.3)])
def test_geometry_moves_a_marker_within_the_factor(key, value):
    """A bright square off-centre: shifts move it up to `value` of the side, the others
    move it, on average, but keep it in the frame."""
    x = np.zeros((64, 33, 33, 3), np.float32)
    x[:, 20:24, 20:24] = 255.0
    y = _augment({key: value}, x)
    centre = np.array([21.5, 21.5])
    moved = []
    for img in y[..., 0]:
        rows, cols = np.nonzero(img > 127)
        assert len(rows), "the marker left the frame"
        moved.append(np.array([rows.mean(), cols.mean()]) - centre)
    moved = np.abs(np.array(moved))
    assert moved.mean() > 0.5
    if key == "shift":
        assert moved.max() <= value * 33 + 1


def test_values_stay_in_0_255_with_everything_on():
    x = _batch(8)
    x[:2] = 255.0   # saturated images: brightness/contrast push them past the range
    x[2:4] = 0.0
    y = _augment({**SWITCHES, "brightness": 0.9, "contrast": 0.9}, x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert y.min() >= 0.0 and y.max() <= 255.0
    assert not np.allclose(y, x)


def test_the_seed_alone_decides():
    x = _batch()
    a, b = _augment(SWITCHES, x, (7, 0)), _augment(SWITCHES, x, (7, 0))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, _augment(SWITCHES, x, (8, 0)))


def test_switching_one_transform_off_keeps_the_others_draws():
    x = _batch()
    both = _augment({"shift": 0.2, "flip_horizontal": True}, x)
    shift_only = _augment({"shift": 0.2}, x)
    # where the flip did not fire, the shift is the same as without the flip switch
    same = [np.allclose(a, b, atol=1e-3) for a, b in zip(both, shift_only)]
    assert 0 < sum(same) < len(x)


def test_defaults_flip_horizontally_only():
    transforms = build_augmenter(ROOT_PARAMS["augment"]).transforms
    assert "flip_vertical" not in transforms
    assert ("flip_horizontal" in transforms) == ROOT_PARAMS["augment"]["flip_horizontal"]
