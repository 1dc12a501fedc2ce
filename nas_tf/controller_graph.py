"""The controller's computation as symbolic loops (Zoph & Le 2017, §3.1, §3.3).

:class:`nas_tf.controller.Controller` holds the weights; the functions here
build its graphs. A search space of any number of decisions traces to a graph
of the same size: the LSTM runs in one ``tf.while_loop`` over the decisions,
driven by static per-step tables (:func:`step_tables`). Heads of different
vocabulary sizes are padded to the widest and masked out of the softmax;
anchors are padded to the number of anchors and masked out of the attention.

* :func:`sample` draws architectures autoregressively (one loop).
* :func:`teacher_forced` recomputes log-probabilities and entropies of given
  tokens for the REINFORCE update: the LSTM alone runs in a loop (or, with no
  anchor, as one fused ``BlockLSTM`` op per layer), the heads and the
  attention for all steps at once after it, so that its gradient is cheap to
  trace.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nas_tf.space import Anchor, Categorical, token_width


def lstm_step(ctrl, x, states):
    """One step of the controller's stacked LSTM; returns (output, states)."""
    new_states = []
    for (kernel, bias), (c, h) in zip(ctrl._lstm, states):
        z = tf.matmul(tf.concat([x, h], axis=1), kernel) + bias
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        new_states.append((c, h))
        x = h
    return x, new_states


def shape_logits(ctrl, logits):
    """Applies the config's tanh constant (``c * tanh(logits / c)``, this
    project's variant of ENAS's ``c * tanh(logits)``) and temperature to logits."""
    cfg = ctrl.config
    if cfg.tanh_constant:
        logits = cfg.tanh_constant * tf.tanh(logits / cfg.tanh_constant)
    if cfg.temperature != 1.0:
        logits = logits / cfg.temperature
    return logits


def step_tables(decisions, v: int) -> dict:
    """Static per-step tables of ``decisions`` for the symbolic loops.

    Heads are padded to the widest vocabulary ``v`` (masked out of the
    softmax), anchors to ``a`` earlier anchors (masked out of the
    attention); each step has ``a`` token slots.
    """
    anchor_steps = [t for t, d in enumerate(decisions) if isinstance(d, Anchor)]
    a, steps, width = max(1, len(anchor_steps)), len(decisions), token_width(decisions)
    tab = dict(v=v, a=a, steps=steps, anchor_steps=np.array(anchor_steps, np.int32),
               cats=[d for d in decisions if isinstance(d, Categorical)],
               is_anchor=np.zeros(steps, bool), head=np.zeros(steps, np.int32),
               cat_mask=np.zeros((steps, v), bool), slot=np.zeros(steps, np.int32),
               anchor_mask=np.zeros((steps, a), np.float32),
               # Flat token j -> step slot; step slot -> flat token (width: none).
               flat_to_step=np.zeros(width, np.int32),
               step_to_flat=np.full((steps, a), width, np.int32))
    pos = heads = 0
    for t, d in enumerate(decisions):
        if isinstance(d, Categorical):
            tab["head"][t], tab["cat_mask"][t, : d.num_choices] = heads, True
            heads += 1
        else:
            tab["is_anchor"][t], tab["slot"][t] = True, d.num_inputs
            tab["anchor_mask"][t, : d.num_inputs] = 1.0
        for j in range(d.width):
            tab["flat_to_step"][pos + j] = t * a + j
            tab["step_to_flat"][t, j] = pos + j
        pos += d.width
    return tab


