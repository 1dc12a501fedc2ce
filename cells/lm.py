"""Language-model children: build, train with truncated BPTT, measure perplexity.

The child of the recurrent-cell search (Zoph & Le 2017, arXiv:1611.01578,
§4.2) is a word-level language model in the style of Zaremba et al. 2014
(arXiv:1409.2329): an embedding, ``num_layers`` recurrent layers of the child
cell, dropout on the non-recurrent connections (after the embedding, between
layers and before the softmax), and a softmax over the vocabulary, whose
weights may be tied to the embedding (Press & Wolf 2016, arXiv:1608.05859).

Training is truncated back-propagation through time: the token stream is cut
into ``batch_size`` parallel rows, each row is read in windows of ``bptt``
steps, and the recurrent state at the end of one window is the initial state
of the next (carried, but not back-propagated through). We use a custom
``tf.function`` step instead of ``Model.fit``: the state must flow from one
batch to the next, ``fit`` would need stateful layers with a fixed batch size
and a callback to reset them, while here the state is an explicit input and
output of the step, reset to zeros only at the start of the stream.
Gradients are clipped by their global norm (Zaremba et al.: 5). Several
windows run per compiled call (:mod:`cells.lm_steps`): the host syncs with the
device (to check the loss for NaN / inf) once per call, not once per window.

Validation perplexity is ``exp`` of the mean per-token cross entropy over the
whole validation stream (the tail that does not fill a window is dropped, as
in the reference PTB reader).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from cells.lm_eval import (  # noqa: F401  (re-exported: cells.lm is the public module)
    batchify,
    bits_per_token,
    count_params,
    evaluate_loss,
    evaluate_perplexity,
    make_eval_step,
    num_windows,
    perplexity,
    window,
)
from cells.lm_steps import make_runner
from cells.nas_cell import NASCell
from cells.nas_rnn import NASRNN
from nas_tf.errors import (
    ChildTrainingError,  # noqa: F401 - also cells.lm.ChildTrainingError
    ConfigError,
)
from nas_tf.evaluator import make_strategy, replica_batch, seed_child
from nas_tf.validation import check_positive

_log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Model and training settings of a language-model child.

    Defaults are sized for CPU searches (short training); the paper's children
    (§4.2) are two-layer models whose hidden size matches the "medium"
    baseline of Zaremba et al. (650 units, dropout 0.5, SGD lr 1, ~39 epochs).

    Attributes:
        units: Hidden units of each recurrent layer (also the embedding size).
        num_layers: Recurrent layers (§4.2: two).
        bptt: Truncated-BPTT window (Zaremba et al.: 35).
        batch_size: Parallel rows of the training stream (Zaremba et al.: 20).
        eval_batch_size: Rows of the validation / test stream.
        epochs: Passes over the training stream.
        steps_per_epoch: Cap on windows per epoch (None: the whole stream).
            A capped epoch continues where the previous one stopped.
        optimizer: ``sgd`` (Zaremba et al.) or ``adam``.
        learning_rate: Initial learning rate (SGD: 1.0 as Zaremba et al.).
        lr_decay: Learning rate is multiplied by this after each epoch past
            ``decay_after`` epochs.
        decay_after: Epochs at the initial learning rate.
        max_grad_norm: Global gradient-norm clip (Zaremba et al.: 5).
        dropout: Dropout on non-recurrent connections (medium model: 0.5).
        init_scale: Weights of embedding and softmax uniform in
            [-init_scale, init_scale] (Zaremba et al.: 0.1 / 0.05).
        tie_embeddings: Share the embedding and softmax weights.
        unroll: Unroll the recurrent layers over the window (often faster
            on CPU for small cells; slower to trace).
        sum_over_time: Train on the cross entropy summed over the window's
            time steps and averaged over the batch, as the TensorFlow PTB
            tutorial does (its "lr 1.0" is then ``bptt`` times the step of a
            per-token mean loss). Default False: the per-token mean.
    """

    units: int = 200
    num_layers: int = 2
    bptt: int = 35
    batch_size: int = 20
    eval_batch_size: int = 10
    epochs: int = 1
    steps_per_epoch: int | None = None
    optimizer: str = "sgd"
    learning_rate: float = 1.0
    lr_decay: float = 0.5
    decay_after: int = 4
    max_grad_norm: float = 5.0
    dropout: float = 0.0
    init_scale: float = 0.1
    tie_embeddings: bool = False
    unroll: bool = False
    sum_over_time: bool = False

    def __post_init__(self):
        for name in ("units", "num_layers", "bptt", "batch_size", "eval_batch_size", "epochs",
                     "steps_per_epoch", "learning_rate", "max_grad_norm", "init_scale"):
            check_positive(name, getattr(self, name))
        check_positive("decay_after", self.decay_after, allow_zero=True)
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"lr_decay must be in (0, 1]. Received: lr_decay={self.lr_decay}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"Unknown optimizer; use one of {', '.join(OPTIMIZERS)}. "
                f"Received: optimizer={self.optimizer!r}"
            )


