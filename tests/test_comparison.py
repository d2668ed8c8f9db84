"""The optimizer comparison ranks on validation over seeds (never on test), and says
whether the winner's lead exceeds the seed spread; the report shows where training ran."""
from pathlib import Path

import pandas as pd
import pytest

from carbrands.evaluation import comparison, report


def _runs(val: dict[str, list[float]], test: dict[str, float] | None = None) -> pd.DataFrame:
    """Made-up metrics: per run, one best val accuracy per seed (seeds 1, 2, ...)."""
    rows = []
    for run, accs in val.items():
        for seed, acc in enumerate(accs, 1):
            t = (test or {}).get(run, 0.5)
            rows.append({"run": run, "seed": seed, "optimizer": run, "learning_rate": 0.001, "epochs": 8,
                         "best_val_accuracy": acc, "val_loss_at_best": 2 - acc, "best_epoch": 8,
                         "test_accuracy": t, "test_accuracy_ci95_low": t - 0.05,
                         "test_accuracy_ci95_high": t + 0.05, "test_loss": 1.0, "train_seconds": 40.0})
    return pd.DataFrame(rows)


def test_the_ranking_is_on_validation_even_where_test_disagrees():
    # rmsprop wins on test (61.7 %), adam on validation: adam must be chosen
    runs = _runs({"rmsprop": [0.40, 0.42], "adam": [0.50, 0.52], "sgd": [0.30, 0.33]},
                 test={"rmsprop": 0.617, "adam": 0.432, "sgd": 0.7})
    summary = comparison.rank(runs)
    assert list(summary["run"]) == ["adam", "rmsprop", "sgd"]
    assert summary.iloc[0]["mean"] == pytest.approx(0.51)
    assert summary.iloc[0]["std"] == pytest.approx(pd.Series([0.50, 0.52]).std())
    assert (summary.iloc[0]["min"], summary.iloc[0]["max"]) == (0.50, 0.52)

    r = report.Report(Path("."))
    r.figure = lambda path, caption: None  # figures are drawn by the report stage
    report.optimizer_section(r, runs)
    text = r.text()
    assert "Best on validation: **adam**" in text
    assert "not used for ranking" in text
    assert "43.2 %" in text                          # the chosen run's test accuracy
    assert "61.7 %" not in text and "70.0 %" not in text   # nobody else's


def test_ties_on_val_accuracy_go_to_the_lower_val_loss():
    runs = _runs({"a": [0.5], "b": [0.5]})
    runs.loc[runs["run"] == "b", "val_loss_at_best"] = 0.1
    assert comparison.rank(runs)["run"].iloc[0] == "b"


def test_a_lead_beyond_the_seed_spread_is_said_so():
    text = comparison.lead_statement(comparison.rank(_runs({"adam": [0.50, 0.53], "sgd": [0.40, 0.45]})))
    assert "**exceeds the seed spread**" in text and "`adam` leads `sgd` by 9.0 points" in text
    assert "50.0-53.0 %" in text and "40.0-45.0 %" in text


def test_a_lead_within_the_seed_spread_is_said_so():
    text = comparison.lead_statement(comparison.rank(_runs({"adam": [0.47, 0.54], "rmsprop": [0.44, 0.50]})))
    assert "**within the seed spread**" in text and "cannot be told apart" in text
    assert "exceeds" not in text


def test_one_seed_measures_no_spread_and_one_run_has_nothing_to_compare():
    text = comparison.lead_statement(comparison.rank(_runs({"adam": [0.6], "sgd": [0.4]})))
    assert "not measured" in text and "optimizers.seeds" in text
    assert "nothing to compare" in comparison.lead_statement(comparison.rank(_runs({"adam": [0.6, 0.5]})))


def test_the_machine_table_groups_stages_that_ran_on_the_same_machine():
    rec = {"cpu": "AMD EPYC", "cpu_cores": 2, "cpu_flags": ["avx2", "avx512f"], "gpus": [], "platform": "Linux",
           "python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1", "onednn": True,
           "op_determinism": True}
    table = report.machine_table({"train": rec, "transfer": rec, "optimizers@adam-1": {**rec, "op_determinism": False}})
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    assert len(rows) == 4  # header, rule, two machines
    assert rows[2] == ["train, transfer", "AMD EPYC (2)", "avx2 avx512f", "none", "2.21.0 / 3.15.1", "on", "on",
                       "Linux"]
    assert rows[3][0] == "optimizers@adam-1" and rows[3][5:7] == ["on", "off"]
