"""Work spread over worker processes: the audit's file inspection, prepare's
decoding and the synthesizer's drawing all go through `parallel_map`."""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterator

from carbrands.progress import Progress


def default_workers() -> int:
    """One worker per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def parallel_map(func, tasks: list, workers: int, label: str | None = None) -> Iterator:
    """func over tasks, in order, in `workers` processes (in-process when 1 or few tasks).
    With a label, a progress line (carbrands.progress) at most every 30 s.

    Chunks amortise the inter-process hand-over; a few chunks per worker keep both
    cores busy to the end."""
    progress = Progress(label, len(tasks), "files") if label else None
    for result in _map(func, tasks, workers):
        if progress:
            progress.update()
        yield result


def _map(func, tasks: list, workers: int) -> Iterator:
    if workers <= 1 or len(tasks) < 32:
        yield from map(func, tasks)
        return
    chunk = max(1, min(64, len(tasks) // (workers * 8)))
    # fork is fastest, but forking a process that runs TensorFlow's threads can hang
    # the children (a test session, a notebook): start clean workers there instead
    method = "spawn" if "tensorflow" in sys.modules else None
    with multiprocessing.get_context(method).Pool(workers) as pool:
        yield from pool.imap(func, tasks, chunksize=chunk)
