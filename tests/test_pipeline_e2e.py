"""The real `dvc repro` of the whole pipeline on tiny params, in a temporary copy
of the project (the files git tracks or would track), then DVC's view of what
a params change reruns."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "synth": {"brands": 3, "per_brand": {"train": 14, "val": 5, "test": 5},
              "planted_exact": 1, "planted_near": 1},
    "data": {"image_size": 32},
    "train": {"filters": [8, 16], "dropout": [0.1, 0.1], "dense_units": 16, "epochs": 2,
              "batch_size": 16},
    "transfer": {"weights": "none", "dense_units": 16, "batch_size": 16,
                 "head": {"epochs": 1}, "fine_tune": {"epochs": 1}},
    "evaluate": {"bootstrap": 50, "grid_images": 4, "gradcam_images": 2},
    "optimizers": {"epochs": 1},
}


def _merge(base: dict, override: dict) -> dict:
    for k, v in override.items():
        base[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def _run(args, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _changed_stages(cwd) -> set[str]:
    status = json.loads(_run(["dvc", "status", "--json"], cwd))
    return set(status)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    p = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (dest / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        _run(cmd, dest)
    _run(["dvc", "repro"], dest)
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
