"""The leakage audit scored against the copies that the synthetic generator planted
(planted.csv beside a synthetic dataset, read by audit.read_planted): recall and
precision of the cross-split duplicate detection, and the same in a few words for
the audit's log and the report."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components


def planted_scores(duplicates: pd.DataFrame, planted: pd.DataFrame) -> dict:
    """Recall and precision of the cross-split duplicate detection against the planted truth.

    recall: planted (source, copy) pairs detected (as exact or near) / planted pairs.
    precision: detected pairs that the planting explains / all detected cross-split pairs.
    A pair is explained when both images belong to one planted family (a source and its
    copies: two copies of one source in val and test are duplicates too). An unexplained
    pair may still be a true duplicate that arose by chance, so this precision is a lower
    bound; the unexplained pairs are listed so a person can look at them."""
    family = _families(zip(planted["source"], planted["copy"]))
    detected = {frozenset(p): k for p, k in zip(zip(duplicates["path_a"], duplicates["path_b"]), duplicates["kind"])}
    hits = [frozenset((s, c)) in detected for s, c in zip(planted["source"], planted["copy"])]
    by_kind = {}
    for kind in sorted(set(planted["kind"])):
        of_kind = [h for h, k in zip(hits, planted["kind"]) if k == kind]
        by_kind[kind] = {"planted": len(of_kind), "found": sum(of_kind), "recall": _ratio(sum(of_kind), len(of_kind))}
    explained = [family.get(a) is not None and family.get(a) == family.get(b)
                 for a, b in zip(duplicates["path_a"], duplicates["path_b"])]
    unexplained = [f"{a} ~ {b}" for (a, b), e in zip(zip(duplicates["path_a"], duplicates["path_b"]), explained)
                   if not e]
    return {
        "planted_pairs": len(hits), "found": sum(hits), "recall": _ratio(sum(hits), len(hits)),
        "detected_pairs": len(explained), "explained_by_planting": sum(explained),
        "precision": _ratio(sum(explained), len(explained)),
        "by_kind": by_kind,
        "missed": [f"{s} -> {c}" for (s, c), h in zip(zip(planted["source"], planted["copy"]), hits) if not h][:20],
        "unexplained_pairs": unexplained[:20],
        "note": "precision is a lower bound: an unplanted detected pair may still be a real duplicate",
    }


def planted_summary(scores: dict) -> str:
    """planted_scores in a few words, for the audit's log and the report: recall and
    precision are None where there is nothing to count (no copy planted, no pair found)."""
    if not scores["planted_pairs"]:
        return "planted copies: none planted, nothing to score"
    found = f"planted copies: recall {scores['recall']:.2f} ({scores['found']}/{scores['planted_pairs']} found)"
    if scores["precision"] is None:
        return f"{found}, no pair detected"
    unplanted = scores["detected_pairs"] - scores["explained_by_planting"]
    return f"{found}, precision {scores['precision']:.2f} ({unplanted} unplanted pairs)"


def _families(edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """path -> the number of its connected component in the graph of (source, copy) edges."""
    edges = list(edges)
    names = sorted({p for e in edges for p in e})
    if not names:
        return {}
    index = {p: i for i, p in enumerate(names)}
    rows, cols = [index[a] for a, _ in edges], [index[b] for _, b in edges]
    graph = coo_array((np.ones(len(edges)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(graph, directed=False)
    return {p: int(labels[i]) for p, i in index.items()}


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None
