"""From the audit to training-ready arrays: which images go into which split (usable
ones, minus val/test copies of train images), decoded once into data/prepared
(the format of carbrands/data/prepared.py)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from carbrands import files
from carbrands.data import audit
from carbrands.data.images import UnusableImage, load_for_model
from carbrands.data.layout import class_names
from carbrands.data.names import SPLITS
from carbrands.data.prepared import SplitWriter
from carbrands.errors import DataError
from carbrands.parallel import default_workers, parallel_map


@dataclass
class Selection:
    classes: list[str]               # the class order: a name's index is its label
    splits: dict[str, pd.DataFrame]  # manifest rows per split, in label order, then by path
    dropped: dict[str, int]          # val/test images left out as copies of train images

    @property
    def counts(self) -> dict[str, int]:
        return {s: len(rows) for s, rows in self.splits.items()}

    def labels(self, split: str) -> list[int]:
        return [self.classes.index(c) for c in self.splits[split]["class"]]


def headline(summary: dict, selection: Selection) -> dict:
    """The data numbers `dvc metrics show` lists (metrics/data.json): images per split as
    prepared, brands, unusable files, leaked val/test images found and dropped. The rest
    of the audit stays in the details file."""
    leaked = summary["duplicates"]["leaked_from_train"]
    return {"images": selection.counts, "brands": len(selection.classes),
            "unusable_files": summary["verdicts"]["unusable"],
            "leaks_found": sum(leaked.values()), "leaks_dropped": sum(selection.dropped.values())}


def read_audit(audit_dir: Path, data_dir: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The audit's manifest, duplicates and summary, refused when missing or about
    another dataset than data_dir."""
    if not (audit_dir / "manifest.csv").exists():
        raise DataError(f"{audit_dir}/manifest.csv is missing: run the `audit` stage first")
    summary = files.read_json(audit_dir / "summary.json")
    if summary["data_dir"] != data_dir:
        raise DataError(f"{audit_dir} describes {summary['data_dir']}, but data.dir is {data_dir}: "
                        "run `audit` again")
    return audit.read_manifest(audit_dir), audit.read_duplicates(audit_dir), summary


def select(manifest: pd.DataFrame, duplicates: pd.DataFrame, drop_leaked: bool) -> Selection:
    """The usable rows of each split, without val/test copies of train images when
    drop_leaked; every split must keep at least one image."""
    classes = class_names(manifest.to_dict("records"))
    leaked = audit.leaked_from_train(duplicates) if drop_leaked else set()
    ok = manifest[manifest["verdict"] == "ok"]
    dropped = {s: int(ok.loc[ok["split"] == s, "path"].isin(leaked).sum()) for s in ("val", "test")}
    kept = ok[~ok["path"].isin(leaked)]
    # rows in label order, then by path: the arrays come out grouped by class, reproducibly
    splits = {s: kept[kept["split"] == s].sort_values(
        ["class", "path"], key=lambda col: col.map(classes.index) if col.name == "class" else col) for s in SPLITS}
    for split, rows in splits.items():
        if rows.empty:
            raise DataError(f"split {split!r} has no usable images left (see the audit's summary.json)")
    return Selection(classes, splits, dropped)


def write(out_dir: Path, selection: Selection, data_dir: Path, image_size: int, resize: str,
          max_pixels: int) -> None:
    """Decode every selected image at image_size into out_dir (replaced as a whole),
    with classes.json and meta.json beside the splits."""
    load = partial(load_for_model, size=image_size, mode=resize, max_pixels=max_pixels)
    with files.atomic_path(out_dir) as tmp:
        for split, rows in selection.splits.items():
            _write_split(SplitWriter(tmp / split, len(rows), image_size), list(rows["path"]),
                         selection.labels(split), data_dir, load, f"prepare {split}")
        files.write_json(tmp / "classes.json", selection.classes)
        files.write_json(tmp / "meta.json", {"image_size": image_size, "resize": resize,
                                             "classes": len(selection.classes), "counts": selection.counts,
                                             "dropped_leaked": selection.dropped})


def _write_split(writer: SplitWriter, paths: list[str], labels: list[int], data_dir: Path, load,
                 progress_label: str) -> None:
    """Decode in worker processes, in order, straight into the memory-mapped array."""
    done = 0
    try:
        for image in parallel_map(load, [data_dir / q for q in paths], default_workers(), progress_label):
            writer.put(done, image, labels[done], paths[done])
            done += 1
    except UnusableImage as e:
        raise DataError(f"{data_dir / paths[done]} changed since the audit ({e}): rerun `audit`") from None
    writer.close()
