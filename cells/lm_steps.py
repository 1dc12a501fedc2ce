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


def _scaled(grad, factor):
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values * factor, grad.indices, grad.dense_shape)
    return grad * factor


def make_mirrored_step(model, optimizer, strategy, *, bptt: int, clip: float, scale: float,
                       global_batch: int):
    """A ``tf.function`` ``step(rows, start, states)`` training one window on every replica.

    For a ``tf.distribute`` strategy with several replicas: ``rows`` and
    ``states`` are per-replica values (replica ``r`` owns its own slice of
    the batch's rows and carries its own state, so truncated BPTT is the
    same as on one device). Each replica's objective is its share of the
    global one (its summed cross entropy / (global batch x ``bptt``), times
    ``scale``); the gradients are summed over replicas, clipped by the
    global norm of that sum, and applied once: the same update as
    :func:`make_train_chunk` on the whole batch, up to float rounding.

    Returns:
        A function returning ``(loss, states)``: the window's mean per-token
        loss over the global batch and the per-replica states.
    """
    variables = model.trainable_variables
    tokens = float(global_batch * bptt)
    add = tf.distribute.ReduceOp.SUM

    def replica_step(rows, start, states):
        ctx = tf.distribute.get_replica_context()
        x, y = window_tensors(rows, start, bptt)
        with tf.GradientTape() as tape:
            logits, new_states = model(x, states, training=True)
            ce = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            objective = ce * (scale / tokens)
        grads = tape.gradient(objective, variables)
        norm = tf.linalg.global_norm(ctx.all_reduce(add, grads))
        factor = clip / tf.maximum(norm, clip)  # as tf.clip_by_global_norm
        # The optimizer sums the replicas' gradients: sum_r (g_r * f) = clip(sum_r g_r).
        optimizer.apply_gradients(zip([_scaled(g, factor) for g in grads], variables))
        return ctx.all_reduce(add, ce) / tokens, new_states

    @tf.function
    def step(rows, start, states):
        loss, states = strategy.run(replica_step, args=(rows, start, states))
        return strategy.experimental_local_results(loss)[0], states

    return step


def make_runner(model, optimizer, rows, *, bptt: int, clip: float, scale: float,
                strategy=None, steps_per_call: int = 10):
    """The training loop's view of the compiled steps, on one device or several.

    Args:
        model, optimizer: Built (under ``strategy.scope()`` with a strategy).
        rows: The batchified training stream (NumPy ``(batch, columns)``).
        bptt, clip, scale: As :func:`make_train_chunk`.
        strategy: None (one device) or a strategy with several replicas; the
            batch must split evenly over them (replica ``r`` owns the
            ``r``-th contiguous block of rows and its state).
        steps_per_call: Windows per call on one device (one with a strategy).

    Returns:
        ``(run, zero_states, per_call)``: ``run(pos, k, states)`` trains
        windows ``pos .. pos + k - 1`` (``k <= per_call``) and returns
        ``(loss_sum, done, last_loss, states)`` as :func:`make_train_chunk`;
        ``zero_states()`` gives the all-zero initial states.
    """
    batch = rows.shape[0]
    if strategy is None:
        chunk = make_train_chunk(model, optimizer, bptt=bptt, clip=clip, scale=scale)
        rows_t = tf.constant(rows)

        def run(pos, k, states):
            return chunk(rows_t, tf.constant(pos), tf.constant(k), states)

        return run, lambda: model.zero_states(batch), steps_per_call

    local = batch // strategy.num_replicas_in_sync

    def per_replica(fn):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: fn(ctx.replica_id_in_sync_group))

    rows_pr = per_replica(lambda r: tf.constant(rows[r * local:(r + 1) * local]))
    step = make_mirrored_step(model, optimizer, strategy, bptt=bptt, clip=clip, scale=scale,
                              global_batch=batch)

    def run_one(pos, k, states):
        loss, states = step(rows_pr, tf.constant(pos), states)
        return loss, 1, loss, states

    return run_one, lambda: per_replica(lambda r: model.zero_states(local)), 1
