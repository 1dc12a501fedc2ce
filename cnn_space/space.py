"""The convolutional search space of Zoph & Le 2017 (arXiv:1611.01578, §3.1–3.3, §4.1).

A child network is a stack of convolutional layers. For every layer the
controller predicts a filter height and a filter width in {1, 3, 5, 7}, a
number of filters in {24, 36, 48, 64} and, in the "predicting strides"
variant, a stride in {1, 2, 3} (§4.1); then an anchor point (§3.3) predicts
which earlier layers feed it (skip connections).

The paper's three CIFAR-10 variants are presets of :class:`CnnSpace`:

* ``"v1"`` — 15 layers, stride 1, no pooling.
* ``"v2"`` — 20 layers, the controller also predicts the stride.
* ``"v3"`` — 39 layers, stride 1, with max-pooling layers inserted at fixed
  depths. The paper only says pooling layers are added; this implementation
  puts them evenly at one and two thirds of the depth: with ``L`` layers a
  2x2 max pool (stride 2) sits before layer ``L // 3`` and before layer
  ``2 * L // 3`` (0-based), i.e. before layers 13 and 26 of 39, so there are
  three blocks of 13 designed layers. The paper's "more filters" variant is
  ``width_multiplier`` (the filter choices are multiplied by it).

The connection rules of a child (§3.3) are those of
:mod:`cnn_space.builder`; :func:`layer_shapes` mirrors them without
TensorFlow (for FLOPs and for tests). A max pool, in this implementation,
downsamples the image and *every* earlier layer output seen by the layers
after it, so a skip connection across a pool has the resolution of the
layers after the pool (like ENAS macro search, arXiv:1802.03268).

This module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.space import Anchor, Categorical, Decision, SearchSpace, split_tokens

#: Filter heights and widths the controller chooses from (§4.1).
FILTER_SIZES = (1, 3, 5, 7)
#: Numbers of filters the controller chooses from (§4.1), before any width multiplier.
NUM_FILTERS = (24, 36, 48, 64)
#: Strides the controller chooses from in the "predicting strides" variant (§4.1).
STRIDES = (1, 2, 3)
#: Window and stride of the fixed max-pooling layers of preset v3.
POOL_SIZE = 2

PRESETS = {
    # name: (default number of layers, predict strides, pooling)
    "v1": (15, False, False),
    "v2": (20, True, False),
    "v3": (39, False, True),
}


class CnnLayer(NamedTuple):
    """One convolutional layer of a :class:`CnnSpec`.

    Attributes:
        filter_height: Kernel height, one of :data:`FILTER_SIZES`.
        filter_width: Kernel width, one of :data:`FILTER_SIZES`.
        filters: Number of output channels (> 0).
        stride: Stride in both spatial dimensions, one of :data:`STRIDES`.
        inputs: Sorted indices of the earlier layers that feed this layer;
            empty means the layer takes the image.
    """

    filter_height: int
    filter_width: int
    filters: int
    stride: int = 1
    inputs: tuple[int, ...] = ()


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
        """The JSON form: ``{"layers": [{...}, ...], "pool_positions": [...]}``."""
        return {
            "layers": [
                {
                    "filter_height": layer.filter_height,
                    "filter_width": layer.filter_width,
                    "filters": layer.filters,
                    "stride": layer.stride,
                    "inputs": list(layer.inputs),
                }
                for layer in self.layers
            ],
            "pool_positions": list(self.pool_positions),
        }

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
        keys = {"filter_height", "filter_width", "filters", "stride", "inputs"}
        for i, layer in enumerate(obj["layers"]):
            if not isinstance(layer, dict) or not set(layer) <= keys or not (
                {"filter_height", "filter_width", "filters"} <= set(layer)
            ):
                raise InvalidArchitectureError(
                    f"Layer {i} of a CNN spec's JSON must be an object with keys "
                    f"{sorted(keys)} (stride and inputs optional). Received: {layer!r}"
                )
            inputs = layer.get("inputs", [])
            if not isinstance(inputs, list):
                raise InvalidArchitectureError(
                    f"Layer {i} inputs must be a list. Received: inputs={inputs!r}"
                )
            layers.append((layer["filter_height"], layer["filter_width"], layer["filters"],
                           layer.get("stride", 1), tuple(inputs)))
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
    stride = _as_int(layer.stride, f"layer {i} stride")
    for what, size in (("filter_height", fh), ("filter_width", fw)):
        if size not in FILTER_SIZES:
            raise InvalidArchitectureError(
                f"Layer {i} {what} must be one of {FILTER_SIZES}. Received: {what}={size}"
            )
    if filters <= 0:
        raise InvalidArchitectureError(
            f"Layer {i} needs filters > 0. Received: filters={filters}"
        )
    if stride not in STRIDES:
        raise InvalidArchitectureError(
            f"Layer {i} stride must be one of {STRIDES}. Received: stride={stride}"
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

    >>> spec = CnnSpec(layers=((3, 3, 24, 2, ()), (3, 3, 36, 1, ())))
    >>> shapes, final = layer_shapes(spec, (32, 32, 3))
    >>> shapes[0].out_height, final
    (16, (32, 32, 60))
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
        oh, ow = _conv_out(h, layer.stride), _conv_out(w, layer.stride)
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


# ----------------------------------------------------------------------- space


class CnnSpace(SearchSpace):
    """The CNN search space of paper §3.1–3.3 / §4.1, with its three presets.

    Per layer the decisions are, in order: ``layer_i/filter_height``,
    ``layer_i/filter_width``, ``layer_i/filters``, ``layer_i/stride`` (preset
    v2 only) and the anchor ``layer_i/inputs`` (i yes/no tokens over layers
    0..i-1).

    Args:
        preset: ``"v1"`` (15 layers), ``"v2"`` (20 layers, predicting strides)
            or ``"v3"`` (39 layers, max pooling before layers L//3 and 2L//3).
        num_layers: Depth of the full space (default: the preset's).
        curriculum_start: If set, the search starts with this many layers and
            grows (paper §4.1: 6); None turns the curriculum off (default,
            for small budgets).
        curriculum_step: Layers added per stage (§4.1: 2).
        curriculum_every: Children trained per stage (§4.1: 1,600).
        width_multiplier: The "more filters" variant: the filter choices are
            ``round(f * width_multiplier)`` for f in {24, 36, 48, 64}.

    Raises:
        ConfigError: unknown preset, num_layers <= 0, a bad curriculum or
            width multiplier.

    Example:

    >>> space = CnnSpace("v1", num_layers=3)
    >>> [d.name for d in space.decisions()][:4]
    ['layer_0/filter_height', 'layer_0/filter_width', 'layer_0/filters', 'layer_0/inputs']
    >>> spec = space.tokens_to_spec(space.spec_to_tokens(space.tokens_to_spec(
    ...     (1, 1, 0) + (0, 0, 1, 1) + (2, 2, 3, 0, 1))))
    >>> spec.layers[2]
    CnnLayer(filter_height=5, filter_width=5, filters=64, stride=1, inputs=(1,))
    """

    name = "cnn"

    def __init__(self, preset: str = "v1", num_layers: int | None = None,
                 curriculum_start: int | None = None, curriculum_step: int = 2,
                 curriculum_every: int = 1600, width_multiplier: float = 1):
        if preset not in PRESETS:
            raise ConfigError(
                f"Unknown CNN preset; use one of {sorted(PRESETS)}. Received: preset={preset!r}"
            )
        default_layers, predict_strides, pooling = PRESETS[preset]
        num_layers = default_layers if num_layers is None else num_layers
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers <= 0:
            raise ConfigError(
                f"num_layers must be an integer > 0. Received: num_layers={num_layers}")
        if curriculum_start is not None:
            for what, value in (("curriculum_start", curriculum_start),
                                ("curriculum_step", curriculum_step),
                                ("curriculum_every", curriculum_every)):
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ConfigError(f"{what} must be an integer > 0. Received: {what}={value}")
            if curriculum_start > num_layers:
                raise ConfigError(
                    f"curriculum_start must be <= num_layers ({num_layers}). "
                    f"Received: curriculum_start={curriculum_start}"
                )
        if isinstance(width_multiplier, bool) or not isinstance(width_multiplier, (int, float)) or (
            not width_multiplier > 0
        ):
            raise ConfigError(
                f"width_multiplier must be > 0. Received: width_multiplier={width_multiplier}"
            )
        filters = tuple(max(1, round(f * width_multiplier)) for f in NUM_FILTERS)
        if len(set(filters)) != len(filters):
            raise ConfigError(
                "width_multiplier is too small: the filter choices "
                f"{NUM_FILTERS} would collapse to {filters}. "
                f"Received: width_multiplier={width_multiplier}"
            )
        self.preset = preset
        self.num_layers = num_layers
        self.predict_strides = predict_strides
        self.curriculum_start = curriculum_start
        self.curriculum_step = curriculum_step
        self.curriculum_every = curriculum_every
        self.width_multiplier = width_multiplier
        self.filter_choices = filters
        if pooling:
            self.pool_positions = tuple(sorted({p for p in (num_layers // 3, 2 * num_layers // 3)
                                                if 1 <= p < num_layers}))
        else:
            self.pool_positions = ()

    # ------------------------------------------------------------- curriculum

    def depth(self, num_children: int = 0) -> int:
        """Number of layers in force once ``num_children`` children were trained."""
        if self.curriculum_start is None:
            return self.num_layers
        stages = max(0, int(num_children)) // self.curriculum_every
        return min(self.num_layers, self.curriculum_start + self.curriculum_step * stages)

    def _depths(self) -> tuple[int, ...]:
        if self.curriculum_start is None:
            return (self.num_layers,)
        depths = list(range(self.curriculum_start, self.num_layers, self.curriculum_step))
        return tuple(depths) + (self.num_layers,)

    def _next_stage(self, num_children: int) -> int:
        if self.depth(num_children) >= self.num_layers:
            raise InvalidArchitectureError(
                f"Space 'cnn' is at its full depth ({self.num_layers} layers) after "
                f"{num_children} children; there is no next stage."
            )
        return (max(0, int(num_children)) // self.curriculum_every + 1) * self.curriculum_every

    # -------------------------------------------------------------- decisions

    def _layer_decisions(self, i: int) -> list[Decision]:
        out: list[Decision] = [
            Categorical(f"layer_{i}/filter_height", FILTER_SIZES),
            Categorical(f"layer_{i}/filter_width", FILTER_SIZES),
            Categorical(f"layer_{i}/filters", self.filter_choices),
        ]
        if self.predict_strides:
            out.append(Categorical(f"layer_{i}/stride", STRIDES))
        out.append(Anchor(f"layer_{i}/inputs", num_inputs=i))
        return out

    def decisions(self, num_children: int = 0) -> tuple[Decision, ...]:
        return self._decisions_of_depth(self.depth(num_children))

    def final_decisions(self) -> tuple[Decision, ...]:
        """The decisions of the full depth (the curriculum's last stage).

        The controller creates its weights for all of them; every stage's
        :meth:`decisions` is a prefix.
        """
        return self._decisions_of_depth(self.num_layers)

    def _decisions_of_depth(self, n: int) -> tuple[Decision, ...]:
        out: list[Decision] = []
        for i in range(n):
            out.extend(self._layer_decisions(i))
        return tuple(out)

    def _tokens_per_layer(self, i: int) -> int:
        return (4 if self.predict_strides else 3) + i

    def _depth_for_width(self, width: int) -> int:
        total = 0
        for n in range(1, self.num_layers + 1):
            total += self._tokens_per_layer(n - 1)
            if total == width and n in self._depths():
                return n
            if total >= width:
                break
        raise InvalidArchitectureError(
            f"No stage of space 'cnn' (depths {list(self._depths())}) takes {width} tokens. "
            f"Received: {width} tokens"
        )

    def pools_for_depth(self, n: int) -> tuple[int, ...]:
        """The fixed pool positions of an ``n``-layer child of this space."""
        return tuple(p for p in self.pool_positions if p < n)

    # ----------------------------------------------------------------- tokens

    def tokens_to_spec(self, tokens: Sequence[int]) -> CnnSpec:
        tokens = tuple(tokens)
        n = self._depth_for_width(len(tokens))
        decisions = self._decisions_of_depth(n)
        values = split_tokens(decisions, tokens)
        layers = []
        pos = 0
        for i in range(n):
            fh = FILTER_SIZES[values[pos]]
            fw = FILTER_SIZES[values[pos + 1]]
            filters = self.filter_choices[values[pos + 2]]
            pos += 3
            stride = 1
            if self.predict_strides:
                stride = STRIDES[values[pos]]
                pos += 1
            bits = values[pos]
            pos += 1
            layers.append(CnnLayer(fh, fw, filters, stride,
                                   tuple(j for j, b in enumerate(bits) if b)))
        return CnnSpec(layers=tuple(layers), pool_positions=self.pools_for_depth(n))

    def spec_to_tokens(self, spec: CnnSpec) -> tuple[int, ...]:
        if not isinstance(spec, CnnSpec):
            raise InvalidArchitectureError(
                f"Space 'cnn' needs a CnnSpec. Received: {type(spec).__name__}"
            )
        n = spec.num_layers
        if n not in self._depths():
            raise InvalidArchitectureError(
                f"Space 'cnn' has children of depths {list(self._depths())}. "
                f"Received: a spec with {n} layers"
            )
        if spec.pool_positions != self.pools_for_depth(n):
            raise InvalidArchitectureError(
                f"Space 'cnn' ({self.preset}) pools before layers {list(self.pools_for_depth(n))}."
                f" Received: pool_positions={list(spec.pool_positions)}"
            )
        tokens: list[int] = []
        for i, layer in enumerate(spec.layers):
            if layer.filters not in self.filter_choices:
                raise InvalidArchitectureError(
                    f"Layer {i} filters must be one of {self.filter_choices} in this space. "
                    f"Received: filters={layer.filters}"
                )
            if not self.predict_strides and layer.stride != 1:
                raise InvalidArchitectureError(
                    f"Preset {self.preset!r} does not predict strides; layer {i} must have "
                    f"stride 1. Received: stride={layer.stride}"
                )
            tokens += [FILTER_SIZES.index(layer.filter_height),
                       FILTER_SIZES.index(layer.filter_width),
                       self.filter_choices.index(layer.filters)]
            if self.predict_strides:
                tokens.append(STRIDES.index(layer.stride))
            inputs = set(layer.inputs)
            tokens += [1 if j in inputs else 0 for j in range(i)]
        return tuple(tokens)

    def spec_from_json(self, obj: Any) -> CnnSpec:
        spec = CnnSpec.from_json(obj)
        self.spec_to_tokens(spec)  # raises if the spec is not of this space
        return spec

    # ------------------------------------------------------------ description

    def draw(self, spec: CnnSpec):
        """The layers and skip connections (a matplotlib figure)."""
        from cnn_space.draw import draw_cnn

        return draw_cnn(spec)

    def describe(self, spec: CnnSpec) -> str:
        """A markdown table of the layers, their skip inputs and the classifier inputs."""
        rows = ["| layer | filter (h x w) | filters | stride | inputs |",
                "|---:|:---:|---:|---:|:---|"]
        pools = set(spec.pool_positions)
        for i, layer in enumerate(spec.layers):
            if i in pools:
                rows.append(f"| pool | {POOL_SIZE} x {POOL_SIZE} max | | {POOL_SIZE} | all |")
            inputs = ", ".join(str(j) for j in layer.inputs) or "image"
            rows.append(f"| {i} | {layer.filter_height} x {layer.filter_width} | "
                        f"{layer.filters} | {layer.stride} | {inputs} |")
        unused = ", ".join(str(j) for j in spec.unused_outputs())
        rows.append("")
        rows.append(f"Classifier (global average pooling, dense softmax) input: layers {unused}.")
        return "\n".join(rows)

    def config(self) -> dict:
        curriculum = None
        if self.curriculum_start is not None:
            curriculum = {"start": self.curriculum_start, "step": self.curriculum_step,
                          "every": self.curriculum_every}
        return {
            "name": self.name,
            "preset": self.preset,
            "num_layers": self.num_layers,
            "predict_strides": self.predict_strides,
            "pool_positions": list(self.pool_positions),
            "filter_sizes": list(FILTER_SIZES),
            "filters": list(self.filter_choices),
            "strides": list(STRIDES) if self.predict_strides else [1],
            "width_multiplier": self.width_multiplier,
            "curriculum": curriculum,
        }
