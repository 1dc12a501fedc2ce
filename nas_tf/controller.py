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
from nas_tf.space import Categorical, Decision, token_width, validate_decisions


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_" else "_" for c in name)


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
        self._heads: dict[str, dict] = {}
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
        for v in self.weights:
            if v.name.endswith("softmax_b"):
                v.assign(np.zeros(v.shape, np.float32))
            else:
                v.assign(rng.uniform(-r, r, size=v.shape).astype(np.float32))
        self.rng.reset_from_seed(self._seed)

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
        h = self.config.lstm_size
        for d in decisions[len(self._decisions):]:
            if isinstance(d, Categorical):
                n = _safe_name(d.name)
                self._heads[d.name] = {
                    "emb": self.add_weight(shape=(d.num_choices, h), initializer=self._init(),
                                           name=f"{n}_embedding"),
                    "w": self.add_weight(shape=(h, d.num_choices), initializer=self._init(),
                                         name=f"{n}_softmax_w"),
                    "b": self.add_weight(shape=(d.num_choices,), initializer="zeros",
                                         name=f"{n}_softmax_b"),
                }
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

    def _unroll(self, n, decisions, tokens=None):
        """Runs the controller over ``decisions``.

        With ``tokens`` None, samples; otherwise teacher-forces ``tokens``
        ([n, width] int32). Returns (tokens, log_prob [n], entropy [n]).
        """
        hsize = self.config.lstm_size
        zeros = tf.zeros([n, hsize])
        states = [(zeros, zeros) for _ in self._lstm]
        x = tf.tile(self.g_emb, [n, 1])
        log_prob = tf.zeros([n])
        entropy = tf.zeros([n])
        anchors, anchor_keys, out_tokens = [], [], []
        pos = 0
        for d in decisions:
            out, states = self._lstm_step(x, states)
            if isinstance(d, Categorical):
                head = self._heads[d.name]
                logits = self._shape_logits(tf.matmul(out, head["w"]) + head["b"])
                logp_all = tf.nn.log_softmax(logits)
                if tokens is None:
                    u = self.rng.uniform(tf.shape(logits), minval=1e-12, maxval=1.0)
                    gumbel = -tf.math.log(-tf.math.log(u))
                    tok = tf.argmax(logits + gumbel, axis=1, output_type=tf.int32)
                else:
                    tok = tokens[:, pos]
                log_prob += tf.gather(logp_all, tok, axis=1, batch_dims=1)
                entropy += -tf.reduce_sum(tf.exp(logp_all) * logp_all, axis=1)
                out_tokens.append(tok[:, None])
                x = tf.gather(head["emb"], tok)
                pos += 1
            else:
                k = d.num_inputs
                if k > 0:
                    keys = tf.stack(anchor_keys, axis=1)  # [n, k, h]
                    query = tf.matmul(out, self.w_curr)[:, None, :]
                    logits = tf.squeeze(tf.tensordot(tf.tanh(keys + query), self.v_attn, 1), -1)
                    logits = self._shape_logits(logits)  # [n, k]
                    if tokens is None:
                        u = self.rng.uniform(tf.shape(logits))
                        bits = tf.cast(u < tf.sigmoid(logits), tf.int32)
                    else:
                        bits = tokens[:, pos:pos + k]
                    fbits = tf.cast(bits, tf.float32)
                    # log sigmoid(l) for 1, log sigmoid(-l) for 0.
                    nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=fbits, logits=logits)
                    log_prob -= tf.reduce_sum(nll, axis=1)
                    p = tf.sigmoid(logits)
                    entropy += tf.reduce_sum(
                        tf.nn.sigmoid_cross_entropy_with_logits(labels=p, logits=logits), axis=1)
                    out_tokens.append(bits)
                    chosen = tf.reduce_sum(fbits[:, :, None] * tf.stack(anchors, axis=1), axis=1)
                    count = tf.reduce_sum(fbits, axis=1, keepdims=True)
                    x = self.anchor_emb + chosen / (1.0 + count)
                else:
                    x = tf.tile(self.anchor_emb, [n, 1])
                anchors.append(out)
                anchor_keys.append(tf.matmul(out, self.w_prev))
                pos += k
        if out_tokens:
            all_tokens = tf.concat(out_tokens, axis=1)
        else:
            all_tokens = tf.zeros([n, 0], tf.int32)
        return all_tokens, log_prob, entropy

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

    def _fn(self, kind, decisions):
        key = (kind, decisions)
        if key not in self._fns:
            if kind == "sample":
                @tf.function(reduce_retracing=True, autograph=False)
                def fn(n):
                    return self._unroll(n, decisions)
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
