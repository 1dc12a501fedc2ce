"""The shared language model of the tree space: train on sampled cells, score any cell.

ENAS-style weight sharing (Pham et al. 2018, arXiv:1802.03268) for the
recurrent-cell search of Zoph & Le 2017 (arXiv:1611.01578, §4.2): one
:class:`cells.lm.LanguageModel` whose layers are :class:`cells.shared.SharedTreeCell`
holds the weights of every cell of the space. :meth:`SharedLM.train` runs
truncated-BPTT steps, each on a cell drawn from a sampler (the controller),
with the recurrent state carried across windows as in :func:`cells.lm.train_lm`;
:meth:`SharedLM.score` gives a cell's validation perplexity with the shared
weights — a forward pass instead of a training run. The validation windows are
the same for every cell (a fixed prefix of the validation stream), so scores
are comparable; the test split is never used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cells.lm import LanguageModel, LMConfig
from cells.lm_eval import batchify, evaluate_loss, make_eval_step, num_windows, perplexity, window
from cells.shared import SharedTreeCell
from cells.tree_space import CellSpec
from nas_tf.errors import ConfigError
from nas_tf.evaluator import seed_child
from nas_tf.shared_model import apply_if_finite, restore_state, save_state


class SharedLM:
    """One language model for every cell of a tree space (weight sharing).

    Args:
        base: Leaves of the tree space (2 or 8).
        vocab_size: Number of symbols.
        train_data, valid_data: 1-D int token streams.
        config: An :class:`cells.lm.LMConfig` (units, layers, bptt, batch size,
            optimizer, learning rate, clipping, dropout...).
        seed: Seed of the initial weights and of dropout.

    Raises:
        ConfigError: a stream is too short for one window.

    Example:
        >>> lm = SharedLM(2, 50, train, valid, LMConfig(units=16))  # doctest: +SKIP
        >>> lm.train(lambda: space.tokens_to_spec(controller_tokens()), steps=100)  # doctest: +SKIP
        >>> lm.score(spec, max_windows=4)  # doctest: +SKIP
    """

    def __init__(self, base: int, vocab_size: int, train_data: np.ndarray,
                 valid_data: np.ndarray, config: LMConfig, *, seed: int = 0):
        seed_child(seed)
        self.config = config
        self.rows = batchify(np.asarray(train_data), config.batch_size)
        self.num_windows = num_windows(self.rows, config.bptt)
        if self.num_windows < 1:
            raise ConfigError(
                f"Training stream too short for one window of bptt={config.bptt} with batch "
                f"size {config.batch_size}. Received: {len(train_data)} tokens")
        self.valid_data = np.asarray(valid_data)
        init = keras.initializers.RandomUniform(-config.init_scale, config.init_scale)
        self.model = LanguageModel(
            lambda: SharedTreeCell(base, config.units, kernel_initializer=init,
                                   recurrent_initializer=init),
            vocab_size, config)
        self.model(tf.constant(self.rows[:, :1]), self.model.zero_states(config.batch_size))
        self.cells = [rnn.cell for rnn in self.model.rnns]
        self.variables = self.model.trainable_variables
        if config.optimizer == "sgd":
            self.optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate)
        else:
            self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        self.optimizer.build(self.variables)
        self.position = 0
        self.steps = 0
        self.skipped = 0
        self._states = self.model.zero_states(config.batch_size)
        self._train_step = self._make_train_step()
        self._eval_step = make_eval_step(self.model)

    def _make_train_step(self):
        model, variables, opt = self.model, self.variables, self.optimizer
        clip = float(self.config.max_grad_norm)
        scale = float(self.config.bptt) if self.config.sum_over_time else 1.0

        @tf.function
        def train_step(x, y, states):
            with tf.GradientTape() as tape:
                logits, new_states = model(x, states, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
                objective = loss * scale
            grads = tape.gradient(objective, variables)
            # A sampled cell whose state blows up must not poison the weights
            # every other cell shares: a non-finite step changes nothing.
            applied = apply_if_finite(opt, grads, variables, loss, clip)
            return loss, new_states, applied

        return train_step

    def set_architecture(self, spec: CellSpec | Sequence[int]) -> None:
        """Makes every layer compute the cell ``spec`` (a CellSpec or its tokens)."""
        for cell in self.cells:
            cell.set_architecture(spec)

    def train(self, sample: Callable[[], CellSpec | Sequence[int]], steps: int) -> float:
        """Trains the shared weights for ``steps`` windows, each on a cell from ``sample()``.

        A step whose loss or gradient is not finite (a cell whose state blows
        up) leaves the weights unchanged, restarts the carried state at zero
        and is counted in :attr:`skipped`.

        Returns:
            The mean training loss (nats per token) over the finite steps
            (NaN if there was none).
        """
        total, finite_steps = 0.0, 0
        for _ in range(int(steps)):
            if self.position == 0:
                self._states = self.model.zero_states(self.config.batch_size)
            self.set_architecture(sample())
            x, y = window(self.rows, self.position, self.config.bptt)
            loss, states, finite = self._train_step(tf.constant(x), tf.constant(y),
                                                    self._states)
            loss = float(loss)
            if bool(finite) and math.isfinite(loss):
                total += loss
                finite_steps += 1
                self._states = states
            else:
                self.skipped += 1
                self._states = self.model.zero_states(self.config.batch_size)
            self.steps += 1
            self.position = (self.position + 1) % self.num_windows
        return total / finite_steps if finite_steps else math.nan

    def score(self, spec: CellSpec | Sequence[int], max_windows: int | None = None,
              batch_size: int | None = None) -> float:
        """Validation perplexity of ``spec`` with the shared weights (no dropout).

        The first ``max_windows`` windows of the validation stream (None: all),
        the same for every cell, in ``batch_size`` parallel rows (default: the
        child's ``eval_batch_size``; a whole-split score is faster in more
        rows). A cell whose loss is not finite (its state blows up, e.g.
        unbounded activations on the memory path) scores ``inf``.
        """
        self.set_architecture(spec)
        loss = evaluate_loss(self.model, self.valid_data, bptt=self.config.bptt,
                             batch_size=batch_size or self.config.eval_batch_size,
                             max_windows=max_windows, _step=self._eval_step)
        if not math.isfinite(loss) or loss > 700.0:  # exp overflows past ~709
            return math.inf
        return perplexity(loss, "shared-model validation loss")

    def save(self, path: str | Path) -> None:
        """Writes the weights, the optimizer's variables and the stream position (atomic)."""
        save_state(path, self.model, self.optimizer, [self.position, self.steps, self.skipped])

    def restore(self, path: str | Path) -> None:
        """Loads what :meth:`save` wrote; the carried state restarts at zero.

        Raises:
            ConfigError: the file is missing, unreadable or of another model.
        """
        position, steps, skipped = restore_state(path, self.model, self.optimizer,
                                                 "the shared model", 3)
        self.position, self.steps, self.skipped = position % self.num_windows, steps, skipped
        self._states = self.model.zero_states(self.config.batch_size)
