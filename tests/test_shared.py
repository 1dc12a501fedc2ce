"""Tests of cells/shared.py: one shared cell computes every cell of the tree space."""

import math
import random

import keras
import numpy as np
import pytest

from cells import TreeCell, nas_cell_spec
from cells.shared import SharedTreeCell
from cells.tree_space import TreeSpace
from nas_tf.errors import ConfigError, InvalidArchitectureError


def _random_tokens(space, rng):
    return [rng.randrange(d.num_choices) for d in space.decisions()]


def _run(cell, x, h, c):
    out, (h_new, c_new) = cell(x, [h, c])
    return np.asarray(out), np.asarray(h_new), np.asarray(c_new)


@pytest.mark.parametrize("base", [2, 8])
def test_shared_cell_equals_a_stand_alone_tree_cell_with_the_same_weights(base):
    rng = random.Random(base)
    data = np.random.default_rng(base)
    units, dim, batch = 5, 3, 4
    x = data.normal(size=(batch, dim)).astype("float32")
    h = data.normal(size=(batch, units)).astype("float32")
    c = data.normal(size=(batch, units)).astype("float32")
    space = TreeSpace(base)
    shared = SharedTreeCell(base, units, bias_initializer="random_normal")
    shared.build((batch, dim))
    specs = [space.tokens_to_spec(_random_tokens(space, rng)) for _ in range(12)]
    if base == 8:
        specs.append(nas_cell_spec())
    for spec in specs:
        alone = TreeCell(spec, units)
        alone.build((batch, dim))
        alone.set_weights(shared.get_weights()[:3])
        shared.set_architecture(spec)
        got, want = _run(shared, x, h, c), _run(alone, x, h, c)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=str(spec))


def test_the_architecture_is_a_runtime_input_of_one_traced_model():
    """One RNN over the shared cell: switching cells needs no rebuild, and gradients
    reach the shared weights for every sampled cell."""
    import tensorflow as tf

    space, rng = TreeSpace(2), random.Random(0)
    cell = SharedTreeCell(2, 4, bias_initializer="random_normal")
    rnn = keras.layers.RNN(cell)
    x = np.random.default_rng(0).normal(size=(3, 6, 2)).astype("float32")
    rnn(x)
    traces = []

    @tf.function
    def step(x):
        traces.append(1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(rnn(x)))
        return loss, tape.gradient(loss, cell.trainable_weights)

    losses, moved = set(), 0
    for _ in range(5):
        cell.set_architecture(_random_tokens(space, rng))
        loss, grads = step(x)
        losses.add(round(float(loss), 5))
        assert all(g is not None and np.all(np.isfinite(np.asarray(g))) for g in grads)
        moved += float(tf.reduce_sum(tf.abs(grads[0]))) > 0
    assert len(traces) == 1
    assert moved >= 3  # the input kernel is trained through most sampled cells
    assert len(losses) > 1  # the cells differ


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(ConfigError, match="base=3"):
        SharedTreeCell(3, 4)
    with pytest.raises(ConfigError, match="units=0"):
        SharedTreeCell(2, 0)
    cell = SharedTreeCell(2, 4)
    cell.build((1, 2))
    with pytest.raises(ConfigError, match="10 tokens"):
        cell.set_architecture([0, 1])
    with pytest.raises(InvalidArchitectureError):
        cell.set_architecture([0, 9] + [0] * 8)


def test_config_round_trip():
    cell = SharedTreeCell(8, 6, use_bias=False, name="shared")
    again = SharedTreeCell.from_config(cell.get_config())
    assert (again.base, again.units, again.use_bias, again.name) == (8, 6, False, "shared")


