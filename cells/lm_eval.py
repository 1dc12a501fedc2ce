"""Token-stream batching and evaluation of language models (perplexity, bits per character).

Split out of :mod:`cells.lm` (which re-exports every name here). Evaluation
carries the recurrent state from window to window, with no dropout; the tail
of a stream that does not fill a window is dropped, as in the reference PTB
reader. Perplexity is ``exp`` of the mean per-token cross entropy in nats;
bits per character (Zoph & Le 2017, Table 3) is the same mean in bits,
``mean_nats / ln 2``, over a character-level stream.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from nas_tf.errors import ChildTrainingError, ConfigError

#: Cap on the mean loss (nats) turned into a perplexity: exp(88) ~ 1.65e38
#: still fits a float32 (TensorBoard scalars are float32; a larger value makes
#: ``tf.summary.scalar`` fail with "out of range"). 88 nats per token is a
#: diverged model anyway (uniform over 10,000 words is 9.2 nats).
_MAX_LOG_PPL = 88.0


def _check_finite(mean_loss: float, what: str) -> float:
    mean_loss = float(mean_loss)
    if not math.isfinite(mean_loss):
        raise ChildTrainingError(
            f"Child training diverged: the {what} is not finite. Received: {what}={mean_loss}"
        )
    return mean_loss


def perplexity(mean_loss: float, what: str = "loss") -> float:
    """``exp(mean_loss)``, robust to divergence.

    Args:
        mean_loss: Mean per-token cross entropy in nats.
        what: Name used in the error message.

    Returns:
        The perplexity; a mean loss above 88 nats gives ``exp(88)`` (about
        1.65e38, the float32 range) instead of overflowing.

    Raises:
        ChildTrainingError: ``mean_loss`` is NaN or infinite (the child diverged).
    """
    return math.exp(min(_check_finite(mean_loss, what), _MAX_LOG_PPL))


def bits_per_token(mean_loss: float, what: str = "loss") -> float:
    """Mean cross entropy in bits (``mean_loss / ln 2``): bits per character on character data.

    Raises:
        ChildTrainingError: ``mean_loss`` is NaN or infinite.
    """
    return _check_finite(mean_loss, what) / math.log(2.0)


def batchify(data: np.ndarray, batch_size: int) -> np.ndarray:
    """Cuts a token stream into ``batch_size`` contiguous rows (the tail is dropped)."""
    n = len(data) // batch_size
    return np.asarray(data[: n * batch_size], dtype=np.int32).reshape(batch_size, n)


def num_windows(rows: np.ndarray, bptt: int) -> int:
    """Number of full (input, target) windows of ``bptt`` steps in batchified rows."""
    return (rows.shape[1] - 1) // bptt


def window(rows: np.ndarray, i: int, bptt: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-token targets of the ``i``-th window."""
    s = i * bptt
    return rows[:, s : s + bptt], rows[:, s + 1 : s + 1 + bptt]


def count_params(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def evaluate_loss(model, data: np.ndarray, *, bptt: int, batch_size: int,
                  max_windows: int | None = None, _step=None) -> float:
    """Mean per-token cross entropy (nats) of ``model`` on a token stream.

    The state is carried across windows (no dropout). With ``batch_size=1``
    the result does not depend on ``bptt`` (one continuous pass), which is
    the test protocol of the TensorFlow PTB tutorial.

    Raises:
        ConfigError: the stream is too short for one window.
    """
    rows = batchify(data, batch_size)
    n = num_windows(rows, bptt)
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise ConfigError(
            f"Evaluation stream too short for one window of bptt={bptt} with batch size "
            f"{batch_size}. Received: {len(data)} tokens"
        )
    step = _step or make_eval_step(model)
    # One graph call for all the windows: no host round trip per window.
    total, _ = step(tf.constant(rows), tf.constant(0), tf.constant(n),
                    model.zero_states(batch_size), bptt=bptt)
    return float(total) / (n * batch_size * bptt)


def evaluate_perplexity(model, data: np.ndarray, *, bptt: int, batch_size: int,
                        max_windows: int | None = None, _step=None) -> float:
    """Perplexity of ``model`` on a token stream (state carried, no dropout).

    Raises:
        ConfigError: the stream is too short for one window.
    """
    loss = evaluate_loss(model, data, bptt=bptt, batch_size=batch_size,
                         max_windows=max_windows, _step=_step)
    return perplexity(loss, "evaluation loss")


def make_eval_step(model):
    """A ``tf.function`` ``step(rows, start, count, states, bptt=)`` over windows of a stream.

    Runs windows ``start .. start + count - 1`` of ``rows`` (int32 ``(batch,
    columns)``) in one ``tf.while_loop``, carrying the state, and returns the
    summed cross entropy (float64) and the final states. ``start`` and
    ``count`` are scalar tensors (no retracing per call); ``bptt`` is static.
    """

    @tf.function
    def eval_step(rows, start, count, states, bptt):
        def body(i, total, states):
            x, y = window_tensors(rows, start + i, bptt)
            logits, new_states = model(x, states, training=False)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            return i + 1, total + tf.reduce_sum(tf.cast(loss, tf.float64)), new_states

        _, total, states = tf.while_loop(lambda i, *_: i < count, body,
                                         (tf.constant(0), tf.constant(0.0, tf.float64), states))
        return total, states

    return eval_step


def window_tensors(rows, i, bptt: int):
    """:func:`window` in a graph: inputs and targets of window ``i`` (a scalar tensor)."""
    batch = rows.shape[0]
    s = i * bptt
    return (tf.slice(rows, tf.stack([0, s]), [batch, bptt]),
            tf.slice(rows, tf.stack([0, s + 1]), [batch, bptt]))
