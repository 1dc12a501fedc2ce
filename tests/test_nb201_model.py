"""NAS-Bench-201 networks in Keras (cnn_space/nb201/model.py)."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from cnn_space.nb201 import model as nb201_model
from cnn_space.nb201.model import benchmark_param_count, build_nb201_model, live_edges
from cnn_space.nb201.space import EDGES, OPS, Nb201Spec
from nas_tf.errors import ConfigError

ALL_3X3 = Nb201Spec(("nor_conv_3x3",) * 6)
ALL_NONE = Nb201Spec(("none",) * 6)
# node 1 gets nothing (edge 1<-0 is none), so edges 2<-1 and 3<-1 leave an all-zero node;
# node 2 only feeds 3 through 'none', so edges into node 2 never reach the output.
DEAD = Nb201Spec(("none", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3",
                  "none"))


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_param_counts_match_the_benchmarks_published_range():
    """NAS-Bench-201 (Dong & Yang 2020, arXiv:2001.00326, and its API's ``params`` in MB,
    CIFAR-10, C=16, N=5) spans 0.0733 M (cells without a convolution) to 1.5315 M (the
    all-nor_conv_3x3 cell); the figures also follow from its code's TinyNetwork (counted by
    hand in ``benchmark_param_count``). Trainable parameters, BN running statistics excluded,
    as the benchmark's ``count_parameters_in_MB``."""
    big = build_nb201_model(ALL_3X3, seed=0)
    assert _trainable(big) == pytest.approx(1.5315e6, rel=0.01)
    assert _trainable(big) == benchmark_param_count(ALL_3X3) == 1_531_546
    for op in ("none", "skip_connect", "avg_pool_3x3"):
        small = build_nb201_model(Nb201Spec((op,) * 6), seed=0)
        assert _trainable(small) == pytest.approx(0.0733e6, rel=0.01)
        assert _trainable(small) == 73_306


def test_unpruned_param_count_equals_the_benchmark_formula_on_random_cells():
    """Where nodes 1 and 2 both feed node 3 (else their edges are never part of a
    functional model), prune=False builds every edge the benchmark counts."""
    rng = np.random.default_rng(1)
    live_ops = [op for op in OPS if op != "none"]
    for _ in range(6):
        ops = [OPS[i] for i in rng.integers(0, len(OPS), len(EDGES))]
        ops[4], ops[5] = (live_ops[i] for i in rng.integers(0, len(live_ops), 2))
        spec = Nb201Spec(tuple(ops))
        m = build_nb201_model(spec, channels=4, cells_per_stage=1, prune=False, seed=0)
        assert _trainable(m) == benchmark_param_count(spec, channels=4, cells_per_stage=1)
        pruned = build_nb201_model(spec, channels=4, cells_per_stage=1, seed=0)
        assert _trainable(pruned) <= _trainable(m)


def test_live_edges_prunes_none_unreachable_and_dead_end_edges():
    assert live_edges(ALL_3X3) == [True] * 6
    assert live_edges(ALL_NONE) == [False] * 6
    # EDGES order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    assert live_edges(DEAD) == [False, False, False, True, False, False]
    assert live_edges(DEAD, prune=False) == [False, True, True, True, True, False]
    # Every cell whose output node is reachable keeps at least one edge into node 3.
    for ops in itertools.islice(itertools.product(OPS, repeat=6), 0, 15625, 97):
        live = live_edges(Nb201Spec(ops))
        into_3 = [live[k] for k, (i, _) in enumerate(EDGES) if i == 3]
        assert any(into_3) == any(live)


def test_pruned_model_computes_what_the_full_model_computes():
    """With the full model's weights, the pruned model's logits are the same (inference
    mode, BN as initialised: a conv on an all-zero node adds beta = 0)."""
    full = build_nb201_model(DEAD, channels=4, cells_per_stage=2, prune=False, seed=3)
    pruned = build_nb201_model(DEAD, channels=4, cells_per_stage=2, seed=4)
    assert len(pruned.layers) < len(full.layers)
    by_name = {layer.name: layer for layer in full.layers}
    for layer in pruned.layers:
        if layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(pruned(x, training=False), full(x, training=False),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels,cells,classes,shape", [
    (16, 5, 10, (32, 32, 3)), (4, 1, 7, (16, 16, 3)), (8, 2, 100, (32, 32, 1))])
