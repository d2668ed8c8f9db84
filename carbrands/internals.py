"""Every use of a private Keras or TensorFlow internal (keras.src, tensorflow.python,
tensorflow.lite.python, a Model's _private methods), in one place: each says why
the public API does not do, and what it works around.

Checked with the versions in CHECKED_WITH, the pins of requirements.txt.
tests/test_internals.py fails when a pin moves away from them, and when a patched
or imported name is gone or has another signature: re-check each use below against
the new version (is it still needed? still right?), then update CHECKED_WITH.
"""
from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

CHECKED_WITH = {"tensorflow": "2.21.0", "keras": "3.15.1"}


# -- op determinism ----------------------------------------------------------------
# tf.config.experimental has enable_op_determinism only: no public call turns it off
# again or says whether it is on (the training stages' `train.deterministic: false`
# and the machine record need both).

def _tf_config():
    from tensorflow.python.framework import config
    return config


def disable_op_determinism() -> None:
    _tf_config().disable_op_determinism()


def op_determinism_enabled() -> bool:
    return bool(_tf_config().is_op_determinism_enabled())


# -- oneDNN -------------------------------------------------------------------------
# TF_ENABLE_ONEDNN_OPTS is read when TensorFlow is imported, and without it TensorFlow
# decides by the CPU; no public call says whether oneDNN ended up on (carbrands/startup.py
# turns it on where TensorFlow would not: tests/test_setup.py checks that it is).

def onednn_enabled() -> bool:
    from tensorflow.python.util import _pywrap_util_port
    return bool(_pywrap_util_port.IsMklEnabled())


# -- TFLite metadata -----------------------------------------------------------------
# TensorFlow has no public call that adds a metadata entry to a .tflite file; the
# flatbuffer object API it ships (schema_py_generated, as tensorflow.lite.tools.
# flatbuffer_utils uses it) does.

def tflite_schema():
    from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def add_tflite_metadata(content: bytes, name: bytes, info: dict) -> bytes:
    """A .tflite model with one more metadata entry, `name`, holding info as JSON."""
    from tensorflow.lite.tools import flatbuffer_utils

    schema = tflite_schema()
    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(info).encode(), np.uint8)
    flat.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(flat.buffers) - 1
    flat.metadata = [*(flat.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


# -- multi-worker fit ----------------------------------------------------------------

def keras_tensorflow_trainer():
    """Keras' TensorFlow trainer module, whose reduce_per_replica the patch replaces."""
    from keras.src.backend.tensorflow import trainer
    return trainer


def work_around_multi_worker_fit(model) -> None:
    """Keras 3 cannot fit under MultiWorkerMirroredStrategy as it ships
    (keras-team/keras#20585): (1) fit builds the model by averaging its first
    batch across workers with one strategy.reduce over the whole (images, labels)
    structure, which fails ("Attempt to convert a value (PerReplica...)"); (2) each
    step averages its scalar logs (loss, accuracy) with strategy.reduce(..., axis=0),
    which a scalar has no axis for. Here (1) builds from this worker's part of the
    batch (building needs only shapes and types), and (2) averages scalars across
    workers without an axis. Does nothing under any other strategy. Replaces the
    model's private _maybe_symbolic_build and, for the whole process, Keras'
    trainer.reduce_per_replica (wrapped: other strategies get the original)."""
    strategy = model.distribute_strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    trainer = keras_tensorflow_trainer()
    if getattr(trainer.reduce_per_replica, "carbrands", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0), values)
        return original(values, strategy, reduction)

    reduce_per_replica.carbrands = True
    trainer.reduce_per_replica = reduce_per_replica
