"""Resuming a training stage that was killed (Ctrl-C, SIGTERM, SIGKILL, a lost machine).

After every epoch, fit writes one backup file, atomically (a temporary name, then
renamed): all the model's variables (weights, batch-norm statistics, the dropout
layers' seed states), the optimizer's (step count, moments, learning rate), early
stopping's and learning-rate reduction's state (wait, best, best weights,
cooldown), the history so far and the next epoch. Epoch e's data order and
augmentation seeds are a pure function of (seed, e) (carbrands/data/pipeline.py),
so a resumed run continues exactly where the killed one stopped and ends with the
same history and model as one never interrupted.

The backup sits in `.resume/<stage>/`, outside the stage's outputs (DVC deletes
those before a stage runs; `.resume` is ignored by git and DVC), and holds a
fingerprint of what the stage trains from: the params it reads, its input files
(names, sizes, modification times) and the project's code. A backup with another
fingerprint, or one that cannot be read, is discarded with one line and training
starts afresh. The stage removes it when it has written its outputs.

A stage with several fit calls (transfer's phases) names each; a phase that has
finished is kept in the backup as its history, and is not trained again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from carbrands.files import atomic_path
from carbrands.training import cluster

ROOT = Path(".resume")
FILE = "backup.npz"
_PROJECT = Path(__file__).resolve().parents[2]


def fingerprint(stage: str, params: dict, inputs: list[str | Path]) -> str:
    """A hash of what a stage's training depends on: its name, the params it reads,
    every file under `inputs` (relative name, size, modification time) and the code
    (carbrands/ and stages/)."""
    h = hashlib.sha256(json.dumps({"stage": stage, "params": params}, sort_keys=True, default=str).encode())
    for top in map(Path, inputs):
        for f in sorted([top] if top.is_file() else (p for p in top.rglob("*") if p.is_file())):
            st = f.stat()
            h.update(f"{f.as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for f in sorted([*(_PROJECT / "carbrands").rglob("*.py"), *(_PROJECT / "stages").glob("*.py")]):
        h.update(f.relative_to(_PROJECT).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class Backup:
    """The backup of one stage (and, in a multi-worker run, one worker: each keeps its
    own). Loaded when made: `state` is None when there is none to resume from."""

    def __init__(self, stage: str, fingerprint: str, root: str | Path = ROOT):
        self.stage, self.fingerprint = stage, fingerprint
        worker = cluster.name()
        self.dir = Path(root) / (f"{stage}.{worker}" if worker else stage)
        self.file = self.dir / FILE
        self.state, self.arrays = self._load()
        # finished phases: {phase: {"rows", "seconds", "train_seconds"}}
        self.done: dict = dict(self.state["done"]) if self.state else {}

    def _load(self) -> tuple[dict | None, dict]:
        if not self.file.exists():
            return None, {}
        try:
            with np.load(self.file, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            state = json.loads(arrays.pop("state").tobytes().decode())
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            return self._discard(f"it cannot be read ({type(e).__name__}: {e})")
        if state.get("fingerprint") != self.fingerprint:
            return self._discard("it was made with other params, data or code")
        return state, arrays

    def _discard(self, why: str) -> tuple[None, dict]:
        print(f"resume: discarding the backup in {self.dir}: {why}; training from the start", flush=True)
        self.remove()
        return None, {}

    def point(self, phase: str) -> dict | None:
        """For a phase about to train: its record when it finished before ({"finished": True,
        rows, seconds, train_seconds}); the state to continue from when the backup was
        taken in it (see fit); None: train it from the start."""
        if phase in self.done:
            return {"finished": True, **self.done[phase]}
        if self.state and self.state["phase"] == phase:
            return self.state
        return None

    def arrays_of(self, group: str) -> list[np.ndarray] | None:
        n = (self.state or {}).get("counts", {}).get(group, -1)
        return None if n < 0 else [self.arrays[f"{group}_{i}"] for i in range(n)]

    def save(self, phase: str, state: dict, arrays: dict[str, list | None]) -> None:
        """Write the state after an epoch of `phase` (atomically) and keep it as this
        backup's state; finished phases before it go with it."""
        state = {**state, "fingerprint": self.fingerprint, "phase": phase, "done": self.done,
                 "counts": {g: -1 if a is None else len(a) for g, a in arrays.items()}}
        payload = {f"{g}_{i}": np.asarray(v) for g, a in arrays.items() for i, v in enumerate(a or [])}
        payload["state"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
        with atomic_path(self.file) as tmp, open(tmp, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())   # on disk before it replaces the last good backup
        self.state, self.arrays = state, payload

    def finish_phase(self, phase: str, record: dict) -> None:
        """A phase has finished: later backups carry its record (rows and timings)."""
        self.done[phase] = record

    def remove(self) -> None:
        """The stage is done (or the backup unusable): remove it."""
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):   # .resume itself, when no other backup is left in it
            self.dir.parent.rmdir()
