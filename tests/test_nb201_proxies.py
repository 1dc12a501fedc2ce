"""Training-free proxies (cnn_space/nb201/proxies.py): NASWOT and SynFlow."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from cnn_space.nb201.model import build_nb201_model
from cnn_space.nb201.proxies import (
    _layer_kernel,
    naswot,
    naswot_kernel,
    naswot_score,
    relu_layers,
    synflow,
)
from cnn_space.nb201.space import Nb201Spec
from nas_tf.errors import ConfigError

ALL_3X3 = Nb201Spec(("nor_conv_3x3",) * 6)
ALL_NONE = Nb201Spec(("none",) * 6)
MIXED = Nb201Spec(("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none",
                   "nor_conv_3x3"))


def _images(n=8, seed=0, size=32):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def test_kernel_formula_by_hand():
    # Codes of 2 images over 4 units: they agree on units 0 and 3 (Hamming distance 2).
    c = np.array([[1, 0, 1, 1], [1, 1, 0, 1]])
    k = naswot_kernel(c)
    np.testing.assert_array_equal(k, [[4, 2], [2, 4]])
    assert naswot_score(k) == pytest.approx(math.log(12.0))
    # Two layers add up.
    np.testing.assert_array_equal(naswot_kernel([c, c[:, :2]]), [[6, 3], [3, 6]])
    assert naswot_score(np.ones((2, 2))) == -math.inf


def test_naswot_of_a_one_relu_model_by_hand():
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(4, use_bias=False)
    out = keras.layers.ReLU()(dense(inputs))
    model = keras.Model(inputs, out)
    dense.set_weights([np.array([[1, -1, 1, 1], [0, 1, -1, 0]], "float32")])
    # image a = (1, 0): pre-activations (1, -1, 1, 1) -> codes 1 0 1 1
    # image b = (1, 2): pre-activations (1, 1, -1, 1) -> codes 1 1 0 1
    images = np.array([[1, 0], [1, 2]], "float32")
    assert naswot(model, images) == pytest.approx(math.log(12.0))


def test_fast_layer_kernel_equals_the_reference():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(6, 5, 5, 3)).astype("float32")
    fast = keras.ops.convert_to_numpy(_layer_kernel(acts))
    np.testing.assert_array_equal(fast, naswot_kernel(acts > 0))


def test_naswot_collects_every_relu_and_is_finite_on_random_images():
    model = build_nb201_model(MIXED, channels=4, cells_per_stage=1, seed=0)
    assert len(relu_layers(model)) == 3 * 3 + 4 + 1  # 3 convs per cell, 2 per block, head
    score = naswot(model, _images())
    assert math.isfinite(score)
    # log|det K| of 8 images, each diagonal entry the number of units.
    units = sum(int(np.prod(layer.output.shape[1:])) for layer in relu_layers(model))
    assert score <= 8 * math.log(units)


def test_naswot_ranks_all_none_below_all_3x3():
    images = _images(16)
    none = naswot(build_nb201_model(ALL_NONE, channels=8, cells_per_stage=1, seed=0), images)
    conv = naswot(build_nb201_model(ALL_3X3, channels=8, cells_per_stage=1, seed=0), images)
    assert math.isfinite(conv)
    assert none < conv


def test_naswot_is_deterministic_and_leaves_the_model_unchanged():
    images = _images()
    a = build_nb201_model(MIXED, channels=4, cells_per_stage=1, seed=5)
    before = [w.copy() for w in a.get_weights()]
    s1 = naswot(a, images)
    assert all(np.array_equal(u, v) for u, v in zip(before, a.get_weights()))
    s2 = naswot(build_nb201_model(MIXED, channels=4, cells_per_stage=1, seed=5), images)
    assert s1 == s2
    s3 = naswot(build_nb201_model(MIXED, channels=4, cells_per_stage=1, seed=6), images)
    assert s3 != s1


def test_naswot_rejects_a_single_image_and_a_model_without_relu():
    model = build_nb201_model(MIXED, channels=4, cells_per_stage=1, seed=0)
    with pytest.raises(ConfigError, match="shape"):
        naswot(model, _images(1))
    inputs = keras.Input((3,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")
    with pytest.raises(ConfigError, match="plain"):
        naswot(plain, np.zeros((2, 3), "float32"))


def test_synflow_of_a_two_layer_chain_by_hand():
    # |W1| = [[1, 2], [3, 4]], |W2| = [[1], [2]], input ones(2): h = (4, 6), R = 16.
    # Each layer of a bias-free chain carries R: score = 2 * 16.
    inputs = keras.Input((2,))
    d1, d2 = keras.layers.Dense(2, use_bias=False), keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, d2(d1(inputs)))
    d1.set_weights([np.array([[1, -2], [3, 4]], "float32")])
    d2.set_weights([np.array([[-1], [2]], "float32")])
    assert synflow(model) == pytest.approx(32.0)
    # The sign trick leaves the weights as they were.
    np.testing.assert_array_equal(d1.get_weights()[0], [[1, -2], [3, 4]])


def test_synflow_orders_cells_and_float64_agrees_with_float32():
    def score(spec, dtype=None, weights=None):
        m = build_nb201_model(spec, channels=8, cells_per_stage=2, seed=0, dtype=dtype)
        if weights is not None:
            m.set_weights([w.astype(dtype) for w in weights])
        return synflow(m), m

    none, _ = score(ALL_NONE)
    skip, _ = score(Nb201Spec(("skip_connect",) * 6))
    conv, m32 = score(ALL_3X3)
    assert none == 0.0
    assert 0.0 < skip < conv < math.inf
    conv64, _ = score(ALL_3X3, "float64", m32.get_weights())
    assert conv64 == pytest.approx(conv, rel=1e-3)


def test_synflow_overflows_float32_at_benchmark_size_but_not_float64():
    m32 = build_nb201_model(ALL_3X3, seed=0)
    m64 = build_nb201_model(ALL_3X3, seed=0, dtype="float64")
    m64.set_weights([w.astype("float64") for w in m32.get_weights()])
    assert synflow(m32) == math.inf
    assert 1e40 < synflow(m64) < 1e60
