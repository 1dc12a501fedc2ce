"""Tests of cells.NASCell against an independent NumPy version of its equations."""

import keras
import numpy as np
import pytest

from cells import NASCell
from nas_tf.errors import ConfigError


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _relu(v):
    return np.maximum(v, 0.0)


def numpy_nas_step(x, c, m, kernel, recurrent, bias, projection):
    """One step of the NAS cell (arXiv:1611.01578 Fig. 8; tf.contrib/tfa NASCell)."""
    u = kernel.shape[1] // 8

    def block(i):
        xi = x @ kernel[:, i * u : (i + 1) * u]
        mi = m @ recurrent[:, i * u : (i + 1) * u]
        if bias is not None:
            mi = mi + bias[i * u : (i + 1) * u]
        return xi, mi

    b = [block(i) for i in range(8)]
    a0 = _sigmoid(b[0][0] + b[0][1])
    a1 = _relu(b[1][0] + b[1][1])
    a2 = _sigmoid(b[2][0] + b[2][1])
    a3 = _relu(b[3][0] * b[3][1])
    a4 = np.tanh(b[4][0] + b[4][1])
    a5 = _sigmoid(b[5][0] + b[5][1])
    a6 = np.tanh(b[6][0] + b[6][1])
    a7 = _sigmoid(b[7][0] + b[7][1])
    p0 = np.tanh(np.tanh(a0 * a1) + c)
    p1 = np.tanh(a2 + a3)
    p2 = np.tanh(a4 * a5)
    p3 = _sigmoid(a6 + a7)
    new_c = p0 * p1
    new_m = np.tanh(new_c * np.tanh(p2 + p3))
    if projection is not None:
        new_m = new_m @ projection
    return new_c, new_m


@pytest.mark.parametrize("num_proj", [None, 3])
@pytest.mark.parametrize("use_bias", [False, True])
def test_matches_numpy_equations(num_proj, use_bias):
    rng = np.random.default_rng(7)
    batch, steps, input_dim, units = 3, 6, 4, 5
    out_dim = num_proj or units
    x = rng.normal(size=(batch, steps, input_dim)).astype("float32")
    c0 = rng.normal(size=(batch, units)).astype("float32")
    m0 = rng.normal(size=(batch, out_dim)).astype("float32")

    cell = NASCell(units, num_proj=num_proj, use_bias=use_bias)
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    rnn.build((batch, steps, input_dim))
    weights = {}
    for w in cell.weights:
        value = rng.normal(scale=0.7, size=w.shape).astype("float32")
        w.assign(value)
        weights[w.name] = value.astype("float64")
    expected_names = {"kernel", "recurrent_kernel"} | ({"bias"} if use_bias else set())
    expected_names |= {"projection_kernel"} if num_proj else set()
    assert set(weights) == expected_names

    seq, c_last, m_last = (np.asarray(t) for t in rnn(x, initial_state=[c0, m0]))

    c, m = c0.astype("float64"), m0.astype("float64")
    for t in range(steps):
        c, m = numpy_nas_step(
            x[:, t].astype("float64"),
            c,
            m,
            weights["kernel"],
            weights["recurrent_kernel"],
            weights.get("bias"),
            weights.get("projection_kernel"),
        )
        np.testing.assert_allclose(seq[:, t], m, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c_last, c, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m_last, m, rtol=1e-4, atol=1e-5)
    # The memory is really used: a different c0 changes the outputs.
    other = np.asarray(rnn(x, initial_state=[c0 + 1.0, m0])[0])
    assert np.abs(other - seq).max() > 1e-3


@pytest.mark.parametrize("num_proj", [None, 3])
def test_weight_layout_matches_reference(num_proj):
    cell = NASCell(6, num_proj=num_proj, use_bias=True)
    keras.layers.RNN(cell).build((2, 4, 5))
    shapes = {w.name: tuple(w.shape) for w in cell.weights}
    out = num_proj or 6
    expected = {"kernel": (5, 48), "recurrent_kernel": (out, 48), "bias": (48,)}
    if num_proj:
        expected["projection_kernel"] = (6, num_proj)
    assert shapes == expected
    assert cell.state_size == [6, out]
    assert cell.output_size == out


