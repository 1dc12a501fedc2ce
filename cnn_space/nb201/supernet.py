"""Weight sharing for NAS-Bench-201: one supernet holding all five operations on each edge.

:class:`Nb201SupernetLayer` is the benchmark's skeleton (:mod:`cnn_space.nb201.model`)
in which every edge of every cell holds the weights of both convolutions
(1x1 and 3x3, each with its BatchNorm gamma and beta); which cell it computes
is set by a non-trainable int32 variable (:meth:`Nb201SupernetLayer.set_cell`),
and each edge runs only its chosen operation (``tf.switch_case``), so one
traced ``tf.function`` serves all 15,625 cells at the cost of one cell.
:class:`Nb201Supernet` trains it on sampled cells (one cell per batch, as
random-sampling weight sharing, RSPS, and ENAS do) and scores any cell on
fixed validation batches.

As in :mod:`cnn_space.shared`: batch normalisation always uses the batch's
own statistics (moving averages would mix the statistics of every sampled
cell), SGD with momentum at a constant rate (a search has no end to decay
towards), L2 on every kernel, gradients clipped to norm 5, and a step whose
loss or gradient is not finite changes no weight.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnn_space.nb201.space import EDGES, NUM_NODES, OPS, Nb201Spec
from nas_tf.shared_model import apply_if_finite, restore_state, save_state

_CLIP = 5.0
_EPS = 1e-5


def _bn(x, gamma, beta):
    mean, variance = tf.nn.moments(x, [0, 1, 2])
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, _EPS)


def _conv(x, kernel, stride=1):
    return tf.nn.conv2d(x, kernel, stride, "SAME")


@keras.saving.register_keras_serializable(package="nas_tf")
class Nb201SupernetLayer(keras.layers.Layer):
    """Every NAS-Bench-201 cell in one network; logits out.

    Args:
        channels: C of the skeleton (the stages have C, 2C, 4C).
        cells: N, cells per stage.
        num_classes: Classes of the classifier.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Normalised images ``(batch, height, width, channels)``.
    """

    def __init__(self, channels=16, cells=5, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.cells, self.num_classes = int(channels), int(cells), int(num_classes)

    def build(self, input_shape):
        he = keras.initializers.HeNormal()
        c_in, c = int(input_shape[-1]), self.channels

        def kernel(shape, name):
            return self.add_weight(shape=shape, initializer=he, name=name)

        def norm(ch, name):
            return (self.add_weight(shape=(ch,), initializer="ones", name=f"{name}_gamma"),
                    self.add_weight(shape=(ch,), initializer="zeros", name=f"{name}_beta"))

        self.stem = (kernel((3, 3, c_in, c), "stem_kernel"), *norm(c, "stem"))
        self.edges, self.reductions = [], []
        for stage in range(3):
            ch = c * 2 ** stage
            if stage:
                prev = ch // 2
                self.reductions.append((
                    kernel((3, 3, prev, ch), f"reduce{stage}_a"), *norm(ch, f"reduce{stage}_a"),
                    kernel((3, 3, ch, ch), f"reduce{stage}_b"), *norm(ch, f"reduce{stage}_b"),
                    kernel((1, 1, prev, ch), f"reduce{stage}_short")))
            for n in range(self.cells):
                cell = []
                for i, j in EDGES:
                    name = f"s{stage}c{n}_e{i}{j}"
                    cell.append((kernel((1, 1, ch, ch), f"{name}_k1"), *norm(ch, f"{name}_1"),
                                 kernel((3, 3, ch, ch), f"{name}_k3"), *norm(ch, f"{name}_3")))
                self.edges.append(cell)
        self.head = norm(4 * c, "head")
        self.classifier_kernel = self.add_weight(shape=(4 * c, self.num_classes),
                                                 initializer="glorot_uniform", name="classifier")
        self.classifier_bias = self.add_weight(shape=(self.num_classes,), initializer="zeros",
                                               name="classifier_bias")
        self.cell_ops = self.add_weight(shape=(len(EDGES),), initializer="zeros", dtype="int32",
                                        trainable=False, name="cell_ops")

    @property
    def kernels(self) -> list:
        """Every convolution and dense kernel (the L2 term's variables)."""
        out = [self.stem[0], self.classifier_kernel]
        out += [k for r in self.reductions for k in (r[0], r[3], r[6])]
        out += [k for cell in self.edges for e in cell for k in (e[0], e[3])]
        return out

    def set_cell(self, spec: Nb201Spec) -> None:
        """Makes the network compute ``spec`` from now on."""
        self.cell_ops.assign(np.asarray([OPS.index(op) for op in spec.ops], np.int32))

    def _edge(self, x, k, weights):
        k1, g1, b1, k3, g3, b3 = weights
        branches = [
            lambda: tf.zeros_like(x),
            lambda: x,
            lambda: _bn(_conv(tf.nn.relu(x), k1), g1, b1),
            lambda: _bn(_conv(tf.nn.relu(x), k3), g3, b3),
            lambda: tf.nn.avg_pool2d(x, 3, 1, "SAME"),
        ]
        return tf.switch_case(self.cell_ops[k], branches)

    def _cell(self, x, cell):
        nodes = [x]
        for i in range(1, NUM_NODES):
            nodes.append(tf.add_n([self._edge(nodes[j], k, cell[k])
                                   for k, (dst, j) in enumerate(EDGES) if dst == i]))
        return nodes[-1]

    def call(self, inputs, training=None):
        k, g, b = self.stem
        x = _bn(_conv(tf.cast(inputs, "float32"), k), g, b)
        cells = iter(self.edges)
        for stage in range(3):
            if stage:
                ka, ga, ba, kb, gb, bb, ks = self.reductions[stage - 1]
                block = _bn(_conv(tf.nn.relu(x), ka, 2), ga, ba)
                block = _bn(_conv(tf.nn.relu(block), kb), gb, bb)
                x = block + _conv(tf.nn.avg_pool2d(x, 2, 2, "VALID"), ks)
            for _ in range(self.cells):
                x = self._cell(x, next(cells))
        x = tf.nn.relu(_bn(x, *self.head))
        return tf.matmul(tf.reduce_mean(x, [1, 2]), self.classifier_kernel) + self.classifier_bias

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "cells": self.cells,
                "num_classes": self.num_classes}


