"""Helpers the tests share: a tiny prepared dataset, killing a training stage at a
known point, and running a benchmark at its tiny sizes. Temporary copies of the
project are devtools/projects.py's."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from carbrands.data.prepared import SplitWriter
from devtools.projects import ROOT


def write_tiny(prepared_dir: str | Path, classes: list[str], per_class: dict[str, int],
               image_size: int = 32, seed: int = 0) -> Path:
    """Write a small, learnable prepared dataset as `prepare` would (class k is brightest
    in colour channel k % 3, with a class-specific stripe): for tests of the stages
    after `prepare`."""
    rng = np.random.default_rng(seed)
    prepared_dir = Path(prepared_dir)
    for split, n in per_class.items():
        w = SplitWriter(prepared_dir / split, n * len(classes), image_size)
        for k in range(len(classes)):
            for i in range(n):
                img = rng.integers(0, 90, (image_size, image_size, 3))
                img[..., k % 3] += 120
                img[(k * 5) % image_size: (k * 5) % image_size + 4] = 250
                w.put(k * n + i, img.clip(0, 255).astype(np.uint8), k, f"{split}/{classes[k]}/{i}.jpg")
        w.close()
    (prepared_dir / "classes.json").write_text(json.dumps(classes))
    (prepared_dir / "meta.json").write_text(json.dumps({"image_size": image_size, "resize": "pad"}))
    return prepared_dir


# a training stage's line at the end of an epoch ("epoch 3/8  loss ..."), not the progress
# lines within one ("epoch 3: 40/47 batches ..."), which a slow or loaded machine also prints
_EPOCH_END = re.compile(r"epoch \d+/\d+ ")


def epoch_lines(out: str) -> list[str]:
    """The lines a training stage printed at the end of each epoch."""
    return [line for line in out.splitlines() if _EPOCH_END.match(line)]


def backup_epoch(file: Path) -> int:
    """The epoch a training stage's resume backup was taken after; 0 while there is none
    (it is replaced by a rename, so a reader sees the old file or the new one whole)."""
    try:
        with np.load(file) as z:
            return json.loads(z["state"].tobytes())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def kill_after_backup(proc: subprocess.Popen, file: Path, epoch: int, timeout: float = 300) -> str:
    """SIGKILL a training process from outside as soon as its backup of `epoch` exists
    (polled every 10 ms, well within the next epoch's time): a kill with no clean-up at
    a known point. Returns the process's output; fails if it ended or ran past timeout first."""
    deadline = time.monotonic() + timeout
    while backup_epoch(file) < epoch:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no backup of epoch {epoch} in {file}: {proc.communicate()[0][-3000:]}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=60)[0]
    assert backup_epoch(file) == epoch, f"killed too late: the backup is of epoch {backup_epoch(file)}"
    return out


def run_bench(name: str, out_dir: Path, *args: str) -> tuple[str, dict]:
    """Run bench/<name>.py --tiny: (what it printed, the figures it wrote as JSON)."""
    env = dict(os.environ, CARBRANDS_BENCH_OUT=str(out_dir), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, f"bench/{name}.py", "--tiny", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"bench/{name}.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout, json.loads((out_dir / f"{name}-tiny.json").read_text())
