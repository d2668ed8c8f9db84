"""The pipeline's stages, one module each, run as `python -m stages.<name>` (dvc.yaml).

`dvc` runs that command with the `python` first on PATH: with `.venv/bin/dvc repro` and
no activated venv, that can be a Python without the project's packages. A stage then
stops here with one line saying what to do, instead of a traceback from deep inside.
TensorFlow is then started without its start-up notices (carbrands/startup.py): a
few seconds that the stages without a model (synthesize, audit, prepare, report) pay
too, for one place that does it."""
import importlib.util
import sys

_NEEDED = ("yaml", "numpy", "pandas", "PIL", "sklearn", "matplotlib", "tensorflow", "keras")
_missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _missing:
    sys.exit(f"error: {sys.executable} lacks the project's packages ({', '.join(_missing)}): "
             "run `source .venv/bin/activate` first, or use `make dvc ARGS=\"repro\"`")

from carbrands import startup  # noqa: E402  (after the check: it needs the packages)

startup.import_tensorflow()
