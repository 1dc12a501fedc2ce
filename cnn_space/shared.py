"""Weight sharing for the CNN space (ENAS macro search, Pham et al. 2018, arXiv:1802.03268).

:class:`SharedCnnNetwork` is one Keras layer holding the weights of *every*
child of a :class:`cnn_space.space.CnnSpace` (presets v1 and v3, Zoph & Le
2017, arXiv:1611.01578, §3.1, §3.3, §4.1); which child it computes is set by
non-trainable int32 variables (:meth:`SharedCnnNetwork.set_architecture`), so
one traced ``tf.function`` serves every architecture. :class:`SharedCnn`
trains it on sampled children and scores any child on fixed validation batches.

Choices, and why:

* **Kernels: slices of one largest kernel per layer.** Layer ``i`` holds one
  ``7 x 7 x (C + i * F) x F`` kernel (``F`` the largest filter choice, ``C``
  the image channels). A ``h x w`` filter uses its centre ``h x w`` crop and
  ``f`` filters its first ``f`` output channels. With one kernel per choice
  (16 sizes x 4 counts per layer) each kernel would train on 1/64 of the
  steps of its layer; with slices every step trains the centre taps that all
  larger filters contain (as in slimmable / once-for-all networks). Only the
  chosen crop is convolved (sliced at run time, so the convolution's kernel
  shape is a runtime value): a step costs one convolution per layer, not 16.
  (A ``tf.switch_case`` over the 16 sizes ran as fast but took 2.3x longer
  to trace.) The unchosen output channels are computed and zeroed, and the
  unchosen input blocks are zeros (static shapes, hence one trace).
* **Skip connections:** the input of layer ``i`` is the concatenation of the
  image block and of every earlier layer's output, each multiplied by its
  anchor bit (the image block by "no input chosen"), max-pooled across the
  fixed pools of v3 as :func:`cnn_space.builder.merge_inputs` does. Zeroed
  blocks contribute nothing, so this is the builder's concatenation of the
  chosen inputs, with the kernel rows of the unchosen inputs unused. (No
  zero-padding is needed: without predicted strides every input of a layer
  has its resolution.) The unused outputs of the active layers go to the
  classifier (global average pooling, dense), as in the builder.
* **Batch normalisation: batch statistics always, no moving statistics.**
  Moving averages would mix the statistics of every sampled child, which
  differ per child. Instead every pass (training and scoring) normalises
  with the statistics of its own batch; scores use fixed, large validation
  batches (``eval_batch_size``), so they are deterministic and comparable.
  ``gamma`` and ``beta`` are shared per layer and output channel.
* **Strides (preset v2) are not supported:** a predicted stride changes the
  shapes of every later layer, which one static graph cannot follow.
* **Depth:** the network has the space's full depth; a shallower child (the
  curriculum) leaves the later layers inactive (outputs zero).

A step whose loss or gradient is not finite changes no weight (``tf.cond``),
as in :class:`cells.shared_lm.SharedLM`.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnn_space.spec import FILTER_SIZES, POOL_SIZE
from nas_tf.errors import ConfigError
from nas_tf.shared_model import apply_if_finite, restore_state, save_state

#: (filter_height, filter_width) of each size index; index ``len(SIZE_PAIRS)``: inactive layer.
SIZE_PAIRS = tuple((h, w) for h in FILTER_SIZES for w in FILTER_SIZES)
_MAX = max(FILTER_SIZES)
_CLIP = 5.0  # global gradient norm bound of the shared weights (ENAS: 5.0)


def uniform_spec(space, rng, skip_prob: float = 0.5, depth: int | None = None):
    """A child of ``space`` with every choice uniform (each anchor bit 1 with
    ``skip_prob``): the warm-up sampler, and random search with sharing.

    Args:
        space: A :class:`cnn_space.space.CnnSpace`.
        rng: A ``random.Random``.
        skip_prob: Probability of each skip connection.
        depth: Layers (default: the space's depth before any sample).
    """
    from nas_tf.space import Anchor

    decisions = space.decisions_of_depth(depth) if depth else space.decisions()
    tokens = []
    for d in decisions:
        if isinstance(d, Anchor):
            tokens += [int(rng.random() < skip_prob) for _ in range(d.num_inputs)]
        else:
            tokens.append(rng.randrange(len(d.values)))
    return space.tokens_to_spec(tokens)


def _pool(x, times):
    for _ in range(times):
        x = tf.nn.max_pool2d(x, POOL_SIZE, POOL_SIZE, "SAME")
    return x


@keras.saving.register_keras_serializable(package="nas_tf")
class SharedCnnNetwork(keras.layers.Layer):
    """Every child of a CNN space (no predicted strides) in one network; logits out.

    Args:
        num_layers: Depth of the space.
        filter_choices: The space's filter counts.
        pool_positions: Layers preceded by a 2x2 max pool (v3).
        num_classes: Classes of the classifier.
        epsilon: Added to the batch variance in batch normalisation.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Normalised images ``(batch, height, width, channels)``.

    Returns:
        Logits ``(batch, num_classes)`` of the child set by :meth:`set_architecture`.
    """

    def __init__(self, num_layers, filter_choices, pool_positions=(), num_classes=10,
                 epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.filter_choices = tuple(int(f) for f in filter_choices)
        self.pool_positions = tuple(int(p) for p in pool_positions)
        self.num_classes = int(num_classes)
        self.epsilon = float(epsilon)
        self.width = max(self.filter_choices)

    def stage_of(self, i: int) -> int:
        return sum(1 for p in self.pool_positions if p <= i)

    def build(self, input_shape):
        n, f, c = self.num_layers, self.width, int(input_shape[-1])
        he = keras.initializers.HeNormal()
        self.kernels, self.gammas, self.betas = [], [], []
        for i in range(n):
            self.kernels.append(self.add_weight(shape=(_MAX, _MAX, c + i * f, f),
                                                initializer=he, name=f"layer_{i}_kernel"))
            self.gammas.append(self.add_weight(shape=(f,), initializer="ones",
                                               name=f"layer_{i}_gamma"))
            self.betas.append(self.add_weight(shape=(f,), initializer="zeros",
                                              name=f"layer_{i}_beta"))
        self.classifier_kernel = self.add_weight(
            shape=(n * f, self.num_classes), initializer="glorot_uniform",
            name="classifier_kernel")
        self.classifier_bias = self.add_weight(shape=(self.num_classes,), initializer="zeros",
                                               name="classifier_bias")
        arch = dict(initializer="zeros", dtype="int32", trainable=False)
        self.arch_size = self.add_weight(shape=(n,), name="arch_size", **arch)
        self.arch_filters = self.add_weight(shape=(n,), name="arch_filters", **arch)
        self.arch_inputs = self.add_weight(shape=(n, n), name="arch_inputs", **arch)
        self.arch_depth = self.add_weight(shape=(), name="arch_depth", **arch)

    def set_architecture(self, spec) -> None:
        """Makes the network compute ``spec`` (a CnnSpec of this space) from now on.

        Raises:
            ConfigError: the spec is deeper than the network, has strides, other
                filter counts or other pools.
        """
        n = spec.num_layers
        if n > self.num_layers or spec.pool_positions != tuple(
                p for p in self.pool_positions if p < n):
            raise ConfigError(f"The shared network has {self.num_layers} layers with pools "
                              f"before {list(self.pool_positions)}. Received: {n} layers, "
                              f"pools {list(spec.pool_positions)}")
        size = [len(SIZE_PAIRS)] * self.num_layers
        filters = [0] * self.num_layers
        inputs = np.zeros((self.num_layers, self.num_layers), np.int32)
        for i, layer in enumerate(spec.layers):
            if layer.strides != (1, 1) or layer.filters not in self.filter_choices:
                raise ConfigError(f"The shared network has stride 1 and filters "
                                  f"{self.filter_choices}. Received: layer {i} {layer}")
            size[i] = SIZE_PAIRS.index((layer.filter_height, layer.filter_width))
            filters[i] = layer.filters
            inputs[i, list(layer.inputs)] = 1
        self.arch_size.assign(np.asarray(size, np.int32))
        self.arch_filters.assign(np.asarray(filters, np.int32))
        self.arch_inputs.assign(inputs)
        self.arch_depth.assign(n)

    def _conv(self, i, x):
        # The chosen centre crop, sliced at run time: one convolution whose kernel
        # shape is a runtime value (an inactive layer convolves 1 x 1; it is zeroed).
        sizes = tf.constant([*SIZE_PAIRS, (1, 1)], tf.int32)
        h, w = sizes[self.arch_size[i], 0], sizes[self.arch_size[i], 1]
        kernel = tf.slice(tf.convert_to_tensor(self.kernels[i]),
                          [_MAX // 2 - h // 2, _MAX // 2 - w // 2, 0, 0], [h, w, -1, -1])
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    def call(self, inputs, training=None):
        images = tf.cast(inputs, "float32")
        n, f = self.num_layers, self.width
        bits = tf.cast(tf.convert_to_tensor(self.arch_inputs), "float32")
        active = tf.cast(tf.range(n) < self.arch_depth, "float32")
        channel = tf.range(f)
        outputs = []
        for i in range(n):
            stage = self.stage_of(i)
            no_input = 1.0 - tf.reduce_max(bits[i, :i]) if i else tf.constant(1.0)
            parts = [_pool(images, stage) * no_input]
            parts += [_pool(outputs[j], stage - self.stage_of(j)) * bits[i, j] for j in range(i)]
            y = self._conv(i, tf.concat(parts, -1))
            mean, variance = tf.nn.moments(y, [0, 1, 2])
            y = tf.nn.batch_normalization(y, mean, variance, self.betas[i], self.gammas[i],
                                          self.epsilon)
            mask = tf.cast(channel < self.arch_filters[i], "float32") * active[i]
            outputs.append(tf.nn.relu(y) * mask)
        # Classifier input: the active layers no active layer uses (paper §3.3).
        used = tf.reduce_max(bits * active[:, None], axis=0)
        unused = active * (1.0 - used)
        final_stage = tf.constant(0)  # pools before the last active layer
        for p in self.pool_positions:
            final_stage += tf.cast(p < self.arch_depth, "int32")
        per_stage = []
        for s in range(len(self.pool_positions) + 1):
            per_stage.append(tf.concat(
                [tf.reduce_mean(_pool(y, max(0, s - self.stage_of(i))), axis=[1, 2]) * unused[i]
                 for i, y in enumerate(outputs)], -1))
        features = tf.gather(tf.stack(per_stage), final_stage)
        return tf.matmul(features, self.classifier_kernel) + self.classifier_bias

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers,
                "filter_choices": list(self.filter_choices),
                "pool_positions": list(self.pool_positions), "num_classes": self.num_classes,
                "epsilon": self.epsilon}


class SharedCnn:
    """The shared network of a CNN space: train on sampled children, score any child.

    Training uses the search's images and augmentation (``cfg.augmentation``),
    SGD with Nesterov momentum ``cfg.momentum`` at the constant rate
    ``cfg.learning_rate`` (a search has no end to decay towards), L2
    ``cfg.weight_decay`` on every kernel, gradients clipped to norm 5 (ENAS).
    Scores are accuracies on the first validation batches of
    ``cfg.eval_batch_size`` images (the same for every child; the test split
    is never read).

    Args:
        space: A :class:`cnn_space.space.CnnSpace` without predicted strides.
        data: Its :class:`cnn_space.data.ImageData`.
        cfg: The :class:`cnn_space.config.CnnSearchConfig` of the search.
        seed: Seed of the initial weights and of the training order.

    Raises:
        ConfigError: a space with predicted strides (v2).
    """

    def __init__(self, space, data, cfg, *, seed: int = 0):
        from nas_tf.evaluator import seed_child

        if space.predict_strides:
            raise ConfigError("Weight sharing (--sharing=enas) supports the CNN presets v1 and "
                              "v3; predicted strides change every later layer's shape. "
                              f"Received: preset={space.preset!r}")
        seed_child(seed)
        self.space, self.data, self.cfg, self.seed = space, data, cfg, seed
        self.batch_size = cfg.global_batch_size(len(data.y_train))
        self.net = SharedCnnNetwork(space.num_layers, space.filter_choices, space.pool_positions,
                                    data.num_classes, name="shared_cnn")
        self.net(tf.zeros((1, *data.image_shape)))
        self.variables = self.net.trainable_variables
        self.optimizer = keras.optimizers.SGD(learning_rate=cfg.learning_rate,
                                              momentum=cfg.momentum, nesterov=cfg.momentum > 0)
        self.optimizer.build(self.variables)
        self.steps = 0
        self.skipped = 0
        self._batches = None
        size = min(cfg.eval_batch_size, len(data.y_val))
        x = ((data.x_val.astype(np.float32) - data.mean) / data.std).astype(np.float32)
        self._valid = [(tf.constant(x[k:k + size]), tf.constant(data.y_val[k:k + size]))
                       for k in range(0, len(x) - size + 1, size)]
        self._train_step = self._make_train_step()
        self._eval_step = tf.function(lambda x, y: tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(self.net(x), -1, output_type=tf.int32), tf.cast(y, tf.int32)),
            tf.float32)))

    def _make_train_step(self):
        net, variables, opt = self.net, self.variables, self.optimizer
        decay = float(self.cfg.weight_decay)

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = net(x, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=tf.cast(y, tf.int32), logits=logits))
                reg = decay * tf.add_n([tf.reduce_sum(tf.square(k)) for k in net.kernels]
                                       + [tf.reduce_sum(tf.square(net.classifier_kernel))])
                objective = loss + reg
            grads = tape.gradient(objective, variables)
            # A sampled child that blows up must not poison the weights every child shares.
            return loss, apply_if_finite(opt, grads, variables, loss, _CLIP)

        return train_step

    @property
    def traces(self) -> int:
        """Times the train step was traced (1 when every child reused the graph)."""
        return self._train_step.experimental_get_tracing_count()

    def set_architecture(self, spec) -> None:
        self.net.set_architecture(spec)

    def _next_batch(self):
        if self._batches is None:  # a resumed model continues on another order
            from cnn_space.pipeline import make_train_dataset

            ds = make_train_dataset(self.data, self.batch_size, self.seed + self.steps,
                                    augment=self.cfg.augmentation, drop_remainder=True)
            self._batches = iter(ds)
        return next(self._batches)

    def train(self, sample, steps: int) -> float:
        """Trains ``steps`` batches, each on the child ``sample()`` returns.

        Returns:
            The mean training loss of the finite steps (NaN if none); a
            non-finite step changes nothing and is counted in :attr:`skipped`.
        """
        total, finite_steps = 0.0, 0
        for _ in range(int(steps)):
            self.set_architecture(sample())
            x, y = self._next_batch()
            loss, applied = self._train_step(x, y)
            loss = float(loss)
            if bool(applied) and math.isfinite(loss):
                total, finite_steps = total + loss, finite_steps + 1
            else:
                self.skipped += 1
            self.steps += 1
        return total / finite_steps if finite_steps else math.nan

    def score(self, spec, max_batches: int | None = None) -> float:
        """Validation accuracy of ``spec`` with the shared weights on the first
        ``max_batches`` validation batches (None: every full batch)."""
        self.set_architecture(spec)
        batches = self._valid[:max_batches] if max_batches else self._valid
        correct = sum(float(self._eval_step(x, y)) for x, y in batches)
        return correct / sum(int(y.shape[0]) for _, y in batches)

    def save(self, path: str | Path) -> None:
        """Writes the weights, the optimizer's variables and the counters (atomic)."""
        save_state(path, self.net, self.optimizer, [self.steps, self.skipped])

    def restore(self, path: str | Path) -> None:
        """Loads what :meth:`save` wrote.

        Raises:
            ConfigError: the file is missing, unreadable or of another network.
        """
        steps, skipped = restore_state(path, self.net, self.optimizer, "the shared CNN", 2)
        self.steps, self.skipped, self._batches = steps, skipped, None