def _state_sizes(cell) -> list[int]:
    size = cell.state_size
    if isinstance(size, (list, tuple)):
        return [int(s) for s in size]
    return [int(size)]


class LanguageModel(keras.Model):
    """Embedding -> recurrent layers of a given cell -> dropout -> softmax.

    Args:
        cell_factory: Callable returning a new Keras RNN cell (called once per
            layer), e.g. ``lambda: TreeCell(spec, 200)``.
        vocab_size: Number of symbols.
        config: An :class:`LMConfig` (units, layers, dropout, tying, init).

    Call arguments:
        tokens: int tensor (batch, time).
        states: list (one per layer) of lists of state tensors; see
            :meth:`zero_states`.
        training: Whether dropout is on.

    Returns:
        ``(logits, new_states)``: logits (batch, time, vocab_size) and the
        states at the end of the window.
    """

    def __init__(self, cell_factory: Callable[[], keras.layers.Layer], vocab_size: int,
                 config: LMConfig, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.lm_config = config
        init = keras.initializers.RandomUniform(-config.init_scale, config.init_scale)
        self.embedding = keras.layers.Embedding(vocab_size, config.units,
                                                embeddings_initializer=init, name="embedding")
        self.rnns = []
        for i in range(config.num_layers):
            cell = cell_factory()
            if type(cell) is NASCell:  # same weights and function, input matmul hoisted
                layer = NASRNN.from_cell(cell, return_sequences=True, return_state=True,
                                         unroll=config.unroll, name=f"rnn_{i}")
            else:
                layer = keras.layers.RNN(cell, return_sequences=True, return_state=True,
                                         unroll=config.unroll, name=f"rnn_{i}")
            self.rnns.append(layer)
        self.drop = keras.layers.Dropout(config.dropout)
        if config.tie_embeddings:
            self.out_bias = self.add_weight(shape=(vocab_size,), initializer="zeros",
                                            name="softmax_bias")
            self.softmax = None
        else:
            self.softmax = keras.layers.Dense(vocab_size, kernel_initializer=init, name="softmax")

    def zero_states(self, batch_size: int) -> list[list[tf.Tensor]]:
        """All-zero initial states for ``batch_size`` rows."""
        return [[tf.zeros((batch_size, s)) for s in _state_sizes(rnn.cell)] for rnn in self.rnns]

    def call(self, tokens, states, training=False):
        x = self.drop(self.embedding(tokens), training=training)
        new_states = []
        for rnn, state in zip(self.rnns, states):
            out = rnn(x, initial_state=list(state), training=training)
            x = self.drop(out[0], training=training)
            new_states.append(list(out[1:]))
        if self.softmax is None:
            emb = self.embedding.embeddings
            if x.shape[-1] != emb.shape[-1]:
                raise ConfigError(
                    "tie_embeddings needs the last layer's output size to equal the embedding "
                    f"size. Received: output={x.shape[-1]}, embedding={emb.shape[-1]}"
                )
            logits = tf.einsum("btu,vu->btv", x, emb) + self.out_bias
        else:
            logits = self.softmax(x)
        return logits, new_states


@dataclasses.dataclass
class TrainResult:
    """What :func:`train_lm` returns.

    Attributes:
        val_perplexity: Validation perplexity after the last epoch.
        best_val_perplexity: Lowest validation perplexity over the epochs.
        train_perplexity: Perplexity of the training windows of the last epoch.
        history: One dict per epoch (epoch, train_perplexity,
            val_perplexity, learning_rate, seconds).
        params: Trainable parameters.
        train_seconds: Wall time of training and validation.
        steps: Training windows processed.
        model: The trained :class:`LanguageModel`.
    """

    val_perplexity: float
    best_val_perplexity: float
    train_perplexity: float
    history: list
    params: int
    train_seconds: float
    steps: int
    model: LanguageModel


def train_lm(
    cell_factory: Callable[[], keras.layers.Layer],
    train_data: np.ndarray,
    valid_data: np.ndarray,
    vocab_size: int,
    config: LMConfig,
    *,
    seed: int = 0,
    log_dir: str | None = None,
    max_valid_windows: int | None = None,
    progress: Callable[..., None] | None = None,
    initial_epoch: int = 0,
    initial_weights: list | None = None,
    on_epoch_end: Callable[[dict, LanguageModel], None] | None = None,
    steps_per_call: int = 10,
    devices: tuple[str, ...] | None = None,
) -> TrainResult:
    """Builds a :class:`LanguageModel` and trains it with truncated BPTT.

    Args:
        cell_factory: Returns a new recurrent cell for each layer.
        train_data, valid_data: 1-D int token streams.
        vocab_size: Number of symbols.
        config: An :class:`LMConfig`.
        seed: Seed of initialisation and dropout.
        log_dir: If set, train / validation perplexity curves are written
            there as TensorBoard summaries.
        max_valid_windows: Cap on validation windows (None: whole stream).
        progress: Called as ``progress(epoch=, epochs=, step=, steps=)`` every
            few steps (e.g. :meth:`nas_tf.evaluator.ChildContext.report`).
        initial_epoch: Epochs already done (to resume a run): training runs
            epochs ``initial_epoch .. epochs - 1`` at their scheduled learning
            rates, from ``initial_weights``; the stream position is where a
            run of full epochs would be, the state starts at zero.
        initial_weights: ``model.get_weights()`` of the run being resumed.
        on_epoch_end: Called with each epoch's history row and the model
            (e.g. to save weights or append a results row).
        steps_per_call: Training windows per compiled call (see
            :mod:`cells.lm_steps`): the host checks the loss for NaN / inf
            and calls ``progress`` once per call. Does not change the result.
        devices: Logical devices of the child (``ChildContext.devices``): one
            pins training there; several train under a
            ``tf.distribute.MirroredStrategy``, each device owning
            ``batch_size / len(devices)`` rows of the stream and their state
            (same update as on one device, up to rounding, without dropout:
            with dropout every replica draws the same mask for its rows;
            one window per call; evaluation runs on the default device).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ChildTrainingError: the training loss became NaN or infinite.
        ConfigError: the training stream is too short for one window, or
            ``batch_size`` does not split evenly over ``devices``.

    Example:
        >>> res = train_lm(lambda: keras.layers.LSTMCell(32), train, valid, 50,
        ...                LMConfig(units=32, epochs=1))  # doctest: +SKIP
        >>> res.val_perplexity  # doctest: +SKIP
    """
    # long: setup, the epoch loop and the result of one training run; split candidates noted.
    check_positive("steps_per_call", steps_per_call)
    seed_child(seed)  # not keras.utils.set_random_seed: see nas_tf.evaluator.seed_child
    t0 = time.time()
    rows = batchify(train_data, config.batch_size)
    n = num_windows(rows, config.bptt)
    if n < 1:
        raise ConfigError(
            f"Training stream too short for one window of bptt={config.bptt} with batch size "
            f"{config.batch_size}. Received: {len(train_data)} tokens"
        )
    per_epoch = min(n, config.steps_per_epoch) if config.steps_per_epoch else n
    strategy = make_strategy(devices)  # the batch rule: batch_size is the global batch
    if strategy is not None:
        replica_batch(config.batch_size, strategy.num_replicas_in_sync)
    pin = tf.device(devices[0]) if devices and len(devices) == 1 else contextlib.nullcontext()
    with pin, strategy.scope() if strategy else contextlib.nullcontext():
        model = LanguageModel(cell_factory, vocab_size, config)
        # Build the weights eagerly on a one-step window so that the optimizer
        # can create its slots before the step is traced.
        model(tf.constant(rows[:, :1]), model.zero_states(config.batch_size))
        if initial_weights is not None:
            model.set_weights(initial_weights)
        if config.optimizer == "sgd":
            opt = keras.optimizers.SGD(learning_rate=config.learning_rate)
        else:
            opt = keras.optimizers.Adam(learning_rate=config.learning_rate)
        opt.build(model.trainable_variables)
    # Summed over time (tutorial): the objective is bptt x the per-token mean.
    run, zero_states, per_call = make_runner(
        model, opt, rows, bptt=config.bptt, clip=float(config.max_grad_norm),
        scale=float(config.bptt) if config.sum_over_time else 1.0, strategy=strategy,
        steps_per_call=steps_per_call)
    with pin:  # one device: everything on it
        eval_step = make_eval_step(model)
        writer = tf.summary.create_file_writer(log_dir) if log_dir else None
        history = []
        pos, steps = (initial_epoch * per_epoch) % n, 0
        states = zero_states()
        best = math.inf
        train_ppl = val_ppl = math.inf
        for epoch in range(initial_epoch, config.epochs):
            te = time.time()
            lr = config.learning_rate * config.lr_decay ** max(0, epoch + 1 - config.decay_after)
            opt.learning_rate = lr
            total, left = 0.0, per_epoch
            while left:
                if pos == 0:
                    states = zero_states()
                # Up to per_call windows per call, never across the end of the stream.
                k = min(left, n - pos, per_call)
                loss_sum, done, last, states = run(pos, k, states)
                if int(done) < k or not math.isfinite(float(last)):
                    raise ChildTrainingError(
                        f"Child training diverged: loss={float(last)} at step "
                        f"{steps + int(done) - 1} (epoch {epoch})."
                    )
                total += float(loss_sum)
                steps, left, pos = steps + k, left - k, (pos + k) % n
                if progress is not None:
                    progress(epoch=epoch + 1, epochs=config.epochs,
                             step=per_epoch - left, steps=per_epoch)
            train_ppl = perplexity(total / per_epoch, "training loss")
            val_ppl = evaluate_perplexity(model, valid_data, bptt=config.bptt,
                                          batch_size=config.eval_batch_size,
                                          max_windows=max_valid_windows, _step=eval_step)
            best = min(best, val_ppl)
            row = {"epoch": epoch + 1, "train_perplexity": train_ppl, "val_perplexity": val_ppl,
                   "learning_rate": float(lr), "seconds": time.time() - te}
            history.append(row)
            if on_epoch_end is not None:
                on_epoch_end(row, model)
            _log.info("epoch %d: train ppl %.2f, valid ppl %.2f", epoch + 1, train_ppl, val_ppl)
            if writer is not None:
                with writer.as_default():
                    tf.summary.scalar("train/perplexity", train_ppl, step=epoch + 1)
                    tf.summary.scalar("valid/perplexity", val_ppl, step=epoch + 1)
                    tf.summary.scalar("train/learning_rate", row["learning_rate"], step=epoch + 1)
                writer.flush()
        if writer is not None:
            writer.close()
    return TrainResult(
        val_perplexity=val_ppl,
        best_val_perplexity=best,
        train_perplexity=train_ppl,
        history=history,
        params=count_params(model),
        train_seconds=time.time() - t0,
        steps=steps,
        model=model,
    )
