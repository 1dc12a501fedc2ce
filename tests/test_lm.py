"""Tests of cells.lm: batching, truncated BPTT with carried state, training, robust perplexity."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_events

from cells import lm
from cells.tree_cell import TreeCell
from cells.tree_space import nas_cell_spec
from nas_tf.errors import ConfigError

VOCAB = 12


def periodic_stream(n: int, period: int = 4, seed: int = 0) -> np.ndarray:
    """A learnable stream: a fixed random cycle of symbols, so the next token is predictable."""
    cycle = np.random.default_rng(seed).permutation(VOCAB)[:period]
    return np.asarray(np.tile(cycle, n // period + 1)[:n], dtype=np.int32)


def test_batchify_and_windows():
    data = np.arange(23, dtype=np.int32)
    rows = lm.batchify(data, 4)  # 5 columns, tail of 3 dropped
    assert rows.shape == (4, 5) and rows[1, 0] == 5
    assert lm.num_windows(rows, 2) == 2
    x, y = lm.window(rows, 1, 2)
    assert x.tolist()[0] == [2, 3] and y.tolist()[0] == [3, 4]


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("units", 0, "Received: units=0"),
        ("bptt", -1, "Received: bptt=-1"),
        ("dropout", 1.0, "Received: dropout=1.0"),
        ("optimizer", "rmsprop", "Received: optimizer='rmsprop'"),
        ("lr_decay", 0.0, "Received: lr_decay=0.0"),
    ],
)
def test_config_validation(field, value, match):
    with pytest.raises(ConfigError, match=match):
        lm.LMConfig(**{field: value})


def test_state_is_carried_between_windows():
    cfg = lm.LMConfig(units=8, bptt=4, batch_size=2)
    model = lm.LanguageModel(lambda: keras.layers.LSTMCell(8), VOCAB, cfg)
    x = tf.constant(periodic_stream(16).reshape(2, 8))
    full, _ = model(x, model.zero_states(2))
    first, states = model(x[:, :4], model.zero_states(2))
    second, _ = model(x[:, 4:], states)
    fresh, _ = model(x[:, 4:], model.zero_states(2))
    # Windows with the carried state reproduce one long pass; a reset state does not.
    np.testing.assert_allclose(second.numpy(), full.numpy()[:, 4:], atol=1e-5)
    assert not np.allclose(fresh.numpy(), full.numpy()[:, 4:], atol=1e-4)
    assert first.shape == (2, 4, VOCAB)


def test_tied_embeddings_share_weights():
    tied = lm.LanguageModel(lambda: keras.layers.LSTMCell(8), VOCAB,
                            lm.LMConfig(units=8, tie_embeddings=True))
    logits, _ = tied(tf.zeros((1, 1), tf.int32), tied.zero_states(1))
    assert logits.shape == (1, 1, VOCAB) and tied.softmax is None
    rnn = sum(lm.count_params(r) for r in tied.rnns)
    # Embedding (VOCAB x 8) doubles as the softmax; only a VOCAB bias is added.
    assert lm.count_params(tied) == VOCAB * 8 + rnn + VOCAB


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("tb")
    valid = periodic_stream(400)
    cfg = lm.LMConfig(units=8, bptt=10, batch_size=5, eval_batch_size=4, epochs=2,
                      steps_per_epoch=10, optimizer="adam", learning_rate=5e-2)
    res = lm.train_lm(lambda: TreeCell(nas_cell_spec(), 8), periodic_stream(1500), valid,
                      VOCAB, cfg, seed=1, log_dir=str(log_dir))
    return res, valid, log_dir


def test_training_lowers_perplexity(trained):
    res, _, _ = trained
    assert res.steps == 20 and len(res.history) == 2
    assert res.history[-1]["val_perplexity"] < res.history[0]["val_perplexity"]
    # An untrained model is near uniform (ppl ~12); training gets well below it.
    assert res.val_perplexity < 0.5 * VOCAB
    assert res.best_val_perplexity == min(h["val_perplexity"] for h in res.history)
    assert res.params == sum(int(np.prod(v.shape)) for v in res.model.trainable_variables)


def test_curves_logged_and_perplexity_reproducible(trained):
    res, valid, log_dir = trained
    scalars = run_events(log_dir)
    for tag, key in (("train/perplexity", "train_perplexity"),
                     ("valid/perplexity", "val_perplexity")):
        assert [s for s, _ in scalars[tag]] == [1, 2]
        np.testing.assert_allclose([v for _, v in scalars[tag]],
                                   [h[key] for h in res.history], rtol=1e-5)
    again = lm.evaluate_perplexity(res.model, valid, bptt=10, batch_size=4)
    assert again == pytest.approx(res.val_perplexity, rel=1e-4)


def test_too_short_stream_is_an_error():
    cfg = lm.LMConfig(units=4, bptt=35, batch_size=20)
    with pytest.raises(ConfigError, match="too short.*Received: 100 tokens"):
        lm.train_lm(lambda: keras.layers.LSTMCell(4), periodic_stream(100), periodic_stream(100),
                    VOCAB, cfg)


@pytest.mark.parametrize("loss", [float("nan"), float("inf")])
def test_non_finite_loss_fails_the_child(loss):
    with pytest.raises(lm.ChildTrainingError, match="not finite"):
        lm.perplexity(loss)


def test_huge_loss_gives_huge_finite_perplexity():
    assert lm.perplexity(2.0) == pytest.approx(math.exp(2.0))
    big = lm.perplexity(5000.0)  # exp(5000) overflows a double: capped, no OverflowError
    assert big == pytest.approx(math.exp(88.0)) and big < 3.4e38  # fits a float32 summary


def test_diverging_training_raises_child_training_error():
    # A learning rate of 1e30 without clipping makes the weights, then the loss, non-finite.
    cfg = lm.LMConfig(units=4, bptt=5, batch_size=2, eval_batch_size=2, steps_per_epoch=30,
                      optimizer="sgd", learning_rate=1e30, max_grad_norm=1e30)
    with pytest.raises(lm.ChildTrainingError, match="diverged"):
        lm.train_lm(lambda: keras.layers.SimpleRNNCell(4, activation=None),
                    periodic_stream(400), periodic_stream(100), VOCAB, cfg)


def test_nascell_children_use_nasrnn_and_bits_per_token():
    from cells import NASRNN, NASCell

    cfg = lm.LMConfig(units=8, bptt=5, batch_size=2, eval_batch_size=2)
    model = lm.LanguageModel(lambda: NASCell(8), VOCAB, cfg)
    assert all(isinstance(r, NASRNN) for r in model.rnns)
    model(tf.constant(periodic_stream(10).reshape(2, 5)), model.zero_states(2))
    loss = lm.evaluate_loss(model, periodic_stream(60), bptt=5, batch_size=2)
    assert lm.bits_per_token(loss) == pytest.approx(math.log2(lm.perplexity(loss)))


def test_sum_over_time_scales_the_step_and_resume_continues():
    valid = periodic_stream(200, seed=1)
    base = dict(units=8, bptt=5, batch_size=2, eval_batch_size=2, steps_per_epoch=4,
                learning_rate=0.05, optimizer="sgd", epochs=2, decay_after=1)
    rows, saved = [], {}

    def keep(row, model):
        rows.append(row)
        saved[row["epoch"]] = model.get_weights()

    mean = lm.train_lm(lambda: keras.layers.LSTMCell(8), periodic_stream(400), valid, VOCAB,
                       lm.LMConfig(**base), seed=0, on_epoch_end=keep)
    summed = lm.train_lm(lambda: keras.layers.LSTMCell(8), periodic_stream(400), valid, VOCAB,
                         lm.LMConfig(**base, sum_over_time=True), seed=0)
    # bptt x the step: the summed objective moves the weights further.
    assert summed.train_perplexity != pytest.approx(mean.train_perplexity)
    assert [r["learning_rate"] for r in rows] == pytest.approx([0.05, 0.025])
    resumed = lm.train_lm(lambda: keras.layers.LSTMCell(8), periodic_stream(400), valid, VOCAB,
                          lm.LMConfig(**base), seed=0, initial_epoch=1,
                          initial_weights=saved[1])
    assert [r["epoch"] for r in resumed.history] == [2]
    assert resumed.history[0]["learning_rate"] == pytest.approx(0.025)


def test_compiled_chunks_equal_a_plain_per_window_loop():
    """Several windows per compiled call (across the stream's end, where the state resets)
    give the weights and losses of an eager loop of one SGD step per window."""
    cfg = lm.LMConfig(units=6, bptt=4, batch_size=3, eval_batch_size=3, epochs=3,
                      steps_per_epoch=3, learning_rate=0.3, decay_after=1, max_grad_norm=0.5,
                      sum_over_time=True)
    train = periodic_stream(3 * 4 * 5 + 3, period=5)  # 5 windows: epochs 2-3 wrap around
    ref = lm.LanguageModel(lambda: keras.layers.LSTMCell(6), VOCAB, cfg)
    rows = lm.batchify(train, 3)
    ref(tf.constant(rows[:, :1]), ref.zero_states(3))
    w0 = ref.get_weights()
    res = lm.train_lm(lambda: keras.layers.LSTMCell(6), train, periodic_stream(40), VOCAB, cfg,
                      initial_weights=w0, steps_per_call=2)
    opt = keras.optimizers.SGD(cfg.learning_rate)
    variables = ref.trainable_variables
    pos, states, ppls = 0, None, []
    for epoch in range(3):
        opt.learning_rate = 0.3 * 0.5 ** epoch
        losses = []
        for _ in range(3):
            states = ref.zero_states(3) if pos == 0 else states
            x, y = lm.window(rows, pos, 4)
            with tf.GradientTape() as tape:
                logits, states = ref(tf.constant(x), states, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=tf.constant(y), logits=logits))
                objective = loss * 4
            grads, _ = tf.clip_by_global_norm(tape.gradient(objective, variables), 0.5)
            opt.apply_gradients(zip(grads, variables))
            losses.append(float(loss))
            pos = (pos + 1) % 5
        ppls.append(math.exp(sum(losses) / 3))
    np.testing.assert_allclose([h["train_perplexity"] for h in res.history], ppls, rtol=1e-5)
    for a, b in zip(res.model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(res.model.get_weights()[1], w0[1])  # training moved the weights