def test_config_round_trip():
    cell = NASCell(7, num_proj=3, use_bias=True, recurrent_initializer="orthogonal", name="nas")
    again = NASCell.from_config(cell.get_config())
    assert (again.units, again.num_proj, again.use_bias, again.name) == (7, 3, True, "nas")
    assert isinstance(again.recurrent_initializer, keras.initializers.Orthogonal)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"units": 0}, r"Received: units=0"),
        ({"units": -3}, r"Received: units=-3"),
        ({"units": 2.5}, r"Received: units=2.5"),
        ({"units": 4, "num_proj": 0}, r"Received: num_proj=0"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        NASCell(**kwargs)
    with pytest.raises(ValueError):  # ConfigError is a ValueError too
        NASCell(**kwargs)


@pytest.mark.parametrize("num_proj", [None, 5])
@pytest.mark.parametrize("use_bias", [False, True])
def test_reference_weights_load_in_the_right_places(num_proj, use_bias):
    """TF Addons / tf.contrib create recurrent_kernel before kernel (and name the
    projection projection_weights). With input size == units the two kernels
    have one shape, so set_weights(ref.get_weights()) swapped them silently;
    from_reference_weights maps them: one step of the reference equations with
    the reference weights equals one step of the loaded layer."""
    rng = np.random.default_rng(3)
    units, batch = 5, 4
    rows = num_proj or units
    ref = [rng.normal(scale=0.7, size=(rows, 8 * units)),  # recurrent_kernel (created first)
           rng.normal(scale=0.7, size=(units, 8 * units))]  # kernel: input size == units
    if use_bias:
        ref.append(rng.normal(size=(8 * units,)))
    if num_proj:
        ref.append(rng.normal(size=(units, num_proj)))  # projection_weights
    x = rng.normal(size=(batch, units))
    c0, m0 = rng.normal(size=(batch, units)), rng.normal(size=(batch, rows))
    want_c, want_m = numpy_nas_step(x, c0, m0, ref[1], ref[0], ref[2] if use_bias else None,
                                    ref[-1] if num_proj else None)
    names = ["nas_cell/recurrent_kernel:0", "nas_cell/kernel:0"] + (
        ["nas_cell/bias:0"] if use_bias else []) + (
        ["nas_cell/projection_weights:0"] if num_proj else [])
    f32 = [w.astype("float32") for w in ref]
    for given in (f32, dict(zip(names, f32))):
        cell = NASCell.from_reference_weights(given)
        assert (cell.units, cell.num_proj, cell.use_bias) == (units, num_proj, use_bias)
        m, (c, m2) = cell(x.astype("float32"), [c0.astype("float32"), m0.astype("float32")])
        np.testing.assert_allclose(np.asarray(c), want_c, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(m), want_m, rtol=1e-4, atol=1e-5)
    # The trap the docs warn of: the plain set_weights loads without an error,
    # and computes something else.
    naive = NASCell(units, num_proj=num_proj, use_bias=use_bias)
    naive.build((None, units))
    if num_proj is None:
        naive.set_weights(f32)
        _, (c, _) = naive(x.astype("float32"), [c0.astype("float32"), m0.astype("float32")])
        assert np.abs(np.asarray(c) - want_c).max() > 1e-2
    # An existing cell (e.g. inside keras.layers.RNN) loads them too.
    naive.set_reference_weights(f32)
    _, (c, _) = naive(x.astype("float32"), [c0.astype("float32"), m0.astype("float32")])
    np.testing.assert_allclose(np.asarray(c), want_c, rtol=1e-4, atol=1e-5)


def test_reference_weights_that_do_not_fit_are_named():
    rng = np.random.default_rng(0)
    rk, k = rng.normal(size=(4, 32)), rng.normal(size=(3, 32))
    with pytest.raises(ConfigError, match="2 to 4 weights"):
        NASCell.from_reference_weights([rk])
    with pytest.raises(ConfigError, match="Not a NASCell's weights"):
        NASCell.from_reference_weights([k, rk])  # a kernel where the recurrent one belongs
    with pytest.raises(ConfigError, match="Unknown NASCell weight 'cell/gate:0'"):
        NASCell.from_reference_weights({"cell/kernel:0": k, "cell/gate:0": rk})
    cell = NASCell(4, use_bias=True)
    cell.build((None, 3))
    with pytest.raises(ConfigError, match="use_bias / num_proj differ"):
        cell.set_reference_weights([rk, k])
