"""NAS-Bench-201 networks in Keras: the benchmark's skeleton around one cell.

The skeleton is the one every cell of NAS-Bench-201 (Dong & Yang 2020,
arXiv:2001.00326) was trained in, as its code defines it (``TinyNetwork``,
``InferCell``, ``ResNetBasicblock``, ``ReLUConvBN`` of the authors' library):

* stem: 3x3 conv (C channels, no bias) + BN;
* three stages of N cells with C, 2C and 4C channels; between stages a
  residual reduction block: ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN, plus a
  shortcut AvgPool(2, stride 2) + Conv1x1 (no bias, no BN); output = sum;
* head: BN-ReLU, global average pool, dense(num_classes).

A cell is a DAG over 4 nodes: node 0 is the cell input, node i the sum over
j < i of op_{i<-j}(node j), the output node 3. Ops: ``none`` (zeros),
``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU-Conv
without bias-BN, padding 1 for 3x3), ``avg_pool_3x3`` (3x3, stride 1, padding
1, padded cells not counted, as PyTorch's ``count_include_pad=False``; TF's
'same' average pool also divides by the valid cells only). BatchNorm is
affine with running statistics, epsilon 1e-5 and momentum 0.1 (PyTorch's).
Convolutions and the dense layer are initialised as PyTorch's defaults
(uniform in +-1/sqrt(fan_in)), so an untrained model is distributed like the
benchmark's own untrained network (what training-free proxies score).

Edges that add nothing are not built (``prune=True``): ``none`` edges, edges
whose node never reaches the output, and edges leaving a node that no path
from the input reaches (that node is all zeros). The output is the same as
the benchmark's network with one exception: a conv edge leaving an all-zero
node adds its BatchNorm's beta there (a learned per-channel constant, zero
at initialisation). ``prune=False`` keeps those edges (edges that never reach
the output cannot be part of a functional model either way);
:func:`benchmark_param_count` gives the benchmark's own parameter count.

Every ReLU is a ``keras.layers.ReLU`` (one per op, as in the benchmark), so
:mod:`cnn_space.nb201.proxies` can collect them all.
"""

from __future__ import annotations

import math

import keras

from cnn_space.nb201.space import EDGES, NUM_NODES, Nb201Spec
from nas_tf.errors import ConfigError

BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d default
BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1, in Keras's convention


class _Init:
    """Initialisers with distinct seeds derived from one seed (or all unseeded),
    and the layers' dtype."""

    def __init__(self, seed, dtype=None):
        self.seed = seed
        self.dtype = dtype
        self.count = 0

    def _next_seed(self):
        if self.seed is None:
            return None
        self.count += 1
        return int(self.seed) * 100003 + self.count

    def torch_default(self):
        # PyTorch's kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)).
        return keras.initializers.VarianceScaling(
            scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=self._next_seed())

    def uniform(self, limit):
        return keras.initializers.RandomUniform(-limit, limit, seed=self._next_seed())


def _bn(init, name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name,
                                           dtype=init.dtype)


def _conv(x, filters, kernel, stride, init, name):
    """Conv without bias, padded as PyTorch (kernel // 2 on every side)."""
    pad = kernel // 2
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad", dtype=init.dtype)(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid",
                               use_bias=False, kernel_initializer=init.torch_default(),
                               name=name, dtype=init.dtype)(x)


def _relu_conv_bn(x, filters, kernel, stride, init, name):
    x = keras.layers.ReLU(name=f"{name}_relu", dtype=init.dtype)(x)
    x = _conv(x, filters, kernel, stride, init, f"{name}_conv")
    return _bn(init, f"{name}_bn")(x)


def _op(x, op, channels, init, name):
    if op == "skip_connect":
        return x
    if op == "avg_pool_3x3":
        return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name,
                                             dtype=init.dtype)(x)
    kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[op]
    return _relu_conv_bn(x, channels, kernel, 1, init, name)


def live_edges(spec: Nb201Spec, prune: bool = True) -> list[bool]:
    """Which of the 6 edges (in ``EDGES`` order) are built.

    Not ``none``, and with ``prune``: its source is reached from the input and
    its destination reaches the output node.
    """
    built = [op != "none" for op in spec.ops]
    if not prune:
        return built
    from_input = [True] + [False] * (NUM_NODES - 1)
    for k, (i, j) in enumerate(EDGES):  # EDGES is ordered by destination
        from_input[i] = from_input[i] or (built[k] and from_input[j])
    to_output = [False] * (NUM_NODES - 1) + [True]
    for k, (i, j) in reversed(list(enumerate(EDGES))):
        to_output[j] = to_output[j] or (built[k] and to_output[i])
    return [b and from_input[j] and to_output[i] for b, (i, j) in zip(built, EDGES)]