def sample(ctrl, n, decisions, draw_width):
    """Samples ``n`` architectures in one symbolic loop over ``decisions``.

    The traced graph has the same size whatever the number of decisions.
    Uniform draws are one [steps, n, draw_width] tensor, so a longer
    prefix extends a shorter one's samples. Returns (tokens [n, width],
    log_prob [n], entropy [n]).
    """
    tab = step_tables(decisions, ctrl.head_width)
    steps, v, a, hsize = tab["steps"], tab["v"], tab["a"], ctrl.config.lstm_size
    if steps == 0:
        return tf.zeros([n, 0], tf.int32), tf.zeros([n]), tf.zeros([n])
    has_cat, has_anchor = bool(tab["cats"]), bool(len(tab["anchor_steps"]))
    w_all, b_all, e_all = ctrl.stacked_heads(len(tab["cats"]), v)
    is_anchor, head = tf.constant(tab["is_anchor"]), tf.constant(tab["head"])
    cat_mask, anchor_mask = tf.constant(tab["cat_mask"]), tf.constant(tab["anchor_mask"])
    slot = tf.constant(tab["slot"])
    u = ctrl.rng.uniform([steps, n, draw_width], minval=1e-12, maxval=1.0)
    first = tf.one_hot(0, a, dtype=tf.int32)

    def body(t, x, states, logp, ent, anchors, keys, rows):
        out, states = lstm_step(ctrl, x, states)
        anc, x, row, lp, en = is_anchor[t], x * 0.0, first[None] * 0, 0.0, 0.0
        if has_cat:  # the head's softmax, padding masked out; Gumbel-max draw
            logits = shape_logits(ctrl, tf.matmul(out, w_all[head[t]]) + b_all[head[t]])
            logp_all = tf.nn.log_softmax(tf.where(cat_mask[t][None, :], logits, -1e9))
            tok = tf.argmax(logits - tf.math.log(-tf.math.log(u[t, :, :v])) + (
                tf.cast(cat_mask[t], tf.float32) - 1.0) * 1e9, axis=1, output_type=tf.int32)
            onehot = tf.one_hot(tok, v)
            lp = tf.reduce_sum(onehot * logp_all, axis=1)
            en = -tf.reduce_sum(tf.exp(logp_all) * logp_all, axis=1)
            x, row = tf.matmul(onehot, e_all[head[t]]), tok[:, None] * first
        if has_anchor:  # attention over the earlier anchors (§3.3)
            amask = anchor_mask[t]
            alog = shape_logits(ctrl, tf.squeeze(tf.tensordot(
                tf.tanh(keys + tf.matmul(out, ctrl.w_curr)[:, None, :]), ctrl.v_attn, 1), -1))
            bits = tf.cast(u[t, :, :a] < tf.sigmoid(alog), tf.float32) * amask
            nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=bits, logits=alog)
            ent_a = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.sigmoid(alog),
                                                            logits=alog)
            count = tf.reduce_sum(bits, axis=1, keepdims=True)
            anc_x = ctrl.anchor_emb + tf.reduce_sum(bits[:, :, None] * anchors, 1) / (1 + count)
            x = tf.where(anc, anc_x, x)
            lp = tf.where(anc, -tf.reduce_sum(nll * amask, axis=1), lp)
            en = tf.where(anc, tf.reduce_sum(ent_a * amask, axis=1), en)
            row = tf.where(anc, tf.cast(bits, tf.int32), row)
            # An anchor's output joins the ones later anchors attend to.
            put = tf.cast(anc, tf.float32) * tf.one_hot(slot[t], a)
            anchors += put[None, :, None] * out[:, None, :]
            keys += put[None, :, None] * tf.matmul(out, ctrl.w_prev)[:, None, :]
        return t + 1, x, states, logp + lp, ent + en, anchors, keys, rows.write(t, row)

    zeros = tf.zeros([n, hsize])
    init = (tf.constant(0), tf.tile(ctrl.g_emb, [n, 1]),
            [(zeros, zeros) for _ in ctrl._lstm], tf.zeros([n]), tf.zeros([n]),
            tf.zeros([n, a, hsize]), tf.zeros([n, a, hsize]),
            tf.TensorArray(tf.int32, size=steps, element_shape=[None, a]))
    _, _, _, logp, ent, _, _, rows = tf.while_loop(
        lambda t, *_: t < steps, body, init, maximum_iterations=steps)
    rows = tf.reshape(tf.transpose(rows.stack(), [1, 0, 2]), [n, steps * a])
    return tf.gather(rows, tab["flat_to_step"], axis=1), logp, ent


