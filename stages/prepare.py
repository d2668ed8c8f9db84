"""Stage `prepare`: decode each usable image once into training-ready arrays.

Reads the audit, keeps the `ok` rows, drops val/test images that copy a train image
(data.drop_leaked), and writes data/prepared/ (carbrands/data/prepared.py format)
plus metrics/data.json (a few headline numbers) and details/data.json (the audit
summary and what was prepared).
"""
from __future__ import annotations

from pathlib import Path

from carbrands import files, params, paths, stage
from carbrands.data import selection


def main() -> None:
    d = params.load()["data"]
    manifest, duplicates, summary = selection.read_audit(paths.AUDIT, d["dir"])
    chosen = selection.select(manifest, duplicates, d["drop_leaked"])
    size = summary["recommended_size"] if d["image_size"] == "auto" else d["image_size"]
    selection.write(paths.PREPARED, chosen, Path(d["dir"]), size, d["resize"], d["max_image_pixels"])
    counts, dropped = chosen.counts, chosen.dropped
    files.write_json(paths.DATA_METRICS, selection.headline(summary, chosen))
    files.write_json(paths.DATA_DETAILS, {"audit": summary, "prepared": {
        "image_size": size, "resize": d["resize"], "counts": counts,
        "dropped_leaked": dropped, "recommended_size": summary["recommended_size"]}})
    print(f"prepare: {size}x{size}{' (auto: the audit recommends it)' if d['image_size'] == 'auto' else ''} "
          f"({d['resize']}), "
          + ", ".join(f"{s}={n}" for s, n in counts.items())
          + (f"; dropped {dropped['val']} val and {dropped['test']} test images that copy a train image"
             if d["drop_leaked"] else "; leaked images kept (data.drop_leaked: false)"))


if __name__ == "__main__":
    stage.run(main)
