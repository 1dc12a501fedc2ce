"""Batch-norm statistics of a trained child, recomputed on training images.

Keras' batch norm keeps moving averages of the batch means and variances with
momentum 0.99: after ``s`` training steps a fraction ``0.99**s`` of them is
still the initial value (mean 0, variance 1), and the rest averages batches
seen while the weights were still changing fast. A child trained for a few
dozen steps (one epoch on a few thousand images) is therefore validated in
inference mode with statistics that do not describe its own activations, and
its validation accuracy measures the staleness of those averages more than its
architecture (``experiments/results/cnn_reward.md``: on an easy generated task,
validation 0.25 against training 0.40 after 22 steps, 0.41 once recalibrated).

:func:`recalibrate_batchnorm` replaces the moving statistics by the exact mean
and variance of every batch-norm input over a set of training images, computed
with the final weights (the network runs in training mode, so each layer sees
the inputs it saw while training) — the "batch-norm recalibration" of one-shot
NAS methods. Only the moving statistics change; no trainable weight does.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def batchnorm_statistics(model) -> list[tuple]:
    """``(moving_mean, moving_variance, momentum)`` of every batch norm in ``model``.

    Finds the statistics kept by :class:`cnn_space.builder.CnnBody` (through
    its ``layer_variables``) and by ``keras.layers.BatchNormalization``
    layers, in nested layers too.
    """
    import keras

    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append((layer.moving_mean, layer.moving_variance, float(layer.momentum)))
        elif hasattr(layer, "layer_variables") and hasattr(layer, "spec"):
            for i in range(layer.spec.num_layers):
                *_, mean, variance = layer.layer_variables(i)
                found.append((mean, variance, float(layer.momentum)))
        for sub in getattr(layer, "layers", []) or []:
            visit(sub)

    for layer in model.layers:
        visit(layer)
    return found


class BatchNormCalibrator:
    """Recomputes a model's batch-norm statistics from a fixed set of batches.

    Args:
        model: A built Keras model.
        batches: A finite iterable (e.g. a cached ``tf.data.Dataset``) of
            images or ``(images, labels)`` pairs, normalised like the training
            images; every batch the same size keeps it to one trace.

    Example:

        calibrator = BatchNormCalibrator(model, train_batches)
        calibrator()  # before each validation pass
    """

    def __init__(self, model, batches):
        import tensorflow as tf

        self.model = model
        self.batches = batches
        self.stats = batchnorm_statistics(model)
        self._forward = tf.function(lambda x: model(x, training=True), reduce_retracing=True)
        self.calls = 0

    def __call__(self) -> int:
        """Sets every moving mean / variance to its exact value; returns the images used."""
        import tensorflow as tf

        if not self.stats:
            return 0
        sums = [None] * len(self.stats)
        squares = [None] * len(self.stats)
        total = 0
        for batch in self.batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            n = int(images.shape[0])
            for mean, variance, _ in self.stats:
                mean.assign(tf.zeros_like(mean))
                variance.assign(tf.zeros_like(variance))
            self._forward(images)
            for k, (mean, variance, momentum) in enumerate(self.stats):
                # After one update from zero: value = (1 - momentum) * batch statistic.
                m = tf.convert_to_tensor(mean) / (1.0 - momentum)
                v = tf.convert_to_tensor(variance) / (1.0 - momentum)
                s, q = n * m, n * (v + tf.square(m))
                sums[k] = s if sums[k] is None else sums[k] + s
                squares[k] = q if squares[k] is None else squares[k] + q
            total += n
        if total == 0:
            raise ValueError("BatchNormCalibrator got no batches to compute statistics from.")
        for k, (mean, variance, _) in enumerate(self.stats):
            m = sums[k] / total
            mean.assign(m)
            variance.assign(tf.maximum(squares[k] / total - tf.square(m), 0.0))
        self.calls += 1
        return total


def recalibrate_batchnorm(model, batches) -> int:
    """One-off :class:`BatchNormCalibrator` call; returns the number of images used."""
    return BatchNormCalibrator(model, batches)()


def training_calibrator(model, data, cfg, batch, seed):
    """A BatchNormCalibrator over a fixed random subset of unaugmented training images."""
    import numpy as np

    from cnn_space.data import make_eval_dataset

    n = min(len(data.y_train), cfg.bn_recalibration_images)
    batch = min(batch, n)
    n -= n % batch  # equal batches: one trace
    idx = np.random.default_rng(seed).permutation(len(data.y_train))[:n]
    batches = make_eval_dataset(data, data.x_train[idx], data.y_train[idx], batch)
    return BatchNormCalibrator(model, batches)


def _recalibrate_callback():
    import keras

    class RecalibrateBeforeValidation(keras.callbacks.Callback):
        """Recomputes the batch-norm statistics before every validation pass of fit()."""

        def __init__(self, calibrator):
            super().__init__()
            self.calibrator = calibrator

        def on_test_begin(self, logs=None):
            self.calibrator()

    return RecalibrateBeforeValidation


def recalibrate_before_validation(calibrator):
    """A Keras callback that recalibrates before each validation pass of fit()."""
    return _recalibrate_callback()(calibrator)
