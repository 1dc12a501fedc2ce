"""Tests of cells.NASRNN: golden equality with keras.layers.RNN(NASCell), layer features."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cells import NASRNN, NASCell
from nas_tf.errors import ConfigError

X = np.random.default_rng(0).normal(size=(3, 7, 5)).astype("float32")
MASK = np.ones((3, 7), bool)
MASK[0, 4:] = False  # right padding
MASK[1, :2] = False  # left padding


def _pair(cell_kwargs=None, **rnn_kwargs):
    """RNN(NASCell) with random weights and a NASRNN given the same weights."""
    cell_kwargs = cell_kwargs or {}
    ref = keras.layers.RNN(NASCell(4, **cell_kwargs), **rnn_kwargs)
    ref(X)
    rng = np.random.default_rng(1)
    ref.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32")
                     for w in ref.get_weights()])
    fast = NASRNN(4, **cell_kwargs, **rnn_kwargs)
    fast(X)
    fast.set_weights(ref.get_weights())
    return ref, fast


def _assert_same(a, b):
    a = a if isinstance(a, (list, tuple)) else [a]
    b = b if isinstance(b, (list, tuple)) else [b]
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-5)


@pytest.mark.parametrize("cell_kwargs", [{}, {"num_proj": 3, "use_bias": True}])
def test_same_weights_in_same_order_and_same_outputs(cell_kwargs):
    ref, fast = _pair(cell_kwargs, return_sequences=True, return_state=True)
    assert [w.shape for w in fast.get_weights()] == [w.shape for w in ref.get_weights()]
    _assert_same(ref(X), fast(X))


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_masking_and_direction_match(go_backwards, unroll, zero_output_for_mask):
    kw = dict(return_sequences=True, return_state=True, go_backwards=go_backwards,
              zero_output_for_mask=zero_output_for_mask)
    ref, fast = _pair(**kw)
    fast.unroll = unroll
    _assert_same(ref(X, mask=MASK), fast(X, mask=MASK))
    # The mask matters (else the test would pass vacuously).
    assert not np.allclose(np.asarray(fast(X)[0]), np.asarray(fast(X, mask=MASK)[0]))


def test_last_output_initial_state_and_gradients_match():
    ref, fast = _pair()
    c0 = tf.constant(np.full((3, 4), 0.3, "float32"))
    m0 = tf.constant(np.full((3, 4), -0.2, "float32"))
    _assert_same(ref(X, initial_state=[c0, m0]), fast(X, initial_state=[c0, m0]))
    grads = []
    for layer in (ref, fast):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(X, initial_state=[c0, m0])))
        grads.append(tape.gradient(loss, layer.trainable_variables))
    _assert_same(grads[0], grads[1])


def test_under_jit_compile_with_gradients():
    ref, fast = _pair(return_sequences=True)

    @tf.function(jit_compile=True)
    def forward_backward(x):
        with tf.GradientTape() as tape:
            y = fast(x, training=True)
            loss = tf.reduce_sum(tf.square(y))
        return y, tape.gradient(loss, fast.trainable_variables)

    y, grads = forward_backward(tf.constant(X))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(ref(X)))
    _assert_same(ref(X), y)
    _assert_same(tape.gradient(loss, ref.trainable_variables), grads)


def test_stateful_carries_state_across_calls():
    ref, fast = _pair(return_sequences=True, stateful=True)
    ref.reset_states()  # _pair's build calls ran with different weights
    fast.reset_states()
    for _ in range(2):  # the second call starts from the first call's final state
        _assert_same(ref(X), fast(X))
    fast.reset_states()
    ref.reset_states()
    _assert_same(ref(X), fast(X))


def test_dropout_only_in_training_and_seeded():
    layer = NASRNN(4, dropout=0.5, recurrent_dropout=0.5, seed=3, return_sequences=True)
    out = layer(X)
    assert len(layer.weights) == 2  # dropout adds no weights
    np.testing.assert_allclose(np.asarray(layer(X)), np.asarray(out))
    train = layer(X, training=True)
    assert not np.allclose(np.asarray(train), np.asarray(out))


def test_keras_round_trip(tmp_path):
    inp = keras.Input((7, 5))
    out = NASRNN(4, num_proj=3, dropout=0.1, return_sequences=True, name="nas")(inp)
    model = keras.Model(inp, out)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    layer = again.get_layer("nas")
    assert isinstance(layer, NASRNN) and layer.cell.num_proj == 3 and layer.dropout == 0.1
    _assert_same(model(X), again(X))


def test_from_cell_copies_settings():
    cell = NASCell(6, num_proj=2, use_bias=True)
    layer = NASRNN.from_cell(cell, return_sequences=True)
    assert (layer.units, layer.cell.num_proj, layer.cell.use_bias) == (6, 2, True)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"units": 0}, "units"),
    ({"units": 4, "dropout": 1.0}, "Received: dropout=1.0"),
    ({"units": 4, "recurrent_dropout": -0.1}, "Received: recurrent_dropout=-0.1"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        NASRNN(**kwargs)
