"""TensorFlow started with oneDNN on and without its start-up notices, by the entry
points that use it (the stages, `carbrands predict`, the benchmarks, the tests)
importing this module first and calling import_tensorflow().

oneDNN: TensorFlow 2.21 turns its oneDNN kernels on by default only on CPUs with
AVX-512 VNNI, BF16 or AMX, and leaves a CPU with AVX2 only (an AMD EPYC of the Zen 3
generation, many desktops and laptops) on its own, slower kernels: on such a 2-core
machine oneDNN made a Lite0 forward pass 1.5x and a fine-tuning step 1.3x as fast
(docs/benchmarks.md, "oneDNN on a CPU without AVX-512"). So TF_ENABLE_ONEDNN_OPTS
is 1 unless set: the same kernels on both kinds of CPU, and on the ones TensorFlow
already enables it for, nothing changes. TF_ENABLE_ONEDNN_OPTS=0 turns it off.

TensorFlow 2.21 writes notices to stderr from C++ before absl logging is initialised,
where TF_CPP_MIN_LOG_LEVEL does not reach them (levels 0-3 all print them): oneDNN,
`Could not find cuda drivers`, and on a machine without a GPU an `E0000 ... failed
call to cuInit` that reads as an error. They are harmless. import_tensorflow() runs
the import and the CUDA platform's start with file descriptor 2 captured, then writes
back every captured line except those notices (the cuInit failure only where no
NVIDIA device exists), so real errors still show. The TFLite interpreter's `Created
TensorFlow Lite XNNPACK delegate` is hidden the same way where models/export.py
creates one. CARBRANDS_TF_STARTUP_LOG=1 writes everything back.

Code that imports tensorflow without importing this first works the same, with the
notices shown and, on an AVX2 CPU, slower.
"""
from __future__ import annotations

import contextlib
import glob
import os
import sys
import tempfile

# TensorFlow's own warnings after start-up (Python and C++): errors still show
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# read once, when TensorFlow is imported (see above)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

_NOTICES = ("before absl::InitializeLog()", "port.cc:", "cudart_stub.cc:", "cpu_feature_guard.cc:",
            "To enable the following instructions", "Unable to register cu",
            "Created TensorFlow Lite XNNPACK delegate")
_NO_GPU = ("failed call to cuInit",)


def _hidden() -> tuple[str, ...]:
    if os.environ.get("CARBRANDS_TF_STARTUP_LOG") == "1":
        return ()
    has_gpu = bool(glob.glob("/dev/nvidia[0-9]*"))
    return _NOTICES + (() if has_gpu else _NO_GPU)


@contextlib.contextmanager
def notices_hidden():
    """Run the block with stderr (descriptor 2, which C++ writes to) captured; then write
    back every captured line but TensorFlow's start-up notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            hidden = _hidden()
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(notice in line for notice in hidden):
                    sys.stderr.write(line)
            sys.stderr.flush()


def import_tensorflow() -> None:
    """Import tensorflow and start its devices with the start-up notices hidden; a
    no-op once tensorflow is imported."""
    if "tensorflow" in sys.modules:
        return
    with notices_hidden():
        import tensorflow as tf

        tf.config.list_physical_devices()   # the CUDA platform starts (cuInit) here
