"""car-brands: recognise car brands in photos. Library shared by the DVC stages.

TensorFlow 2.21 writes start-up notices to stderr from C++ before absl logging is
initialised, where TF_CPP_MIN_LOG_LEVEL does not reach them (checked: levels 0-3 all
print them): oneDNN, `Could not find cuda drivers`, CPU instructions, and on a machine
without a GPU an `E0000 ... failed call to cuInit` that reads as an error. The first
`import tensorflow` after this package is imported runs with stderr captured, up to and
including the CUDA platform's start; every captured line is written back except those
notices (the cuInit failure only where no NVIDIA device exists), so real errors still
show. The TFLite interpreter's `Created TensorFlow Lite XNNPACK delegate` is hidden the
same way where carbrands/models/export.py creates one. CARBRANDS_TF_STARTUP_LOG=1 writes
everything back.
"""
import contextlib
import glob
import importlib.abc
import importlib.util
import os
import sys
import tempfile

# TensorFlow's own warnings after start-up (Python and C++): errors still show
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
def _start_up_notices_hidden():
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


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        with _start_up_notices_hidden():
            self.inner.exec_module(module)
            module.config.list_physical_devices()   # the CUDA platform starts (cuInit) here


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlow())
