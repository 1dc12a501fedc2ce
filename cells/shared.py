"""Weight sharing for the recurrent tree space (ENAS, Pham et al. 2018, arXiv:1802.03268).

Every cell of the tree space (Zoph & Le 2017, arXiv:1611.01578, §3.4) with a
given ``base`` and ``units`` has the same weights: the fused leaf projections
``kernel`` (x to base × units), ``recurrent_kernel`` (h to base × units) and
``bias``. Cells differ only in what they do with the projections — the
combination and activation of each node and the memory wiring. So one
:class:`SharedTreeCell` holds the weights of *every* cell of the space, and
which cell it computes is a runtime input: the cell's tokens, in the token
layout of :class:`cells.TreeSpace`, kept in a non-trainable integer variable
(``architecture``) that is assigned before each batch. A language model built
on it is the shared model of the whole space: training it on a batch trains
the sampled cell; scoring a cell costs a forward pass.

With the weights of a :class:`cells.TreeCell` and the tokens of its spec, the
shared cell computes the same outputs (tested).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from cells.tree_cell import ACTIVATION_FNS, COMBINATION_FNS, add_fused_weights, check_units
from cells.tree_space import ACTIVATIONS, BASES, COMBINATIONS, TreeSpace, node_children
from cells.tree_space import num_nodes as _num_nodes
from nas_tf.errors import ConfigError


def _select(options, index):
    """``options[index]`` by a chain of ``where``: ``index`` is a scalar integer
    tensor (one choice for all), or one per column (column j of the result is
    column j of ``options[index[j]]``)."""
    out = options[-1]
    for i in range(len(options) - 2, -1, -1):
        out = ops.where(ops.equal(index, i), options[i], out)
    return out


def _combine_all(a, b):
    return [COMBINATION_FNS[name](a, b) for name in COMBINATIONS]


def _activate_all(x):
    return [ACTIVATION_FNS[name](x) for name in ACTIVATIONS]


@keras.saving.register_keras_serializable(package="nas_tf")
class SharedTreeCell(keras.layers.Layer):
    """Every cell of the tree space in one recurrent cell, chosen at run time (weight sharing).

    The weights are those of :class:`cells.TreeCell` for the same ``base`` and
    ``units`` (``kernel``, ``recurrent_kernel``, ``bias``, in that order), so
    ``TreeCell(spec, units)`` and ``SharedTreeCell(spec.base, units)`` with the
    tokens of ``spec`` assigned compute the same ``h_t`` and ``c_t``. Every
    combination and activation is computed and the chosen one is selected, so
    a step costs the two matrix products of any cell plus a few times its
    element-wise work. Used for ENAS-style searches (Pham et al. 2018,
    arXiv:1802.03268) over the space of Zoph & Le 2017 (arXiv:1611.01578, §3.4).

    Args:
        base: Number of tree leaves, one of :data:`cells.tree_space.BASES`.
        units: Positive integer, size of ``h`` and ``c``.
        use_bias: Whether the leaves add a bias. Default True.
        kernel_initializer: Initializer of ``kernel``. Default "glorot_uniform".
        recurrent_initializer: Initializer of ``recurrent_kernel``.
        bias_initializer: Initializer of ``bias``. Default "zeros".
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: A 2D tensor ``(batch, input_dim)``, the input at one time step.
        states: A list ``[h, c]`` of 2D tensors ``(batch, units)``.
        training: Unused.

    Returns:
        ``(h_t, [h_t, c_t])`` of the cell whose tokens are in ``architecture``.

    Raises:
        ConfigError: ``base`` is not supported or ``units`` is not a positive integer.

    Example:

    >>> import numpy as np, keras
    >>> from cells import nas_cell_spec
    >>> from cells.shared import SharedTreeCell
    >>> cell = SharedTreeCell(8, 4)
    >>> rnn = keras.layers.RNN(cell, return_sequences=True)
    >>> _ = rnn(np.zeros((2, 5, 3), "float32"))
    >>> cell.set_architecture(nas_cell_spec())
    >>> tuple(rnn(np.ones((2, 5, 3), "float32")).shape)
    (2, 5, 4)
    """

    def __init__(self, base: int, units: int, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(base, bool) or base not in BASES:
            raise ConfigError(f"base must be one of {list(BASES)}. Received: base={base!r}")
        self.base = int(base)
        self.units = check_units(units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = [self.units, self.units]
        self.output_size = self.units
        self.space = TreeSpace(self.base)
        self.num_tokens = len(self.space.decisions())
        self._node_children = node_children(self.base)

    def build(self, input_shape):
        add_fused_weights(self, input_shape, self.base * self.units, self.units, self.use_bias)
        self.architecture = self.add_weight(
            shape=(self.num_tokens,), initializer="zeros", dtype="int32",
            trainable=False, name="architecture")

    def set_architecture(self, spec_or_tokens) -> None:
        """Makes the cell compute ``spec_or_tokens`` (a CellSpec or its tokens) from now on.

        Raises:
            InvalidArchitectureError: the spec is not a cell of this space.
            ConfigError: the tokens have the wrong length.
        """
        tokens = spec_or_tokens
        if not isinstance(spec_or_tokens, (list, tuple)):
            tokens = self.space.spec_to_tokens(spec_or_tokens)
        if len(tokens) != self.num_tokens:
            raise ConfigError(f"A base-{self.base} cell has {self.num_tokens} tokens. "
                              f"Received: {len(tokens)} tokens")
        self.space.tokens_to_spec(tokens)  # validates every token
        self.architecture.assign(ops.convert_to_tensor(list(tokens), dtype="int32"))

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states[0], states[1]
        arch = ops.convert_to_tensor(self.architecture)
        n, units = _num_nodes(self.base), self.units
        x_part = ops.matmul(inputs, self.kernel)
        h_part = ops.matmul(h_prev, self.recurrent_kernel)
        if self.bias is not None:
            h_part = ops.add(h_part, self.bias)
        # Leaves, all at once: column j belongs to leaf j // units.
        leaf_comb = ops.repeat(arch[0:2 * self.base:2], units)
        leaf_act = ops.repeat(arch[1:2 * self.base:2], units)
        pre_leaves = _select(_combine_all(x_part, h_part), leaf_comb)
        out_leaves = _select(_activate_all(pre_leaves), leaf_act)
        pre = list(ops.split(pre_leaves, self.base, axis=-1))
        out = list(ops.split(out_leaves, self.base, axis=-1))
        inject_comb, inject_act = arch[2 * n], arch[2 * n + 1]
        inject_node, cell_node = arch[2 * n + 2], arch[2 * n + 3]
        for k in range(n):
            if k >= self.base:
                left, right = self._node_children[k]
                pre.append(_select(_combine_all(out[left], out[right]), arch[2 * k]))
                out.append(_select(_activate_all(pre[k]), arch[2 * k + 1]))
            injected = _select(_activate_all(_select(_combine_all(out[k], c_prev),
                                                     inject_comb)), inject_act)
            out[k] = ops.where(ops.equal(inject_node, k), injected, out[k])
        c_new = _select(pre, cell_node)
        h_new = out[-1]
        return h_new, [h_new, c_new]

    def get_config(self):
        config = {
            "base": self.base,
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
        return {**super().get_config(), **config}
