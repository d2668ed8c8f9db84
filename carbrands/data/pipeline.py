"""The tf.data input pipeline: batches of (float32 images, int32 labels) from the
prepared uint8 arrays, shuffled and augmented for training, as every model stage
(`train`, `transfer`, `optimizers`) feeds its model."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from carbrands.data.augment import Augmenter, build_augmenter
from carbrands.data.prepared import Split

# Splits up to this size are held in memory as uint8 (1,500 images of 64x64 are
# 18 MB); larger ones are read batch by batch from the memory-mapped .npy. An
# in-memory split costs about three times its size (the array, the tensor, the
# shuffle buffer): the real dataset's train split at 224 px (1.7 GB) held in memory
# took the train stage to 4.5 GB, so it streams.
IN_MEMORY_BYTES = 512 * 1024**2


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 augmenter: Augmenter | None = None) -> tf.data.Dataset:
    """Batches of (float32 images in 0..255, int32 labels) from uint8 arrays.

    shuffle: a new order every epoch, the same sequence of orders for the same
    seed. augmenter: applied to whole batches in parallel; batch after batch and
    epoch after epoch it gets new seeds, the same sequence of seeds for the same
    seed.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    labels = np.asarray(labels, dtype=np.int32)
    if images.nbytes <= IN_MEMORY_BYTES:
        # one read of the memmap; slicing in-memory tensors is the fastest source
        ds = in_memory_batches(np.ascontiguousarray(images), labels, batch_size, shuffle, seed)
    else:
        ds = streamed_batches(images, labels, batch_size, shuffle, seed)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        # a stateless seed per batch (new ones each epoch) keeps the map parallel under op
        # determinism and its result independent of which thread ran which batch
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(lambda batch, s: (augmenter(batch[0], s), batch[1]),
                                                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def in_memory_batches(x: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool,
                      seed: int) -> tf.data.Dataset:
    """Batches of (x, int32 labels) from arrays in memory (images or cached features),
    in a new order every epoch when shuffling, the same sequence of orders for a seed."""
    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(labels, np.int32)))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def train_val_datasets(train: Split, val: Split, batch_size: int, seed: int,
                       augment: dict) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """What a model is fitted on: the training split shuffled and augmented (params'
    `augment` section), the validation split as it is."""
    return (make_dataset(train.images, train.labels, batch_size, True, seed, build_augmenter(augment)),
            make_dataset(val.images, val.labels, batch_size, False, seed))


def streamed_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool,
                     seed: int) -> tf.data.Dataset:
    """Batches read from an array (a memmap, or cached features) by index, so the array
    is never copied into a tensor and only a few batches are in memory: only the
    indices are shuffled."""
    shape, dtype = images.shape[1:], tf.as_dtype(images.dtype)

    def read(idx):
        rows = np.sort(idx)  # ascending rows read the file front to back
        return images[rows], labels[rows]

    ds = tf.data.Dataset.range(len(labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(
        lambda idx: tf.numpy_function(read, [idx], (dtype, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda x, y: (tf.ensure_shape(x, (None, *shape)), tf.ensure_shape(y, (None,))))
