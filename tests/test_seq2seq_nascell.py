"""Tests of experiments/seq2seq_nascell.py: the task's data and a few training steps."""

import numpy as np
import pytest
from conftest import load_experiment


@pytest.fixture(scope="module")
def s2s():
    return load_experiment("seq2seq_nascell")


def test_spelling_and_encoding(s2s):
    assert s2s.spell(3042) == ["three", "thousand", "forty", "two"]
    assert s2s.spell(7777) == "seven thousand seven hundred seventy seven".split()
    assert s2s.spell(0) == ["zero"] and s2s.spell(110) == ["one", "hundred", "ten"]
    src, tgt = s2s.encode([3042, 5])
    assert tgt.tolist() == [[3, 0, 4, 2, s2s.TGT_END], [5] + [s2s.TGT_END] * 4]
    assert (src[1, 1:] == 0).all() and src.shape == (2, s2s.SRC_LEN)


def test_equal_params_and_a_few_training_steps(s2s):
    ref = s2s.count_params("lstm", 64)  # the default size of the experiment
    units = s2s.equal_param_units("nascell", ref)
    assert abs(s2s.count_params("nascell", units) - ref) / ref < 0.02
    r = s2s.run("nascell", 8, steps=3, batch=8, n_test=20)
    assert r["params"] == s2s.count_params("nascell", 8)
    assert np.isfinite(r["loss"]) and 0.0 <= r["seq_accuracy"] <= 1.0
