"""The real `dvc repro` of the whole pipeline on tiny params, in a temporary copy of
the project (conftest's tiny_repro): every output is there, the numbers in the
metric files are right and agree with each other, the transfer stage's two phases
and its model, DVC's view of what a params change reruns, the README's commands,
the committed metric keys and the pipeline benchmark. Every test that reads that run
is in this file, so under `make test` one worker builds it and runs them while the
other runs everything else."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
from unittest.mock import ANY

import numpy as np
import pandas as pd
import pytest
import yaml

from carbrands import paths
from carbrands.data.prepared import load_split
from carbrands.history import read_history
from carbrands.models.names import TRAINED_MODELS
from devtools.projects import ROOT, TINY_PARAMS, env, run
from tests.helpers import run_bench
from tests.test_metrics_size import OPTIMIZERS, metric_values
from tests.test_readme import EXPECTED, commands, readme_blocks


def _changed_stages(cwd) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], cwd)))


def _metrics(project, path) -> dict:
    return json.loads((project / path).read_text())


def chance_p_value(correct: int, n: int, classes: int) -> float:
    """P(at least `correct` of n right) for a model that guesses among `classes` brands."""
    p = 1 / classes
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(correct, n + 1))


@pytest.mark.slow
def test_repro_produces_every_output(tiny_repro):
    project = tiny_repro.project
    for out in [paths.PREPARED / "train/images.npy", paths.model("cnn"), paths.model("transfer"), paths.REPORT,
                paths.AUGMENT_GRID, paths.evaluate_plots("cnn") / "confusion.csv",
                paths.evaluate_plots("transfer") / "gradcam.png", paths.REPORT_PLOTS / "optimizers_accuracy.png"]:
        assert (project / out).is_file(), out
    transfer = _metrics(project, paths.train_details("transfer"))
    assert transfer["pretrained"] is False  # weights: none, chosen explicitly and recorded
    assert "not pretrained" in (project / paths.REPORT).read_text()
    assert _changed_stages(project) == set(), "a second look finds changes right after repro"


@pytest.mark.slow
def test_the_audit_finds_the_planted_copies_and_prepare_drops_them(tiny_repro):
    project = tiny_repro.project
    data = _metrics(project, paths.DATA_DETAILS)
    audit, prepared = data["audit"], data["prepared"]
    # tiny params plant 1 exact and 1 near copy of a train image in val/test
    assert audit["planted"]["planted_pairs"] == 2 and audit["planted"]["recall"] == 1.0
    assert sum(prepared["dropped_leaked"].values()) >= 2
    brands, per_brand = TINY_PARAMS["synth"]["brands"], TINY_PARAMS["synth"]["per_brand"]
    assert audit["splits"]["test"]["images"] == brands * per_brand["test"]
    assert prepared["counts"]["test"] == brands * per_brand["test"] - prepared["dropped_leaked"]["test"]
    assert prepared["counts"]["train"] == brands * per_brand["train"]


@pytest.mark.slow
@pytest.mark.parametrize("model", TRAINED_MODELS)
def test_evaluation_metrics_agree_with_the_predictions(tiny_repro, model):
    project = tiny_repro.project
    m = _metrics(project, paths.evaluate_details(model))
    assert _metrics(project, paths.evaluate_metrics(model)).items() <= m.items()
    n_test = _metrics(project, paths.DATA_METRICS)["images"]["test"]
    confusion = pd.read_csv(project / paths.evaluate_plots(model) / "confusion.csv")
    per_class = pd.read_csv(project / paths.evaluate_plots(model) / "per_class.csv")
    assert m["model"] == model and m["n_test"] == n_test == len(confusion) == per_class["support"].sum()
    assert m["accuracy"] == pytest.approx((confusion["actual"] == confusion["predicted"]).mean())
    assert m["accuracy_ci95_low"] <= m["accuracy"] <= m["accuracy_ci95_high"]
    assert m["accuracy"] <= m["top3_accuracy"] == 1.0   # 3 brands: the top 3 hold every answer
    assert m["test_loss"] > 0 and 0 <= m["macro_f1"] <= 1


@pytest.mark.slow
def test_the_cnn_scores_above_chance(tiny_repro):
    """Tiny params train the CNN on 150 drawn cars of 3 brands at 32 px (it scored 34 of 44
    test cars right). It must beat guessing clearly: a model that guesses (1/3 right on each
    car) does as well with a probability below 0.1 %, i.e. it needs about 25 of 45 right."""
    project = tiny_repro.project
    m = _metrics(project, paths.evaluate_details("cnn"))
    correct = round(m["accuracy"] * m["n_test"])
    assert chance_p_value(correct, m["n_test"], 3) < 0.001, m


@pytest.mark.slow
def test_training_and_optimizer_metrics_are_consistent(tiny_repro):
    project = tiny_repro.project
    p = yaml.safe_load((project / "params.yaml").read_text())
    cnn = _metrics(project, paths.train_details("cnn"))
    assert _metrics(project, paths.train_metrics("cnn")).items() <= cnn.items()
    history = read_history(project / paths.live_dir("train"))
    assert cnn["epochs_run"] == len(history) <= p["train"]["epochs"]
    assert cnn["best_val_accuracy"] == pytest.approx(history["val_accuracy"].max())
    assert cnn["train_seconds"] > 0 and cnn["images_per_second"] > 0 and cnn["params"] > 0
    for name, run_params in p["optimizers"]["runs"].items():
        for seed in p["optimizers"]["seeds"]:
            m = _metrics(project, paths.optimizer_details(name, seed))
            assert _metrics(project, paths.optimizer_metrics(name, seed)).items() <= m.items()
            history = read_history(project / paths.live_dir(paths.optimizer_live(name, seed)))
            assert m["run"] == name and m["seed"] == seed and m["optimizer"] == run_params["optimizer"]
            assert m["epochs"] == p["optimizers"]["epochs"] == len(history)
            best = history.loc[history["val_accuracy"].idxmax()]
            assert (m["best_val_accuracy"], m["val_loss_at_best"], m["best_epoch"]) == pytest.approx(
                (best["val_accuracy"], best["val_loss"], best["epoch"]))
            assert m["test_accuracy_ci95_low"] <= m["test_accuracy"] <= m["test_accuracy_ci95_high"]


@pytest.mark.slow
def test_the_transfer_stage_trains_two_phases_into_a_model_for_raw_images(tiny_repro):
    """Tiny params: random initial weights, one epoch a phase."""
    import keras

    project = tiny_repro.project
    p = yaml.safe_load((project / "params.yaml").read_text())["transfer"]
    record = _metrics(project, paths.PRETRAINED_RECORD)
    assert record["route"] == "none" and record["pretrained"] is False
    # nothing to interpolate back towards, and the log says so
    assert p["fine_tune"]["interpolate"] == "auto"
    assert "transfer.fine_tune.interpolate auto not applied (1 used)" in tiny_repro.output

    history = read_history(project / paths.live_dir("transfer"))
    assert list(history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                     "learning_rate", "phase"]
    assert history["phase"].tolist() == ["head", "fine_tune"]
    assert history["epoch"].tolist() == [1, 2]
    rates = [p[phase]["learning_rate"] for phase in ("head", "fine_tune")]
    assert history["learning_rate"].tolist() == pytest.approx(rates)   # the cosine schedule starts at its rate
    assert _metrics(project, paths.train_metrics("transfer")) == {"epochs_run": 2, "train_seconds": ANY}
    metrics = _metrics(project, paths.train_details("transfer"))
    assert metrics["pretrained"] is False and metrics["weights_route"] == "none"
    assert "not pretrained" in metrics["weights"]
    assert metrics["fine_tune_interpolate"] == 1 and metrics["fine_tune_interpolate_val_loss"] == {}
    assert metrics["epochs_run"] == 2 and metrics["epochs_run_per_phase"] == {"head": 1, "fine_tune": 1}
    # where the stage's time went: the features and each phase, within the whole
    phases = metrics["seconds_per_phase"]
    assert list(phases) == ["head", "fine_tune"] and all(s > 0 for s in phases.values())
    assert metrics["feature_seconds"] + sum(phases.values()) <= metrics["train_seconds"] + 0.1
    assert metrics["best_val_accuracy"] == pytest.approx(history["val_accuracy"].max())
    assert (project / paths.train_figure("transfer")).stat().st_size > 0

    model = keras.models.load_model(project / paths.model("transfer"))  # no custom objects needed
    val = load_split(project / paths.PREPARED, "val")
    raw = np.asarray(val.images, np.float32)  # 0..255, as evaluation feeds it
    probs = model.predict(raw, verbose=0)
    assert probs.shape == (len(val.labels), 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    # the saved model is the one that was scored
    assert (probs.argmax(1) == val.labels).mean() == pytest.approx(metrics["final_val_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_each_training_stage_records_where_it_ran_beside_its_metrics_not_as_one(tiny_repro):
    project = tiny_repro.project
    p = yaml.safe_load((project / "params.yaml").read_text())
    metrics = [paths.train_metrics("cnn"), paths.train_metrics("transfer")] + [
        paths.optimizer_metrics(name, seed) for name in p["optimizers"]["runs"] for seed in p["optimizers"]["seeds"]]
    for m in metrics:
        record = _metrics(project, paths.machine_record(m))
        assert record["op_determinism"] is p["train"]["deterministic"] and record["tensorflow"], m
        # TensorFlow's answer: on, as carbrands/startup.py asks, unless the environment turned it off
        assert record["onednn"] is (os.environ["TF_ENABLE_ONEDNN_OPTS"] != "0"), m
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project))
    assert "machine.json" not in json.dumps(shown)
    history = pd.read_csv(project / paths.REPORT_PLOTS / "optimizers_history.csv")
    assert list(history.columns[:3]) == ["run", "seed", "epoch"]
    assert set(history["seed"]) == set(p["optimizers"]["seeds"])
    text = (project / paths.REPORT).read_text()
    assert "Best on validation: **" in text and "not used for ranking" in text and "seed spread" in text
    assert "## Where the training ran" in text


@pytest.mark.slow
def test_params_changes_rerun_only_dependent_stages(tiny_repro):
    project = tiny_repro.project
    params_path = project / "params.yaml"
    original = params_path.read_text()
    try:
        p = yaml.safe_load(original)
        seeds = p["optimizers"]["seeds"]
        p["optimizers"]["runs"]["nadam"] = {"optimizer": "nadam", "learning_rate": 0.001}
        params_path.write_text(yaml.safe_dump(p, sort_keys=False))
        assert _changed_stages(project) == {f"optimizers@nadam-{s}" for s in seeds} | {"report"}

        p = yaml.safe_load(original)
        p["optimizers"]["runs"]["sgd"]["learning_rate"] = 0.05
        params_path.write_text(yaml.safe_dump(p, sort_keys=False))
        assert _changed_stages(project) == {f"optimizers@sgd-{s}" for s in seeds} | {"report"}

        # a new seed: one new stage per run, the existing ones stay up to date
        p = yaml.safe_load(original)
        p["optimizers"]["seeds"].append(max(seeds) + 1)
        params_path.write_text(yaml.safe_dump(p, sort_keys=False))
        assert _changed_stages(project) == {f"optimizers@{r}-{max(seeds) + 1}" for r in p["optimizers"]["runs"]} \
            | {"report"}

        p = yaml.safe_load(original)
        p["evaluate"]["grid_images"] = 3
        params_path.write_text(yaml.safe_dump(p, sort_keys=False))
        assert _changed_stages(project) == {"evaluate@cnn", "evaluate@transfer"}
    finally:
        params_path.write_text(original)


@pytest.mark.slow
def test_readme_commands_run_and_print_what_the_readme_says(tiny_repro, tmp_path):
    source = tiny_repro.project
    project = tmp_path / "project"
    shutil.copytree(source, project, symlinks=True)
    run_env = env(project)
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=project, capture_output=True, text=True,
                            check=True).stdout.strip()
    if branch != "main":   # the README's repository has a main branch
        subprocess.run(["git", "branch", "-m", branch, "main"], cwd=project, check=True)
    photo = next((project / "data" / "synthetic" / "test").rglob("*.jpg"))
    shutil.copy2(photo, project / "photo.jpg")
    for command in commands():
        # `carbrands` is the installed console script; inside the project it is `python -m carbrands`
        argv = command.split()
        if argv[0] == "carbrands":
            argv = [sys.executable, "-m", "carbrands", *argv[1:]]
        done = subprocess.run(argv, cwd=project, env=run_env, capture_output=True, text=True, timeout=600)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{output[-3000:]}"
        assert re.search(EXPECTED[command], output), f"{command}: printed\n{output[-3000:]}"
    [snippet] = readme_blocks("python")
    done = subprocess.run([sys.executable, "-c", snippet], cwd=project, env=run_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    classes = (project / "data" / "prepared" / "classes.json").read_text()
    assert done.stdout.strip() and done.stdout.strip() in classes


@pytest.mark.slow
def test_the_stages_write_the_committed_metric_keys(tiny_repro):
    """The committed metrics (the default run's) have the keys the stages write now, so
    the count in test_metrics_size.py is the count of a run."""
    project = tiny_repro.project
    written, committed = metric_values(project), metric_values(ROOT)
    # the same files, but for the optimizer runs' seeds (tiny params run one)
    assert _any_seed(written) == _any_seed(committed)
    for path, data in written.items():
        if not path.startswith(OPTIMIZERS):
            assert json.dumps(sorted(_keys(data))) == json.dumps(sorted(_keys(committed[path]))), path


def _any_seed(metrics: dict) -> set[str]:
    """The metric files' paths, with the seed of an optimizer run's file left out."""
    return {re.sub(r"-\d+\.json$", "-SEED.json", path) if path.startswith(OPTIMIZERS) else path for path in metrics}


def _keys(value, prefix="") -> list[str]:
    if isinstance(value, dict):
        return [k for name, v in value.items() for k in _keys(v, f"{prefix}{name}.")]
    return [prefix]


@pytest.mark.slow
def test_the_pipeline_benchmark(tmp_path, tiny_repro):
    # the session's tiny `dvc repro` (conftest) stands for the benchmark's step (a)
    project, repro_seconds = tiny_repro.project, tiny_repro.seconds
    stdout, result = run_bench("pipeline", tmp_path, "--project", str(project))
    assert repro_seconds > result["noop_repro"]["seconds"] > 0
    changes = {r["param"]: r for r in result["params_changes"]}
    assert set(changes) == {"seed", "synth.jpeg_quality", "data.image_size", "augment.zoom",
                            "train.dense_units", "train.deterministic", "transfer.dense_units", "evaluate.bootstrap",
                            "optimizers.epochs"}
    # DVC reruns exactly the stages that read each key (a wrong params list in dvc.yaml fails here)
    mismatched = {k: (r["dvc status reports"], r["expected"]) for k, r in changes.items() if not r["match"]}
    assert not mismatched
    assert "prepare" in changes["data.image_size"]["dvc status reports"]
    assert "train" in changes["data.image_size"]["may rerun after them"]
