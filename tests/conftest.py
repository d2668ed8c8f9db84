import os
import time
from pathlib import Path

import pytest

from devtools.projects import TINY_PARAMS, committed_copy, run
from tests.helpers import write_tiny

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


@pytest.fixture
def tiny_prepared(tmp_path):
    """A small learnable prepared dataset (3 classes, 32x32) as `prepare` would write it."""
    return write_tiny(tmp_path / "prepared", ["Alpha", "Beta Motors", "Gamma-Works"],
                      {"train": 24, "val": 8, "test": 8}, image_size=32)


@pytest.fixture(scope="session")
def tiny_repro(tmp_path_factory) -> tuple[Path, float]:
    """A copy of the project as a fresh clone holds it, committed to its own git repository,
    with tiny params, after a real `dvc repro` of the whole pipeline: (folder, seconds the
    repro took). Run once per session: the end-to-end tests and the pipeline benchmark
    (tests/test_bench.py) all look at this one run."""
    dest = committed_copy(tmp_path_factory.mktemp("clone"), TINY_PARAMS)
    start = time.perf_counter()
    run(["dvc", "repro"], dest)
    return dest, time.perf_counter() - start
