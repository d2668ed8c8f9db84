"""The pipeline's stages, one module each, run as `python -m stages.<name>` (dvc.yaml).

`dvc` runs that command with the `python` first on PATH: with `.venv/bin/dvc repro` and
no activated venv, that can be a Python without the project's packages. A stage then
stops here with one line saying what to do, instead of a traceback from deep inside.

A stage with a model then starts TensorFlow with the project's settings and without
its start-up notices (carbrands/startup.py), before its own imports reach it. The
stages without one (WITHOUT_TENSORFLOW) never import it: TensorFlow's start-up takes
3 to 7 s of each run, depending on the CPU."""
import importlib.util
import sys

_NEEDED = ("yaml", "numpy", "pandas", "PIL", "sklearn", "matplotlib", "tensorflow", "keras")
_missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _missing:
    sys.exit(f"error: {sys.executable} lacks the project's packages ({', '.join(_missing)}): "
             "run `source .venv/bin/activate` first, or use `make dvc ARGS=\"repro\"`")

from carbrands import startup  # noqa: E402  (after the check: it needs the packages)

# tests/test_setup.py checks that these import no TensorFlow
WITHOUT_TENSORFLOW = ("stages.synthesize", "stages.audit", "stages.prepare", "stages.report")


def _module_run() -> str | None:
    """The module of `python -m <module>` (this package is imported before it runs)."""
    argv = sys.orig_argv
    return argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None


if _module_run() not in WITHOUT_TENSORFLOW:
    startup.import_tensorflow()
