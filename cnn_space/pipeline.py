"""tf.data pipelines of the CNN children: normalisation, augmentation, batching.

The training augmentation is one of :data:`AUGMENTATIONS`: ``"crop_flip"``
(the paper's CIFAR-10 augmentation, Zoph & Le 2017 §4.1: pad 4, random crop,
random horizontal flip), ``"crop"`` (no flip: for orientation-dependent
images) or ``"none"``. Every random choice is drawn statelessly from a seed,
so a pipeline is reproducible.
"""

from __future__ import annotations

import math

import numpy as np

from nas_tf.errors import ConfigError

# Training augmentations: none; pad-4 random crop; pad-4 random crop + horizontal flip (the
# paper's CIFAR-10 augmentation, §4.1). Flips are wrong for orientation-dependent images
# (digits, text, arrows), so an image folder does not flip unless asked.
AUGMENTATIONS = ("none", "crop", "crop_flip")


def _plain(fn):
    """Marks a tf.data map function as plain TF ops: AutoGraph leaves it as is."""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


def _normalize(images, data):
    import tensorflow as tf

    mean = tf.constant(data.mean, tf.float32)
    std = tf.constant(data.std, tf.float32)
    return (tf.cast(images, tf.float32) - mean) / std


def augment_batch(images, seed, pad: int = 4, flip: bool = True):
    """Standard CIFAR augmentation of a batch: zero-pad, random crop, random flip.

    Each image gets its own crop offset and flip, drawn statelessly from
    ``seed`` (a shape-[2] int tensor), so a pipeline is reproducible.

    Args:
        images: float tensor (B, H, W, C), already normalised (zero padding is
            then padding with the per-channel mean of the raw images).
        seed: shape-[2] int32/int64 tensor.
        pad: Pixels of zero padding on each side (paper setting: 4).
        flip: Also flip half of the images horizontally (False: crop only).

    Returns:
        Tensor of the same shape as ``images``.
    """
    import tensorflow as tf

    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    seeds = tf.random.experimental.stateless_split(seed, 3)
    oy = tf.random.stateless_uniform([b], seeds[0], 0, 2 * pad + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([b], seeds[1], 0, 2 * pad + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform([b], seeds[2], 0, 2, dtype=tf.int32)
    # Exact integer crops with one gather: rows oy..oy+h-1, cols ox..ox+w-1.
    rows = oy[:, None] + tf.range(h)[None, :]  # (B, H)
    cols = ox[:, None] + tf.range(w)[None, :]  # (B, W)
    if flip:
        cols = tf.where(flips[:, None] > 0, tf.reverse(cols, axis=[1]), cols)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, H, W+2p, C)
    out = tf.gather(out, cols, axis=2, batch_dims=1)  # (B, H, W, C)
    return out


def make_train_dataset(
    data,
    batch_size: int,
    seed: int,
    *,
    augment: bool | str = True,
    repeat: bool = True,
    drop_remainder: bool = False,
):
    """The training pipeline: shuffle, batch, normalise, augment, prefetch.

    Args:
        data: Loaded :class:`ImageData`.
        batch_size: Global batch size.
        seed: Seed of the shuffle and of the augmentation.
        augment: One of :data:`AUGMENTATIONS` (``"none"``, ``"crop"``,
            ``"crop_flip"``); True means ``"crop_flip"``, False ``"none"``.
        repeat: Repeat forever (training then uses ``steps_per_epoch``).
        drop_remainder: Drop the last incomplete batch of each pass.

    Returns:
        A ``tf.data.Dataset`` of ``(images float32 (B,H,W,C), labels int32 (B,))``.
    """
    import tensorflow as tf

    mode = augmentation_mode(augment)
    n = len(data.y_train)
    images_t, labels_t = tf.constant(data.x_train), tf.constant(data.y_train)

    # The order of epoch e is a pure function of (seed, e), not of how many
    # iterators were made before (a shuffle's seed generator is shared by
    # them): Keras's fit under a tf.distribute strategy opens one iterator to
    # build the model, so a reshuffling Dataset.shuffle would train a child on
    # several devices on other batches than on one.
    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order)

    epochs = tf.data.Dataset.range(1 << 62 if repeat else 1)
    ds = epochs.flat_map(_plain(epoch_order))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.enumerate()

    def prepare(step, rows):
        images, labels = tf.gather(images_t, rows), tf.gather(labels_t, rows)
        x = _normalize(images, data)
        if mode != "none":
            x = augment_batch(x, tf.stack([tf.cast(seed, tf.int64), step]),
                              flip=mode == "crop_flip")
        return x, labels

    ds = ds.map(_plain(prepare), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def augmentation_mode(augment) -> str:
    """``"none"``, ``"crop"`` or ``"crop_flip"`` from a mode name or a bool (True: crop_flip)."""
    if isinstance(augment, bool):
        return "crop_flip" if augment else "none"
    if augment not in AUGMENTATIONS:
        raise ConfigError(
            f"Unknown augmentation; use one of {', '.join(AUGMENTATIONS)}. "
            f"Received: augment={augment!r}"
        )
    return augment


def make_eval_dataset(data, x: np.ndarray, y: np.ndarray, batch_size: int):
    """A finite, normalised, cached evaluation pipeline over ``(x, y)``."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    ds = ds.map(_plain(lambda a, b: (_normalize(a, data), b)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.cache().prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches per pass over ``num_examples`` (the last one may be partial)."""
    return max(1, math.ceil(num_examples / batch_size))


def eval_batch_size(batch: int, images: int, replicas: int) -> int:
    """The evaluation batch on ``replicas`` devices: a multiple of them.

    >>> eval_batch_size(500, 7, 2), eval_batch_size(500, 5000, 3), eval_batch_size(500, 7, 1)
    (6, 498, 500)
    """
    if replicas <= 1:
        return batch
    batch = min(batch, images)
    return max(replicas, batch - batch % replicas)


def replica_eval_dataset(data, x, y, batch: int, replicas: int):
    """Evaluation batches that split evenly over ``replicas`` devices: Keras's
    evaluate under a strategy averages the first batch over the replicas (a
    batch split 4 / 3 fails: "Inputs to operation AddN ... must have the same
    size"), and a replica given no rows of a last batch fails in batch norm.
    So on n devices the split is cut to a multiple of n images (at most n - 1
    images left out; none of CIFAR-10's 5,000 on 2, 4 or 8 devices)."""
    if replicas > 1:
        keep = len(y) - len(y) % replicas
        if keep < replicas:
            raise ConfigError(f"{len(y)} evaluation images cannot be split over {replicas} "
                              f"devices. Received: devices={replicas}")
        x, y = x[:keep], y[:keep]
    return make_eval_dataset(data, x, y, eval_batch_size(batch, len(y), replicas))
