"""The controller RNN (arXiv:1611.01578 §3.1, §3.3): sampling, log-probabilities,
anchors, seeding and growing decision sequences.

Controllers are compiled once per module (``reset(seed)`` re-draws them) to
keep the file fast.
"""

from __future__ import annotations

import numpy as np
import pytest
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
    """Empirical frequencies of the sampler match exp(log_prob) of each outcome."""
    ds = [Categorical("c", ("a", "b", "c")), Anchor("a0", 0), Anchor("a1", 1)]
    c = Controller(ds, ControllerConfig(init_range=1.0, temperature=0.7), seed=4)
    n = 20000
    tokens, _, _ = c.sample(n)
    outcomes = np.array([[i, b] for i in range(3) for b in range(2)], np.int32)
    probs = np.exp(c.log_prob(outcomes)[0].numpy())
    assert abs(probs.sum() - 1.0) < 1e-5
    freq = np.array([np.mean((tokens[:, 0] == i) & (tokens[:, 1] == b)) for i, b in outcomes])
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
