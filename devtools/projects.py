"""Temporary copies of the project with tiny params, and commands run in them: what
the tests (the end-to-end `dvc repro`) and the benchmarks (bench/) both build on.

It lives here, not in tests/ or bench/, so that neither imports the other: the
benchmarks do not depend on the tests, nor the tests on the benchmarks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from carbrands.files import write_text

ROOT = Path(__file__).resolve().parents[1]   # the checkout this module is in

# Tiny params under which every stage runs in a minute or two (the end-to-end test
# and `bench/pipeline.py --tiny` use them). The CNN keeps its default layout and gets
# enough cars and epochs to learn 3 brands well above chance: with 14 cars a brand
# at 32 px it stayed at chance; with 50 it scored 34/44 test cars at 32 px (37/44 at
# 64 px, where train, transfer and evaluate took 1.4 times as long).
TINY_PARAMS = {
    "synth": {"brands": 3, "per_brand": {"train": 50, "val": 10, "test": 15},
              "planted_exact": 1, "planted_near": 1},
    "data": {"image_size": 32},
    "train": {"epochs": 30, "batch_size": 16},
    "transfer": {"weights": "none", "dense_units": 16, "batch_size": 16,
                 "head": {"epochs": 1}, "fine_tune": {"epochs": 1}},
    "evaluate": {"bootstrap": 50, "grid_images": 4, "gradcam_images": 2},
    # one seed: each optimizer run is a process that spends most of its time starting
    # TensorFlow; tests/test_comparison.py covers the ranking over several seeds
    "optimizers": {"epochs": 1, "seeds": [42]},
}


def merge(base: dict, override: dict) -> dict:
    """Deep-merge override into base (in place) and return base."""
    for k, v in override.items():
        base[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def project_params(overrides: dict) -> dict:
    """The project's params.yaml with overrides merged in."""
    return merge(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)


def write_params(project: Path, params: dict) -> None:
    write_text(project / "params.yaml", yaml.safe_dump(params, sort_keys=False))


def copy_project(dest: Path) -> Path:
    """Copy the files git tracks or would track (untracked but not ignored) to dest,
    as a fresh clone would hold them: no data, no models, no DVC cache."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def committed_copy(dest: Path, overrides: dict | None = None) -> Path:
    """copy_project, with overrides merged into its params.yaml, committed to a new git
    repository of its own (DVC compares against it)."""
    dest.mkdir(parents=True, exist_ok=True)
    copy_project(dest)
    if overrides:
        write_params(dest, project_params(overrides))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "copy"]):
        run(cmd, dest)
    return dest


def env(project: Path = ROOT) -> dict:
    """The environment for commands in `project` (this checkout, a copy of it, or a bare
    folder with only a params.yaml): this interpreter's bin first on PATH (dvc's stage
    commands call `python`); on PYTHONPATH the project first, so a copy runs its own
    code, not this checkout's, and this checkout after it, for a bare folder."""
    return dict(os.environ,
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                PYTHONPATH=os.pathsep.join(dict.fromkeys(filter(None, [
                    str(project), str(ROOT), os.environ.get("PYTHONPATH")]))),
                TF_CPP_MIN_LOG_LEVEL="2")


def run(args: list[str], cwd: Path) -> str:
    """Run a command; return its stdout, or raise with its output when it fails."""
    proc = subprocess.run(args, cwd=cwd, env=env(Path(cwd)), capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout
