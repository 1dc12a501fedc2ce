"""The decision-sequence interface of nas_tf.space (no TensorFlow)."""

from __future__ import annotations

import pickle

import pytest
from conftest import ToySpace, ToySpec, toy_decisions

from nas_tf.errors import InvalidArchitectureError
from nas_tf.space import (
    Anchor,
    Categorical,
    canonical_json,
    spec_hash,
    split_tokens,
    token_width,
    validate_decisions,
)


def test_categorical_and_anchor_widths():
    c = Categorical("a", [1, 2, 3])
    assert c.values == (1, 2, 3) and c.num_choices == 3 and c.width == 1
    assert Anchor("x", 0).width == 0 and Anchor("y", 3).width == 3


@pytest.mark.parametrize("make, words", [
    (lambda: Categorical("", (1,)), "needs a name"),
    (lambda: Categorical("a", ()), "at least one value"),
    (lambda: Anchor("", 0), "needs a name"),
    (lambda: Anchor("a", -1), "num_inputs >= 0"),
])
def test_bad_decisions(make, words):
    with pytest.raises(ValueError, match=words):
        make()


@pytest.mark.parametrize("decisions, words", [
    ([Categorical("a", (1,)), Categorical("a", (2,))], "Duplicate decision name"),
    ([Anchor("a0", 1)], "anchor number 0"),
    ([Anchor("a0", 0), Anchor("a1", 0)], "anchor number 1"),
    ([Anchor("a0", 0), Categorical("c", (1, 2)), Anchor("a1", 2)], "num_inputs=1"),
    (["not a decision"], "Categorical or Anchor"),
])
def test_validate_decisions_rejects(decisions, words):
    with pytest.raises((ValueError, TypeError), match=words):
        validate_decisions(decisions)


def test_split_tokens_and_width():
    ds = toy_decisions(3, num_values=4)
    assert token_width(ds) == 3 + 0 + 1 + 2
    parts = split_tokens(ds, (1, 2, 1, 3, 0, 1))
    assert parts == [1, (), 2, (1,), 3, (0, 1)]


@pytest.mark.parametrize("tokens, words", [
    ((1, 2, 1, 3, 0), "Expected 6 tokens"),
    ((4, 2, 1, 3, 0, 1), r"must be in \[0, 4\)"),
    ((1, 2, 1, 3, 0, 2), "must be 0 or 1"),
    ((1, -1, 1, 3, 0, 1), r"must be in \[0, 4\)"),
])
def test_split_tokens_rejects(tokens, words):
    with pytest.raises(InvalidArchitectureError, match=words):
        split_tokens(toy_decisions(3, num_values=4), tokens)


def test_spec_hash_is_stable_and_canonical():
    a = spec_hash("toy", {"b": 1, "a": [1, 2]})
    assert a == spec_hash("toy", {"a": [1, 2], "b": 1})
    assert a != spec_hash("other", {"a": [1, 2], "b": 1})
    assert a != spec_hash("toy", {"a": [2, 1], "b": 1})
    assert canonical_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    assert len(a) == 32


def test_toy_space_round_trip_and_hparams():
    space = ToySpace(num_layers=3, num_values=4)
    tokens = (3, 1, 0, 2, 1, 0)
    spec = space.tokens_to_spec(tokens)
    assert spec == ToySpec(tokens) and hash(spec) == hash(ToySpec(tokens))
    assert space.spec_to_tokens(spec) == tokens
    assert space.spec_from_json(space.spec_to_json(spec)) == spec
    assert space.hash_spec(spec) == space.hash_spec(space.tokens_to_spec(list(tokens)))
    hp = space.hparams(spec)
    assert hp == {"layer_0/op": "op3", "layer_0/inputs": "-", "layer_1/op": "op1",
                  "layer_1/inputs": "-", "layer_2/op": "op2", "layer_2/inputs": "0"}
    assert "tokens" in space.describe(spec)
    assert pickle.loads(pickle.dumps(space)).config() == space.config()


def test_curriculum_stages_extend_each_other():
    space = ToySpace(num_layers=4, grow_every=10, start_layers=2, extra_categorical=1)
    stages = [space.decisions(n) for n in (0, 9, 10, 25, 30, 1000)]
    assert [len(s) for s in stages] == [4, 4, 6, 9, 9, 9]
    for short, long in zip(stages, stages[1:]):
        assert long[: len(short)] == short
    assert space.final_decisions() == stages[-1]
    # Every stage's tokens map back to that stage.
    for s in stages:
        assert space.decisions_for_tokens(token_width(s)) == s
    with pytest.raises(InvalidArchitectureError, match="No stage"):
        space.decisions_for_tokens(token_width(stages[0]) + 1)


def test_single_stage_space_has_no_other_widths():
    space = ToySpace(num_layers=2)
    with pytest.raises(InvalidArchitectureError, match="No stage"):
        space.decisions_for_tokens(1)
    with pytest.raises(InvalidArchitectureError, match="single stage"):
        space._next_stage(0)


def test_as_recorded_accepts_only_the_same_space_by_default():
    space = ToySpace(num_layers=3)
    assert space.as_recorded(space.config()) is space
    assert space.as_recorded(ToySpace(num_layers=4).config()) is None
    assert space.curriculum_count == "samples"  # §4.1 counts samples
