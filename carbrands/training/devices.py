"""Where training runs: the distribution strategy, the float precision, and the
machine record each training stage writes beside its metrics."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import keras
import tensorflow as tf

from carbrands import internals
from carbrands.seeding import op_determinism_enabled

# The CPU instruction sets that decide which oneDNN/Eigen kernels run, and so the
# last bits of every float a training step computes.
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")

_STRATEGIES = {
    "default": tf.distribute.get_strategy,
    "mirrored": tf.distribute.MirroredStrategy,
    "multi_worker": tf.distribute.MultiWorkerMirroredStrategy,
}


def strategy_from_params(name: str) -> tf.distribute.Strategy:
    """default: the current (single-device) strategy; mirrored: all local GPUs;
    multi_worker: synchronous training across machines, each started with a
    TF_CONFIG environment variable describing the cluster and its own role.

    Build and compile the model under `strategy.scope()`, and batch the data with
    global_batch_size(): each replica then sees `batch_size` images per step."""
    if name not in _STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(_STRATEGIES)})")
    return _STRATEGIES[name]()


def global_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    return batch_size * strategy.num_replicas_in_sync


def set_mixed_precision(enabled: bool) -> str:
    """Use float16 compute (float32 weights) when enabled and a GPU is present.
    On a CPU the policy stays float32: float16 is slower there, and so is
    mixed_bfloat16 even with AVX-512 BF16 (bench/cpu_precision.py: the CNN's step
    1.03x, Lite0's 0.59x). Returns the policy name in effect."""
    policy = "float32"
    if enabled:
        if tf.config.list_physical_devices("GPU"):
            policy = "mixed_float16"
        else:
            print("mixed precision: requested, but no GPU found: training in float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """The CPU's model name and which of CPU_FLAGS it has, from /proc/cpuinfo (Linux);
    elsewhere the platform's processor string and no flags."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip(), value.strip())  # the first processor's
    model = fields.get("model name") or fields.get("Hardware") or fields.get("CPU part") or platform.machine()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return model, [f for f in CPU_FLAGS if f in flags]


def machine_record(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """Where a training stage ran: what decides whether another machine reproduces its
    history bit for bit (CPU model and instruction sets, GPUs, software versions, op
    determinism). Written beside the stage's metrics, not as a metric."""
    model, flags = cpu_info(cpuinfo)
    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return {
        "cpu": model,
        "cpu_cores": os.cpu_count(),
        "cpu_flags": flags,
        "gpus": gpus,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn": internals.onednn_enabled(),   # TensorFlow's own answer, whatever the environment asked
        "op_determinism": op_determinism_enabled(),
    }
