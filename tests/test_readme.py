"""The README's commands work as the README says: every ```sh block and the ```python
block is run, in order, in a copy of the tiny project after its `dvc repro`, and each
command must exit 0 and print what the README says it does (that run is in
test_pipeline_e2e.py, beside the other tests of the tiny repro). A command added to
the README without an expectation here fails the test, so the two cannot drift apart."""
import re

from devtools.projects import ROOT

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
