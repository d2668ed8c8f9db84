"""A first hour without surprises: no start-up notice of TensorFlow that reads as an error,
real errors still shown, and a stage run by a Python without the project's packages says
in one line what to do."""
import glob
import os
import subprocess
import sys

import pytest

from devtools.projects import ROOT

# the environment as a user's shell has it: none of the settings carbrands/startup.py
# makes (conftest imports it, so this process has them) or the tests may add
QUIET = {k: v for k, v in os.environ.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "CARBRANDS_TF_STARTUP_LOG")}


def _python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env or QUIET, capture_output=True, text=True)


# onednn_enabled() asks TensorFlow itself whether its oneDNN kernels are on
ONEDNN = "from carbrands import internals\nprint(internals.onednn_enabled())\n"


@pytest.mark.skipif(bool(glob.glob("/dev/nvidia[0-9]*")), reason="a GPU machine: cuInit may really fail there")
def test_tensorflow_starts_without_a_line_on_stderr_and_with_onednn_on():
    # TensorFlow leaves oneDNN off by default on a CPU without AVX-512 VNNI/BF16 or AMX
    # (carbrands/startup.py)
    proc = _python("from carbrands import startup\n"
                   "startup.import_tensorflow()\n"
                   "import keras, tensorflow as tf\n"
                   "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
                   "print(m.predict(tf.ones((1, 4)), verbose=0).shape)\n" + ONEDNN)
    assert proc.returncode == 0 and proc.stdout.split() == ["(1,", "2)", "True"], proc.stderr
    assert proc.stderr == ""
    # the notices are TensorFlow's, written back on request
    loud = _python("from carbrands import startup\nstartup.import_tensorflow()",
                   env=dict(QUIET, CARBRANDS_TF_STARTUP_LOG="1"))
    assert "InitializeLog" in loud.stderr


def test_other_lines_written_during_start_up_are_kept():
    proc = _python("import os\nfrom carbrands import startup\n"
                   "with startup.notices_hidden():\n"
                   "    os.write(2, b'I0000 00:00 1 cpu_feature_guard.cc:227] optimized\\n')\n"
                   "    os.write(2, b'E0000 00:00 1 something.cc:1] a real problem\\n')\n")
    assert proc.stderr == "E0000 00:00 1 something.cc:1] a real problem\n"


def test_a_stage_under_a_python_without_the_packages_says_to_activate_the_venv(tmp_path):
    # an interpreter that sees none of the venv's packages: -S leaves site-packages out
    proc = subprocess.run([sys.executable, "-S", "-m", "stages.train"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(QUIET, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "source .venv/bin/activate" in proc.stderr


def test_onednn_can_be_turned_off():
    code = "from carbrands import startup\nstartup.import_tensorflow()\n" + ONEDNN
    assert _python(code, env=dict(QUIET, TF_ENABLE_ONEDNN_OPTS="0")).stdout.split() == ["False"]


# the four without a model, and one with (each with one starts TensorFlow the same way)
@pytest.mark.parametrize("module", ["stages.synthesize", "stages.audit", "stages.prepare", "stages.report",
                                    "stages.train"])
def test_only_the_stages_with_a_model_start_tensorflow(module):
    # as `python -m <module>` sees it while the stages package is imported
    code = (f"import sys\nsys.orig_argv = [sys.executable, '-m', '{module}']\n"
            f"import {module}\nprint('tensorflow' in sys.modules)")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(module == "stages.train")]