def teacher_forced(ctrl, tokens, decisions):
    """Log-probabilities and entropies of ``tokens`` [n, width] (teacher forcing).

    Only the LSTM runs in a symbolic loop (an anchor's input needs the
    outputs of the earlier anchors); the heads and the attention are
    computed for all steps at once after it, so that the gradient stays
    small to trace. Returns (tokens, log_prob [n], entropy [n]).
    """
    tab = step_tables(decisions, ctrl.head_width)
    steps, v = tab["steps"], tab["v"]
    n = tf.shape(tokens)[0]
    if steps == 0:
        return tokens, tf.zeros([n]), tf.zeros([n])
    anchor_steps, k = tab["anchor_steps"], len(tab["anchor_steps"])
    w_all, b_all, e_all = ctrl.stacked_heads(len(tab["cats"]), v)
    padded = tf.concat([tokens, tf.zeros([n, 1], tf.int32)], axis=1)
    forced = tf.transpose(tf.gather(padded, tab["step_to_flat"], axis=1), [1, 0, 2])
    is_cat = (~tab["is_anchor"]).astype(np.int32)
    onehot = tf.one_hot(forced[:, :, 0] * is_cat[:, None], v)  # [steps, n, v]
    # The input of step t + 1 when step t is categorical: its token's embedding.
    x_cat = tf.matmul(onehot, tf.gather(e_all, tab["head"]))  # [steps, n, h]
    outs = _teacher_lstm(ctrl, n, tab, x_cat, forced)  # [steps, n, h]
    logp = ent = tf.zeros([n])
    if tab["cats"]:
        logits = tf.matmul(outs, tf.gather(w_all, tab["head"]))  # [steps, n, v]
        logits = shape_logits(ctrl, logits + tf.gather(b_all, tab["head"])[:, None, :])
        logp_all = tf.nn.log_softmax(tf.where(tab["cat_mask"][:, None, :], logits, -1e9))
        keep = is_cat.astype(np.float32)[:, None, None]
        logp += tf.reduce_sum(keep * onehot * logp_all, axis=[0, 2])
        ent -= tf.reduce_sum(keep * tf.exp(logp_all) * logp_all, axis=[0, 2])
    if k:  # anchor i attends to anchors j < i (§3.3)
        out_a = tf.gather(outs, anchor_steps)  # [k, n, h]
        keys = tf.tensordot(out_a, ctrl.w_prev, 1)[None]
        query = tf.tensordot(out_a, ctrl.w_curr, 1)[:, None]
        alog = tf.squeeze(tf.tensordot(tf.tanh(keys + query), ctrl.v_attn, 1), -1)
        alog = shape_logits(ctrl, tf.transpose(alog, [0, 2, 1]))  # [k, n, k]
        mask = tab["anchor_mask"][anchor_steps][:, None, :]
        bits = tf.cast(tf.gather(forced, anchor_steps), tf.float32) * mask
        nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=bits, logits=alog)
        logp -= tf.reduce_sum(nll * mask, axis=[0, 2])
        ent += tf.reduce_sum(mask * tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.sigmoid(alog), logits=alog), axis=[0, 2])
    return tokens, logp, ent


def _teacher_lstm(ctrl, n, tab, x_cat, forced):
    """The LSTM's outputs [steps, n, h] for teacher-forced inputs."""
    steps, a, hsize = tab["steps"], tab["a"], ctrl.config.lstm_size
    if not len(tab["anchor_steps"]):  # all inputs known: fused LSTM ops, no loop
        return fused_lstm(ctrl, tf.concat([tf.tile(ctrl.g_emb, [n, 1])[None], x_cat[:-1]], 0))
    is_anchor = tf.constant(tab["is_anchor"])
    anchor_mask, slot = tf.constant(tab["anchor_mask"]), tf.constant(tab["slot"])

    def body(t, x, states, anchors, outs):
        out, states = lstm_step(ctrl, x, states)
        # An anchor's input: the mean of the chosen earlier anchors' outputs
        # (plus the anchor embedding), as in sample().
        bits = tf.cast(forced[t], tf.float32) * anchor_mask[t]
        count = tf.reduce_sum(bits, axis=1, keepdims=True)
        anc_x = ctrl.anchor_emb + tf.reduce_sum(bits[:, :, None] * anchors, 1) / (1 + count)
        x = tf.where(is_anchor[t], anc_x, x_cat[t])
        put = tf.cast(is_anchor[t], tf.float32) * tf.one_hot(slot[t], a)
        anchors += put[None, :, None] * out[:, None, :]
        return t + 1, x, states, anchors, outs.write(t, out)

    zeros = tf.zeros([n, hsize])
    init = (tf.constant(0), tf.tile(ctrl.g_emb, [n, 1]),
            [(zeros, zeros) for _ in ctrl._lstm], tf.zeros([n, a, hsize]),
            tf.TensorArray(tf.float32, size=steps, element_shape=[None, hsize]))
    outs = tf.while_loop(lambda t, *_: t < steps, body, init, maximum_iterations=steps)[-1]
    return outs.stack()


def fused_lstm(ctrl, xs):
    """The LSTM over known inputs xs [steps, n, h] with one BlockLSTM op per
    layer (one BlockLSTMGrad in the gradient); same math as :func:`lstm_step`."""
    h = ctrl.config.lstm_size
    # BlockLSTM's gates are (i, g, f, o); lstm_step's (i, f, g, o).
    order = np.concatenate([np.arange(h), np.arange(2 * h, 3 * h), np.arange(h, 2 * h),
                            np.arange(3 * h, 4 * h)])
    zeros, none = tf.zeros([tf.shape(xs)[1], h]), tf.zeros([h])
    for kernel, bias in ctrl._lstm:
        xs = tf.raw_ops.BlockLSTM(
            seq_len_max=tf.cast(tf.shape(xs)[0], tf.int64), x=xs, cs_prev=zeros,
            h_prev=zeros, w=tf.gather(kernel, order, axis=1), wci=none, wcf=none,
            wco=none, b=tf.gather(bias, order), forget_bias=0.0, cell_clip=-1.0,
            use_peephole=False)[6]
    return xs
