"""Stage `synthesize`: draw the built-in synthetic dataset (synth.out_dir) in the Kaggle layout.

Every image's randomness is derived from `seed` (see carbrands/data/synth.py), so the
stage needs no global seeding: the same params give the same bytes.
"""
from __future__ import annotations

from carbrands import params, stage
from carbrands.data import synth


def main() -> None:
    p = params.load()
    s = p["synth"]
    summary = synth.generate_dataset(s["out_dir"], s["brands"], s["per_brand"], p["seed"],
                                     s["planted_exact"], s["planted_near"], s["jpeg_quality"])
    counts = summary["images"]
    print(f"synthesize: {sum(counts.values())} images ({', '.join(f'{k}={v}' for k, v in counts.items())}) "
          f"of {len(summary['brands'])} brands, {s['planted_exact']} exact + {s['planted_near']} near planted "
          f"copies, in {summary['out_dir']} ({summary['seconds']:.1f} s on {summary['workers']} processes)")


if __name__ == "__main__":
    stage.run(main)