def _stream(n, vocab, seed):
    """A learnable stream: each token is the previous one plus 1 (mod vocab), with noise."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, "int32")
    for i in range(1, n):
        out[i] = (out[i - 1] + 1) % vocab if rng.random() < 0.9 else rng.integers(vocab)
    return out


def test_shared_lm_trains_on_sampled_cells_scores_any_cell_and_resumes(tmp_path):
    from cells.lm import LMConfig
    from cells.shared_lm import SharedLM

    space, rng = TreeSpace(2), random.Random(1)
    cfg = LMConfig(units=8, num_layers=1, bptt=5, batch_size=4, eval_batch_size=4,
                   optimizer="adam", learning_rate=0.02)
    train, valid = _stream(2000, 7, 0), _stream(400, 7, 1)
    lm = SharedLM(2, 7, train, valid, cfg, seed=0)
    # Bounded activations (tanh, sigmoid) keep every state finite.
    bounded = [[t if i % 2 == 0 or i >= 8 else 1 + t % 2 for i, t in
                enumerate(_random_tokens(space, rng))] for _ in range(3)]
    specs = [space.tokens_to_spec(t) for t in bounded]
    before = [lm.score(s, max_windows=4) for s in specs]
    sample = lambda: _random_tokens(space, rng)  # noqa: E731
    first = lm.train(sample, 20)
    last = lm.train(sample, 60)
    after = [lm.score(s, max_windows=4) for s in specs]
    assert math.isfinite(first) and last < first
    assert sum(after) < sum(before)  # the shared weights learned for cells never trained alone
    assert lm.steps == 80
    lm.save(tmp_path / "shared.npz")
    again = SharedLM(2, 7, train, valid, cfg, seed=5)
    assert again.score(specs[0], max_windows=4) != pytest.approx(after[0])
    again.restore(tmp_path / "shared.npz")
    assert again.score(specs[0], max_windows=4) == pytest.approx(after[0], rel=1e-6)
    assert (again.position, again.steps) == (lm.position, lm.steps)
    unbounded = space.tokens_to_spec([1, 0, 1, 0, 1, 0, 1, 0, 0, 0])  # c_t = x * h, identity
    assert lm.score(unbounded) > 0  # a number or inf, never an exception
    # A step whose loss is not finite (here: an infinite recurrent kernel) changes no weight.
    weights = again.model.get_weights()
    kernel = again.cells[0].recurrent_kernel
    kernel.assign(np.full(kernel.shape, np.inf, "float32"))
    poisoned = again.model.get_weights()
    assert math.isnan(again.train(lambda: specs[0], 1)) and again.skipped == 1
    for w, p in zip(again.model.get_weights(), poisoned):
        np.testing.assert_array_equal(w, p)
    again.model.set_weights(weights)
    (tmp_path / "bad.npz").write_bytes(b"not a numpy file")
    with pytest.raises(ConfigError, match="Cannot restore the shared model"):
        again.restore(tmp_path / "bad.npz")


def test_shared_evaluator_scores_trains_saves_resumes_and_ranks(tmp_path):
    import json

    from cells.search import RnnSearchConfig
    from cells.sharing import SharedRnnEvaluator
    from nas_tf.evaluator import ChildContext
    from nas_tf.sharing import SharingConfig, read_scores

    cfg = RnnSearchConfig(dataset="synthetic", cell_base=2, units=8, num_layers=1, bptt=5,
                          batch_size=4, eval_batch_size=4, train_tokens=3000,
                          valid_tokens=600)
    sharing = SharingConfig(mode="enas", steps_per_child=3, score_windows=2, top_k=2)
    space, rng = TreeSpace(2), random.Random(3)
    bounded = [[t if i % 2 == 0 or i >= 8 else 1 + t % 2 for i, t in
                enumerate(_random_tokens(space, rng))] for _ in range(4)]
    specs = [space.tokens_to_spec(t) for t in bounded]
    ev = SharedRnnEvaluator(cfg, sharing)
    ev.bind_run_dir(tmp_path / "shared")
    results = [ev.evaluate(s, ChildContext(child_id=i)) for i, s in enumerate(specs[:3])]
    assert [r.metrics["shared_steps"] for r in results] == [3, 6, 9]
    assert all(0 < r.reward and math.isfinite(r.metrics["val_perplexity"]) for r in results)
    # A new evaluator on the same folder continues from the saved shared weights.
    again = SharedRnnEvaluator(cfg, sharing)
    again.bind_run_dir(tmp_path / "shared")
    assert again.evaluate(specs[3], ChildContext(child_id=4)).metrics["shared_steps"] == 12
    again.close()
    ranking = json.loads((tmp_path / "shared" / "ranking.json").read_text())
    assert len(ranking) == 2
    assert ranking[0]["val_perplexity"] <= ranking[1]["val_perplexity"]
    # A fraction trains by trial id: none after child 0, one after child 1.
    half = SharedRnnEvaluator(cfg, SharingConfig(mode="enas", steps_per_child=0.5,
                                                 score_windows=1, top_k=1))
    half.bind_run_dir(tmp_path / "half")
    first, second = (half.evaluate(s, ChildContext(child_id=i)) for i, s in enumerate(specs[:2]))
    assert (first.metrics["shared_steps"], second.metrics["shared_steps"]) == (0, 1)
    assert "shared_train_loss" not in first.metrics
    assert math.isfinite(second.metrics["shared_train_loss"])
    # Child 2 trains nothing: the weights file is not rewritten, the scores are.
    model_file = tmp_path / "half" / "shared_lm.npz"
    stamp = model_file.stat().st_mtime_ns
    half.evaluate(specs[2], ChildContext(child_id=2))
    assert model_file.stat().st_mtime_ns == stamp
    assert len(read_scores(tmp_path / "half")) == 3
    with pytest.raises(ConfigError, match="sharing"):
        SharingConfig(mode="darts")
    with pytest.raises(ConfigError, match="shared_top_k"):
        SharingConfig(mode="enas", top_k=0)
