"""The real `dvc repro` of the whole pipeline on tiny params, in a temporary copy
of the project (the files git tracks or would track), then DVC's view of what
a params change reruns."""
import json
from pathlib import Path

import pytest
import yaml

from bench import _common as projects  # the benchmarks build their temporary projects alike


def _changed_stages(cwd) -> set[str]:
    return set(json.loads(projects.run(["dvc", "status", "--json"], cwd)))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    dest = projects.copy_project(tmp_path_factory.mktemp("clone"))
    projects.write_params(dest, projects.project_params(projects.TINY_PARAMS))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        projects.run(cmd, dest)
    projects.run(["dvc", "repro"], dest)
    return dest


@pytest.mark.slow
def test_repro_produces_every_output(project):
    for out in ["data/prepared/train/images.npy", "models/cnn.keras", "models/transfer.keras",
                "REPORT.md", "plots/augment/grid.png", "plots/evaluate/cnn/confusion.csv",
                "plots/evaluate/transfer/gradcam.png", "plots/report/optimizers_accuracy.png"]:
        assert (project / out).is_file(), out
    cnn = json.loads((project / "metrics/evaluate/cnn.json").read_text())
    assert 0 <= cnn["accuracy"] <= 1 and cnn["n_test"] > 0
    transfer = json.loads((project / "metrics/train/transfer.json").read_text())
    assert transfer["pretrained"] is False  # weights: none, chosen explicitly and recorded
    assert "not pretrained" in (project / "REPORT.md").read_text()
    assert _changed_stages(project) == set(), "a second look finds changes right after repro"


@pytest.mark.slow
def test_params_changes_rerun_only_dependent_stages(project):
    params_path = project / "params.yaml"
    original = params_path.read_text()
    try:
        p = yaml.safe_load(original)
        p["optimizers"]["runs"]["nadam"] = {"optimizer": "nadam", "learning_rate": 0.001}
        params_path.write_text(yaml.safe_dump(p, sort_keys=False))
        assert _changed_stages(project) == {"optimizers@nadam", "report"}

        p = yaml.safe_load(original)
        p["optimizers"]["runs"]["sgd"]["learning_rate"] = 0.05
        params_path.write_text(yaml.safe_dump(p, sort_keys=False))
        assert _changed_stages(project) == {"optimizers@sgd", "report"}

        p = yaml.safe_load(original)
        p["evaluate"]["grid_images"] = 3
        params_path.write_text(yaml.safe_dump(p, sort_keys=False))
        assert _changed_stages(project) == {"evaluate@cnn", "evaluate@transfer"}
    finally:
        params_path.write_text(original)
