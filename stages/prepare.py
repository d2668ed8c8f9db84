"""Stage `prepare`: decode each usable image once into training-ready arrays.

Reads the audit (data/audit), keeps the `ok` rows, drops val/test images that copy
a train image (data.drop_leaked), and writes data/prepared/ (carbrands/prepared.py
format) plus metrics/data.json (the audit summary and what was prepared).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from carbrands import audit, io, params, stage
from carbrands.errors import DataError
from carbrands.images import UnusableImage, load_for_model
from carbrands.layout import SPLITS, class_names
from carbrands.parallel import default_workers, parallel_map
from carbrands.prepared import SplitWriter

AUDIT_DIR = Path("data/audit")
PREPARED_DIR = Path("data/prepared")


def main() -> None:
    p = params.load()
    d = p["data"]
    if not (AUDIT_DIR / "manifest.csv").exists():
        raise DataError(f"{AUDIT_DIR}/manifest.csv is missing: run the `stats` stage first")
    manifest = audit.read_manifest(AUDIT_DIR)
    summary = io.read_json(AUDIT_DIR / "summary.json")
    if summary["data_dir"] != d["dir"]:
        raise DataError(f"{AUDIT_DIR} describes {summary['data_dir']}, but data.dir is {d['dir']}: run `stats` again")
    classes = class_names(manifest.to_dict("records"))
    leaked = audit.leaked_from_train(audit.read_duplicates(AUDIT_DIR)) if d["drop_leaked"] else set()

    ok = manifest[manifest["verdict"] == "ok"]
    dropped = {s: int(ok.loc[ok["split"] == s, "path"].isin(leaked).sum()) for s in ("val", "test")}
    kept = ok[~ok["path"].isin(leaked)]
    label = {c: i for i, c in enumerate(classes)}
    splits = {s: kept[kept["split"] == s].sort_values(["class", "path"], key=_class_key(label)) for s in SPLITS}
    for split, rows in splits.items():
        if rows.empty:
            raise DataError(f"split {split!r} has no usable images left (see {AUDIT_DIR}/summary.json)")

    load = partial(load_for_model, size=d["image_size"], mode=d["resize"], max_pixels=d["max_image_pixels"])
    data_dir = Path(d["dir"])
    counts = {s: len(rows) for s, rows in splits.items()}
    with io.atomic_path(PREPARED_DIR) as tmp:
        for split, rows in splits.items():
            _write_split(SplitWriter(tmp / split, len(rows), d["image_size"]), list(rows["path"]),
                         [label[c] for c in rows["class"]], data_dir, load)
        io.write_json(tmp / "classes.json", classes)
        io.write_json(tmp / "meta.json", {"image_size": d["image_size"], "resize": d["resize"], "classes": len(classes),
                                          "counts": counts, "dropped_leaked": dropped})

    io.write_json("metrics/data.json", {"audit": summary, "prepared": {
        "image_size": d["image_size"], "resize": d["resize"], "counts": counts,
        "dropped_leaked": dropped, "recommended_size": summary["recommended_size"]}})
    print(f"prepare: {d['image_size']}x{d['image_size']} ({d['resize']}), "
          + ", ".join(f"{s}={n}" for s, n in counts.items())
          + (f"; dropped {dropped['val']} val and {dropped['test']} test images that copy a train image"
             if d["drop_leaked"] else "; leaked images kept (data.drop_leaked: false)"))


def _write_split(writer: SplitWriter, paths: list[str], labels: list[int], data_dir: Path, load) -> None:
    """Decode in worker processes, in order, straight into the memory-mapped array."""
    done = 0
    try:
        for image in parallel_map(load, [data_dir / q for q in paths], default_workers()):
            writer.put(done, image, labels[done], paths[done])
            done += 1
    except UnusableImage as e:
        raise DataError(f"{data_dir / paths[done]} changed since the audit ({e}): rerun `stats`") from None
    writer.close()


def _class_key(label: dict):
    # rows in label order, then by path: the arrays come out grouped by class, reproducibly
    return lambda col: col.map(label) if col.name == "class" else col


if __name__ == "__main__":
    stage.run(main)
