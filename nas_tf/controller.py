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
``tf.function`` call for a batch of architectures.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from nas_tf.config import ControllerConfig
from nas_tf.space import Anchor, Categorical, Decision, token_width, validate_decisions


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

    # ---------------------------------------------------------------- the unroll
    def _lstm_step(self, x, states):
        new_states = []
        for (kernel, bias), (c, h) in zip(self._lstm, states):
            z = tf.matmul(tf.concat([x, h], axis=1), kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            new_states.append((c, h))
            x = h
        return x, new_states

    def _shape_logits(self, logits):
        cfg = self.config
        if cfg.tanh_constant:
            logits = cfg.tanh_constant * tf.tanh(logits / cfg.tanh_constant)
        if cfg.temperature != 1.0:
            logits = logits / cfg.temperature
        return logits

    def _tables(self, decisions):
        """Static per-step tables of ``decisions`` for the symbolic loop.

        Every step is both a categorical step and an anchor step; the tables
        say which result to keep. Heads are padded to the widest vocabulary
        ``v`` (masked out of the softmax), anchors to ``a`` earlier anchors
        (masked out of the attention); each step writes ``a`` token slots.
        """
        cats = [d for d in decisions if isinstance(d, Categorical)]
        v = max(max(c, default=1) for c in (*self._block_choices, ()))
        a = max(1, sum(isinstance(d, Anchor) for d in decisions))
        steps = len(decisions)
        is_anchor = np.zeros(steps, bool)
        head = np.zeros(steps, np.int32)
        cat_mask = np.zeros((steps, v), bool)
        anchor_mask = np.zeros((steps, a), np.float32)
        slot = np.zeros(steps, np.int32)
        width = token_width(decisions)
        # Flat token j -> (step, slot); step slot -> flat token (width = none).
        flat_to_step = np.zeros(width, np.int32)
        step_to_flat = np.full((steps, a), width, np.int32)
        pos = heads = 0
        for t, d in enumerate(decisions):
            if isinstance(d, Categorical):
                head[t], cat_mask[t, : d.num_choices] = heads, True
                heads += 1
            else:
                is_anchor[t], slot[t] = True, d.num_inputs
                anchor_mask[t, : d.num_inputs] = 1.0
            for j in range(d.width):
                flat_to_step[pos + j] = t * a + j
                step_to_flat[t, j] = pos + j
            pos += d.width
        return dict(cats=cats, v=v, a=a, steps=steps, is_anchor=is_anchor, head=head,
                    cat_mask=cat_mask, anchor_mask=anchor_mask, slot=slot,
                    flat_to_step=flat_to_step, step_to_flat=step_to_flat)

    def _stacked_heads(self, num_heads: int, v: int):
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
            pad = v - max(choices)
            ws.append(tf.pad(block["w"][:rows], [[0, 0], [0, 0], [0, pad]]))
            bs.append(tf.pad(block["b"][:rows], [[0, 0], [0, pad]]))
            es.append(tf.pad(block["emb"][:rows], [[0, 0], [0, pad], [0, 0]]))
        return tf.concat(ws, 0), tf.concat(bs, 0), tf.concat(es, 0)

    def _unroll(self, n, decisions, tokens=None, draw_width=1):
        """Runs the controller over ``decisions`` in one symbolic loop.

        The traced graph has the same size whatever the number of decisions.
        With ``tokens`` None, samples (uniform draws [steps, n, draw_width],
        so a longer prefix extends a shorter one's samples); otherwise
        teacher-forces ``tokens`` ([n, width] int32). Returns (tokens,
        log_prob [n], entropy [n]).
        """
        tab = self._tables(decisions)
        steps, v, a, hsize = tab["steps"], tab["v"], tab["a"], self.config.lstm_size
        if steps == 0:
            return tf.zeros([n, 0], tf.int32), tf.zeros([n]), tf.zeros([n])
        w_all, b_all, e_all = self._stacked_heads(len(tab["cats"]), v)
        is_anchor = tf.constant(tab["is_anchor"])
        head, slot = tf.constant(tab["head"]), tf.constant(tab["slot"])
        cat_mask = tf.constant(tab["cat_mask"])
        anchor_mask = tf.constant(tab["anchor_mask"])
        if tokens is None:
            u = self.rng.uniform([steps, n, draw_width], minval=1e-12, maxval=1.0)
        else:
            padded = tf.concat([tokens, tf.zeros([n, 1], tf.int32)], axis=1)
            forced = tf.transpose(tf.gather(padded, tab["step_to_flat"], axis=1), [1, 0, 2])
        w_prev, w_curr, v_attn = self.w_prev, self.w_curr, self.v_attn
        anchor_emb = self.anchor_emb

        def body(t, x, states, logp, ent, anchors, keys, rows):
            out, states = self._lstm_step(x, states)
            anc = is_anchor[t]
            hd = head[t]
            # Categorical step: the head's softmax, padding masked out.
            logits = self._shape_logits(tf.matmul(out, w_all[hd]) + b_all[hd])
            logits = tf.where(cat_mask[t][None, :], logits, -1e9)
            logp_all = tf.nn.log_softmax(logits)
            # Anchor step: attention over the earlier anchors (§3.3).
            amask = anchor_mask[t]
            query = tf.matmul(out, w_curr)[:, None, :]
            alog = tf.squeeze(tf.tensordot(tf.tanh(keys + query), v_attn, 1), -1)
            alog = self._shape_logits(alog)  # [n, a]
            if tokens is None:
                gumbel = -tf.math.log(-tf.math.log(u[t, :, :v]))
                tok = tf.argmax(logits + gumbel, axis=1, output_type=tf.int32)
                bits = tf.cast(u[t, :, :a] < tf.sigmoid(alog), tf.float32) * amask
            else:
                tok = tf.where(anc, 0, forced[t][:, 0])
                bits = tf.cast(forced[t], tf.float32) * amask
            onehot = tf.one_hot(tok, v)
            cat_lp = tf.reduce_sum(onehot * logp_all, axis=1)
            cat_ent = -tf.reduce_sum(tf.exp(logp_all) * logp_all, axis=1)
            cat_x = tf.matmul(onehot, e_all[hd])
            # log sigmoid(l) for 1, log sigmoid(-l) for 0.
            nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=bits, logits=alog)
            anc_lp = -tf.reduce_sum(nll * amask, axis=1)
            anc_ent = tf.reduce_sum(amask * tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.sigmoid(alog), logits=alog), axis=1)
            chosen = tf.reduce_sum(bits[:, :, None] * anchors, axis=1)
            count = tf.reduce_sum(bits, axis=1, keepdims=True)
            anc_x = anchor_emb + chosen / (1.0 + count)
            x = tf.where(anc, anc_x, cat_x)
            logp += tf.where(anc, anc_lp, cat_lp)
            ent += tf.where(anc, anc_ent, cat_ent)
            # An anchor's output joins the ones later anchors attend to.
            put = tf.where(anc, tf.one_hot(slot[t], a), tf.zeros([a]))[None, :, None]
            anchors += put * out[:, None, :]
            keys += put * tf.matmul(out, w_prev)[:, None, :]
            first = tf.one_hot(0, a, dtype=tf.int32)
            row = tf.where(anc, tf.cast(bits, tf.int32), tok[:, None] * first)
            return t + 1, x, states, logp, ent, anchors, keys, rows.write(t, row)

        zeros = tf.zeros([n, hsize])
        init = (tf.constant(0), tf.tile(self.g_emb, [n, 1]),
                [(zeros, zeros) for _ in self._lstm], tf.zeros([n]), tf.zeros([n]),
                tf.zeros([n, a, hsize]), tf.zeros([n, a, hsize]),
                tf.TensorArray(tf.int32, size=steps, element_shape=[None, a]))
        _, _, _, logp, ent, _, _, rows = tf.while_loop(
            lambda t, *_: t < steps, body, init, maximum_iterations=steps)
        rows = tf.reshape(tf.transpose(rows.stack(), [1, 0, 2]), [n, steps * a])
        return tf.gather(rows, tab["flat_to_step"], axis=1), logp, ent

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
        """Uniform draws per sampled step: enough for any decision of the
        controller, so that every prefix reads the same random stream."""
        return max([max(d.width, getattr(d, "num_choices", 1)) for d in self._decisions],
                   default=1)

    def _fn(self, kind, decisions):
        draw = self._draw_width()
        key = (kind, decisions, draw)  # extend() may widen the heads and the draws
        if key not in self._fns:
            if kind == "sample":
                @tf.function(input_signature=[tf.TensorSpec([], tf.int32)], autograph=False)
                def fn(n):
                    return self._unroll(n, decisions, draw_width=draw)
            else:
                # A fixed signature with an unknown batch size: one trace per
                # decision prefix, whatever the number of children fed back.
                width = token_width(decisions)
                @tf.function(input_signature=[tf.TensorSpec([None, width], tf.int32)],
                             autograph=False)
                def fn(tokens):
                    return self._unroll(tf.shape(tokens)[0], decisions, tokens)
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