class Nb201Supernet:
    """The supernet of a search: train on sampled cells, score any cell.

    Args:
        data: The search's :class:`cnn_space.data.ImageData` (training images
            train the weights; scores read the validation part only).
        channels, cells: The skeleton's C and N.
        batch_size: Training batch (NAS-Bench-201's searches: 64).
        eval_batch_size: Images per validation batch of a score.
        learning_rate, momentum, weight_decay: SGD's settings.
        seed: Seed of the initial weights and of the training order.
    """

    def __init__(self, data, *, channels=16, cells=5, batch_size=64, eval_batch_size=256,
                 learning_rate=0.025, momentum=0.9, weight_decay=5e-4, seed=0):
        from nas_tf.evaluator import seed_child

        seed_child(seed)
        self.data, self.seed, self.batch_size = data, seed, int(batch_size)
        self.weight_decay = float(weight_decay)
        self.net = Nb201SupernetLayer(channels, cells, data.num_classes, name="nb201_supernet")
        self.net(tf.zeros((1, *data.image_shape)))
        self.variables = self.net.trainable_variables
        self.optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                              nesterov=momentum > 0)
        self.optimizer.build(self.variables)
        self.steps, self.skipped = 0, 0
        self._batches = None
        x = ((data.x_val.astype(np.float32) - data.mean) / data.std).astype(np.float32)
        size = min(int(eval_batch_size), len(x))
        self._valid = [(tf.constant(x[k:k + size]), tf.constant(data.y_val[k:k + size]))
                       for k in range(0, len(x) - size + 1, size)]
        self._train_step = self._make_train_step()
        self._eval_step = tf.function(lambda x, y: tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(self.net(x), -1, output_type=tf.int32), tf.cast(y, tf.int32)),
            tf.float32)))

    def _make_train_step(self):
        net, variables, opt, decay = self.net, self.variables, self.optimizer, self.weight_decay

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = net(x, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=tf.cast(y, tf.int32), logits=logits))
                reg = decay * tf.add_n([tf.reduce_sum(tf.square(k)) for k in net.kernels])
            grads = tape.gradient(loss + reg, variables)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
            return loss, apply_if_finite(opt, grads, variables, loss, _CLIP)

        return train_step

    @property
    def traces(self) -> int:
        """Times the train step was traced (1 when every cell reused the graph)."""
        return self._train_step.experimental_get_tracing_count()

    def _next_batch(self):
        if self._batches is None:  # a resumed supernet continues on another order
            from cnn_space.pipeline import make_train_dataset

            ds = make_train_dataset(self.data, self.batch_size, self.seed + self.steps,
                                    augment="crop_flip", drop_remainder=True)
            self._batches = iter(ds)
        return next(self._batches)

    def train(self, sample, steps: int) -> float:
        """Trains ``steps`` batches, each on the cell ``sample()`` returns; the mean
        loss of the finite steps (NaN if none; a skipped step is counted)."""
        total, finite = 0.0, 0
        for _ in range(int(steps)):
            self.net.set_cell(sample())
            x, y = self._next_batch()
            loss, applied = self._train_step(x, y)
            loss = float(loss)
            if bool(applied) and math.isfinite(loss):
                total, finite = total + loss, finite + 1
            else:
                self.skipped += 1
            self.steps += 1
        return total / finite if finite else math.nan

    def score(self, spec: Nb201Spec, max_batches: int | None = None) -> float:
        """Validation accuracy of ``spec`` with the shared weights on the first
        ``max_batches`` validation batches (None: every full batch)."""
        self.net.set_cell(spec)
        batches = self._valid[:max_batches] if max_batches else self._valid
        correct = sum(float(self._eval_step(x, y)) for x, y in batches)
        return correct / sum(int(y.shape[0]) for _, y in batches)

    def save(self, path: str | Path) -> None:
        save_state(path, self.net, self.optimizer, [self.steps, self.skipped])

    def restore(self, path: str | Path) -> None:
        self.steps, self.skipped = restore_state(path, self.net, self.optimizer,
                                                 "the NAS-Bench-201 supernet", 2)
        self._batches = None
