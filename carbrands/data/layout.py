"""Finding a dataset's files, splits and classes in the Kaggle layout.

    <data.dir>/[one wrapper folder/]{train,val,test}/<Brand>/<files>   (val may be valid/validation)
    <data.dir>/<Brand>/<files>                                          (flat: no split folders)

Missing val/test splits are drawn from train, stratified per class and seeded.
Every file found gets an Entry, including the ones that are skipped (hidden and
system files, stray files beside the class folders or at the root), so the audit
can account for all of them. The class order is decided once, in class_names().
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from carbrands.errors import DataError

_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "test": "test", "testing": "test"}
_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "ehthumbs.db"}
_SYSTEM_DIRS = {"__macosx", ".ipynb_checkpoints", "$recycle.bin", "@eadir"}


@dataclass(frozen=True)
class Entry:
    path: str            # relative to data.dir, '/'-separated
    split: str = ""      # train | val | test ('' where unknown)
    cls: str = ""        # brand ('' where unknown)
    origin: str = ""     # original (from a split folder) | derived (drawn by the seeded split)
    skip: str = ""       # reason the file is not a candidate image; '' for candidates


@dataclass
class Layout:
    data_dir: Path
    root: str                                   # dataset root relative to data_dir ('.' if the same)
    entries: list[Entry]
    empty_class_folders: list[str] = field(default_factory=list)   # 'split/Brand'
    derived_splits: list[str] = field(default_factory=list)

    @property
    def candidates(self) -> list[Entry]:
        return [e for e in self.entries if not e.skip]


def is_hidden_or_system(name: str) -> bool:
    lower = name.lower()
    return name.startswith(".") or lower in _SYSTEM_FILES or lower in _SYSTEM_DIRS


def discover(data_dir: str | Path, val_fraction: float, test_fraction: float, seed: int) -> Layout:
    """Every file under data_dir with its split, class and origin, or the reason it is skipped."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data.dir {data_dir} is not a folder: point data.dir in params.yaml at the dataset")
    root = _dataset_root(data_dir)
    entries: list[Entry] = []
    empty: list[str] = []
    # files above the dataset root (beside a wrapper folder) are not part of it
    for outer in _parents_between(data_dir, root):
        entries += [Entry(_rel(f, data_dir), skip=_skip_reason(f.name, "file at the dataset root"))
                    for f in sorted(outer.iterdir()) if f.is_file()]

    split_dirs = _split_dirs(root)
    if split_dirs:
        groups = {s: {} for s in split_dirs}
        for child in sorted(root.iterdir()):
            if child.is_file():
                entries.append(Entry(_rel(child, data_dir), skip=_skip_reason(child.name, "file at the dataset root")))
            elif child not in split_dirs.values():
                reason = ("inside a hidden or system folder" if is_hidden_or_system(child.name)
                          else f"folder {child.name!r} is not a split (train, val, test)")
                entries += [Entry(_rel(f, data_dir), skip=reason) for f in _walk(child)]
        for split, folder in split_dirs.items():
            entries += _read_split(folder, split, data_dir, groups[split], empty)
    else:
        groups = {"train": {}}
        entries += _read_split(root, "train", data_dir, groups["train"], empty, flat=True)

    if split_dirs and "train" not in split_dirs:
        raise DataError(f"{root} has {', '.join(d.name for d in split_dirs.values())} but no train folder")
    train_classes = {c for c, files in groups["train"].items() if files}
    for split in ("val", "test"):
        missing = sorted(c for c, files in groups.get(split, {}).items() if files and c not in train_classes)
        if missing:
            raise DataError(f"class {missing[0]!r} has images in {split} but no folder in train "
                            f"({len(missing)} such class(es)): every brand needs training images")

    derived = [s for s in ("val", "test") if s not in groups]
    fractions = {"val": val_fraction, "test": test_fraction}
    assigned = _stratified_split(groups["train"], {s: fractions[s] for s in derived}, seed)
    flat = not split_dirs
    entries = [_assign(e, assigned, flat) for e in entries]
    return Layout(data_dir=data_dir, root=_rel(root, data_dir) or ".", entries=entries,
                  empty_class_folders=sorted(empty), derived_splits=derived)


