"""carbrands/internals.py holds every use of a private Keras or TensorFlow internal,
checked with the pinned versions. These tests fail loudly when a pin moves (re-check
each use, then update CHECKED_WITH) or when a name it uses is gone or changed shape."""
import ast
import inspect
from pathlib import Path

import keras
import tensorflow as tf

from carbrands import internals

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = ("keras.src", "tensorflow.python", "tensorflow.lite.python")


def _pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def test_the_pins_are_the_versions_the_internals_were_checked_with():
    pins = _pins()
    for package, version in internals.CHECKED_WITH.items():
        assert pins[package] == version, (
            f"{package} is pinned to {pins[package]}, carbrands/internals.py was checked with {version}: "
            "re-check every patch there against the new version (still needed? still right?), then update "
            "CHECKED_WITH")
    assert (tf.__version__, keras.__version__) == (internals.CHECKED_WITH["tensorflow"],
                                                  internals.CHECKED_WITH["keras"])


def test_the_patched_and_imported_names_still_have_their_shape():
    trainer = internals.keras_tensorflow_trainer()
    assert list(inspect.signature(trainer.reduce_per_replica).parameters) == ["values", "strategy", "reduction"]
    for name in ("_maybe_symbolic_build", "_symbolic_build"):
        assert list(inspect.signature(getattr(keras.Model, name)).parameters) == ["self", "iterator", "data_batch"]
    config = internals._tf_config()
    assert callable(config.disable_op_determinism) and callable(config.is_op_determinism_enabled)
    # still no public way to turn op determinism off: the private call is still needed
    assert not hasattr(tf.config.experimental, "disable_op_determinism")
    assert internals.onednn_enabled() in (True, False)
    schema = internals.tflite_schema()
    assert {"data"} <= set(vars(schema.BufferT())) and {"name", "buffer"} <= set(vars(schema.MetadataT()))


def test_no_other_module_uses_a_private_internal():
    users = []
    for f in [*(ROOT / "carbrands").rglob("*.py"), *(ROOT / "stages").glob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == p or n.startswith(p + ".") for n in names for p in PRIVATE):
                users.append(f.relative_to(ROOT).as_posix())
    assert set(users) == {"carbrands/internals.py"}
