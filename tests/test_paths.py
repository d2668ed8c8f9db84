"""carbrands/paths.py and dvc.yaml name the same paths: each stage's data deps, outs
and metrics are exactly the ones its module reads and writes through paths.py."""
from pathlib import Path

import pytest
import yaml

from carbrands import paths
from carbrands.models.names import TRAINED_MODELS

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR, SYNTH_DIR = "${data.dir}", "${synth.out_dir}"   # inputs that are params, not paths

RUN, SEED = "${item.run}", "${item.seed}"                  # the optimizers matrix's item

# stage -> (data deps, outs, metrics); `item` stands for the matrix item
EXPECTED = {
    "synthesize": (set(), {SYNTH_DIR}, set()),
    "audit": ({DATA_DIR}, {paths.AUDIT, paths.AUDIT_PLOTS}, set()),
    "prepare": ({DATA_DIR, paths.AUDIT}, {paths.PREPARED, paths.DATA_DETAILS}, {paths.DATA_METRICS}),
    "augment_check": ({paths.PREPARED}, {paths.AUGMENT_PLOTS}, set()),
    "train": ({paths.PREPARED}, {paths.model("cnn"), paths.train_figure("cnn"), paths.live_dir("train") / "plots",
                                 paths.train_details("cnn"), paths.machine_record(paths.train_metrics("cnn"))},
              {paths.train_metrics("cnn"), paths.live_dir("train") / "metrics.json"}),
    "pretrained": (set(), {paths.PRETRAINED, paths.PRETRAINED_RECORD}, set()),
    "transfer": ({paths.PREPARED, paths.PRETRAINED, paths.PRETRAINED_RECORD},
                 {paths.model("transfer"), paths.train_figure("transfer"), paths.live_dir("transfer") / "plots",
                  paths.train_details("transfer"), paths.machine_record(paths.train_metrics("transfer"))},
                 {paths.train_metrics("transfer"), paths.live_dir("transfer") / "metrics.json"}),
    "evaluate": ({paths.model("${item.model}"), paths.train_details("${item.model}"), paths.PREPARED},
                 {paths.evaluate_plots("${item.model}"), paths.evaluate_details("${item.model}")},
                 {paths.evaluate_metrics("${item.model}")}),
    "export": ({paths.model("${export.model}"), paths.PREPARED}, {paths.EXPORTED}, set()),
    "optimizers": ({paths.PREPARED},
                   {paths.live_dir(paths.optimizer_live(RUN, SEED)) / "plots",
                    paths.live_dir(paths.optimizer_live(RUN, SEED)) / "metrics.json",
                    paths.machine_record(paths.optimizer_metrics(RUN, SEED)), paths.optimizer_details(RUN, SEED)},
                   {paths.optimizer_metrics(RUN, SEED)}),
    "report": ({paths.METRICS, paths.DETAILS, paths.AUDIT_PLOTS, paths.AUGMENT_PLOTS, paths.TRAIN_PLOTS,
                paths.EVALUATE_PLOTS, paths.LIVE}, {paths.REPORT, paths.REPORT_PLOTS}, set()),
}


def _stages() -> dict:
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def _names(entries) -> set[str]:
    # an entry is a path, or {path: {cache: false}}
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


def test_every_stage_is_checked():
    assert set(_stages()) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_stage_paths_are_the_ones_in_carbrands_paths(name):
    stage = _stages()[name]
    deps, outs, metrics = ({str(p) for p in group} for group in EXPECTED[name])
    assert {d for d in _names(stage["deps"]) if not d.endswith(".py")} == deps
    assert _names(stage.get("outs")) == outs
    assert _names(stage.get("metrics")) == metrics


def test_the_evaluate_matrix_is_the_trained_models():
    assert tuple(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]["matrix"]["model"]) \
        == TRAINED_MODELS
