"""Tests of cells.TreeCell: NumPy reference, NASCell equivalence, gating, .keras round trip."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from cells import CellSpec, NASCell, TreeCell, TreeSpace, nas_cell_spec
from cells.tree_space import node_children
from nas_tf.errors import ConfigError, InvalidArchitectureError

REPO = Path(__file__).resolve().parents[1]

_ACT = {
    "identity": lambda v: v,
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "relu": lambda v: np.maximum(v, 0.0),
}
_COMB = {"add": np.add, "elem_mult": np.multiply}


def numpy_tree_step(spec, x, h, c, kernel, recurrent, bias):
    """One step of a tree cell, written node by node from the space's definition."""
    u = recurrent.shape[0]
    children = node_children(spec.base)
    out, pre = [], []
    for k in range(spec.num_nodes):
        if k < spec.base:
            wx = x @ kernel[:, k * u : (k + 1) * u]
            uh = h @ recurrent[:, k * u : (k + 1) * u] + bias[k * u : (k + 1) * u]
            p = _COMB[spec.combinations[k]](wx, uh)
        else:
            left, right = children[k]
            p = _COMB[spec.combinations[k]](out[left], out[right])
        o = _ACT[spec.activations[k]](p)
        if k == spec.inject_node:
            o = _ACT[spec.inject_activation](_COMB[spec.inject_combination](o, c))
        pre.append(p)
        out.append(o)
    return out[-1], pre[spec.cell_node]


def _run(cell, x, states):
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    return [np.asarray(t) for t in rnn(x, initial_state=states)]


def _random_inputs(rng, batch=3, steps=5, input_dim=4, units=5):
    x = rng.normal(size=(batch, steps, input_dim)).astype("float32")
    h0 = rng.normal(scale=0.5, size=(batch, units)).astype("float32")
    c0 = rng.normal(scale=0.5, size=(batch, units)).astype("float32")
    return x, h0, c0


