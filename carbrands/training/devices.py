"""Where training runs: the distribution strategy and the float precision."""
from __future__ import annotations

import keras
import tensorflow as tf

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
    """Use float16 compute (float32 weights) when enabled and a GPU is present;
    on a CPU float16 is slower, not faster, so the policy stays float32.
    Returns the policy name in effect."""
    policy = "float32"
    if enabled:
        if tf.config.list_physical_devices("GPU"):
            policy = "mixed_float16"
        else:
            print("mixed precision: requested, but no GPU found: training in float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy
