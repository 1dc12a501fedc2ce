"""``NASCell``: the recurrent cell Zoph & Le found on Penn Treebank, as a Keras 3 cell."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from cells.tree_cell import add_fused_weights, check_units, leaf_inputs
from cells.tree_space import nas_cell_spec

#: Number of leaves (and column blocks of the kernels) of the NAS cell.
NAS_BASE = 8
# How each leaf combines its two maps (W_i x_t and U_i m_{t-1}), from the spec.
_LEAF_COMBINATIONS = nas_cell_spec().combinations[:NAS_BASE]


@keras.saving.register_keras_serializable(package="nas_tf")
class NASCell(keras.layers.Layer):
    """The Neural Architecture Search cell (Zoph & Le 2017, arXiv:1611.01578, Fig. 8).

    The recurrent cell found by the paper's search on Penn Treebank (a base-8
    tree of the space of §3.4), with the same equations, branch order, weight
    layout and state order ``[c, m]`` as ``tf.contrib.rnn.NASCell`` and
    TensorFlow Addons' ``tfa.rnn.NASCell`` (neither works with Keras 3), so
    that their weights map onto this layer one to one. With
    ``X = x_t @ kernel`` and ``M = m_{t-1} @ recurrent_kernel (+ bias)`` split
    into 8 column blocks ``X_i``, ``M_i`` of width ``units``::

        l1_0 = sigmoid(X_0 + M_0)   l1_1 = relu(X_1 + M_1)
        l1_2 = sigmoid(X_2 + M_2)   l1_3 = relu(X_3 * M_3)
        l1_4 = tanh(X_4 + M_4)      l1_5 = sigmoid(X_5 + M_5)
        l1_6 = tanh(X_6 + M_6)      l1_7 = sigmoid(X_7 + M_7)
        l2_0 = tanh(tanh(l1_0 * l1_1) + c_{t-1})      # cell inject
        l2_1 = tanh(l1_2 + l1_3)
        l2_2 = tanh(l1_4 * l1_5)
        l2_3 = sigmoid(l1_6 + l1_7)
        c_t = l2_0 * l2_1
        m_t = tanh(c_t * tanh(l2_2 + l2_3))   (then @ projection_kernel with num_proj)

    The states are ``[c, m]`` in that order, as in the references (note:
    ``cells.TreeCell`` uses ``[h, c]``). ``c`` has size ``units``; ``m`` and
    the output have size ``num_proj`` when given, else ``units``.

    Args:
        units: Positive integer, number of units of the cell (size of ``c``).
        num_proj: Optional positive integer; when given, ``m_t`` is projected
            to this size with ``projection_kernel`` (``units x num_proj``).
        use_bias: Whether to add ``bias`` (``8*units``) to the recurrent
            part. Default False, as in the references.
        kernel_initializer: Initializer of ``kernel`` (``input_dim x 8*units``).
            Default "glorot_uniform".
        recurrent_initializer: Initializer of ``recurrent_kernel``
            (``num_proj-or-units x 8*units``). Default "glorot_uniform".
        projection_initializer: Initializer of ``projection_kernel``.
            Default "glorot_uniform".
        bias_initializer: Initializer of ``bias``. Default "zeros".
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: A 2D tensor ``(batch, input_dim)``, the input at one time step.
        states: A list ``[c, m]``: ``c`` is ``(batch, units)``, ``m`` is
            ``(batch, num_proj or units)``.
        training: Unused (accepted for API compatibility).

    Returns:
        ``(m_t, [c_t, m_t])``.

    Raises:
        ConfigError: (a ``ValueError``) ``units`` or ``num_proj`` is not a
            positive integer, or the input size is unknown when building.

    Example:

    >>> import numpy as np, keras
    >>> from cells import NASCell
    >>> rnn = keras.layers.RNN(NASCell(4), return_sequences=True, return_state=True)
    >>> outputs, c, m = rnn(np.random.random((30, 23, 9)).astype("float32"))
    >>> tuple(outputs.shape), tuple(c.shape), tuple(m.shape)
    ((30, 23, 4), (30, 4), (30, 4))
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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.num_proj = None if num_proj is None else check_units(num_proj, "num_proj")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.projection_initializer = keras.initializers.get(projection_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.output_size = self.num_proj or self.units
        self.state_size = [self.units, self.output_size]

    def build(self, input_shape):
        add_fused_weights(self, input_shape, NAS_BASE * self.units, self.output_size,
                          self.use_bias)
        if self.num_proj is not None:
            self.projection_kernel = self.add_weight(
                shape=(self.units, self.num_proj),
                initializer=self.projection_initializer,
                name="projection_kernel",
            )
        else:
            self.projection_kernel = None

    def call(self, inputs, states, training=False):
        return self._step(ops.matmul(inputs, self.kernel), states)

    def _step(self, x, states, weights=None):
        """One step given ``x = inputs @ kernel`` (``(batch, 8*units)``).

        ``weights``: optional ``(recurrent_kernel, bias, projection_kernel)``
        tensors read once outside a loop (None: read the variables here).
        """
        rk, bias, proj = weights or (self.recurrent_kernel, self.bias, self.projection_kernel)
        c_prev, m_prev = states[0], states[1]
        m = ops.matmul(m_prev, rk)
        if bias is not None:
            m = ops.add(m, bias)
        # Seven of the eight leaves add their two maps, leaf 3 multiplies them.
        z = leaf_inputs(_LEAF_COMBINATIONS, NAS_BASE, self.units, x, m)
        l1_0 = ops.sigmoid(z[0])
        l1_1 = ops.relu(z[1])
        l1_2 = ops.sigmoid(z[2])
        l1_3 = ops.relu(z[3])
        l1_4 = ops.tanh(z[4])
        l1_5 = ops.sigmoid(z[5])
        l1_6 = ops.tanh(z[6])
        l1_7 = ops.sigmoid(z[7])

        l2_0 = ops.tanh(ops.multiply(l1_0, l1_1))
        l2_1 = ops.tanh(ops.add(l1_2, l1_3))
        l2_2 = ops.tanh(ops.multiply(l1_4, l1_5))
        l2_3 = ops.sigmoid(ops.add(l1_6, l1_7))

        l2_0 = ops.tanh(ops.add(l2_0, c_prev))  # inject the memory

        c_new = ops.multiply(l2_0, l2_1)
        l3_1 = ops.tanh(ops.add(l2_2, l2_3))
        m_new = ops.tanh(ops.multiply(c_new, l3_1))
        if proj is not None:
            m_new = ops.matmul(m_new, proj)
        return m_new, [c_new, m_new]

    def get_config(self):
        config = {
            "units": self.units,
            "num_proj": self.num_proj,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "projection_initializer": keras.initializers.serialize(self.projection_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
        return {**super().get_config(), **config}
