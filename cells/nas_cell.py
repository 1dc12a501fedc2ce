"""``NASCell``: the recurrent cell Zoph & Le found on Penn Treebank, as a Keras 3 cell."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from cells.tree_cell import add_fused_weights, check_units, leaf_inputs
from cells.tree_space import nas_cell_spec
from nas_tf.errors import ConfigError

#: Number of leaves (and column blocks of the kernels) of the NAS cell.
NAS_BASE = 8
# How each leaf combines its two maps (W_i x_t and U_i m_{t-1}), from the spec.
_LEAF_COMBINATIONS = nas_cell_spec().combinations[:NAS_BASE]


@keras.saving.register_keras_serializable(package="nas_tf")
class NASCell(keras.layers.Layer):
    """The Neural Architecture Search cell (Zoph & Le 2017, arXiv:1611.01578, Fig. 8).

    The recurrent cell found by the paper's search on Penn Treebank (a base-8
    tree of the space of §3.4), with the same equations, branch order, weight
    shapes and state order ``[c, m]`` as ``tf.contrib.rnn.NASCell`` and
    TensorFlow Addons' ``tfa.rnn.NASCell`` (neither works with Keras 3). Their
    weights do **not** load with ``set_weights(ref.get_weights())``: the
    references create ``recurrent_kernel`` before ``kernel`` (and call the
    projection ``projection_weights``), so a plain ``set_weights`` swaps the two
    kernels -- silently when the input size equals the units. Load them with
    :meth:`from_reference_weights` / :meth:`set_reference_weights`. With
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

    @classmethod
    def from_reference_weights(cls, weights, **kwargs) -> NASCell:
        """A built cell holding the weights of a TF Addons / tf.contrib NASCell.

        Args:
            weights: The reference's weights: ``tfa_cell.get_weights()`` (a
                list in its creation order ``recurrent_kernel, kernel[, bias]
                [, projection_weights]``), or a dict of name -> array (names
                as in the reference, scope prefixes and ``:0`` ignored, e.g.
                from ``{v.name: v.numpy() for v in tfa_cell.weights}`` or a
                tf.contrib checkpoint).
            **kwargs: Other constructor arguments (initializers, ``name``);
                ``units``, ``num_proj`` and ``use_bias`` come from the shapes.

        Raises:
            ConfigError: the weights are not those of a NASCell (the problem
                is named).
        """
        mapped = reference_weights(weights)
        kernel = mapped["kernel"]
        proj = mapped.get("projection_kernel")
        cell = cls(kernel.shape[1] // NAS_BASE, num_proj=None if proj is None else proj.shape[1],
                   use_bias="bias" in mapped, **kwargs)
        cell.build((None, kernel.shape[0]))
        cell.set_reference_weights(mapped)
        return cell

    def set_reference_weights(self, weights) -> None:
        """Loads a TF Addons / tf.contrib NASCell's weights into this built cell
        (see :meth:`from_reference_weights` for ``weights``).

        Raises:
            ConfigError: the weights are not a NASCell's, or their shapes are
                not this cell's (both named).
        """
        mapped = reference_weights(weights)
        mine = {w.name: w for w in self.weights}
        if set(mapped) != set(mine):
            raise ConfigError(
                f"The reference weights ({', '.join(sorted(mapped))}) are not this cell's "
                f"({', '.join(sorted(mine))}): use_bias / num_proj differ. "
                f"Received: units={self.units}, num_proj={self.num_proj}, "
                f"use_bias={self.use_bias}")
        for name, value in mapped.items():
            if tuple(value.shape) != tuple(mine[name].shape):
                raise ConfigError(
                    f"Reference weight {name} has shape {tuple(value.shape)}; this cell's is "
                    f"{tuple(mine[name].shape)}. Received: units={self.units}")
            mine[name].assign(value)

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


#: The references' weight names -> this layer's.
_REFERENCE_NAMES = {"recurrent_kernel": "recurrent_kernel", "kernel": "kernel", "bias": "bias",
                    "projection_weights": "projection_kernel",
                    "projection_kernel": "projection_kernel"}  # (this layer's own name)


def reference_weights(weights) -> dict[str, Any]:
    """A TF Addons / tf.contrib NASCell's weights by this layer's names.

    ``weights`` is the reference's ``get_weights()`` list (its creation
    order: ``recurrent_kernel, kernel``, then ``bias`` if it has one, then
    ``projection_weights`` if it projects) or a dict of name -> array (the
    part after the last ``/``, without ``:0``, is the name).

    Raises:
        ConfigError: too few or too many arrays, an unknown name, or shapes
            that are not a NASCell's.
    """
    import numpy as np

    if isinstance(weights, dict):
        out = {}
        for key, value in weights.items():
            base = str(key).rsplit("/", 1)[-1].split(":", 1)[0]
            if base not in _REFERENCE_NAMES:
                raise ConfigError(
                    f"Unknown NASCell weight {key!r}; the references have "
                    f"{', '.join(_REFERENCE_NAMES)}. Received: {sorted(weights)}")
            out[_REFERENCE_NAMES[base]] = np.asarray(value)
    else:
        arrays = [np.asarray(w) for w in weights]
        if not 2 <= len(arrays) <= 4:
            raise ConfigError(
                "A NASCell has 2 to 4 weights (recurrent_kernel, kernel[, bias]"
                f"[, projection_weights]). Received: {len(arrays)} arrays")
        out = {"recurrent_kernel": arrays[0], "kernel": arrays[1]}
        for extra in arrays[2:]:
            out["bias" if extra.ndim == 1 else "projection_kernel"] = extra
    if "kernel" not in out or "recurrent_kernel" not in out:
        raise ConfigError(f"NASCell weights need kernel and recurrent_kernel. "
                          f"Received: {sorted(out)}")
    k, r = out["kernel"], out["recurrent_kernel"]
    width = k.shape[-1] if k.ndim == 2 else 0
    proj = out.get("projection_kernel")
    rows = proj.shape[1] if proj is not None and proj.ndim == 2 else width // NAS_BASE
    ok = (k.ndim == 2 and width > 0 and width % NAS_BASE == 0 and r.shape == (rows, width)
          and ("bias" not in out or out["bias"].shape == (width,))
          and (proj is None or proj.shape == (width // NAS_BASE, rows)))
    if not ok:
        shapes = {n: tuple(v.shape) for n, v in out.items()}
        raise ConfigError(
            "Not a NASCell's weights: kernel (input, 8*units), recurrent_kernel "
            "(units or projection, 8*units), bias (8*units,), projection_weights "
            f"(units, projection). Received: {shapes}")
    return out