def class_names(rows: Iterable[dict]) -> list[str]:
    """THE class order: sorted names of the train classes with at least one usable image.

    rows: manifest rows (mappings with split, class, verdict). The index of a name is
    its label everywhere (prepare writes it to classes.json; later stages read that)."""
    usable = [(r["split"], r["class"]) for r in rows if r["verdict"] == "ok"]
    names = sorted({c for s, c in usable if s == "train"})
    if not names:
        raise DataError("no usable training images found: check data.dir and data/audit/manifest.csv")
    orphans = sorted({(s, c) for s, c in usable if s != "train" and c not in names})
    if orphans:
        split, cls = orphans[0]
        raise DataError(f"class {cls!r} has usable images in {split} but none in train "
                        f"({len(orphans)} such split/class pair(s)): every brand needs training images")
    return names


# -- helpers -----------------------------------------------------------------

def _rel(path: Path, data_dir: Path) -> str:
    rel = path.relative_to(data_dir).as_posix()
    return "" if rel == "." else rel


def _subdirs(folder: Path) -> list[Path]:
    return [d for d in sorted(folder.iterdir()) if d.is_dir()]


def _split_dirs(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in _subdirs(folder):
        split = _SPLIT_ALIASES.get(d.name.lower())
        if split is None:
            continue
        if split in found:
            raise DataError(f"{folder}: both {found[split].name!r} and {d.name!r} look like the {split} split; "
                            "keep one")
        found[split] = d
    return found


def _dataset_root(data_dir: Path) -> Path:
    """Descend through single wrapper folders (as unzipping often leaves) to the split folders.

    A lone folder holding only files is a brand of a flat dataset, not a wrapper."""
    root = data_dir
    for _ in range(5):
        if _split_dirs(root):
            return root
        visible = [d for d in _subdirs(root) if not is_hidden_or_system(d.name)]
        if len(visible) != 1 or not _subdirs(visible[0]):
            return root
        root = visible[0]
    return root


def _parents_between(data_dir: Path, root: Path) -> list[Path]:
    out, d = [], root
    while d != data_dir:
        d = d.parent
        out.append(d)
    return out


def _walk(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _skip_reason(name: str, otherwise: str) -> str:
    return "hidden or system file" if is_hidden_or_system(name) else otherwise


def _read_split(folder: Path, split: str, data_dir: Path, classes: dict, empty: list,
                flat: bool = False) -> list[Entry]:
    entries = []
    for child in sorted(folder.iterdir()):
        if child.is_file():
            where = "file at the dataset root" if flat else "stray file beside the class folders"
            entries.append(Entry(_rel(child, data_dir), split, skip=_skip_reason(child.name, where)))
            continue
        if is_hidden_or_system(child.name):
            entries += [Entry(_rel(f, data_dir), split, skip="inside a hidden or system folder")
                        for f in _walk(child)]
            continue
        files = []
        for f in _walk(child):
            parts = f.relative_to(child).parts
            if any(is_hidden_or_system(p) for p in parts[:-1]):
                entries.append(Entry(_rel(f, data_dir), split, child.name, skip="inside a hidden or system folder"))
            elif is_hidden_or_system(f.name):
                entries.append(Entry(_rel(f, data_dir), split, child.name, skip="hidden or system file"))
            else:
                files.append(_rel(f, data_dir))
                entries.append(Entry(files[-1], split, child.name, "original"))
        classes[child.name] = files
        if not files:
            empty.append(f"{split}/{child.name}")
    return entries


def _stratified_split(train: dict[str, list[str]], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Move a seeded, per-class share of train files to each missing split.

    Each class is shuffled with its own generator (seed + class name), so adding or
    removing one brand does not reshuffle the others. Train keeps at least one file."""
    moved: dict[str, str] = {}
    if not fractions:
        return moved
    for cls, files in sorted(train.items()):
        rng = np.random.default_rng([seed, zlib.crc32(cls.encode())])
        order = [files[i] for i in rng.permutation(len(files))]
        start = 0
        for split, fraction in fractions.items():
            n = min(int(round(len(files) * fraction)), max(0, len(files) - 1 - start))
            for f in order[start:start + n]:
                moved[f] = split
            start += n
    return moved


def _assign(entry: Entry, moved: dict[str, str], flat: bool) -> Entry:
    if entry.skip or entry.split != "train":
        return entry
    if entry.path in moved:
        return replace(entry, split=moved[entry.path], origin="derived")
    # in a flat folder no split came from the disk, train included
    return replace(entry, origin="derived") if flat else entry
