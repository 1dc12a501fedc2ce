"""CNN child specs of Zoph & Le 2017 (arXiv:1611.01578, §3.1, §3.3) and their shapes.

:class:`CnnSpec` is one child architecture: a stack of convolutional layers,
each with a filter height and width, a number of filters, a stride height and
a stride width, and the earlier layers that feed it (skip connections, §3.3);
optionally fixed max-pooling layers (preset v3). :func:`layer_shapes`
infers every layer's shapes under the connection rules of
:mod:`cnn_space.builder`, without TensorFlow (for FLOPs and for tests).

A max pool, in this implementation, downsamples the image and *every*
earlier layer output seen by the layers after it, so a skip connection
across a pool has the resolution of the layers after the pool (like ENAS
macro search, arXiv:1802.03268).

This module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

from nas_tf.errors import ConfigError, InvalidArchitectureError

#: Filter heights and widths the controller chooses from (§4.1).
FILTER_SIZES = (1, 3, 5, 7)
#: Numbers of filters the controller chooses from (§4.1), before any width multiplier.
NUM_FILTERS = (24, 36, 48, 64)
#: Strides the controller chooses from in the "predicting strides" variant (§4.1).
STRIDES = (1, 2, 3)
#: Window and stride of the fixed max-pooling layers of preset v3.
POOL_SIZE = 2

class CnnLayer(NamedTuple):
    """One convolutional layer of a :class:`CnnSpec`.

    Attributes:
        filter_height: Kernel height, one of :data:`FILTER_SIZES`.
        filter_width: Kernel width, one of :data:`FILTER_SIZES`.
        filters: Number of output channels (> 0).
        stride: The stride: an int (the same in height and width) or a
            pair ``(stride_height, stride_width)``, each in :data:`STRIDES`
            (§3.1 predicts them separately). A spec normalises an equal pair
            to one int, so equal layers compare (and hash) equal.
        inputs: Sorted indices of the earlier layers that feed this layer;
            empty means the layer takes the image.
    """

    filter_height: int
    filter_width: int
    filters: int
    stride: int | tuple[int, int] = 1
    inputs: tuple[int, ...] = ()

    @property
    def strides(self) -> tuple[int, int]:
        """``(stride_height, stride_width)``."""
        return (self.stride, self.stride) if isinstance(self.stride, int) else self.stride

    @property
    def stride_height(self) -> int:
        return self.strides[0]

    @property
    def stride_width(self) -> int:
        return self.strides[1]


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArchitectureError(f"{what} must be an integer. Received: {what}={value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class CnnSpec:
    """A convolutional child architecture (paper §3.1, §3.3).

    Validated on construction; frozen and hashable; no TensorFlow.

    Args:
        layers: One :class:`CnnLayer` (or a tuple ``(filter_height,
            filter_width, filters, stride, inputs)``) per layer, in order.
        pool_positions: Sorted layer indices ``k`` (``1 <= k < len(layers)``)
            with a fixed 2x2 max-pooling layer between layer ``k - 1`` and
            layer ``k`` (preset v3).

    Raises:
        InvalidArchitectureError: no layers, filters <= 0, a filter size or
            stride not in the space, an input that is not an earlier layer,
            or a bad pool position.

    Example:

    >>> spec = CnnSpec(layers=((3, 3, 24, 1, ()), (5, 1, 36, 1, (0,))))
    >>> spec.layers[1].inputs
    (0,)
    >>> CnnSpec.from_json(spec.to_json()) == spec
    True
    """

    layers: tuple[CnnLayer, ...]
    pool_positions: tuple[int, ...] = ()

    def __post_init__(self):
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, Sequence):
            raise InvalidArchitectureError(
                f"CnnSpec.layers must be a sequence of layers. Received: layers={self.layers!r}"
            )
        if len(self.layers) == 0:
            raise InvalidArchitectureError(
                "A CNN spec needs at least one layer. Received: layers=()"
            )
        layers = []
        for i, layer in enumerate(self.layers):
            layers.append(_check_layer(i, layer))
        object.__setattr__(self, "layers", tuple(layers))
        try:
            pools = tuple(_as_int(p, "pool_positions") for p in self.pool_positions)
        except TypeError:
            raise InvalidArchitectureError(
                f"pool_positions must be a sequence of layer indices. "
                f"Received: pool_positions={self.pool_positions!r}"
            ) from None
        n = len(layers)
        if any(not 1 <= p < n for p in pools) or list(pools) != sorted(set(pools)):
            raise InvalidArchitectureError(
                f"pool_positions must be strictly increasing layer indices in [1, {n}). "
                f"Received: pool_positions={pools}"
            )
        object.__setattr__(self, "pool_positions", pools)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def stage_of(self, layer: int) -> int:
        """Number of pooling layers before ``layer`` (its resolution stage)."""
        return sum(1 for p in self.pool_positions if p <= layer)

    def unused_outputs(self) -> tuple[int, ...]:
        """Layers whose output no later layer uses; they feed the classifier (§3.3)."""
        used = {j for layer in self.layers for j in layer.inputs}
        return tuple(i for i in range(len(self.layers)) if i not in used)

    def to_json(self) -> dict:
        """The JSON form: ``{"layers": [{...}, ...], "pool_positions": [...]}``.

        A layer's stride is ``"stride": s`` when its height and width strides
        are equal (the only form before they were separate decisions, so the
        hashes of earlier runs' children do not change), else
        ``"stride_height"`` and ``"stride_width"``.
        """
        layers = []
        for layer in self.layers:
            d = {"filter_height": layer.filter_height, "filter_width": layer.filter_width,
                 "filters": layer.filters}
            if isinstance(layer.stride, int):
                d["stride"] = layer.stride
            else:
                d["stride_height"], d["stride_width"] = layer.stride
            d["inputs"] = list(layer.inputs)
            layers.append(d)
        return {"layers": layers, "pool_positions": list(self.pool_positions)}

    @classmethod
    def from_json(cls, obj: Any) -> CnnSpec:
        """Rebuilds and validates a spec from :meth:`to_json` output.

        Raises:
            InvalidArchitectureError: ``obj`` is not the JSON form of a CNN spec.
        """
        if not isinstance(obj, dict) or not isinstance(obj.get("layers"), list):
            raise InvalidArchitectureError(
                "A CNN spec's JSON must be an object with a 'layers' list. "
                f"Received: {str(obj)[:200]}"
            )
        unknown = set(obj) - {"layers", "pool_positions"}
        if unknown:
            raise InvalidArchitectureError(
                f"Unknown keys in a CNN spec's JSON. Received: {sorted(unknown)}"
            )
        layers = []
        keys = {"filter_height", "filter_width", "filters", "stride", "stride_height",
                "stride_width", "inputs"}
        for i, layer in enumerate(obj["layers"]):
            if not isinstance(layer, dict) or not set(layer) <= keys or not (
                {"filter_height", "filter_width", "filters"} <= set(layer)
            ) or ("stride" in layer and ({"stride_height", "stride_width"} & set(layer))) or (
                len({"stride_height", "stride_width"} & set(layer)) == 1
            ):
                raise InvalidArchitectureError(
                    f"Layer {i} of a CNN spec's JSON must be an object with keys "
                    f"{sorted(keys)} (filter sizes and filters required; either stride or "
                    f"both stride_height and stride_width, or neither). Received: {layer!r}"
                )
            stride = layer.get("stride", 1)
            if "stride_height" in layer:
                stride = (layer["stride_height"], layer["stride_width"])
            inputs = layer.get("inputs", [])
            if not isinstance(inputs, list):
                raise InvalidArchitectureError(
                    f"Layer {i} inputs must be a list. Received: inputs={inputs!r}"
                )
            layers.append((layer["filter_height"], layer["filter_width"], layer["filters"],
                           stride, tuple(inputs)))
        pools = obj.get("pool_positions", [])
        if not isinstance(pools, list):
            raise InvalidArchitectureError(
                f"pool_positions must be a list. Received: pool_positions={pools!r}"
            )
        return cls(layers=tuple(layers), pool_positions=tuple(pools))


def _check_layer(i: int, layer: Any) -> CnnLayer:
    if isinstance(layer, (dict, str, bytes)) or not isinstance(layer, Sequence) or not (
        3 <= len(layer) <= 5
    ):
        raise InvalidArchitectureError(
            f"Layer {i} must be (filter_height, filter_width, filters, stride, inputs). "
            f"Received: {layer!r}"
        )
    layer = CnnLayer(*layer)
    fh = _as_int(layer.filter_height, f"layer {i} filter_height")
    fw = _as_int(layer.filter_width, f"layer {i} filter_width")
    filters = _as_int(layer.filters, f"layer {i} filters")
    stride = _check_stride(i, layer.stride)
    for what, size in (("filter_height", fh), ("filter_width", fw)):
        if size not in FILTER_SIZES:
            raise InvalidArchitectureError(
                f"Layer {i} {what} must be one of {FILTER_SIZES}. Received: {what}={size}"
            )
    if filters <= 0:
        raise InvalidArchitectureError(
            f"Layer {i} needs filters > 0. Received: filters={filters}"
        )
    raw_inputs = layer.inputs
    if isinstance(raw_inputs, (str, bytes)) or not isinstance(raw_inputs, Sequence):
        raise InvalidArchitectureError(
            f"Layer {i} inputs must be a sequence of layer indices. Received: inputs={raw_inputs!r}"
        )
    inputs = tuple(_as_int(j, f"layer {i} input") for j in raw_inputs)
    if any(not 0 <= j < i for j in inputs):
        raise InvalidArchitectureError(
            f"Layer {i} can only take earlier layers (indices in [0, {i})) as inputs. "
            f"Received: inputs={inputs}"
        )
    if len(set(inputs)) != len(inputs):
        raise InvalidArchitectureError(
            f"Layer {i} lists an input twice. Received: inputs={inputs}"
        )
    return CnnLayer(fh, fw, filters, stride, tuple(sorted(inputs)))


def _check_stride(i: int, stride: Any) -> int | tuple[int, int]:
    """An int, or an ``(height, width)`` pair of ints (an equal pair becomes one int)."""
    if isinstance(stride, Sequence) and not isinstance(stride, (str, bytes)):
        if len(stride) != 2:
            raise InvalidArchitectureError(
                f"Layer {i} stride must be an int or a pair (stride_height, stride_width). "
                f"Received: stride={stride!r}")
        pair = (_as_int(stride[0], f"layer {i} stride_height"),
                _as_int(stride[1], f"layer {i} stride_width"))
    else:
        pair = (_as_int(stride, f"layer {i} stride"),) * 2
    for what, value in zip(("stride_height", "stride_width"), pair):
        if value not in STRIDES:
            shown = ("stride", value) if pair[0] == pair[1] else (what, value)
            raise InvalidArchitectureError(
                f"Layer {i} {shown[0]} must be one of {STRIDES}. "
                f"Received: {shown[0]}={shown[1]}")
    return pair[0] if pair[0] == pair[1] else pair


# ---------------------------------------------------------------------- shapes


def _conv_out(size: int, stride: int) -> int:
    # "same" padding: ceil(size / stride).
    return -(-size // stride)


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """Shapes of one layer of a child (what the Keras builder produces).

    Attributes:
        in_height, in_width, in_channels: Shape of the layer's concatenated
            (zero-padded) input.
        out_height, out_width, out_channels: Shape of the layer's output.
    """

    in_height: int
    in_width: int
    in_channels: int
    out_height: int
    out_width: int
    out_channels: int


def layer_shapes(spec: CnnSpec, input_shape: Sequence[int] = (32, 32, 3)):
    """Infers every layer's shapes under the connection rules, without TensorFlow.

    Mirrors :func:`cnn_space.builder.build_model`: inputs are concatenated
    along depth after zero-padding to the largest height and width; a layer
    with no input takes the image; a pool halves (rounding up) the height and
    width of the image and of every earlier output seen after it.

    Args:
        spec: A :class:`CnnSpec`.
        input_shape: ``(height, width, channels)`` of the images.

    Returns:
        ``(shapes, classifier_shape)``: a list with one :class:`LayerShape` per
        layer, and the ``(height, width, channels)`` of the concatenated
        unused outputs fed to global average pooling.

    Example:

    >>> spec = CnnSpec(layers=((3, 3, 24, (2, 3), ()), (3, 3, 36, 1, ())))
    >>> shapes, final = layer_shapes(spec, (32, 32, 3))
    >>> shapes[0].out_height, shapes[0].out_width, final
    (16, 11, (32, 32, 60))
    """
    height, width, channels = _check_input_shape(input_shape)

    def pooled(hw, times):
        h, w = hw
        for _ in range(times):
            h, w = _conv_out(h, POOL_SIZE), _conv_out(w, POOL_SIZE)
        return h, w

    # Per layer: (height, width, channels, stage) of its output.
    outs: list[tuple[int, int, int, int]] = []
    shapes = []

    def gather(sources, stage):
        if not sources:
            h, w = pooled((height, width), stage)
            return h, w, channels
        sizes = []
        for j in sources:
            h, w, c, s = outs[j]
            h, w = pooled((h, w), stage - s)
            sizes.append((h, w, c))
        return max(s[0] for s in sizes), max(s[1] for s in sizes), sum(s[2] for s in sizes)

    for i, layer in enumerate(spec.layers):
        stage = spec.stage_of(i)
        h, w, c = gather(layer.inputs, stage)
        oh, ow = _conv_out(h, layer.stride_height), _conv_out(w, layer.stride_width)
        shapes.append(LayerShape(h, w, c, oh, ow, layer.filters))
        outs.append((oh, ow, layer.filters, stage))
    final = gather(spec.unused_outputs(), spec.stage_of(len(spec.layers) - 1))
    return shapes, final


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = len(shape) == 3 and all(s > 0 for s in shape) and all(
            int(s) == s for s in input_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            "input_shape must be (height, width, channels) with positive integers. "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


