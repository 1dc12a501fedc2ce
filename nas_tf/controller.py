"""The controller RNN of Zoph & Le 2017 (arXiv:1611.01578, §3.1 and §3.3).

An autoregressive LSTM writes an architecture one decision at a time. Each
categorical decision has its own softmax head and its own embedding that
feeds the chosen token to the next step. Each anchor point (§3.3) predicts,
for every earlier anchor j, whether layer j feeds the current layer:

    P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i))

The controller knows nothing of convolutions or cells: it is built from a
sequence of :mod:`nas_tf.space` decisions, and can be extended with more
decisions (a growing curriculum) without losing what it has learned.

Sampling and the recomputation of log-probabilities are each one compiled
``tf.function`` call for a batch of architectures, traced once, to a graph
whose size does not grow with the number of decisions (a symbolic loop, see
:mod:`nas_tf.controller_graph`): the first sample and update cost little
next to a child. The heads of the categorical decisions are stacked into a
few variables (one block per :meth:`Controller.extend`), which keeps the
optimizer's update small as well.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from nas_tf import controller_graph as graph
from nas_tf.config import ControllerConfig
from nas_tf.space import Categorical, Decision, token_width, validate_decisions


class Controller(keras.layers.Layer):
    """Autoregressive controller over a sequence of decisions.

    Args:
        decisions: The decisions of the space (categorical and anchors).
        config: A :class:`nas_tf.config.ControllerConfig` (paper §4.1 defaults:
            2 LSTM layers of 35 units, weights uniform in [-0.08, 0.08]).
        seed: Seed of the weight initialisation and of the sampler.

    Example:

    >>> from nas_tf.space import Categorical
    >>> c = Controller([Categorical("a", (1, 2, 3)), Categorical("b", ("x", "y"))], seed=0)
    >>> tokens, log_probs, entropies = c.sample(4)
    >>> tokens.shape
    (4, 2)
    """

    def __init__(self, decisions: Sequence[Decision], config: ControllerConfig | None = None,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.config = config or ControllerConfig()
        self._seed = int(seed)
        self._decisions: tuple[Decision, ...] = ()
        # Heads of the categorical decisions, stacked in blocks (one per
        # extend()) and padded to the block's widest vocabulary: a handful of
        # variables whatever the number of decisions, so the update is cheap
        # to trace. _block_choices[i] lists the vocabulary size of each row.
        self._blocks: list[dict] = []
        self._block_choices: tuple[tuple[int, ...], ...] = ()
        self._fns: dict = {}
        cfg = self.config
        init = self._init
        h = cfg.lstm_size
        self._lstm = []
        for layer in range(cfg.num_layers):
            self._lstm.append((
                self.add_weight(shape=(2 * h, 4 * h), initializer=init(),
                                name=f"lstm_{layer}_kernel"),
                self.add_weight(shape=(4 * h,), initializer=init(), name=f"lstm_{layer}_bias"),
            ))
        self.g_emb = self.add_weight(shape=(1, h), initializer=init(), name="go_embedding")
        self.anchor_emb = self.add_weight(shape=(1, h), initializer=init(), name="anchor_embedding")
        self.w_prev = self.add_weight(shape=(h, h), initializer=init(), name="attention_w_prev")
        self.w_curr = self.add_weight(shape=(h, h), initializer=init(), name="attention_w_curr")
        self.v_attn = self.add_weight(shape=(h, 1), initializer=init(), name="attention_v")
        self._base = [w for pair in self._lstm for w in pair] + [
            self.g_emb, self.anchor_emb, self.w_prev, self.w_curr, self.v_attn]
        # Sampler state; checkpointed with the controller so a resumed search
        # continues the same random stream.
        self.rng = tf.random.Generator.from_seed(self._seed)
        self.extend(decisions)
        self.built = True
        self.reset(self._seed)

    # ------------------------------------------------------------------ weights
    def reset(self, seed: int) -> None:
        """Re-draws every weight and the sampler state from ``seed``.

        The compiled functions are kept, so one controller can serve many
        seeds (benchmarks) without tracing again. Weights are uniform in
        [-init_range, init_range] (§4.1); softmax biases are zero.
        """
        self._seed = int(seed)
        rng = np.random.default_rng([self._seed, 17])
        r = self.config.init_range
        for v in self._base:
            v.assign(rng.uniform(-r, r, size=v.shape).astype(np.float32))
        for block, choices in zip(self._blocks, self._block_choices):
            self._draw_block(block, choices, rng)
        self.rng.reset_from_seed(self._seed)

    def _draw_block(self, block, choices, rng) -> None:
        """Draws a block of heads: for each head in decision order its
        embedding, then its softmax weights (the draws, in the same order, of
        the one-variable-per-head controller before, so a seed still gives the
        same weights); biases and padding zero."""
        r = self.config.init_range
        emb = np.zeros(block["emb"].shape, np.float32)
        w = np.zeros(block["w"].shape, np.float32)
        for i, k in enumerate(choices):
            emb[i, :k] = rng.uniform(-r, r, size=(k, emb.shape[2]))
            w[i, :, :k] = rng.uniform(-r, r, size=(w.shape[1], k))
        block["emb"].assign(emb)
        block["w"].assign(w)
        block["b"].assign(np.zeros(block["b"].shape, np.float32))

    def _init(self):
        r = self.config.init_range
        self._init_count = getattr(self, "_init_count", 0) + 1
        return keras.initializers.RandomUniform(-r, r, seed=self._seed * 7919 + self._init_count)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    @property
    def width(self) -> int:
        return token_width(self._decisions)

    def extend(self, decisions: Sequence[Decision]) -> None:
        """Sets the decision sequence; it must extend the current one.

        New decisions get new heads; the weights learned so far are kept.
        """
        decisions = validate_decisions(decisions)
        if decisions[: len(self._decisions)] != self._decisions:
            raise ValueError(
                "The new decision sequence must extend the controller's current one "
                f"(a curriculum only appends). Received: {len(decisions)} decisions"
            )
        choices = tuple(d.num_choices for d in decisions[len(self._decisions):]
                        if isinstance(d, Categorical))
        if choices:
            h, v, i = self.config.lstm_size, max(choices), len(self._blocks)
            block = {
                "emb": self.add_weight(shape=(len(choices), v, h), initializer="zeros",
                                       name=f"heads_{i}_embedding"),
                "w": self.add_weight(shape=(len(choices), h, v), initializer="zeros",
                                     name=f"heads_{i}_softmax_w"),
                "b": self.add_weight(shape=(len(choices), v), initializer="zeros",
                                     name=f"heads_{i}_softmax_b"),
            }
            self._draw_block(block, choices, np.random.default_rng([self._seed, 17, i]))
            self._blocks.append(block)
            self._block_choices = (*self._block_choices, choices)
        self._decisions = decisions

    @property
    def head_width(self) -> int:
        """The widest vocabulary of the categorical decisions (1 with none)."""
        return max(max(c, default=1) for c in (*self._block_choices, ()))

    def head(self, name: str):
        """The weights of one categorical decision's head, as tensors:
        (embedding [k, h], softmax weights [h, k], softmax bias [k])."""
        names = iter(d.name for d in self._decisions if isinstance(d, Categorical))
        for block, choices in zip(self._blocks, self._block_choices):
            for row, k in enumerate(choices):
                if next(names) == name:
                    return (block["emb"][row, :k], block["w"][row, :, :k], block["b"][row, :k])
        raise KeyError(f"No categorical decision of that name. Received: name={name!r}")

    def stacked_heads(self, num_heads: int, v: int):
        """The first ``num_heads`` heads, padded to ``v`` and stacked:
        softmax weights [heads, h, v], biases [heads, v], embeddings [heads, v, h]."""
        h = self.config.lstm_size
        if not num_heads:
            return tf.zeros([1, h, v]), tf.zeros([1, v]), tf.zeros([1, v, h])
        ws, bs, es, left = [], [], [], num_heads
        for block, choices in zip(self._blocks, self._block_choices):
            rows = min(left, len(choices))
            if rows <= 0:
                break
            left -= rows
            w, b, e = block["w"], block["b"], block["emb"]
            if rows < len(choices):
                w, b, e = w[:rows], b[:rows], e[:rows]
            if v > max(choices):
                pad = v - max(choices)
                w = tf.pad(w, [[0, 0], [0, 0], [0, pad]])
                b = tf.pad(b, [[0, 0], [0, pad]])
                e = tf.pad(e, [[0, 0], [0, pad], [0, 0]])
            ws.append(w)
            bs.append(b)
            es.append(e)
        if len(ws) == 1:
            return ws[0], bs[0], es[0]
        return tf.concat(ws, 0), tf.concat(bs, 0), tf.concat(es, 0)

    def _prefix(self, width: int | None) -> tuple[Decision, ...]:
        """The prefix of the controller's decisions that takes ``width`` tokens."""
        if width is None:
            return self._decisions
        total = 0
        for i, d in enumerate(self._decisions):
            if total == width:
                return self._decisions[:i]
            total += d.width
        if total == width:
            return self._decisions
        raise ValueError(
            f"No prefix of the controller's decisions takes {width} tokens. "
            f"Received: width={width}")

    def _draw_width(self) -> int:
        """Uniform draws per sampled step: enough for any head and for the
        anchors of any prefix, so that every prefix reads the same stream."""
        anchors = sum(not isinstance(d, Categorical) for d in self._decisions)
        return max(self.head_width, anchors)

    def _fn(self, kind, decisions):
        draw = self._draw_width()
        key = (kind, decisions, draw)  # extend() may widen the heads and the draws
        if key not in self._fns:
            if kind == "sample":
                @tf.function(input_signature=[tf.TensorSpec([], tf.int32)], autograph=False)
                def fn(n):
                    return graph.sample(self, n, decisions, draw)
            else:
                # A fixed signature with an unknown batch size: one trace per
                # decision prefix, whatever the number of children fed back.
                width = token_width(decisions)
                @tf.function(input_signature=[tf.TensorSpec([None, width], tf.int32)],
                             autograph=False)
                def fn(tokens):
                    return graph.teacher_forced(self, tokens, decisions)
            self._fns[key] = fn
        return self._fns[key]

    # ---------------------------------------------------------------- public API
    def sample(self, n: int, decisions: Sequence[Decision] | None = None):
        """Samples ``n`` architectures in one compiled call.

        Args:
            n: Number of architectures.
            decisions: A prefix of the controller's decisions (a curriculum
                stage); None for all of them.

        Returns:
            (tokens [n, width] int32, log-probabilities [n], entropies [n]) as
            numpy arrays.
        """
        if n <= 0:
            raise ValueError(f"n must be > 0. Received: n={n}")
        decisions = self._check_prefix(decisions)
        tokens, logp, ent = self._fn("sample", decisions)(tf.constant(n, tf.int32))
        return tokens.numpy(), logp.numpy(), ent.numpy()

    def _check_prefix(self, decisions):
        if decisions is None:
            return self._decisions
        decisions = tuple(decisions)
        if self._decisions[: len(decisions)] != decisions:
            raise ValueError("decisions must be a prefix of the controller's decisions.")
        return decisions

    def log_prob(self, tokens):
        """Log-probabilities and entropies of given tokens (differentiable).

        Args:
            tokens: int array [n, width]; ``width`` selects the prefix of the
                decisions (curriculum stage) the tokens were sampled for.

        Returns:
            (log_prob [n], entropy [n]) tensors.
        """
        tokens = tf.convert_to_tensor(np.asarray(tokens, np.int32))
        _, logp, ent = self.log_prob_fn(int(tokens.shape[1]))(tokens)
        return logp, ent

    def log_prob_fn(self, width: int | None = None):
        """The compiled teacher-forced function ``tokens -> (tokens, logp, ent)``
        for the decision prefix that takes ``width`` tokens."""
        return self._fn("log_prob", self._prefix(width))
