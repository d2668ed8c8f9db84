"""The prepare stage: arrays, labels, dropped leaks, metrics; and the real-photo fixture end to end."""
import json
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from carbrands.data.images import load_for_model
from carbrands.data.pipeline import Epochs
from carbrands.data.prepared import Split, SplitWriter, downscaled, float_batches, load_classes, load_meta, load_split
from carbrands.models.inference import batched_probabilities
from carbrands.training.transfer import frozen_features
from stages import audit, prepare

ROOT = Path(__file__).resolve().parents[1]


def _corpus(root: Path) -> Path:
    """2 brands (5 train, 2 val, 2 test each), an exact copy of a train image in val and a
    resized re-encoded one in test, plus one unusable file."""
    rng = np.random.default_rng(7)
    for split, n in (("train", 5), ("val", 2), ("test", 2)):
        for brand in ("Zed", "Alpha Cars"):
            d = root / split / brand
            d.mkdir(parents=True)
            for i in range(n):
                small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
                Image.fromarray(small).resize((96, 48 + 8 * i), Image.Resampling.BICUBIC).save(d / f"{i}.jpg")
    shutil.copy(root / "train/Zed/0.jpg", root / "val/Zed/leak.jpg")
    src = Image.open(root / "train/Alpha Cars/1.jpg")
    src.resize((72, 42)).save(root / "test/Alpha Cars/leak.jpg", quality=75)
    (root / "val/Zed/broken.jpg").write_text("<html>oops</html>")
    return root


def _run_stages(data_dir: Path, work: Path, monkeypatch, **data) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update({"dir": str(data_dir), "image_size": 32, **data})
    work.mkdir(exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(work)
    audit.main()
    prepare.main()
    return work


def test_prepare_writes_arrays_labels_and_drops_leaks(tmp_path, monkeypatch):
    work = _run_stages(_corpus(tmp_path / "corpus"), tmp_path / "work", monkeypatch)
    prepared = work / "data/prepared"
    classes = load_classes(prepared)
    assert classes == ["Alpha Cars", "Zed"]                     # sorted: the one class order
    counts = {}
    for split in ("train", "val", "test"):
        s = load_split(prepared, split)
        assert s.images.dtype == np.uint8 and s.images.shape[1:] == (32, 32, 3)
        assert s.labels.dtype == np.int32 and len(s.paths) == len(s)
        # each row's label is the class folder its path came from
        assert [classes[k] for k in s.labels] == [p.split("/")[1] for p in s.paths]
        assert s.images.reshape(len(s), -1).std(axis=1).min() > 5   # real pictures, not blank rows
        counts[split] = len(s)
    assert counts == {"train": 10, "val": 4, "test": 4}               # both leaks and the HTML file gone
    assert not any("leak" in p for split in ("val", "test") for p in load_split(prepared, split).paths)
    meta = load_meta(prepared)
    assert meta["dropped_leaked"] == {"val": 1, "test": 1} and meta["counts"] == counts
    metrics = json.loads((work / "metrics/data.json").read_text())
    assert metrics == {"images": counts, "brands": len(classes), "unusable_files": 1,
                       "leaks_found": 2, "leaks_dropped": 2}
    details = json.loads((work / "details/data.json").read_text())
    assert details["prepared"]["dropped_leaked"] == {"val": 1, "test": 1}
    assert details["audit"]["verdicts"]["unusable"] == 1
    assert details["prepared"]["recommended_size"] == details["audit"]["recommended_size"]
    assert not list((work / "data").glob(".prepared*"))               # no temporary left behind


def test_leaks_are_kept_when_drop_leaked_is_false(tmp_path, monkeypatch):
    work = _run_stages(_corpus(tmp_path / "corpus"), tmp_path / "work", monkeypatch, drop_leaked=False)
    prepared = work / "data/prepared"
    assert len(load_split(prepared, "val")) == 5 and len(load_split(prepared, "test")) == 5
    assert load_meta(prepared)["dropped_leaked"] == {"val": 0, "test": 0}


@pytest.mark.fixture
def test_real_cars_end_to_end(real_cars, tmp_path, monkeypatch):
    work = _run_stages(real_cars, tmp_path / "work", monkeypatch, resize="crop")
    summary = json.loads((work / "data/audit/summary.json").read_text())
    assert summary["verdicts"]["ok"] == 74
    assert summary["formats"]["WEBP"] > 0 and summary["formats"]["PNG"] > 0
    assert summary["splits"]["test"]["origin"] == "derived" and summary["splits"]["val"]["origin"] == "original"
    prepared = work / "data/prepared"
    assert load_classes(prepared) == ["BMW", "Ferrari", "Lamborghini"]
    sizes = {s: len(load_split(prepared, s)) for s in ("train", "val", "test")}
    assert sizes["val"] == 15 and sizes["train"] + sizes["test"] == 59 and sizes["test"] >= 6
    test = load_split(prepared, "test")
    assert set(test.labels.tolist()) == {0, 1, 2}                     # stratified: every brand in test


def test_auto_image_size_is_the_audits_recommendation(tmp_path, monkeypatch):
    work = _run_stages(_corpus(tmp_path / "corpus"), tmp_path / "work", monkeypatch, image_size="auto")
    recommended = json.loads((work / "data/audit/summary.json").read_text())["recommended_size"]
    assert load_meta(work / "data/prepared")["image_size"] == recommended
    assert load_split(work / "data/prepared", "train").images.shape[1:] == (recommended, recommended, 3)


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_photos_of_any_size_and_aspect_are_prepared(tmp_path, mode):
    # real photos run from tens to thousands of pixels, in any aspect
    for i, (w, h) in enumerate([(12, 9), (3000, 40), (40, 2500), (1, 1), (4000, 3000)]):
        Image.new("RGB", (w, h), (i * 40, 100, 200)).save(tmp_path / f"{i}.jpg")
        image = load_for_model(tmp_path / f"{i}.jpg", 224, mode, 40_000_000)
        assert image.shape == (224, 224, 3) and image.dtype == np.uint8


def _resident_mb(path: Path) -> float:
    """How much of the file at `path` this process has mapped in (Linux's smaps)."""
    rss, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):   # a mapping's header, its file last
            inside = line.split()[-1] == str(path)
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
    return rss / 1024


