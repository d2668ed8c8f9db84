"""Metrics that fit on a screen: every file dvc.yaml declares under `metrics:` holds a
handful of results, at most 50 values in all for the default run, so `dvc metrics show`
and `dvc exp show` read in a terminal. Details live in details/ and plots/. (That a
run writes the committed keys is checked on the tiny repro, in test_pipeline_e2e.py.)"""
import json

from carbrands import paths
from devtools.projects import ROOT, run

LIMIT = 50
OPTIMIZERS = str(paths.METRICS / "optimizers")


def _leaves(value) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values())
    return 1


def metric_values(project) -> dict[str, dict]:
    """{file: its values} for every metrics file, as `dvc metrics show --json` has them."""
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project))
    (workspace,) = shown.values()
    return {path: entry["data"] for path, entry in workspace["data"].items()}


def _counted(values: dict[str, dict]) -> tuple[int, int, str]:
    counts = {path: _leaves(data) for path, data in values.items()}
    optimizers = sum(n for path, n in counts.items() if path.startswith(OPTIMIZERS))
    table = ", ".join(f"{path}: {n}" for path, n in counts.items())
    return sum(counts.values()), optimizers, table


def test_the_default_run_declares_at_most_50_metric_values():
    total, _, table = _counted(metric_values(ROOT))
    assert total <= LIMIT, table
