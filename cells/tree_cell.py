"""``TreeCell``: any cell of the tree space as a Keras 3 recurrent cell.

The space is described in :mod:`cells.tree_space` (Zoph & Le 2017,
arXiv:1611.01578, §3.4).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import keras
from keras import ops

from cells.tree_space import CellSpec, node_children
from nas_tf.errors import ConfigError
from nas_tf.validation import check_int


def _identity(x):
    return x


#: Activation functions by the names the space uses.
ACTIVATION_FNS = {
    "identity": _identity,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "relu": ops.relu,
}
#: Combination functions by the names the space uses.
COMBINATION_FNS = {"add": ops.add, "elem_mult": ops.multiply}


def check_units(value: Any, name: str = "units") -> int:
    """Returns ``value`` as an int if it is a positive integer, else raises ConfigError
    (:func:`nas_tf.validation.check_int`, in a layer's argument order)."""
    return check_int(name, value)


def add_fused_weights(layer, input_shape, width: int, recurrent_rows: int,
                      use_bias: bool) -> None:
    """Adds a cell's fused weights to ``layer`` (called from its ``build``).

    ``kernel`` (input_dim x width), ``recurrent_kernel`` (recurrent_rows x
    width) and, with ``use_bias``, ``bias`` (width,), from the layer's
    ``kernel_initializer`` / ``recurrent_initializer`` / ``bias_initializer``;
    ``layer.bias`` is None without a bias.

    Raises:
        ConfigError: the input size (last dimension) is unknown.
    """
    input_dim = input_shape[-1]
    if input_dim is None:
        raise ConfigError(
            f"{type(layer).__name__} needs a known input size (last dimension). "
            f"Received: input_shape={input_shape}"
        )
    layer.kernel = layer.add_weight(
        shape=(input_dim, width), initializer=layer.kernel_initializer, name="kernel"
    )
    layer.recurrent_kernel = layer.add_weight(
        shape=(recurrent_rows, width),
        initializer=layer.recurrent_initializer,
        name="recurrent_kernel",
    )
    layer.bias = None
    if use_bias:
        layer.bias = layer.add_weight(
            shape=(width,), initializer=layer.bias_initializer, name="bias"
        )


def leaf_inputs(spec_combinations, base: int, units: int, x_part, h_part) -> list:
    """The pre-activation values of the ``base`` leaves.

    ``x_part`` and ``h_part`` are the fused ``(batch, base*units)`` products
    (``x @ kernel`` and ``h @ recurrent_kernel + bias``). The combination used
    by most leaves is applied once to the full width and split; the other
    leaves take their own column slices (fewer ops per time step than one
    op per leaf).
    """
    combs = list(spec_combinations[:base])
    major = Counter(combs).most_common(1)[0][0]
    parts = list(ops.split(COMBINATION_FNS[major](x_part, h_part), base, axis=-1))
    for i, comb in enumerate(combs):
        if comb != major:
            lo, hi = i * units, (i + 1) * units
            parts[i] = COMBINATION_FNS[comb](x_part[:, lo:hi], h_part[:, lo:hi])
    return parts


@keras.saving.register_keras_serializable(package="nas_tf")
class TreeCell(keras.layers.Layer):
    """A recurrent cell of the tree search space (Zoph & Le 2017, arXiv:1611.01578, §3.4).

    The cell is a full binary tree over ``spec.base`` leaves. Leaf ``i``
    computes ``act_i(comb_i(W_i x_t, U_i h_{t-1} + b_i))``, every inner node
    ``act(comb(left, right))`` of its two children, and the root gives
    ``h_t``. The memory ``c_{t-1}`` is merged into the output of node
    ``spec.inject_node`` (``inject_act(inject_comb(out, c_{t-1}))``) and
    ``c_t`` is the output of node ``spec.cell_node`` before its activation.
    All leaves' maps are computed with one matrix product on ``x_t``
    (``kernel``, ``input_dim x base*units``, leaf ``i`` in columns
    ``i*units:(i+1)*units``) and one on ``h_{t-1}`` (``recurrent_kernel``,
    ``units x base*units``), plus ``bias`` (``base*units``), which is added to
    the recurrent part (as in the reference NASCell, so that
    ``TreeCell(nas_cell_spec(), u)`` and ``NASCell(u, use_bias=True)`` match).

    Use it inside ``keras.layers.RNN``. The states are ``[h, c]``, both of
    size ``units``; the output is ``h_t``.

    Args:
        spec: A :class:`cells.CellSpec`, or its JSON form (dict or text).
        units: Positive integer, size of ``h`` and ``c``.
        use_bias: Whether the leaves add a bias. Default True.
        kernel_initializer: Initializer of ``kernel``. Default "glorot_uniform".
        recurrent_initializer: Initializer of ``recurrent_kernel``.
            Default "glorot_uniform".
        bias_initializer: Initializer of ``bias``. Default "zeros".
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: A 2D tensor ``(batch, input_dim)``, the input at one time step.
        states: A list ``[h, c]`` of 2D tensors ``(batch, units)``.
        training: Unused (accepted for API compatibility).

    Returns:
        ``(h_t, [h_t, c_t])``.

    Raises:
        InvalidArchitectureError: ``spec`` is not a valid cell.
        ConfigError: ``units`` is not a positive integer.

    Example:

    >>> import numpy as np, keras
    >>> from cells import TreeCell, nas_cell_spec
    >>> rnn = keras.layers.RNN(TreeCell(nas_cell_spec(), 4), return_sequences=True)
    >>> tuple(rnn(np.zeros((2, 5, 3), "float32")).shape)
    (2, 5, 4)
    """

    def __init__(
        self,
        spec: CellSpec | dict | str,
        units: int,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.spec = CellSpec.from_json(spec)
        self.units = check_units(units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = [self.units, self.units]
        self.output_size = self.units
        self._node_children = node_children(self.spec.base)

    @classmethod
    def from_spec(cls, spec: CellSpec | dict | str, units: int, **kwargs) -> TreeCell:
        """Builds a cell from a spec or its JSON form (dict or text)."""
        return cls(CellSpec.from_json(spec), units, **kwargs)

    def build(self, input_shape):
        add_fused_weights(self, input_shape, self.spec.base * self.units, self.units,
                          self.use_bias)

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states[0], states[1]
        spec = self.spec
        x_part = ops.matmul(inputs, self.kernel)
        h_part = ops.matmul(h_prev, self.recurrent_kernel)
        if self.bias is not None:
            h_part = ops.add(h_part, self.bias)
        pre = leaf_inputs(spec.combinations, spec.base, self.units, x_part, h_part)
        out = []
        c_new = None
        for k in range(spec.num_nodes):
            if k >= spec.base:
                left, right = self._node_children[k]
                pre.append(COMBINATION_FNS[spec.combinations[k]](out[left], out[right]))
            value = ACTIVATION_FNS[spec.activations[k]](pre[k])
            if k == spec.inject_node:
                merged = COMBINATION_FNS[spec.inject_combination](value, c_prev)
                value = ACTIVATION_FNS[spec.inject_activation](merged)
            if k == spec.cell_node:
                c_new = pre[k]
            out.append(value)
        h_new = out[-1]
        return h_new, [h_new, c_new]

    def get_config(self):
        config = {
            "spec": self.spec.to_json(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
        return {**super().get_config(), **config}
