"""Finding splits and classes: fallbacks, wrapper folders, skipped files, bad layouts."""
from collections import Counter

import pytest

from carbrands.data.layout import class_names, discover
from carbrands.errors import DataError


def _touch(root, *paths):
    for p in paths:
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")


def _by_path(layout):
    return {e.path: e for e in layout.entries}


def test_train_only_gets_a_stratified_seeded_val_and_test(tmp_path):
    _touch(tmp_path, *[f"train/{b}/{i}.jpg" for b in ("Alpha", "Beta") for i in range(20)])
    layout = discover(tmp_path, 0.2, 0.1, seed=1)
    counts = Counter((e.split, e.cls) for e in layout.candidates)
    for brand in ("Alpha", "Beta"):
        assert counts["val", brand] == 4 and counts["test", brand] == 2 and counts["train", brand] == 14
    assert layout.derived_splits == ["val", "test"]
    origins = {(e.split, e.origin) for e in layout.candidates}
    assert origins == {("train", "original"), ("val", "derived"), ("test", "derived")}
    again = discover(tmp_path, 0.2, 0.1, seed=1)
    assert again.entries == layout.entries                      # deterministic
    other = discover(tmp_path, 0.2, 0.1, seed=2)
    assert {e.path for e in other.candidates if e.split == "val"} != \
        {e.path for e in layout.candidates if e.split == "val"}  # and the seed matters


def test_existing_val_is_kept_and_only_test_is_derived(tmp_path):
    _touch(tmp_path, *[f"train/A/{i}.jpg" for i in range(10)], "Validation/A/v.jpg")
    layout = discover(tmp_path, 0.2, 0.3, seed=0)
    entries = _by_path(layout)
    assert entries["Validation/A/v.jpg"].split == "val" and entries["Validation/A/v.jpg"].origin == "original"
    assert layout.derived_splits == ["test"]
    assert Counter(e.split for e in layout.candidates) == {"train": 7, "test": 3, "val": 1}


def test_flat_folder_gets_all_three_splits(tmp_path):
    _touch(tmp_path, *[f"{b}/{i}.jpg" for b in ("A", "B", "C") for i in range(10)], "README.md")
    layout = discover(tmp_path, 0.2, 0.2, seed=0)
    assert Counter(e.split for e in layout.candidates) == {"train": 18, "val": 6, "test": 6}
    assert {e.origin for e in layout.candidates} == {"derived"}
    assert _by_path(layout)["README.md"].skip == "file at the dataset root"


def test_wrapper_folder_is_descended_and_paths_stay_relative_to_data_dir(tmp_path):
    top = "Car Brand Classification Dataset"
    _touch(tmp_path, f"{top}/train/A/1.jpg", f"{top}/valid/A/2.jpg", f"{top}/test/A/3.jpg", "notes.txt",
           "__MACOSX/._x")
    layout = discover(tmp_path, 0.1, 0.1, seed=0)
    assert layout.root == top
    splits = {e.path: e.split for e in layout.candidates}
    assert splits == {f"{top}/train/A/1.jpg": "train", f"{top}/valid/A/2.jpg": "val", f"{top}/test/A/3.jpg": "test"}
    assert layout.derived_splits == []
    assert _by_path(layout)["notes.txt"].skip


def test_hidden_system_and_stray_files_are_skipped_with_a_reason(tmp_path):
    _touch(tmp_path, "train/A/1.jpg", "train/A/.DS_Store", "train/A/Thumbs.db", "train/A/.ipynb_checkpoints/1.jpg",
           "train/notes.txt", "train/B/2.jpg", "val/A/3.jpg", "test/A/4.jpg", "planted.csv", "__MACOSX/train/A/._1.jpg",
           "extra/A/5.jpg")
    (tmp_path / "train" / "Empty").mkdir()
    layout = discover(tmp_path, 0.1, 0.1, seed=0)
    entries = _by_path(layout)
    assert len(entries) == 11                                      # every file is accounted for
    assert {e.path for e in layout.candidates} == {"train/A/1.jpg", "train/B/2.jpg", "val/A/3.jpg", "test/A/4.jpg"}
    assert entries["train/A/.DS_Store"].skip == "hidden or system file"
    assert entries["train/A/Thumbs.db"].skip == "hidden or system file"
    assert entries["train/A/.ipynb_checkpoints/1.jpg"].skip == "inside a hidden or system folder"
    assert entries["train/notes.txt"].skip == "stray file beside the class folders"
    assert entries["planted.csv"].skip == "file at the dataset root"
    assert entries["__MACOSX/train/A/._1.jpg"].skip == "inside a hidden or system folder"
    assert "not a split" in entries["extra/A/5.jpg"].skip
    assert layout.empty_class_folders == ["train/Empty"]


def test_class_missing_from_train_is_an_error(tmp_path):
    _touch(tmp_path, "train/A/1.jpg", "val/A/2.jpg", "val/Zeta/3.jpg")
    with pytest.raises(DataError, match="'Zeta' has images in val but no folder in train"):
        discover(tmp_path, 0.1, 0.1, seed=0)


def test_class_names_are_the_sorted_usable_train_classes():
    rows = [{"split": "train", "class": "b", "verdict": "ok"}, {"split": "train", "class": "A", "verdict": "ok"},
            {"split": "train", "class": "C", "verdict": "unusable"}, {"split": "val", "class": "A", "verdict": "ok"}]
    assert class_names(rows) == ["A", "b"]
    with pytest.raises(DataError, match="'C' has usable images in val but none in train"):
        class_names(rows + [{"split": "val", "class": "C", "verdict": "ok"}])
    with pytest.raises(DataError, match="no usable training images"):
        class_names([{"split": "train", "class": "A", "verdict": "unusable"}])
