"""Which process of a multi-worker run this is (TF_CONFIG), without TensorFlow: every
worker trains, only the chief writes the stage's outputs (training/session.py)."""
from __future__ import annotations

import json
import os


def task() -> tuple[str, int]:
    """(type, index) of this process in TF_CONFIG; ("chief", 0) without a cluster. With
    workers only, worker 0 is the chief (TensorFlow's convention)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    t = config.get("task") or {}
    kind, index = t.get("type", "chief"), int(t.get("index", 0))
    if kind == "worker" and index == 0 and "chief" not in (config.get("cluster") or {}):
        return "chief", 0
    return kind, index


def is_chief() -> bool:
    return task()[0] == "chief"


def name() -> str:
    """'' for the chief, 'worker1' etc. for the others: what their private files are named by."""
    kind, index = task()
    return "" if kind == "chief" else f"{kind}{index}"

