"""Compiled training steps of language-model children (used by :func:`cells.lm.train_lm`).

One host call trains up to ``count`` consecutive truncated-BPTT windows in a
``tf.while_loop``: the windows are sliced from the batchified stream inside
the graph, the recurrent state is carried in the loop, the per-window losses
are summed on the device, and the loop stops at the first non-finite loss.
The host waits for the device once per call (to check that flag), not once
per window, and every argument is a tensor, so the function is traced once.
"""

from __future__ import annotations

import tensorflow as tf

from cells.lm_eval import window_tensors


def make_train_chunk(model, optimizer, *, bptt: int, clip: float, scale: float):
    """A ``tf.function`` ``chunk(rows, start, count, states)`` training windows of a stream.

    Each window is one SGD (or Adam) step on ``scale`` x the mean per-token
    cross entropy, its gradients clipped by their global norm ``clip``.

    Args:
        model: A :class:`cells.lm.LanguageModel` (built).
        optimizer: A built Keras optimizer.
        bptt: Window length (static).
        clip: Global gradient-norm clip.
        scale: Multiplier of the mean loss (``bptt`` for the loss summed over time).

    Returns:
        A function of ``rows`` (int32 ``(batch, columns)``), ``start`` and
        ``count`` (int32 scalars: the windows ``start .. start + count - 1``)
        and ``states``, returning ``(loss_sum, done, last_loss, states)``:
        the float64 sum of the windows' mean losses, the number of windows
        run (``count``, or up to and including the first non-finite loss),
        the last window's loss, and the final states.
    """
    variables = model.trainable_variables

    def one_step(x, y, states):
        with tf.GradientTape() as tape:
            logits, new_states = model(x, states, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            objective = loss * scale
        grads = tape.gradient(objective, variables)
        grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply_gradients(zip(grads, variables))
        return loss, new_states

    @tf.function
    def chunk(rows, start, count, states):
        def cond(i, total, last, states):
            return tf.logical_and(i < count, tf.math.is_finite(last))

        def body(i, total, last, states):
            x, y = window_tensors(rows, start + i, bptt)
            loss, new_states = one_step(x, y, states)
            return i + 1, total + tf.cast(loss, tf.float64), loss, new_states

        done, total, last, states = tf.while_loop(
            cond, body, (tf.constant(0), tf.constant(0.0, tf.float64), tf.constant(0.0), states),
            parallel_iterations=1)
        return total, done, last, states

    return chunk
