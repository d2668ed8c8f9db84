import fcntl
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import pytest

# TensorFlow's environment as the stages have it (oneDNN on, fewer notices), before any test imports it
from carbrands import startup  # noqa: F401
from devtools.projects import TINY_PARAMS, committed_copy, run
from tests.helpers import write_tiny

ROOT = Path(__file__).resolve().parents[1]
REAL_CARS = ROOT.parent / "shared" / "fixtures" / "real-cars"
STANFORD = ROOT.parent / "shared" / "fixtures" / "stanford-makes-19"


@pytest.fixture
def real_cars() -> Path:
    """The shared real-photo fixture; tests using it are skipped, saying why, where it is absent."""
    if not REAL_CARS.is_dir():
        pytest.skip(f"fixture absent: {REAL_CARS} (shared/fixtures/real-cars not beside the project)")
    return REAL_CARS


@pytest.fixture
def stanford() -> Path:
    """1,354 real photos of 19 brands (shared fixture; skipped, saying why, where absent)."""
    if not STANFORD.is_dir():
        pytest.skip(f"fixture absent: {STANFORD} (shared/fixtures/stanford-makes-19 not beside the project)")
    return STANFORD


def _tiny_prepared(folder: Path) -> Path:
    return write_tiny(folder, ["Alpha", "Beta Motors", "Gamma-Works"], {"train": 24, "val": 8, "test": 8},
                      image_size=32)


@pytest.fixture
def tiny_prepared(tmp_path):
    """A small learnable prepared dataset (3 classes, 32x32) as `prepare` would write it."""
    return _tiny_prepared(tmp_path / "prepared")


@pytest.fixture(scope="module")
def module_tiny_prepared(tmp_path_factory):
    """tiny_prepared, shared by a module's tests that only read it."""
    return _tiny_prepared(tmp_path_factory.mktemp("tiny") / "prepared")


class TinyRepro(NamedTuple):
    project: Path   # the copy, after the repro
    seconds: float  # what the repro took
    output: str     # what its stages printed


@pytest.fixture(scope="session")
def tiny_repro(tmp_path_factory, worker_id) -> TinyRepro:
    """A copy of the project as a fresh clone holds it, committed to its own git repository,
    with tiny params, after a real `dvc repro` of the whole pipeline. The end-to-end
    tests and the pipeline benchmark's test (all in tests/test_pipeline_e2e.py) look
    at this one run. It is built once per `make test`: under pytest-xdist the first
    worker to need it builds it while the others wait on a lock, and each worker gets
    its own copy, because some of its tests change params.yaml in it."""
    if worker_id == "master":   # a plain pytest run: one process
        return _build_tiny_repro(tmp_path_factory.mktemp("clone") / "project")
    shared = tmp_path_factory.getbasetemp().parent   # the run's folder, above each worker's own
    built, seconds, output = shared / "tiny-repro", shared / "tiny-repro-seconds", shared / "tiny-repro-output"
    with open(shared / "tiny-repro.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not seconds.is_file():   # not built yet, or a build that failed: start afresh
            shutil.rmtree(built, ignore_errors=True)
            repro = _build_tiny_repro(built)
            output.write_text(repro.output)
            seconds.write_text(str(repro.seconds))
    dest = tmp_path_factory.mktemp("clone") / "project"
    shutil.copytree(built, dest, symlinks=True)
    return TinyRepro(dest, float(seconds.read_text()), output.read_text())


def _build_tiny_repro(dest: Path) -> TinyRepro:
    committed_copy(dest, TINY_PARAMS)
    start = time.perf_counter()
    output = run(["dvc", "repro"], dest)
    return TinyRepro(dest, time.perf_counter() - start, output)
