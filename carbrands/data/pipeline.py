"""The tf.data input pipeline: batches of (float32 images, int32 labels) from the
prepared uint8 arrays, shuffled and augmented for training, as every model stage
(`train`, `transfer`, `optimizers`) feeds its model.

A training set is a stream of epochs (Epochs): epoch e's order and augmentation
seeds are a pure function of (seed, e), not the state of a random generator that
each pass advances, so a run resumed at epoch e (carbrands/training/resume.py)
sees exactly the batches the uninterrupted run saw."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from carbrands.data.augment import Augmenter, build_augmenter
from carbrands.data.prepared import Split, release
from carbrands.seeding import op_determinism_enabled

# Splits up to this size are held in memory as uint8 (1,500 images of 64x64 are
# 18 MB); larger ones are read batch by batch from the memory-mapped .npy. An
# in-memory split costs about twice its size (the array, the tensor): the real
# dataset's train split at 224 px (1.7 GB) held in memory took the train stage to
# 4.5 GB, so it streams.
IN_MEMORY_BYTES = 512 * 1024**2

# what the two random draws of an epoch are keyed by (with the seed and the epoch)
_SHUFFLE, _AUGMENT = 0, 1


@dataclass(frozen=True, eq=False)
class Epochs:
    """Batches of (float32, int32 labels) from an array of images (uint8) or cached
    features, epoch after epoch: dataset(first, count) holds epochs first ..
    first + count - 1, each a pass over every example in `steps` batches.

    shuffle: each epoch in its own order; augmenter: applied to whole batches in
    parallel, each batch with its own stateless seed. Both are pure functions of
    (seed, epoch): the same seed gives the same sequence of epochs, and epoch e is
    the same whether or not epochs before it were drawn in this process.
    streamed: read batch by batch from the array by index (a memmap, or cached
    features that must not be copied); None: when the array is larger than
    IN_MEMORY_BYTES."""
    images: np.ndarray
    labels: np.ndarray
    batch_size: int
    seed: int
    shuffle: bool = True
    augmenter: Augmenter | None = None
    streamed: bool | None = None

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def steps(self) -> int:
        """Batches in one epoch."""
        return -(-len(self) // self.batch_size)

    def dataset(self, first: int = 0, count: int = 1) -> tf.data.Dataset:
        n, seed = len(self), self.seed

        def epoch(e):
            order = tf.range(n, dtype=tf.int64)
            if self.shuffle:
                order = tf.random.experimental.stateless_shuffle(order, _key(seed, e, _SHUFFLE))
            batches = tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size).enumerate()
            return batches.map(lambda b, idx: (idx, _key(seed, e, _AUGMENT, b)))

        # (flat_map hides the length, which Keras and the progress lines want to know)
        ds = (tf.data.Dataset.range(first, first + count).flat_map(epoch)
              .apply(tf.data.experimental.assert_cardinality(count * self.steps)))
        read, streamed = self._reader()
        augment = self.augmenter

        def prepare(x, y, key):
            x = tf.cast(x, tf.float32)
            # a stateless seed per batch keeps the map parallel under op determinism and its
            # result independent of which thread ran which batch
            return (augment(x, key) if augment is not None else x), y

        # Reading by index from a numpy array (streamed) is a stateful op: op determinism
        # runs it one batch at a time, and the map after it too (printing an error-looking
        # line when asked to parallelise it), so both are asked for serially then. The
        # augmentation stays parallel otherwise.
        ds = ds.map(lambda idx, key: (*read(idx), key), num_parallel_calls=None if streamed else tf.data.AUTOTUNE)
        serial = streamed and op_determinism_enabled()
        ds = ds.map(prepare, num_parallel_calls=None if serial else tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        # every worker of a multi-worker run builds the same stream and takes its share of
        # each batch (the arrays are no files to shard by)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def _reader(self):
        """(read, streamed): read(batch indices) -> (x, y)."""
        labels = np.asarray(self.labels, np.int32)
        streamed = self.images.nbytes > IN_MEMORY_BYTES if self.streamed is None else self.streamed
        if not streamed:
            # one read of the memmap; gathering from in-memory tensors is the fastest source
            x, y = tf.constant(np.ascontiguousarray(self.images)), tf.constant(labels)
            release(self.images)
            return (lambda idx: (tf.gather(x, idx), tf.gather(y, idx))), False
        images = self.images
        # float16 caches are widened here, in numpy: TensorFlow's float16 cast falls back
        # to a slow kernel on CPUs without AVX-512 FP16 and says so on stderr
        wide = np.float32 if images.dtype == np.float16 else images.dtype
        shape, dtype = images.shape[1:], tf.as_dtype(wide)

        def read(idx):
            rows = np.sort(idx)  # ascending rows read the file front to back
            x = images[rows].astype(wide, copy=False)
            release(images)
            return x, labels[rows]

        def reader(idx):
            x, y = tf.numpy_function(read, [idx], (dtype, tf.int32))
            return tf.ensure_shape(x, (None, *shape)), tf.ensure_shape(y, (None,))
        return reader, True


def _key(seed: int, *data) -> tf.Tensor:
    """A stateless seed (a pair of int64) that is a pure function of `seed` and `data`."""
    key = tf.constant([seed, 0], tf.int64)
    for d in data:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(d, tf.int64))
    return key


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 augmenter: Augmenter | None = None) -> tf.data.Dataset:
    """One pass (epoch 0 of Epochs) over uint8 arrays: batches of (float32 images in
    0..255, int32 labels), shuffled and augmented when asked. Each iteration gives the
    same pass; fit takes an Epochs to draw a new one every epoch."""
    return Epochs(images, labels, batch_size, seed, shuffle, augmenter).dataset()


def train_val_datasets(train: Split, val: Split, batch_size: int, seed: int,
                       augment: dict) -> tuple[Epochs, tf.data.Dataset]:
    """What a model is fitted on: the training split shuffled and augmented (params'
    `augment` section) epoch after epoch, the validation split as it is."""
    return (Epochs(train.images, train.labels, batch_size, seed, True, build_augmenter(augment)),
            make_dataset(val.images, val.labels, batch_size, False, seed))
