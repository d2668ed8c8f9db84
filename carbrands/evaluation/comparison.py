"""The optimizer comparison: each run judged on validation over several seeds, ranked,
and whether the winner's lead is larger than what the seed alone changes.

Runs are ranked on the mean over seeds of their best validation accuracy (ties: the
lower mean validation loss at that epoch). The test split plays no part: its accuracy
is shown for the chosen run only, labelled as not used for ranking."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from carbrands import paths
from carbrands.files import read_json

RANKED_ON = "best_val_accuracy"


def optimizer_runs(root: Path, names: list[str], seeds: list[int]) -> pd.DataFrame:
    """One row per optimizer run and seed: its whole record (stage optimizers@<run>-<seed>)."""
    return pd.DataFrame([{**read_json(root / paths.optimizer_details(name, seed)), "run": name, "seed": seed}
                         for name in names for seed in seeds])


def rank(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run, best first: its seeds, and the mean, standard deviation (n-1;
    NaN with one seed), min and max over seeds of the best val accuracy, and the mean
    val loss at that epoch."""
    acc = runs.groupby("run", sort=False)[RANKED_ON]
    summary = pd.DataFrame({
        "seeds": acc.count(), "mean": acc.mean(), "std": acc.std(ddof=1), "min": acc.min(), "max": acc.max(),
        "val_loss": runs.groupby("run", sort=False)["val_loss_at_best"].mean()})
    summary = summary.sort_values(["mean", "val_loss"], ascending=[False, True], kind="stable")
    return summary.reset_index()


def lead_statement(summary: pd.DataFrame) -> str:
    """Says plainly whether the best run's lead over the second exceeds the seed spread:
    it does when every seed of the best beat every seed of the second (their min-max
    ranges over seeds do not overlap)."""
    if len(summary) < 2:
        return f"Only one optimizer run (`{summary['run'].iloc[0]}`): nothing to compare."
    best, second = summary.iloc[0], summary.iloc[1]
    lead = 100 * (best["mean"] - second["mean"])
    head = (f"`{best['run']}` leads `{second['run']}` by {lead:.1f} points of mean best validation "
            f"accuracy")
    if min(best["seeds"], second["seeds"]) < 2:
        return (f"{head}, but with one seed per run the seed spread is not measured, so this lead cannot be "
                "told from seed noise (add seeds to `optimizers.seeds`).")
    spread = (f"(seed ranges {100 * best['min']:.1f}-{100 * best['max']:.1f} % and "
              f"{100 * second['min']:.1f}-{100 * second['max']:.1f} %, standard deviations "
              f"{100 * best['std']:.1f} and {100 * second['std']:.1f} points)")
    if best["min"] > second["max"]:
        return (f"{head}: the lead **exceeds the seed spread**: every seed of `{best['run']}` beat every seed of "
                f"`{second['run']}` {spread}.")
    return (f"{head}: the lead is **within the seed spread**: the seeds' ranges overlap {spread}, so with these "
            f"seeds `{best['run']}` and `{second['run']}` cannot be told apart.")


def chosen_test_rows(runs: pd.DataFrame, chosen: str) -> pd.DataFrame:
    """The chosen run's test scores, one row per seed (shown, never ranked on)."""
    return runs[runs["run"] == chosen][["seed", "test_accuracy", "test_accuracy_ci95_low",
                                        "test_accuracy_ci95_high", "test_loss"]]
