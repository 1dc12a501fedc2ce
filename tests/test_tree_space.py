"""Tests of cells.tree_space: the recurrent-cell tree space (no TensorFlow)."""

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from cells.tree_space import (
    ACTIVATIONS,
    COMBINATIONS,
    CellSpec,
    TreeSpace,
    nas_cell_spec,
    node_children,
    tree_levels,
)
from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.space import Categorical, token_width

REPO = Path(__file__).resolve().parents[1]


def _random_tokens(space, rng):
    return tuple(rng.randrange(d.num_choices) for d in space.decisions())


def _spec_kwargs(**overrides):
    kwargs = nas_cell_spec().to_json()
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize("base, nodes, width", [(2, 3, 10), (8, 15, 34)])
def test_decisions_shape(base, nodes, width):
    space = TreeSpace(base=base)
    decisions = space.decisions()
    assert all(isinstance(d, Categorical) for d in decisions)
    assert token_width(decisions) == width
    assert decisions[0].values == COMBINATIONS
    assert decisions[1].values == ACTIVATIONS
    assert decisions[-1].name == "cell_node"
    assert decisions[-1].values == tuple(range(nodes))
    assert space.config() == {"name": "rnn", "base": base}
    assert space.name == "rnn"


def test_base8_space_size_matches_paper():
    # §4.2: "the search space has approximately 6 x 10^16 architectures".
    size = math.prod(d.num_choices for d in TreeSpace(8).decisions())
    assert 5e16 < size < 7e16


def test_tree_structure():
    assert tree_levels(8) == [list(range(8)), [8, 9, 10, 11], [12, 13], [14]]
    assert tree_levels(2) == [[0, 1], [2]]
    assert node_children(8)[8] == (0, 1)
    assert node_children(8)[11] == (6, 7)
    assert node_children(8)[13] == (10, 11)
    assert node_children(8)[14] == (12, 13)
    assert node_children(2) == {2: (0, 1)}


@pytest.mark.parametrize("base", [2, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tokens_spec_json_round_trip(base, seed):
    space = TreeSpace(base=base)
    rng = random.Random(seed)
    for _ in range(100):
        tokens = _random_tokens(space, rng)
        spec = space.tokens_to_spec(tokens)
        assert space.spec_to_tokens(spec) == tokens
        obj = json.loads(json.dumps(space.spec_to_json(spec)))
        again = space.spec_from_json(obj)
        assert again == spec and hash(again) == hash(spec)
        assert CellSpec.from_json(json.dumps(obj)) == spec
        assert space.hash_spec(again) == space.hash_spec(spec)


def test_token_meaning():
    space = TreeSpace(base=2)
    spec = space.tokens_to_spec([0, 1, 1, 3, 1, 2, 0, 3, 0, 1])
    assert spec.combinations == ("add", "elem_mult", "elem_mult")
    assert spec.activations == ("tanh", "relu", "sigmoid")
    assert spec.inject_combination == "add"
    assert spec.inject_activation == "relu"
    assert (spec.inject_node, spec.cell_node) == (0, 1)


def test_nas_cell_spec_is_in_space():
    space = TreeSpace(8)
    spec = nas_cell_spec()
    assert space.tokens_to_spec(space.spec_to_tokens(spec)) == spec
    text = space.describe(spec)
    assert "n8 <- tanh(n8 + c_{t-1})" in text
    assert "c_t = n8 * n9" in text
    assert "h_t = n14" in text
    hp = space.hparams(spec)
    assert hp["node_3/combination"] == "elem_mult" and hp["cell_node"] == 12


def test_describe_base2():
    space = TreeSpace(2)
    text = space.describe(space.tokens_to_spec([0, 1, 1, 3, 1, 2, 0, 3, 0, 1]))
    assert text.startswith("```") and text.endswith("```")
    assert "n0 = tanh(W0·x_t + (U0·h_{t-1} + b0))" in text
    assert "n0 <- relu(n0 + c_{t-1})" in text
    assert "n2 = sigmoid(n0 * n1)" in text
    assert "h_t = n2" in text


@pytest.mark.parametrize("base", [5, 0, 4, "8", True])
def test_unknown_base(base):
    with pytest.raises(ConfigError, match=r"Received: base="):
        TreeSpace(base=base)


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        ({"inject_node": 15}, r"inject_node.*Received: inject_node=15"),
        ({"cell_node": -1}, r"cell_node.*Received: cell_node=-1"),
        ({"cell_node": 2.0}, r"Received: cell_node=2.0"),
        ({"base": 5}, r"Received: base=5"),
        ({"inject_activation": "gelu"}, r"Received: inject_activation='gelu'"),
        ({"inject_combination": "max"}, r"Received: inject_combination='max'"),
        ({"combinations": ["add"] * 14}, r"combinations needs one entry per node.*14 entries"),
        ({"activations": "tanh"}, r"activations must be a list"),
        ({"activations": ["tanh"] * 14 + ["swish"]}, r"Received: activations\[14\]='swish'"),
    ],
)
def test_bad_spec(overrides, pattern):
    with pytest.raises(InvalidArchitectureError, match=pattern):
        CellSpec(**_spec_kwargs(**overrides))


def test_base2_indices_outside_tree():
    space = TreeSpace(2)
    spec = space.tokens_to_spec([0] * 10).to_json()
    spec["inject_node"] = 3  # base 2 has nodes 0..2
    with pytest.raises(InvalidArchitectureError, match=r"\[0, 3\).*inject_node=3"):
        space.spec_from_json(spec)


@pytest.mark.parametrize(
    "obj, pattern",
    [
        ([1, 2], r"must be a dict"),
        ("{not json", r"JSON text or a dict"),
        ({"base": 8}, r"missing=\['combinations'"),
        ({**nas_cell_spec().to_json(), "extra": 1}, r"unknown=\['extra'\]"),
    ],
)
def test_bad_json(obj, pattern):
    with pytest.raises(InvalidArchitectureError, match=pattern):
        TreeSpace(8).spec_from_json(obj)


def test_base_mismatch():
    with pytest.raises(InvalidArchitectureError, match=r"base 8 but this space has base 2"):
        TreeSpace(2).spec_from_json(nas_cell_spec().to_json())
    with pytest.raises(InvalidArchitectureError, match=r"base 8 but this space has base 2"):
        TreeSpace(2).spec_to_tokens(nas_cell_spec())


@pytest.mark.parametrize(
    "tokens, pattern",
    [
        ([0] * 33, r"Expected 34 tokens"),
        ([0] * 32 + [15, 0], r"inject_node.*Received: 15"),
        ([2] + [0] * 33, r"node_0/combination.*Received: 2"),
        ([0, 4] + [0] * 32, r"node_0/activation.*Received: 4"),
    ],
)
def test_bad_tokens(tokens, pattern):
    with pytest.raises(InvalidArchitectureError, match=pattern):
        TreeSpace(8).tokens_to_spec(tokens)


def test_spec_is_frozen():
    spec = nas_cell_spec()
    with pytest.raises(AttributeError):
        spec.cell_node = 3


def test_tree_space_module_does_not_import_tensorflow():
    # Load the module file on its own (the package __init__ defines the Keras layers).
    module_file = str(REPO / "cells" / "tree_space.py")
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('ts', {module_file!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['ts'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "mod.TreeSpace(8).tokens_to_spec([0] * 34)\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())
