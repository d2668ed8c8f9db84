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



def work_around_multi_worker_fit(model: keras.Model) -> None:
    """Keras 3 (3.15.1 pinned here) cannot fit under MultiWorkerMirroredStrategy as it
    ships (keras-team/keras#20585): (1) fit builds the model by averaging its first
    batch across workers with one strategy.reduce over the whole (images, labels)
    structure, which fails ("Attempt to convert a value (PerReplica...)"); (2) each
    step averages its scalar logs (loss, accuracy) with strategy.reduce(..., axis=0),
    which a scalar has no axis for. Here (1) builds from this worker's part of the
    batch (building needs only shapes and types), and (2) averages scalars across
    workers without an axis. Does nothing under any other strategy."""
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
    from keras.src.backend.tensorflow import trainer
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
