"""Helpers shared by the benchmarks: temporary projects, measured subprocesses,
result tables and JSON.

A benchmark step runs as its own process (`python -m stages.<name>` in a
temporary project directory), so its wall time and memory are its own and no
state leaks between steps.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from carbrands import files  # noqa: E402  (needs ROOT on sys.path when run as a script)

# temporary projects are built as the tests build theirs (devtools/projects.py)
from devtools.projects import TINY_PARAMS, committed_copy, env, project_params, run, write_params  # noqa: E402, F401

# where the JSON results go; the tests point it at a temporary directory
OUT_DIR = Path(os.environ.get("CARBRANDS_BENCH_OUT", ROOT / "bench" / "out"))
MB = 1024**2


# -- measured steps --------------------------------------------------------------------

@dataclass
class Step:
    name: str
    seconds: float
    max_rss_mb: float       # the largest single process of the step (exact, from the kernel)
    tree_pss_mb: float      # the whole process tree at its peak (PSS, read after new highs of its resident set)
    tree_anon_mb: float     # its anonymous memory at its peak (sampled every 0.1 s): without file-backed
                            # pages (memory-mapped arrays, code)
    images: int = 0

    @property
    def images_per_second(self) -> float | None:
        return round(self.images / self.seconds, 1) if self.images and self.seconds else None

    def row(self) -> dict:
        return {**asdict(self), "images_per_second": self.images_per_second}


def run_measured(name: str, args: list[str], cwd: Path, images: int = 0) -> Step:
    """Run a command as a child process; measure its wall time and peak memory.

    Memory, since a step may fan out to worker processes: max_rss_mb is the
    largest resident set of any one process of the tree (ru_maxrss as wait4
    reports it); tree_pss_mb the sampled peak of the sum of proportional set
    sizes over the whole tree (shared pages counted once); tree_anon_mb the sampled
    peak of its anonymous memory: pages of a memory-mapped file being written count
    in tree_pss_mb, not there, since the kernel can drop them once written back.
    The sampling costs the step little (_TreeSampler)."""
    log = cwd / f".bench-{re.sub(r'[^A-Za-z0-9@.]+', '-', name)}.log"
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env(Path(cwd)), stdout=out, stderr=subprocess.STDOUT)
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{name}: {' '.join(map(str, args))} failed (exit {proc.returncode}):\n"
                         f"{log.read_text()[-4000:]}")
    step = Step(name, round(seconds, 2), round(usage.ru_maxrss / 1024, 1), round(sampler.peak / MB, 1),
                round(sampler.peak_anon / MB, 1), images)
    print(f"  {name}: {step.seconds:.1f} s, peak {step.tree_pss_mb:.0f} MB "
          f"({step.tree_anon_mb:.0f} MB anonymous)", flush=True)
    return step


# the PSS is read at most this often (seconds), and only after a new high of the resident set
PSS_EVERY = 0.5


class _TreeSampler(threading.Thread):
    """Peaks of the memory of a process and its descendants (Linux /proc), sampled
    every `interval` s: anonymous memory from each process's status counters
    (RssAnon, kept up to date by the kernel: cheap to read), and the proportional
    set size (PSS: shared pages counted once) from smaps_rollup, read only after the
    tree's resident set has reached a new high, at most every PSS_EVERY s (PSS is at
    most the resident set, so its peak comes with a new high of it). smaps_rollup
    walks every page of a process under the process' memory lock: 25 ms for a 2 GB
    TensorFlow process, so read every 0.1 s it took a quarter of a core from the
    stage it measured and slowed a 10-minute transfer stage by a quarter."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.peak_anon = pid, interval, 0, 0
        self._done = threading.Event()

    def run(self):
        high = read_high = 0   # the tree's highest resident set, and that when PSS was last read
        read_time = -PSS_EVERY
        while not self._done.is_set():
            pids = tree_pids(self.pid)
            resident, anon = 0, 0
            for p in pids:
                fields = _proc_kb_fields(p, "status")
                resident += fields.get("VmRSS", 0)   # RssAnon + RssFile + RssShmem
                anon += fields.get("RssAnon", 0)
            self.peak_anon, high = max(self.peak_anon, anon), max(high, resident)
            now = time.monotonic()
            if high > read_high and now - read_time >= PSS_EVERY:
                self.peak = max(self.peak, sum(_proc_kb_fields(p, "smaps_rollup").get("Pss", 0) for p in pids))
                read_high, read_time = high, now
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join()


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants."""
    children = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(children.get(p, []))
    return pids


def _proc_kb_fields(pid: int, name: str) -> dict[str, int]:
    """The kB fields of /proc/<pid>/<name> (status, smaps_rollup), in bytes; {} once
    the process has ended."""
    try:
        lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
    except OSError:
        return {}
    fields = (line.split(":", 1) for line in lines if line.endswith(" kB"))
    return {k: int(v.split()[0]) * 1024 for k, v in fields}


# -- a prepared synthetic dataset -------------------------------------------------------

def build_prepared(project: Path, brands: int, per_brand: dict, image_size: int, planted: int = 0) -> list[Step]:
    """Generate a synthetic dataset in project/data/synthetic, audit it and prepare it
    at image_size, each step a measured process; returns the steps."""
    project.mkdir(parents=True, exist_ok=True)
    p = project_params({"data": {"dir": "data/synthetic", "image_size": image_size},
                        "synth": {"out_dir": "data/synthetic", "brands": brands, "per_brand": per_brand,
                                  "planted_exact": planted, "planted_near": planted}})
    write_params(project, p)
    n = brands * sum(per_brand.values())
    return [
        run_measured("synthesize", [sys.executable, "-m", "stages.synthesize"], project, n),
        run_measured("audit", [sys.executable, "-m", "stages.audit"], project, n),
        run_measured(f"prepare@{image_size}", [sys.executable, "-m", "stages.prepare"], project, n),
    ]


def prepare_again(project: Path, image_size: int, n_images: int) -> Step:
    """Re-run `prepare` at another size on the same audited data."""
    p = yaml.safe_load((project / "params.yaml").read_text())
    p["data"]["image_size"] = image_size
    write_params(project, p)
    return run_measured(f"prepare@{image_size}", [sys.executable, "-m", "stages.prepare"], project, n_images)


# -- output ------------------------------------------------------------------------------

def print_table(title: str, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, (list, tuple, set)):
        return ", ".join(map(str, v)) or "-"
    return str(v)


def save_json(name: str, data: dict, tiny: bool) -> Path:
    """bench/out/<name>.json, or <name>-tiny.json: a --tiny run (the tests) keeps the real figures."""
    path = OUT_DIR / f"{name}{'-tiny' if tiny else ''}.json"
    files.write_json(path, data)
    print(f"\nwritten: {path}")
    return path