def _cell(x, spec, live, channels, init, name):
    nodes = [x]
    for i in range(1, NUM_NODES):
        terms = [_op(nodes[j], spec.ops[k], channels, init, f"{name}_e{i}{j}")
                 for k, (dst, j) in enumerate(EDGES) if dst == i and live[k]]
        if not terms:  # all zeros (dangling unless prune=False feeds it on, or i == 3)
            nodes.append(keras.layers.Lambda(keras.ops.zeros_like, name=f"{name}_n{i}_zeros",
                                             dtype=init.dtype)(x))
        elif len(terms) == 1:
            nodes.append(terms[0])
        else:
            nodes.append(keras.layers.Add(name=f"{name}_n{i}", dtype=init.dtype)(terms))
    return nodes[-1]


def _reduction(x, channels, init, name):
    """ResNetBasicblock(stride 2): residual AvgPool+Conv1x1 plus two ReLUConvBNs."""
    block = _relu_conv_bn(x, channels, 3, 2, init, f"{name}_a")
    block = _relu_conv_bn(block, channels, 3, 1, init, f"{name}_b")
    short = keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool", dtype=init.dtype)(x)
    short = _conv(short, channels, 1, 1, init, f"{name}_short")
    return keras.layers.Add(name=f"{name}_add", dtype=init.dtype)([short, block])


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer. Received: {name}={value!r}")


def build_nb201_model(spec: Nb201Spec, *, channels: int = 16, cells_per_stage: int = 5,
                      num_classes: int = 10, input_shape=(32, 32, 3), seed=None,
                      prune: bool = True, dtype=None) -> keras.Model:
    """The NAS-Bench-201 network of ``spec`` (C=16, N=5 is the benchmark's).

    Args:
        spec: The cell.
        channels: C, the first stage's channels (the others have 2C, 4C).
        cells_per_stage: N, cells per stage.
        num_classes: Output logits.
        input_shape: (height, width, channels) of an image; height and width
            must be divisible by 4 (two stride-2 reductions).
        seed: Integer seed of every initialiser (None: unseeded).
        prune: Leave out edges that add nothing (see the module docstring).
        dtype: The layers' dtype (None: Keras's default policy, float32);
            e.g. ``"float64"`` for :func:`cnn_space.nb201.proxies.synflow`.

    Raises:
        ConfigError: a non-positive size, or an input the reductions cannot halve.
    """
    _check_positive("channels", channels)
    _check_positive("cells_per_stage", cells_per_stage)
    _check_positive("num_classes", num_classes)
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d < 1 for d in shape) or \
            shape[0] % 4 or shape[1] % 4:
        raise ConfigError("input_shape must be (height, width, channels) with height and width "
                          f"divisible by 4. Received: input_shape={input_shape!r}")
    if not isinstance(spec, Nb201Spec):
        spec = Nb201Spec(tuple(spec))
    init = _Init(seed, dtype)
    live = live_edges(spec, prune)
    inputs = keras.Input(shape, dtype=dtype)
    x = _conv(inputs, channels, 3, 1, init, "stem_conv")
    x = _bn(init, "stem_bn")(x)
    for stage in range(3):
        c = channels * 2 ** stage
        if stage:
            x = _reduction(x, c, init, f"reduce{stage}")
        for n in range(cells_per_stage):
            x = _cell(x, spec, live, c, init, f"s{stage}c{n}")
    x = _bn(init, "head_bn")(x)
    x = keras.layers.ReLU(name="head_relu", dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap", dtype=dtype)(x)
    limit = 1.0 / math.sqrt(4 * channels)
    logits = keras.layers.Dense(num_classes, kernel_initializer=init.torch_default(),
                                bias_initializer=init.uniform(limit), name="classifier",
                                dtype=dtype)(x)
    return keras.Model(inputs, logits, name="nb201_" + "_".join(
        {"none": "n", "skip_connect": "s", "nor_conv_1x1": "c1", "nor_conv_3x3": "c3",
         "avg_pool_3x3": "p"}[op] for op in spec.ops))


def benchmark_param_count(spec: Nb201Spec, channels: int = 16, cells_per_stage: int = 5,
                          num_classes: int = 10, in_channels: int = 3) -> int:
    """Trainable parameters of the benchmark's network, by formula (no model built).

    Counts what the benchmark counts (every non-``none`` edge, BN gamma and
    beta, the classifier's bias); equals the trainable parameters of
    ``build_nb201_model(..., prune=False)`` when nodes 1 and 2 reach node 3.
    """
    c, n = channels, cells_per_stage
    per_op = {"nor_conv_1x1": lambda ch: ch * ch + 2 * ch,
              "nor_conv_3x3": lambda ch: 9 * ch * ch + 2 * ch}
    total = 9 * in_channels * c + 2 * c  # stem
    for stage in range(3):
        ch = c * 2 ** stage
        if stage:  # reduction from ch // 2 to ch
            half = ch // 2
            total += 9 * half * ch + 2 * ch + 9 * ch * ch + 2 * ch + half * ch
        total += n * sum(per_op[op](ch) for op in spec.ops if op in per_op)
    return total + 2 * 4 * c + 4 * c * num_classes + num_classes
