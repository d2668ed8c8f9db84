"""Stage `audit`: audit every file under data.dir (verdicts, sizes, hashes, leakage).

Writes data/audit/{manifest.csv, duplicates.csv (leaks), label_conflicts.csv, lookalikes.csv,
summary.json} and plots/data/
(class_distribution.csv for `dvc plots`, and PNGs). details/data.json is written
by `prepare`, which merges this summary in (DVC allows one writer per file).
"""
from __future__ import annotations

from carbrands import files, params, paths, stage
from carbrands.data import audit, audit_figures
from carbrands.data.layout import class_names, discover
from carbrands.data.planted import planted_summary


def main() -> None:
    p = params.load()
    d = p["data"]
    # the only randomness (derived splits, sample choice) uses generators seeded from p["seed"]
    layout = discover(d["dir"], d["val_fraction"], d["test_fraction"], p["seed"])
    manifest = audit.inspect_all(layout, d["max_image_pixels"])
    leakage = audit.find_duplicates(manifest, d["near_duplicate_distance"], layout.data_dir, d["max_image_pixels"],
                                    d["near_duplicate_inlier_share"], d["near_duplicate_similarity"])
    manifest["copy_check"] = manifest["path"].map(leakage.checks).fillna("")
    summary = audit.summarize(layout, manifest, leakage, d["resize"], audit.read_planted(layout))

    with files.atomic_path(paths.AUDIT) as tmp:
        files.write_csv(tmp / "manifest.csv", manifest)
        files.write_csv(tmp / "duplicates.csv", leakage.copies)
        files.write_csv(tmp / "label_conflicts.csv", leakage.conflicts)
        files.write_csv(tmp / "lookalikes.csv", leakage.lookalikes)
        files.write_json(tmp / "summary.json", summary)

    table = audit.class_distribution(manifest)
    with files.atomic_path(paths.AUDIT_PLOTS) as tmp:
        files.write_csv(tmp / "class_distribution.csv", table)
        audit_figures.class_distribution(table, tmp / "class_distribution.png")
        audit_figures.samples(manifest, layout.data_dir, tmp / "samples.png", p["seed"], d["max_image_pixels"])
        audit_figures.image_sizes(manifest, summary["recommended_size"], tmp / "image_sizes.png")
        audit_figures.leakage_pairs(leakage.copies, layout.data_dir, tmp / "leakage_pairs.png", d["max_image_pixels"])

    _report(summary)
    # fail now (the audit files are written, for a look) rather than in `prepare`
    class_names(manifest.to_dict("records"))


def _report(s: dict) -> None:
    v, dup = s["verdicts"], s["duplicates"]
    print(f"audit: {s['files']} files: {v['ok']} usable, {v['unusable']} unusable, {v['skipped']} skipped; "
          f"{s['classes']} classes; splits "
          + ", ".join(f"{k}={x['images']} ({x['origin']})" for k, x in s["splits"].items()))
    print(f"audit: {dup['cross_split_pairs']} cross-split duplicate pairs ({dup['cross_split_exact']} exact, "
          f"{dup['cross_split_near']} near), {dup['label_conflicts']} label conflicts (copies under two brands), "
          f"{dup['lookalikes_not_copies']} look-alike pairs found not to be copies; "
          f"recommended input size {s['recommended_size']}px")
    if "planted" in s:
        print(f"audit: {planted_summary(s['planted'])}")


if __name__ == "__main__":
    stage.run(main)
