"""The synthetic dataset generator: determinism, layout, image sizes and planted copies."""
import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carbrands.data import synth
from carbrands.errors import ParamError

TINY = {"train": 4, "val": 2, "test": 2}


def _make(path: Path, seed: int = 7, workers: int = 1, **kw) -> dict:
    args = dict(brands=3, per_brand=TINY, seed=seed, planted_exact=1, planted_near=1, jpeg_quality=85)
    args.update(kw)
    return synth.generate_dataset(path, workers=workers, **args)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _planted(root: Path) -> list[dict]:
    with open(root / "planted.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "synthetic"
    _make(root)
    return root


def test_same_seed_same_bytes_even_in_parallel(tiny, tmp_path):
    _make(tmp_path / "again", workers=2)
    assert _hashes(tmp_path / "again") == _hashes(tiny)


def test_different_seed_different_images(tiny, tmp_path):
    _make(tmp_path / "other", seed=8)
    a, b = _hashes(tiny), _hashes(tmp_path / "other")
    assert set(a.values()).isdisjoint(b.values())


def test_layout_counts_and_brand_names(tiny):
    brands = synth.brand_names(3)
    assert any(" " in b for b in brands) and any("-" in b for b in brands)
    for split, n in TINY.items():
        assert sorted(p.name for p in (tiny / split).iterdir()) == sorted(brands)
        for brand in brands:
            files = list((tiny / split / brand).iterdir())
            assert len(files) == n and all(f.suffix == ".jpg" for f in files)
    assert sorted(p.name for p in tiny.iterdir()) == ["planted.csv", "test", "train", "val"]


def test_images_are_320_wide_with_plausible_heights(tiny):
    near = {row["copy"] for row in _planted(tiny) if row["kind"] == "near"}
    for path in tiny.rglob("*.jpg"):
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert not img.info.get("exif")
            w, h = img.size
        if str(path.relative_to(tiny)) not in near:  # near copies are resized on purpose
            assert w == synth.WIDTH
        assert synth.MIN_HEIGHT * w / synth.WIDTH - 1 <= h <= synth.MAX_HEIGHT * w / synth.WIDTH + 1


def test_height_distribution_is_like_the_real_set():
    rng = np.random.default_rng(0)
    heights = np.array([synth.image_height(rng) for _ in range(3000)])
    assert heights.min() >= synth.MIN_HEIGHT and heights.max() <= synth.MAX_HEIGHT
    assert 0.8 < np.mean((heights >= 200) & (heights <= 260)) < 0.99
    assert heights.min() < 100 and heights.max() > 500


def _small_grey(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L").resize((32, 32), Image.BILINEAR), dtype=float)


def test_planted_copies_are_recorded_and_true(tiny):
    rows = _planted(tiny)
    assert sorted(r["kind"] for r in rows) == ["exact", "near"]
    for r in rows:
        src, copy = tiny / r["source"], tiny / r["copy"]
        assert r["source"].startswith("train/") and r["copy"].split("/")[0] in ("val", "test")
        assert src.parent.name == copy.parent.name  # same brand
        if r["kind"] == "exact":
            assert src.read_bytes() == copy.read_bytes()
        else:
            assert src.read_bytes() != copy.read_bytes()
            with Image.open(copy) as img:
                assert img.width != synth.WIDTH
            # same picture up to a brightness change: the pixels correlate far more than with any other
            same = np.corrcoef(_small_grey(src).ravel(), _small_grey(copy).ravel())[0, 1]
            others = [np.corrcoef(_small_grey(src).ravel(), _small_grey(p).ravel())[0, 1]
                      for p in (tiny / "train").rglob("*.jpg") if p != src]
            assert same > 0.97 and same > max(others) + 0.1, (same, max(others))


def test_more_brands_than_the_fixed_names():
    names = synth.brand_names(33)
    assert names[:16] == list(synth.BRAND_NAMES) and names[16] == "Brand 17" and len(set(names)) == 33
    profiles = synth.brand_profiles(33)
    assert len(set(profiles)) == 33


def test_no_single_cue_separates_the_default_brands():
    profiles = synth.brand_profiles(10)
    for a in range(10):
        for b in range(a):
            shape_diff = sum(getattr(profiles[a], c) != getattr(profiles[b], c) for c in synth.CUES)
            assert shape_diff >= 3
    # preferred values are shared between brands in every cue (7 or fewer values for 10 brands)
    for cue in synth.CUES:
        assert len({getattr(p, cue) for p in profiles}) < 10


def test_too_many_planted_copies_name_the_key(tmp_path):
    with pytest.raises(ParamError, match="synth.planted_exact"):
        _make(tmp_path / "x", planted_exact=20)
    assert not (tmp_path / "x").exists()
