"""Progress lines for long work: the count done, the rate and the time left, at
most every 30 seconds, one plain line each, so that a DVC log shows a stage is
alive and how long it has to go (progress bars are unreadable there)."""
from __future__ import annotations

import time

EVERY_SECONDS = 30.0


class Progress:
    """Call `update(n)` as work gets done; a line is printed when `every` seconds
    have passed since the last one (the first after `every` seconds too: short work
    prints nothing)."""

    def __init__(self, label: str, total: int, unit: str = "images", every: float = EVERY_SECONDS):
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.done = 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(now - self.start), flush=True)

    def line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = f"about {duration((self.total - self.done) / rate)} left" if rate > 0 else "time left unknown"
        percent = 100 * self.done / self.total if self.total else 100.0
        return f"{self.label}: {self.done}/{self.total} {self.unit} ({percent:.0f} %), {rate:.1f} {self.unit}/s, {left}"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
