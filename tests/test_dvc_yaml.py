"""dvc.yaml stays honest: every stage lists as deps its own module and every
carbrands/ module it imports, directly or through another module, and nothing
else from the code, so a code change reruns exactly the stages it can affect."""
import ast
import re
from pathlib import Path

import pytest
import yaml

from carbrands import params as params_module

ROOT = Path(__file__).resolve().parents[1]


def _stages():
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in raw.items():
        yield name, stage.get("do", stage)


def _module_file(name: str) -> Path | None:
    """The file of a carbrands module (carbrands.data.audit -> carbrands/data/audit.py); None for
    a package (its __init__.py holds only a docstring: test_package_inits_hold_no_code) or a name
    that is no module (a function imported from one)."""
    rel = Path(*name.split(".")).with_suffix(".py")
    return rel if (ROOT / rel).is_file() else None


def _project_imports(module_path: Path) -> set[str]:
    """Paths (relative to ROOT) of carbrands modules imported by a file, transitively."""
    seen: set[str] = set()
    todo = [module_path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                rel = _module_file(name) if name.startswith("carbrands") else None
                if rel is not None and rel.as_posix() not in seen:
                    seen.add(rel.as_posix())
                    todo.append(ROOT / rel)
    return seen


def test_package_inits_hold_no_code():
    """Stage deps leave out carbrands' __init__.py files: safe only while they run nothing.
    (stages/__init__.py runs code, which sets TensorFlow's oneDNN: every stage lists it.)"""
    for init in (ROOT / "carbrands").rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0].value, ast.Constant), f"{init} holds code"


@pytest.mark.parametrize("name,stage", list(_stages()), ids=[n for n, _ in _stages()])
def test_stage_deps_list_exactly_the_code_it_runs(name, stage):
    module = re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
    own = module.replace(".", "/") + ".py"
    assert (ROOT / own).exists(), f"{name}: {own} does not exist"
    code_deps = {d for d in stage["deps"] if isinstance(d, str) and d.endswith(".py")}
    init = "stages/__init__.py"   # python -m runs the package's __init__.py first
    expected = {own, init} | _project_imports(ROOT / own) | _project_imports(ROOT / init)
    assert code_deps == expected, (
        f"{name}: missing {sorted(expected - code_deps)}, not imported {sorted(code_deps - expected)}")


def test_stage_params_exist_in_params_yaml():
    p = params_module.load(ROOT / "params.yaml")
    for name, stage in _stages():
        for key in stage.get("params", []):
            if "${" in key:  # foreach keys, e.g. optimizers.runs.${key}
                key = key.split(".${")[0]
            node = p
            for part in key.split("."):
                assert part in node, f"{name}: params key {key!r} is not in params.yaml"
                node = node[part]


def _expanded_optimizer_stages(tmp_path: Path, runs: dict, seeds: list[int]) -> dict[str, list[str]]:
    """DVC's own expansion of dvc.yaml under a params.yaml with these optimizer runs and
    seeds: optimizer stage name -> the params keys it lists."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["optimizers"].update(runs=runs, seeds=seeds)
    params_module.validate(p)
    Repo.init(tmp_path, no_scm=True).close()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    with Repo(str(tmp_path)) as repo:
        return {stage.name: sorted(key for dep in stage.deps if isinstance(dep, ParamsDependency)
                                   for key in dep.params)
                for stage in repo.index.stages if stage.name.startswith("optimizers@")}


def test_the_optimizers_matrix_is_runs_times_seeds_each_with_only_its_own_run(tmp_path):
    runs = {"adam": {"optimizer": "adam", "learning_rate": 0.001},
            "sgd-fast": {"optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9}}
    stages = _expanded_optimizer_stages(tmp_path, runs, [7, 8, 9])
    assert set(stages) == {f"optimizers@{run}-{seed}" for run in runs for seed in (7, 8, 9)}
    for name, keys in stages.items():
        run = name.removeprefix("optimizers@").rsplit("-", 1)[0]
        # its own run's settings; never another run's, the whole mapping, or the seed list
        # (adding a seed or a run must leave the existing stages up to date)
        assert f"optimizers.runs.{run}" in keys, (name, keys)
        assert not [k for k in keys if k.startswith("optimizers.runs") and k != f"optimizers.runs.{run}"]
        assert "optimizers.seeds" not in keys and "seed" not in keys, (name, keys)


def test_a_training_stage_reads_the_params_dvc_yaml_lists_for_it():
    p = params_module.load(ROOT / "params.yaml")
    assert params_module.DVC_YAML == ROOT / "dvc.yaml"
    assert params_module.declared("train", p) == {k: p[k] for k in ("seed", "augment", "train")}
    sgd = params_module.declared("optimizers", p, {"run": "sgd"})
    assert sgd["optimizers.runs.sgd"] == p["optimizers"]["runs"]["sgd"] and "optimizers.runs.adam" not in sgd
    transfer = params_module.declared("transfer", p)
    assert transfer["train.deterministic"] == p["train"]["deterministic"]