@pytest.mark.parametrize("base", [2, 8])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_specs_match_numpy(base, seed):
    space = TreeSpace(base)
    rng = random.Random(seed)
    spec = space.tokens_to_spec([rng.randrange(d.num_choices) for d in space.decisions()])
    nrng = np.random.default_rng(seed)
    x, h0, c0 = _random_inputs(nrng)
    cell = TreeCell(spec, 5)
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    rnn.build(x.shape)
    w = {}
    for v in cell.weights:
        value = nrng.normal(scale=0.4, size=v.shape).astype("float32")
        v.assign(value)
        w[v.name] = value.astype("float64")
    seq, h_last, c_last = (np.asarray(t) for t in rnn(x, initial_state=[h0, c0]))
    h, c = h0.astype("float64"), c0.astype("float64")
    for t in range(x.shape[1]):
        h, c = numpy_tree_step(
            spec, x[:, t].astype("float64"), h, c, w["kernel"], w["recurrent_kernel"], w["bias"]
        )
        # A tiny atol: some specs' states decay towards 0 within a few steps, and
        # those small values must still match (relatively).
        np.testing.assert_allclose(seq[:, t], h, rtol=1e-4, atol=1e-9, err_msg=str(spec))
    np.testing.assert_allclose(h_last, h, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(c_last, c, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("use_bias", [False, True])
def test_nas_cell_spec_equals_nas_cell(use_bias):
    rng = np.random.default_rng(11)
    x, h0, c0 = _random_inputs(rng, steps=6, units=6)
    nas = NASCell(6, use_bias=use_bias)
    tree = TreeCell(nas_cell_spec(), 6, use_bias=use_bias)
    keras.layers.RNN(nas).build(x.shape)
    keras.layers.RNN(tree).build(x.shape)
    assert [w.name for w in tree.weights] == [w.name for w in nas.weights]
    for a, b in zip(nas.weights, tree.weights):
        value = rng.normal(scale=0.6, size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    seq_n, c_n, m_n = _run(nas, x, [c0, h0])  # NASCell states: [c, m]
    seq_t, h_t, c_t = _run(tree, x, [h0, c0])  # TreeCell states: [h, c]
    np.testing.assert_allclose(seq_t, seq_n, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_t, m_n, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_t, c_n, rtol=1e-5, atol=1e-6)


# An LSTM written in the tree space: leaves 0, 2, 3, 4 are the forget gate f, input
# gate i, candidate g and output gate o; leaves 1, 5, 6, 7 are extra sigmoid gates.
#   n8 = f * n1, then the inject gives n8 * c_{t-1};  n9 = i * g
#   n12 = tanh(n8 + n9), c_t = n8 + n9 (before the tanh)
#   h_t = n14 = n12 * n13 with n13 = (o * n5) * (n6 * n7)
LSTM_LIKE = CellSpec(
    base=8,
    combinations=("add",) * 8 + ("elem_mult",) * 4 + ("add", "elem_mult", "elem_mult"),
    activations=("sigmoid", "sigmoid", "sigmoid", "tanh")
    + ("sigmoid",) * 4
    + ("identity",) * 4
    + ("tanh", "identity", "identity"),
    inject_combination="elem_mult",
    inject_activation="identity",
    inject_node=8,
    cell_node=12,
)
_F, _I, _G, _O = 0, 2, 3, 4  # leaves
_KERAS_GATES = {"i": 0, "f": 1, "g": 2, "o": 3}  # keras LSTMCell column blocks


def _lstm_pair(rng, units=4, input_dim=3):
    """A keras LSTMCell and a TreeCell(LSTM_LIKE) whose extra gates are saturated to 1."""
    lstm = keras.layers.LSTMCell(units, unit_forget_bias=False)
    tree = TreeCell(LSTM_LIKE, units)
    keras.layers.RNN(lstm).build((2, 5, input_dim))
    keras.layers.RNN(tree).build((2, 5, input_dim))
    k = rng.normal(scale=0.5, size=(input_dim, 4 * units)).astype("float32")
    r = rng.normal(scale=0.5, size=(units, 4 * units)).astype("float32")
    b = rng.normal(scale=0.5, size=(4 * units,)).astype("float32")
    lstm.kernel.assign(k)
    lstm.recurrent_kernel.assign(r)
    lstm.bias.assign(b)
    tk = np.zeros((input_dim, 8 * units), "float32")
    tr = np.zeros((units, 8 * units), "float32")
    tb = np.full((8 * units,), 40.0, "float32")  # sigmoid(40) == 1.0 in float32
    for gate, leaf in (("f", _F), ("i", _I), ("g", _G), ("o", _O)):
        src = slice(_KERAS_GATES[gate] * units, (_KERAS_GATES[gate] + 1) * units)
        dst = slice(leaf * units, (leaf + 1) * units)
        tk[:, dst], tr[:, dst], tb[dst] = k[:, src], r[:, src], b[src]
    tree.kernel.assign(tk)
    tree.recurrent_kernel.assign(tr)
    tree.bias.assign(tb)
    return lstm, tree


def test_lstm_like_spec_equals_keras_lstm():
    rng = np.random.default_rng(3)
    lstm, tree = _lstm_pair(rng)
    x, h0, c0 = _random_inputs(rng, steps=7, input_dim=3, units=4)
    seq_l, h_l, c_l = _run(lstm, x, [h0, c0])
    seq_t, h_t, c_t = _run(tree, x, [h0, c0])
    np.testing.assert_allclose(seq_t, seq_l, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_t, c_l, rtol=1e-5, atol=1e-6)


def _set_bias(cell, leaf, value):
    u = cell.units
    b = np.asarray(cell.bias).copy()
    b[leaf * u : (leaf + 1) * u] = value
    cell.bias.assign(b)


@pytest.mark.parametrize("gate", ["forget_open", "forget_closed", "output_closed"])
def test_lstm_like_spec_gates(gate):
    """Saturating a gate node with its bias blocks or keeps the memory as an LSTM's would."""
    rng = np.random.default_rng(5)
    _, tree = _lstm_pair(rng)
    x, h0, c0 = _random_inputs(rng, steps=10, input_dim=3, units=4)
    c0 = c0 * 4.0
    if gate == "forget_open":  # f = 1, i = 0: c is carried unchanged through all steps
        _set_bias(tree, _F, 40.0)
        _set_bias(tree, _I, -40.0)
        _, _, c_last = _run(tree, x, [h0, c0])
        np.testing.assert_allclose(c_last, c0, rtol=1e-6)
        _, _, c_free = _run(TreeCell.from_config(tree.get_config()), x, [h0, c0])
        assert np.abs(c_free - c0).max() > 1e-2  # with fresh weights it does change
    elif gate == "forget_closed":  # f = 0: c_{t-1} cannot reach c_t or h_t
        _set_bias(tree, _F, -40.0)
        seq_a, _, c_a = _run(tree, x, [h0, c0])
        seq_b, _, c_b = _run(tree, x, [h0, -c0])
        np.testing.assert_allclose(seq_a, seq_b, atol=1e-6)
        np.testing.assert_allclose(c_a, c_b, atol=1e-6)
        _set_bias(tree, _F, 0.0)
        seq_c, _, _ = _run(tree, x, [h0, -c0])
        assert np.abs(seq_a - seq_c).max() > 1e-3
    else:  # o = 0: the output is blocked while the memory still moves
        _set_bias(tree, _O, -40.0)
        seq, h_last, c_last = _run(tree, x, [h0, c0])
        assert np.abs(seq).max() < 1e-6
        assert np.abs(c_last).max() > 1e-2


def test_roundtrip_keras_file_in_fresh_process(tmp_path):
    rng = np.random.default_rng(0)
    space = TreeSpace(8)
    spec = space.tokens_to_spec([int(rng.integers(d.num_choices)) for d in space.decisions()])
    inputs = keras.Input((None, 3))
    y = keras.layers.RNN(TreeCell(spec, 5), return_sequences=True)(inputs)
    y = keras.layers.RNN(NASCell(4, num_proj=2, use_bias=True), return_sequences=True)(y)
    model = keras.Model(inputs, keras.layers.Dense(2)(y))
    for w in model.weights:  # non-trivial values everywhere, biases included
        w.assign(rng.normal(scale=0.4, size=w.shape).astype("float32"))
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    expected = np.asarray(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, json, numpy as np, keras, cells\n"
        "d = sys.argv[1]\n"
        "m = keras.saving.load_model(d + '/model.keras')\n"
        "np.save(d + '/y.npy', np.asarray(m(np.load(d + '/x.npy'))))\n"
        "cells_ = [l.cell for l in m.layers if hasattr(l, 'cell')]\n"
        "print(json.dumps([type(c).__name__ for c in cells_] + [cells_[0].spec.to_json()]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=os.getcwd(),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = json.loads(proc.stdout.strip().splitlines()[-1])
    assert names[:2] == ["TreeCell", "NASCell"]
    assert CellSpec.from_json(names[2]) == spec
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)


def test_config_and_from_spec():
    spec = nas_cell_spec()
    cell = TreeCell.from_spec(json.dumps(spec.to_json()), 3, use_bias=False, name="t")
    assert cell.spec == spec and cell.units == 3 and not cell.use_bias
    config = json.loads(json.dumps(cell.get_config()))
    again = TreeCell.from_config(config)
    assert again.spec == spec and again.units == 3 and again.name == "t"
    assert again.state_size == [3, 3]
    keras.layers.RNN(again).build((1, 2, 4))
    assert {w.name: tuple(w.shape) for w in again.weights} == {
        "kernel": (4, 24),
        "recurrent_kernel": (3, 24),
    }


@pytest.mark.parametrize("units", [0, -1, 1.5, None])
def test_bad_units(units):
    with pytest.raises(ConfigError, match=rf"Received: units={units}"):
        TreeCell(nas_cell_spec(), units)


def test_bad_spec():
    bad = {**nas_cell_spec().to_json(), "cell_node": 99}
    with pytest.raises(InvalidArchitectureError, match=r"Received: cell_node=99"):
        TreeCell(bad, 4)
    with pytest.raises(InvalidArchitectureError, match=r"must be a dict"):
        TreeCell(42, 4)
