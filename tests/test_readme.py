"""The README's commands work as the README says: every ```sh block and the ```python
block is run, in order, in a copy of the tiny project after its `dvc repro`, and each
command must exit 0 and print what the README says it does. A command added to the
README without an expectation here fails the test, so the two cannot drift apart."""
import re
import shutil
import subprocess
import sys

import pytest

from devtools.projects import ROOT, env

README = ROOT / "README.md"
# what each command must print (a regular expression searched in stdout + stderr)
EXPECTED = {
    "dvc metrics show": r"metrics/evaluate/transfer\.json",
    "dvc plots show": r"dvc_plots[/\\]index\.html",
    "git checkout -b sgd-lr": r"sgd-lr",
    "dvc exp run -S optimizers.runs.sgd.learning_rate=0.03": r"Running stage 'optimizers@sgd-\d+'",
    "dvc exp show --only-changed": r"\[[a-z]+-[a-z]+\]",   # the experiment's row, e.g. [pedal-noma]
    "dvc metrics diff main": r"metrics/optimizers/sgd-\d+\.json",
    "dvc plots diff main": r"dvc_plots[/\\]index\.html",
    "carbrands predict photo.jpg --model models/transfer.keras --top-k 3": r"photo\.jpg",
    "dvc repro export": r"export",
}


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def commands() -> list[str]:
    lines = [line.split("  #")[0].strip() for block in readme_blocks("sh") for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_every_readme_command_has_an_expectation():
    assert commands() == list(EXPECTED)
    assert len(readme_blocks("python")) == 1


@pytest.mark.slow
def test_readme_commands_run_and_print_what_the_readme_says(tiny_repro, tmp_path):
    source, _ = tiny_repro
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
