import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
REAL_CARS = ROOT.parent / "shared" / "fixtures" / "real-cars"


@pytest.fixture
def real_cars() -> Path:
    """The shared real-photo fixture; tests using it are skipped, saying why, where it is absent."""
    if not REAL_CARS.is_dir():
        pytest.skip(f"fixture absent: {REAL_CARS} (shared/fixtures/real-cars not beside the project)")
    return REAL_CARS


@pytest.fixture
def tiny_prepared(tmp_path):
    """A small learnable prepared dataset (3 classes, 32x32) as `prepare` would write it."""
    from carbrands.prepared import write_tiny
    return write_tiny(tmp_path / "prepared", ["Alpha", "Beta Motors", "Gamma-Works"],
                      {"train": 24, "val": 8, "test": 8}, image_size=32)