def _read_slices(images):   # how any reader reads, without releasing: the control
    for start in range(0, len(images), 8):
        np.asarray(images[start:start + 8]).sum()


def _read_streamed(images):
    for _ in Epochs(images, np.zeros(len(images), np.int32), 8, 0, shuffle=False, streamed=True).dataset():
        pass


def _read_features(images):
    pooled = keras.Sequential([keras.Input(images.shape[1:]), keras.layers.GlobalAveragePooling2D()])
    frozen_features(pooled, images, 8, "train", (False, True))


READERS = {"plain slices (control)": _read_slices, "streamed input pipeline": _read_streamed,
           "cached features": _read_features,
           "predictions": lambda images: batched_probabilities(lambda x: x.mean(axis=(1, 2)), images, 3),
           "CNN's downscale": lambda images: downscaled(Split(images, np.zeros(len(images), np.int32), []), 2)}


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
@pytest.mark.parametrize("reader", READERS)
def test_readers_release_the_pages_they_map(tmp_path, reader):
    """A split read whole stays mapped in the process unless its reader releases the
    pages: the writer and the readers that go through a whole split (training,
    cached features, the CNN's downscale, evaluation's and export's predictions) do."""
    writer = SplitWriter(tmp_path / "train", 300, 128)   # 300 images of 128 px: 14 MB
    rng = np.random.default_rng(0)
    for row in range(300):
        writer.put(row, rng.integers(0, 256, (128, 128, 3), np.uint8), 0, f"{row}.jpg")
    file = tmp_path / "train/images.npy"
    assert _resident_mb(file) < 4, "the writer keeps what it wrote mapped"
    writer.close()
    images = load_split(tmp_path, "train").images
    READERS[reader](images)
    resident = _resident_mb(file)
    if reader.endswith("(control)"):
        assert resident > 10, f"only {resident:.1f} MB mapped: this test cannot see mapped pages"
    else:
        assert resident < 4, f"{resident:.1f} MB of the 14 MB file still mapped"


def test_float_batches_give_every_row_once_in_order_as_float32(tmp_path):
    images = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    np.save(tmp_path / "images.npy", images)
    batches = list(float_batches(np.load(tmp_path / "images.npy", mmap_mode="r"), 2))
    assert [start for start, _ in batches] == [0, 2, 4]
    assert all(batch.dtype == np.float32 for _, batch in batches)
    np.testing.assert_array_equal(np.concatenate([batch for _, batch in batches]), images)
