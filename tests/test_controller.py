"""The controller RNN (arXiv:1611.01578 §3.1, §3.3): sampling, log-probabilities,
anchors, seeding and growing decision sequences.

Controllers are compiled once per module (``reset(seed)`` re-draws them) to
keep the file fast.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import ToySpace, toy_decisions

from nas_tf.config import ControllerConfig
from nas_tf.controller import Controller
from nas_tf.space import Anchor, Categorical, split_tokens, token_width

CONFIGS = {
    "default": ControllerConfig(),
    "temperature": ControllerConfig(temperature=1.7),
    "tanh": ControllerConfig(tanh_constant=1.5, temperature=0.8),
}
DECISIONS = toy_decisions(3, num_values=5)  # categorical + anchors with 0..2 inputs
N = 16  # one batch size everywhere: each new shape would trace again


@pytest.fixture(scope="module")
def controllers():
    return {k: Controller(DECISIONS, cfg, seed=0) for k, cfg in CONFIGS.items()}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_sampled_log_prob_equals_recomputed(controllers, kind, seed):
    c = controllers[kind]
    c.reset(seed)
    tokens, logp, ent = c.sample(N)
    assert tokens.shape == (N, token_width(DECISIONS)) and tokens.dtype == np.int32
    re_logp, re_ent = c.log_prob(tokens)
    np.testing.assert_allclose(logp, re_logp.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ent, re_ent.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(logp < 0) and np.all(ent > 0)
    # The recomputed log-probability depends on the tokens: changing one
    # categorical token changes it.
    other = tokens.copy()
    other[:, 0] = (other[:, 0] + 1) % 5
    assert not np.allclose(c.log_prob(other)[0].numpy(), re_logp.numpy())


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_anchors_give_valid_skip_sets(controllers, kind):
    c = controllers[kind]
    c.reset(3)
    tokens = np.concatenate([c.sample(N)[0] for _ in range(4)])
    anchor_bits = []
    for row in tokens:
        parts = split_tokens(DECISIONS, row)  # raises on a bad token
        for d, p in zip(DECISIONS, parts):
            if isinstance(d, Anchor):
                assert len(p) == d.num_inputs and set(p) <= {0, 1}
                anchor_bits.extend(p)
            else:
                assert 0 <= p < d.num_choices
    # Near-uniform initial policy: both skip / no skip appear.
    assert 0.2 < np.mean(anchor_bits) < 0.8


def test_same_seed_same_samples_and_different_seeds_differ(controllers):
    c = controllers["default"]
    c.reset(5)
    a = c.sample(N)[0]
    b = c.sample(N)[0]
    c.reset(5)
    assert np.array_equal(c.sample(N)[0], a)
    assert np.array_equal(c.sample(N)[0], b)
    assert not np.array_equal(a, b)  # the stream advances
    c.reset(6)
    assert not np.array_equal(c.sample(N)[0], a)


def test_reset_equals_fresh_controller(controllers):
    c = controllers["tanh"]
    c.reset(11)
    fresh = Controller(DECISIONS, CONFIGS["tanh"], seed=11)
    for v, w in zip(c.weights, fresh.weights):
        assert v.name == w.name
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    t1, l1, _ = c.sample(N)
    t2, l2, _ = fresh.sample(N)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)


def test_weights_within_init_range(controllers):
    c = controllers["default"]
    c.reset(2)
    r = c.config.init_range
    for v in c.weights:
        x = v.numpy()
        assert np.all(np.abs(x) <= r + 1e-7), v.name
        if v.name.endswith("softmax_b"):
            assert not np.any(x)


def test_sampling_follows_its_own_probabilities():
    """Empirical frequencies of the sampler match exp(log_prob) of each outcome,
    with heads of different widths (padded to the widest and masked)."""
    ds = [Categorical("c", ("a", "b", "c")), Anchor("a0", 0), Categorical("d", (0, 1)),
          Anchor("a1", 1)]
    c = Controller(ds, ControllerConfig(init_range=1.0, temperature=0.7), seed=4)
    n = 20000
    tokens, _, _ = c.sample(n)
    outcomes = np.array([[i, j, b] for i in range(3) for j in range(2) for b in range(2)],
                        np.int32)
    probs = np.exp(c.log_prob(outcomes)[0].numpy())
    assert abs(probs.sum() - 1.0) < 1e-5
    freq = np.array([np.mean(np.all(tokens == o, axis=1)) for o in outcomes])
    # 4 standard errors at most.
    assert np.all(np.abs(freq - probs) <= 4 * np.sqrt(probs * (1 - probs) / n) + 1e-3), (
        freq, probs)


def test_temperature_and_tanh_change_the_distribution(controllers):
    tokens = controllers["default"].sample(N)[0]
    lp = {}
    for k, c in controllers.items():
        c.reset(0)  # identical weights
        lp[k] = c.log_prob(tokens)[0].numpy()
    assert not np.allclose(lp["default"], lp["temperature"])
    # tanh clipping alone (the "tanh" config also sets a temperature): weights
    # large enough for the logits to exceed the constant, the same in both.
    plain = Controller(DECISIONS, ControllerConfig(init_range=1.0), seed=0)
    clipped = Controller(DECISIONS, ControllerConfig(init_range=1.0, tanh_constant=0.3), seed=0)
    tokens = plain.sample(N)[0]
    assert not np.allclose(plain.log_prob(tokens)[0].numpy(), clipped.log_prob(tokens)[0].numpy())


def test_prefix_sampling_for_a_growing_space():
    space = ToySpace(num_layers=3, num_values=3, grow_every=5, start_layers=2,
                     extra_categorical=1)
    stages = [space.decisions(n) for n in (0, 5)]
    c = Controller(space.final_decisions(), seed=9)
    widths = []
    prefixes = []
    for stage in stages:
        c.reset(9)
        tokens, logp, _ = c.sample(N, stage)
        widths.append(tokens.shape[1])
        assert tokens.shape[1] == token_width(stage)
        np.testing.assert_allclose(logp, c.log_prob(tokens)[0].numpy(), rtol=1e-5, atol=1e-5)
        for row in tokens:
            assert space.tokens_to_spec(row).tokens == tuple(row)
        prefixes.append(tokens)
    assert widths == [3, 7]
    # Same seed: a longer stage extends the shorter stage's samples.
    for short, long in zip(prefixes, prefixes[1:]):
        np.testing.assert_array_equal(long[:, : short.shape[1]], short)
    with pytest.raises(ValueError, match="prefix"):
        c.sample(2, stages[1][1:])
    with pytest.raises(ValueError, match="No prefix"):
        c.log_prob(np.zeros((N, 5), np.int32))  # 4 = up to layer 2's op, 6 = its anchor
    with pytest.raises(ValueError, match="n must be > 0"):
        c.sample(0)


def test_extend_keeps_what_was_learned():
    short = toy_decisions(2, num_values=3)
    long = toy_decisions(3, num_values=3)
    c = Controller(short, seed=1)
    # "Learned" weights: anything but what the seed draws, so that an extend()
    # that re-drew the existing weights would change the log-probabilities.
    rng = np.random.default_rng(7)
    for v in c.trainable_variables:
        v.assign(rng.normal(0.0, 0.5, v.shape).astype(np.float32))
    tokens = c.sample(N)[0]
    before = c.log_prob(tokens)[0].numpy()
    c.extend(long)
    assert c.decisions == long and c.width == token_width(long)
    np.testing.assert_allclose(c.log_prob(tokens)[0].numpy(), before, rtol=1e-6)
    assert c.sample(N)[0].shape == (N, token_width(long))
    with pytest.raises(ValueError, match="extend"):
        c.extend(toy_decisions(3, num_values=4))


# Golden values: log-probabilities and entropies of fixed tokens for the
# weights of seed 3, computed by the controller as it was before the symbolic
# loop (a Python unroll over the decisions, commit b2ed028). The loop, the
# padded heads and the fused LSTM must give the same distributions.
MIXED = (Categorical("a", ("x", "y", "z")), Anchor("p0", 0), Categorical("b", tuple(range(5))),
         Categorical("c", (0, 1)), Anchor("p1", 1), Categorical("d", ("only",)),
         Anchor("p2", 2), Categorical("e", tuple(range(4))))
NO_ANCHORS = tuple(d for d in MIXED if isinstance(d, Categorical))
GOLDEN_CONFIGS = {"default": ControllerConfig(),
                  "tanh": ControllerConfig(init_range=0.5, tanh_constant=1.5, temperature=0.8)}
GOLDEN = {
    ("mixed", "default"): ([-6.875102519989014, -6.882223129272461, -6.851926803588867],
                           [6.866889953613281, 6.866889953613281, 6.8668904304504395]),
    ("mixed", "tanh"): ([-7.577094554901123, -8.430649757385254, -5.697321891784668],
                        [6.651829242706299, 6.6066484451293945, 6.622527122497559]),
    ("no_anchors", "default"): ([-4.795403480529785, -4.800516605377197, -4.774505138397217],
                                [4.78745698928833, 4.787456035614014, 4.787457466125488]),
    ("no_anchors", "tanh"): ([-5.107541084289551, -5.904565811157227, -3.954773426055908],
                             [4.651481628417969, 4.629866600036621, 4.623472213745117]),
}
GOLDEN_TOKENS = {
    "mixed": np.array([[0, 4, 1, 0, 0, 0, 0, 3], [2, 0, 0, 1, 0, 1, 1, 0],
                       [1, 2, 1, 0, 0, 1, 0, 2]], np.int32),
    "no_anchors": np.array([[0, 4, 1, 0, 3], [2, 0, 0, 0, 0], [1, 2, 1, 0, 2]], np.int32),
}
SPACES = {"mixed": MIXED, "no_anchors": NO_ANCHORS}


@pytest.fixture(scope="module")
def golden_controllers():
    return {(s, k): Controller(SPACES[s], cfg, seed=3)
            for s in SPACES for k, cfg in GOLDEN_CONFIGS.items()}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_log_probs_equal_the_unrolled_controllers(golden_controllers, key):
    c = golden_controllers[key]
    c.reset(3)
    logp, ent = c.log_prob(GOLDEN_TOKENS[key[0]])
    np.testing.assert_allclose(logp.numpy(), GOLDEN[key][0], rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(ent.numpy(), GOLDEN[key][1], rtol=2e-6, atol=2e-6)


def _reference(c, decisions, tokens):
    """The controller written out plainly (§3.1, §3.3): one eager Python step
    per decision, each head with its own weights."""
    cfg, n = c.config, len(tokens)
    tokens = tf.constant(tokens)

    def shape(logits):
        if cfg.tanh_constant:
            logits = cfg.tanh_constant * tf.tanh(logits / cfg.tanh_constant)
        return logits / cfg.temperature

    zero = tf.zeros([n, cfg.lstm_size])
    states, x = [(zero, zero)] * cfg.num_layers, tf.tile(c.g_emb, [n, 1])
    logp = ent = tf.zeros([n])
    anchors, pos = [], 0
    for d in decisions:
        new = []
        for (kernel, bias), (cell, h) in zip(c._lstm, states):
            i, f, g, o = tf.split(tf.matmul(tf.concat([x, h], 1), kernel) + bias, 4, 1)
            cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g)
            x = h = tf.sigmoid(o) * tf.tanh(cell)
            new.append((cell, h))
        out, states = x, new
        if isinstance(d, Categorical):
            emb, w, b = c.head(d.name)
            lsm = tf.nn.log_softmax(shape(tf.matmul(out, w) + b))
            logp += tf.gather(lsm, tokens[:, pos], batch_dims=1)
            ent -= tf.reduce_sum(tf.exp(lsm) * lsm, 1)
            x = tf.gather(emb, tokens[:, pos])
        elif d.num_inputs:
            keys = tf.stack([tf.matmul(a, c.w_prev) for a in anchors], 1)
            query = tf.matmul(out, c.w_curr)[:, None]
            p = tf.sigmoid(shape(tf.tensordot(tf.tanh(keys + query), c.v_attn, 1)[..., 0]))
            bits = tf.cast(tokens[:, pos:pos + d.num_inputs], tf.float32)
            logp += tf.reduce_sum(bits * tf.math.log(p) + (1 - bits) * tf.math.log(1 - p), 1)
            ent -= tf.reduce_sum(p * tf.math.log(p) + (1 - p) * tf.math.log(1 - p), 1)
            chosen = tf.reduce_sum(bits[:, :, None] * tf.stack(anchors, 1), 1)
            x = c.anchor_emb + chosen / (1 + tf.reduce_sum(bits, 1, keepdims=True))
        else:
            x = tf.tile(c.anchor_emb, [n, 1])
        if isinstance(d, Anchor):
            anchors.append(out)
        pos += d.width
    return logp, ent


@pytest.mark.parametrize("space", sorted(SPACES))
def test_log_probs_and_gradients_equal_a_plain_reference(golden_controllers, space):
    """Same log-probabilities, entropies and REINFORCE gradients as the plain
    per-decision computation, for weights away from the initial ones."""
    c = golden_controllers[(space, "tanh")]
    rng = np.random.default_rng(5)
    for v in c.trainable_variables:
        v.assign(rng.normal(0.0, 0.4, v.shape).astype(np.float32))
    tokens = c.sample(N)[0]
    adv = tf.constant(rng.normal(size=N).astype(np.float32))
    results = []
    for fn in (lambda: c.log_prob_fn(tokens.shape[1])(tokens)[1:],
               lambda: _reference(c, SPACES[space], tokens)):
        with tf.GradientTape() as tape:
            logp, ent = fn()
            loss = -tf.reduce_sum(adv * logp) - 0.1 * tf.reduce_sum(ent)
        grads = tape.gradient(loss, c.trainable_variables)
        results.append([logp.numpy(), ent.numpy()] + [
            np.zeros(v.shape) if g is None else tf.convert_to_tensor(g).numpy()
            for g, v in zip(grads, c.trainable_variables)])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    c.reset(3)


def _graph_size(fn):
    graph = fn.get_concrete_function().graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


def test_graphs_do_not_grow_with_the_decisions_and_trace_once():
    """The trace is O(1) in the number of decisions (a symbolic loop, not an
    unroll), and each function traces once whatever the batch size."""
    sizes = {}
    for layers in (2, 6):  # 6 anchors: more than the heads' 2 values
        c = Controller(toy_decisions(layers, num_values=2), seed=0)
        for n in (1, 3, 8):
            tokens, logp, _ = c.sample(n)
            np.testing.assert_allclose(c.log_prob(tokens)[0].numpy(), logp, rtol=1e-5,
                                       atol=1e-5)
        fns = list(c._fns.values())
        assert [f.experimental_get_tracing_count() for f in fns] == [1, 1]
        sizes[layers] = [_graph_size(f) for f in fns]
    assert sizes[2] == sizes[6], sizes
