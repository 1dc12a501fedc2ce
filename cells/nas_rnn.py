"""``NASRNN``: a sequence layer running :class:`cells.NASCell`, with the input projection hoisted.

``NASRNN`` is to :class:`cells.NASCell` what ``keras.layers.LSTM`` is to
``keras.layers.LSTMCell``. Half of a NASCell step's matmul work,
``x_t @ kernel``, does not depend on the recurrence: the layer computes it
for all time steps as one ``(batch * time, input_dim) @ (input_dim, 8 units)``
matmul before the loop, and the loop only does ``m_{t-1} @ recurrent_kernel``
and the element-wise tree. The loop is a ``tf.while_loop`` (or a Python loop
with ``unroll=True``): this layer needs the TensorFlow backend, as the rest
of the project's training code does.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from cells.nas_cell import NASCell
from nas_tf.validation import check_rate as _check_rate


def _while_scan(step, carry, xs, ms):
    """``tf.while_loop`` over time-major ``xs`` (and mask ``ms``); returns carry and outputs."""
    n = xs.shape[0] if xs.shape[0] is not None else tf.shape(xs)[0]
    xs_ta = tf.TensorArray(xs.dtype, size=n, element_shape=xs.shape[1:]).unstack(xs)
    ms_ta = None if ms is None else tf.TensorArray(
        ms.dtype, size=n, element_shape=ms.shape[1:]).unstack(ms)
    out_ta = tf.TensorArray(carry[2].dtype, size=n, element_shape=carry[2].shape)

    def body(t, c, m, prev, ta):
        inputs = xs_ta.read(t) if ms_ta is None else (xs_ta.read(t), ms_ta.read(t))
        (c, m, out), y = step((c, m, prev), inputs)
        return t + 1, c, m, out, ta.write(t, y)

    _, c, m, last, out_ta = tf.while_loop(
        lambda t, *_: t < n, body, (tf.constant(0), *carry, out_ta), parallel_iterations=32,
        maximum_iterations=n)
    return c, m, last, out_ta.stack()


@keras.saving.register_keras_serializable(package="nas_tf")
class NASRNN(keras.layers.RNN):
    """The NAS cell (Zoph & Le 2017, Fig. 8) over a sequence, like ``keras.layers.LSTM``.

    Same function and the same weights, in the same order (``kernel``,
    ``recurrent_kernel``, then ``bias`` with ``use_bias``, then
    ``projection_kernel`` with ``num_proj``) as
    ``keras.layers.RNN(NASCell(...))``, so ``NASRNN.set_weights`` accepts the
    weights of ``RNN(NASCell)`` and computes the same outputs. The states
    are ``[c, m]``.

    Args:
        units, num_proj, use_bias, kernel_initializer, recurrent_initializer,
            projection_initializer, bias_initializer: As :class:`NASCell`.
        dropout: Fraction of the input units dropped (one mask per call,
            the same at every time step, as Keras' recurrent layers do).
        recurrent_dropout: Fraction of ``m_{t-1}`` dropped before the
            recurrent matmul (one mask per call).
        seed: Seed of the dropout masks.
        return_sequences, return_state, go_backwards, stateful, unroll,
            zero_output_for_mask: As ``keras.layers.RNN``.
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        sequences: ``(batch, time, input_dim)``.
        initial_state: Optional ``[c, m]``.
        mask: Optional boolean ``(batch, time)``: masked steps keep the state.
        training: Whether dropout is on.

    Raises:
        ConfigError: bad ``units`` / ``num_proj`` / dropout rates.

    Example:

    >>> import numpy as np
    >>> from cells import NASRNN
    >>> out, c, m = NASRNN(4, return_sequences=True, return_state=True)(
    ...     np.zeros((2, 5, 3), "float32"))
    >>> tuple(out.shape), tuple(c.shape)
    ((2, 5, 4), (2, 4))
    """

    def __init__(
        self,
        units: int,
        num_proj: int | None = None,
        use_bias: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "glorot_uniform",
        projection_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        cell = NASCell(
            units,
            num_proj=num_proj,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            projection_initializer=projection_initializer,
            bias_initializer=bias_initializer,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="nas_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )
        self.dropout = _check_rate("dropout", dropout)
        self.recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = (keras.random.SeedGenerator(seed)
                               if self.dropout or self.recurrent_dropout else None)

    @classmethod
    def from_cell(cls, cell: NASCell, **kwargs) -> NASRNN:
        """A ``NASRNN`` with ``cell``'s settings (its weights are not copied)."""
        return cls(
            cell.units,
            num_proj=cell.num_proj,
            use_bias=cell.use_bias,
            kernel_initializer=cell.kernel_initializer,
            recurrent_initializer=cell.recurrent_initializer,
            projection_initializer=cell.projection_initializer,
            bias_initializer=cell.bias_initializer,
            **kwargs,
        )

    def _mask(self, shape, rate):
        return keras.random.dropout(ops.ones(shape, self.compute_dtype), rate,
                                    seed=self.seed_generator)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        batch = ops.shape(sequences)[0]
        if training and self.dropout:
            keep = self._mask((batch, sequences.shape[-1]), self.dropout)
            sequences = sequences * ops.expand_dims(keep, 1)
        rec_keep = None
        if training and self.recurrent_dropout:
            rec_keep = self._mask((batch, cell.output_size), self.recurrent_dropout)
        # The hoisted input projection: one matmul for all time steps.
        xk = ops.matmul(sequences, cell.kernel)
        xs = ops.transpose(xk, (1, 0, 2))  # time major
        if mask is not None:
            ms = ops.transpose(ops.expand_dims(ops.cast(mask, "bool"), -1), (1, 0, 2))
        if self.go_backwards:
            xs = ops.flip(xs, 0)
            if mask is not None:
                ms = ops.flip(ms, 0)
        # Read the weights once, outside the loop (XLA cannot differentiate
        # variable reads inside a while loop).
        weights = tuple(None if w is None else ops.convert_to_tensor(w) for w in
                        (cell.recurrent_kernel, cell.bias, cell.projection_kernel))
        c0, m0 = initial_state[0], initial_state[1]
        out0 = ops.zeros_like(m0)

        def step(carry, inputs):
            c, m, prev_out = carry
            x_t = inputs[0] if mask is not None else inputs
            m_in = m if rec_keep is None else m * rec_keep
            out, (c_new, m_new) = cell._step(x_t, [c, m_in], weights)
            if mask is not None:
                keep_t = inputs[1]
                c_new = ops.where(keep_t, c_new, c)
                m_new = ops.where(keep_t, m_new, m)
                out = ops.where(keep_t, out, ops.zeros_like(out) if self.zero_output_for_mask
                                else prev_out)
            return (c_new, m_new, out), out

        steps = xs.shape[0]
        if self.unroll and steps is not None:
            carry, outs = (c0, m0, out0), []
            for t in range(steps):
                carry, out = step(carry, (xs[t], ms[t]) if mask is not None else xs[t])
                outs.append(out)
            c, m, last = carry
            outs = ops.stack(outs, 0)
        else:
            c, m, last, outs = _while_scan(step, (c0, m0, out0), xs,
                                           ms if mask is not None else None)
        outputs = ops.transpose(outs, (1, 0, 2)) if self.return_sequences else last
        return last, outputs, [c, m]

    @property
    def units(self):
        return self.cell.units

    def get_config(self):
        cell = self.cell.get_config()
        config = {k: cell[k] for k in ("units", "num_proj", "use_bias", "kernel_initializer",
                                        "recurrent_initializer", "projection_initializer",
                                        "bias_initializer")}
        config.update(dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
                      seed=self.seed)
        base = super().get_config()
        del base["cell"]
        return {**base, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
