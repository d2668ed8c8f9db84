"""The whole DVC pipeline from a fresh copy of the project:

(a) wall time (and peak memory) of the default `dvc repro` from scratch;
(b) wall time of a no-op `dvc repro` right after;
(c) for one param of each params.yaml section: change it, ask `dvc status --json`
    which stages changed, compare with the stages that read that key (written
    down here by hand from the stage modules, so a wrong `params:` list in
    dvc.yaml shows up), then revert.

    .venv/bin/python bench/pipeline.py [--tiny] [--project DIR]

--tiny uses tiny params (the ones tests/test_pipeline_e2e.py uses). --project
reuses a copy made by an earlier run (where `dvc repro` already ran) and does
only (b) and (c).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402

REPRO_TARGET_S = 600
NOOP_TARGET_S = 3
# One key per params.yaml section -> the stages whose code reads it ("optimizers@*": every
# optimizer run and seed, optimizers@<run>-<seed>). Only these must report a change; what runs after them reruns only if
# their outputs change.
OPTIMIZER_RUNS = "optimizers@*"
EXPECTED = {
    # the optimizer runs take their seeds from optimizers.seeds (in their commands), not from `seed`
    "seed": ["synthesize", "audit", "augment_check", "train", "pretrained", "transfer", "evaluate@cnn",
             "evaluate@transfer"],
    "synth.jpeg_quality": ["synthesize"],
    "data.image_size": ["prepare"],
    "augment.zoom": ["augment_check", "train", "transfer", OPTIMIZER_RUNS],
    "train.dense_units": ["train", OPTIMIZER_RUNS],
    "train.deterministic": ["train", "transfer", OPTIMIZER_RUNS],   # the one train key transfer reads
    "transfer.dense_units": ["transfer"],
    "evaluate.bootstrap": ["evaluate@cnn", "evaluate@transfer", OPTIMIZER_RUNS],
    "optimizers.epochs": [OPTIMIZER_RUNS],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny params: the whole pipeline in a minute or two")
    ap.add_argument("--project", type=Path, help="a copy where `dvc repro` already ran: only (b) and (c)")
    args = ap.parse_args()

    result: dict = {"tiny": args.tiny}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        project = args.project.resolve() if args.project else fresh_copy(Path(tmp) / "project", args.tiny)
        if not args.project:
            print(f"(a) dvc repro from scratch in {project} ...", flush=True)
            result["repro"] = common.run_measured("dvc repro", ["dvc", "repro"], project).row()
        print("(b) no-op dvc repro ...", flush=True)
        result["noop_repro"] = common.run_measured("dvc repro (no-op)", ["dvc", "repro"], project).row()
        print("(c) params changes ...", flush=True)
        result["params_changes"] = params_changes(project)

    _print(result)
    common.save_json("pipeline", result, args.tiny)


def fresh_copy(dest: Path, tiny: bool) -> Path:
    """The project as a fresh clone holds it, committed to a new git repository."""
    return common.committed_copy(dest, common.TINY_PARAMS if tiny else None)


def params_changes(project: Path) -> list[dict]:
    params_path = project / "params.yaml"
    original = params_path.read_text()
    base = yaml.safe_load(original)
    runs = sorted(f"optimizers@{name}-{seed}" for name in base["optimizers"]["runs"]
                  for seed in base["optimizers"]["seeds"])
    downstream_of = _downstream(project)
    before = changed_stages(project)
    if before:
        raise SystemExit(f"dvc status reports changes before any params change: {sorted(before)} "
                         "(run `dvc repro` in the project first)")
    rows = []
    try:
        for key, expected in EXPECTED.items():
            p = yaml.safe_load(original)
            old = _get(p, key)
            new = _changed_value(old)
            _set(p, key, new)
            params_path.write_text(yaml.safe_dump(p, sort_keys=False))
            start = time.perf_counter()
            reported = changed_stages(project)
            seconds = time.perf_counter() - start
            params_path.write_text(original)
            want = sorted(s for e in expected for s in (runs if e == OPTIMIZER_RUNS else [e]))
            rows.append({"param": key, "change": f"{old} -> {new}", "dvc status reports": sorted(reported),
                         "expected": want, "match": sorted(reported) == want,
                         "may rerun after them": sorted(set().union(*(downstream_of[s] for s in reported))
                                                        - set(reported)) if reported else [],
                         "status seconds": round(seconds, 2)})
    finally:
        params_path.write_text(original)
    return rows


def changed_stages(project: Path) -> set[str]:
    return set(json.loads(common.run(["dvc", "status", "--json"], project)))


def _downstream(project: Path) -> dict[str, set[str]]:
    """Every stage -> the stages that (transitively) use its outputs, from `dvc dag`."""
    edges = re.findall(r'"([^"]+)" -> "([^"]+)"', common.run(["dvc", "dag", "--dot"], project))
    after: dict[str, set[str]] = {}
    for a, b in edges:
        after.setdefault(a, set()).add(b)
        after.setdefault(b, set())

    def closure(stage, seen):
        for nxt in after.get(stage, ()):
            if nxt not in seen:
                seen.add(nxt)
                closure(nxt, seen)
        return seen

    return {stage: closure(stage, set()) for stage in after}


def _changed_value(v):
    """A different valid value of the same type (params.py still accepts it)."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, float):
        return round(v + 0.05, 6)
    raise TypeError(f"no rule to change {v!r}")


def _get(p: dict, key: str):
    for part in key.split("."):
        p = p[part]
    return p


def _set(p: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        p = p[part]
    p[last] = value


def _short(stages: list[str]) -> str:
    """Stage names with matrix/foreach items folded: optimizers@{adam,sgd}."""
    groups: dict[str, list[str]] = {}
    for stage in stages:
        name, _, item = stage.partition("@")
        groups.setdefault(name, []).extend([item] if item else [])
    return ", ".join(n if not items else f"{n}@{items[0]}" if len(items) == 1 else f"{n}@{{{','.join(items)}}}"
                     for n, items in groups.items()) or "-"


def _print(result: dict) -> None:
    rows = [r for r in (result.get("repro"), result["noop_repro"]) if r]
    common.print_table("dvc repro (memory: largest process / whole tree)", rows,
                       ["name", "seconds", "max_rss_mb", "tree_pss_mb", "tree_anon_mb"])
    if "repro" in result:
        s = result["repro"]["seconds"]
        print(f"target full repro < {REPRO_TARGET_S} s: {s:.0f} s "
              f"({'met' if s < REPRO_TARGET_S else 'NOT met'}){' (tiny params)' if result['tiny'] else ''}")
    s = result["noop_repro"]["seconds"]
    print(f"target no-op repro < {NOOP_TARGET_S} s: {s:.1f} s ({'met' if s < NOOP_TARGET_S else 'NOT met'})")
    changes = result["params_changes"]
    rows = [{"param": r["param"], "change": r["change"], "dvc status reports": _short(r["dvc status reports"]),
             "as expected": "yes" if r["match"] else f"NO, expected {_short(r['expected'])}",
             "may rerun after them": _short(r["may rerun after them"])} for r in changes]
    common.print_table("One param per section changed: the stages `dvc status` reports vs the stages that read it",
                       rows)
    bad = [r["param"] for r in changes if not r["match"]]
    print(f"\n{len(changes) - len(bad)}/{len(changes)} params changes report exactly the expected stages"
          + (f"; mismatches: {', '.join(bad)}" if bad else ""))


if __name__ == "__main__":
    main()