def test_output_shape_and_skeleton(channels, cells, classes, shape):
    m = build_nb201_model(ALL_3X3, channels=channels, cells_per_stage=cells,
                          num_classes=classes, input_shape=shape, seed=0)
    y = m(np.zeros((2,) + shape, "float32"))
    assert tuple(y.shape) == (2, classes)
    convs = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D)]
    # stem + 6 per cell + 3 per reduction block
    assert len(convs) == 1 + 6 * 3 * cells + 3 * 2
    assert m.get_layer("reduce2_a_conv").kernel.shape == (3, 3, 2 * channels, 4 * channels)
    assert m.get_layer("reduce1_short").kernel.shape == (1, 1, channels, 2 * channels)
    assert m.get_layer("classifier").kernel.shape == (4 * channels, classes)
    relus = [layer for layer in m.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(relus) == 6 * 3 * cells + 2 * 2 + 1


def test_all_none_cell_gives_a_constant_model():
    m = build_nb201_model(ALL_NONE, channels=8, cells_per_stage=2, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    for training in (False, True):
        y = np.asarray(m(x, training=training))
        np.testing.assert_allclose(y, np.broadcast_to(y[0], y.shape), atol=1e-6)
        np.testing.assert_allclose(y[0], m.get_layer("classifier").bias.numpy(), atol=1e-6)
    assert not [layer for layer in m.layers if layer.name.startswith("s0c")
                and isinstance(layer, keras.layers.Conv2D)]


def test_a_live_cell_passes_signal():
    m = build_nb201_model(Nb201Spec(("skip_connect",) * 6), channels=4, cells_per_stage=1,
                          seed=0)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    y = np.asarray(m(x, training=True))
    assert np.ptp(y, axis=0).max() > 1e-4


def test_seed_makes_weights_deterministic():
    a = build_nb201_model(DEAD, channels=4, cells_per_stage=1, seed=7).get_weights()
    b = build_nb201_model(DEAD, channels=4, cells_per_stage=1, seed=7).get_weights()
    c = build_nb201_model(DEAD, channels=4, cells_per_stage=1, seed=8).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    # Two same-shape convs of one model get different draws.
    m = build_nb201_model(ALL_3X3, channels=4, cells_per_stage=2, seed=7)
    assert not np.array_equal(m.get_layer("s0c0_e10_conv").kernel.numpy(),
                              m.get_layer("s0c1_e10_conv").kernel.numpy())


def test_init_is_pytorchs_default_uniform_range():
    m = build_nb201_model(ALL_3X3, channels=16, cells_per_stage=1, seed=0)
    k = m.get_layer("s1c0_e21_conv").kernel.numpy()  # fan_in 3*3*32
    bound = 1 / np.sqrt(9 * 32)
    assert np.abs(k).max() <= bound
    assert np.abs(k).max() > 0.95 * bound


def test_avg_pool_excludes_padding_as_count_include_pad_false():
    pool = keras.layers.AveragePooling2D(3, strides=1, padding="same")
    y = np.asarray(pool(np.ones((1, 4, 4, 1), "float32")))
    np.testing.assert_allclose(y, 1.0)  # 4/9 at the corners if padding were counted


def test_stride_two_conv_pads_one_on_every_side_as_pytorch():
    """PyTorch's 3x3/stride 2/padding 1 centres its windows on pixels 0, 2, 4, ...
    (TF's 'same' would centre them on 1, 3, ...)."""
    x = keras.Input((8, 8, 1))
    y = nb201_model._conv(x, 1, 3, 2, nb201_model._Init(0), "probe")
    probe = keras.Model(x, y)
    kernel = np.zeros((3, 3, 1, 1), "float32")
    kernel[1, 1] = 1.0  # the window's centre tap
    probe.get_layer("probe").set_weights([kernel])
    img = np.zeros((1, 8, 8, 1), "float32")
    img[0, 2, 4] = 1.0
    out = np.asarray(probe(img))[0, :, :, 0]
    assert out.shape == (4, 4)
    assert out[1, 2] == 1.0 and out.sum() == 1.0


def test_float64_build():
    m = build_nb201_model(ALL_3X3, channels=4, cells_per_stage=1, seed=0, dtype="float64")
    assert all(w.dtype == "float64" for w in m.weights)
    assert m(np.zeros((1, 32, 32, 3))).dtype == "float64"


@pytest.mark.parametrize("kwargs,needle", [
    ({"channels": 0}, "channels=0"), ({"cells_per_stage": 1.5}, "cells_per_stage=1.5"),
    ({"num_classes": -1}, "num_classes=-1"), ({"input_shape": (30, 30, 3)}, "input_shape"),
    ({"input_shape": (32, 32)}, "input_shape")])
def test_bad_sizes_are_one_clear_error(kwargs, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        build_nb201_model(ALL_3X3, **kwargs)
