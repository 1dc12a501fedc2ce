"""The convolutional search space of Zoph & Le 2017 (arXiv:1611.01578, §3.1–3.3, §4.1).

A child network is a stack of convolutional layers. For every layer the
controller predicts (§3.1, Figure 2) a filter height and a filter width in
{1, 3, 5, 7}, in the "predicting strides" variant a stride height and a
stride width in {1, 2, 3}, and a number of filters in {24, 36, 48, 64}
(§4.1); then an anchor point (§3.3) predicts which earlier layers feed it
(skip connections). Specs and their shapes are in :mod:`cnn_space.spec`, the
Keras children in :mod:`cnn_space.builder`.

What §4.1 states, and what this implementation chooses
------------------------------------------------------

Given by the paper (§3.1, §3.3, §4.1):

* the decisions per layer and their values (above), in the order filter
  height, filter width, stride height, stride width, number of filters;
  skip connections through anchors, inputs concatenated along depth,
  zero-padding of inputs of different sizes, a layer without inputs takes
  the image, unused outputs go to the classifier (§3.3);
* v1: no strides, no pooling; the best child has 15 layers (5.50 % test
  error, 4.2M parameters, Table 1);
* v2: strides predicted; the best child has 20 layers (6.01 %, 2.5M);
* v3: "2 pooling layers at layer 13 and layer 24"; a 39-layer network
  (4.47 %, 7.1M); "13 layers where each layer prediction is a fully
  connected block of 3 layers"; filters chosen from [6, 12, 24, 36];
  "more filters" adds 40 filters to each layer (3.65 %, 37.4M);
* the curriculum: "increase the depth by 2 for the child models every 1,600
  samples, starting at 1 layer" (1, 3, 5, ...: v1's 15 layers at 11,200).

Chosen here (the paper does not say, or this implementation simplifies):

* the depths 15 / 20 / 39 are the search spaces' depths (the paper reports
  them as the depths of the best children);
* the order of the decisions of a layer without strides: filter height,
  filter width, number of filters; with strides, the paper's order;
* v3 predicts 39 independent layers (not 13 predictions expanded into
  fully connected blocks of 3): the paper does not define the block's
  wiring, and one decision per conv layer keeps v3 the same space as v1
  with pools. Its default filter choices are v1's {24, 36, 48, 64}; the
  paper's [6, 12, 24, 36] are ``filters=(6, 12, 24, 36)``;
* v3's two 2x2 max pools (stride 2) sit at one and two thirds of the depth:
  before layers ``L // 3`` and ``2 * L // 3`` (0-based), 13 and 26 of 39.
  The paper's "layer 13 and layer 24" does not fit its own 13 blocks of 3
  layers (24 is not a block boundary), so evenly spaced stages were chosen;
* "more filters" is ``added_filters=40`` (each filter choice plus 40, the
  paper's wording) or ``width_multiplier`` (each choice times a factor,
  this implementation's knob for small machines);
* the curriculum counts samples (``curriculum_count="samples"``, the
  paper's); ``"children"`` counts unique finished children instead (runs
  recorded before the space had a version count that way).

``experiments/results/cnn_space_params.md`` compares the parameter counts of
random children of each preset with the paper's table.

Space versions: a run directory records ``space.config()``. Version 2 (this
one) predicts stride height and width separately in v2 and counts the
curriculum in samples; a config without ``"version"`` was recorded by
version 1 (one stride decision per layer; curriculum in finished children).
:meth:`CnnSpace.as_recorded` gives the space of a recorded config, so such
runs resume with their own decisions.

This module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnn_space.spec import (  # noqa: F401 - re-exported: the space's public names
    FILTER_SIZES,
    NUM_FILTERS,
    POOL_SIZE,
    STRIDES,
    CnnLayer,
    CnnSpec,
    LayerShape,
    _check_input_shape,
    layer_shapes,
)
from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.space import Anchor, Categorical, Decision, SearchSpace, canonical_json, split_tokens
from nas_tf.validation import check_choice, check_finite, check_int, check_positive

PRESETS = {
    # name: (default number of layers, predict strides, pooling)
    "v1": (15, False, False),
    "v2": (20, True, False),
    "v3": (39, False, True),
}

#: The current space version (see the module docstring).
SPACE_VERSION = 2
#: What the curriculum counts: ``"samples"`` (proposals, §4.1) or unique finished ``"children"``.
CURRICULUM_COUNTS = ("samples", "children")


def _filter_choices(filters, width_multiplier, added_filters, version):
    """The base filter counts and the choices they give (times
    ``width_multiplier``, plus ``added_filters``), checked."""
    check_finite("width_multiplier", width_multiplier)
    check_positive("width_multiplier", width_multiplier)
    check_int("added_filters", added_filters, minimum=0)
    if version == 1 and (tuple(filters) != NUM_FILTERS or added_filters):
        # Version 1 knew only these filters.
        raise ConfigError(f"A version-1 CNN space has filters {NUM_FILTERS} and no "
                          f"added filters. Received: filters={filters!r}, "
                          f"added_filters={added_filters}")
    base = tuple(filters) if isinstance(filters, Sequence) else None
    if not base or any(isinstance(f, bool) or not isinstance(f, int) or f <= 0 for f in base):
        raise ConfigError(f"filters must be a non-empty sequence of integers > 0. "
                          f"Received: filters={filters!r}")
    choices = tuple(max(1, round(f * width_multiplier)) + added_filters for f in base)
    if len(set(choices)) != len(choices):
        raise ConfigError(
            "width_multiplier is too small (or filters repeat): the filter choices "
            f"{base} would collapse to {choices}. "
            f"Received: width_multiplier={width_multiplier}, filters={base}")
    return base, choices


class CnnSpace(SearchSpace):
    """The CNN search space of paper §3.1–3.3 / §4.1, with its three presets.

    Per layer the decisions are, in order: ``layer_i/filter_height``,
    ``layer_i/filter_width``, then (preset v2) ``layer_i/stride_height`` and
    ``layer_i/stride_width``, then ``layer_i/filters``, and the anchor
    ``layer_i/inputs`` (i yes/no tokens over layers 0..i-1). A version-1
    space (recorded runs) has one ``layer_i/stride`` after the filters.

    Args:
        preset: ``"v1"`` (15 layers), ``"v2"`` (20 layers, predicting strides)
            or ``"v3"`` (39 layers, max pooling before layers L//3 and 2L//3).
        num_layers: Depth of the full space (default: the preset's).
        curriculum_start: If set, the search starts with this many layers and
            grows (paper §4.1: 6); None turns the curriculum off (default,
            for small budgets).
        curriculum_step: Layers added per stage (§4.1: 2).
        curriculum_every: Samples (or children, see ``curriculum_count``)
            per stage (§4.1: 1,600 samples).
        width_multiplier: The filter choices are ``round(f * width_multiplier)
            + added_filters`` for f in ``filters``.
        curriculum_count: ``"samples"`` (every architecture the algorithm
            proposed, duplicates and failures included; §4.1's count) or
            ``"children"`` (unique finished children).
        filters: The base filter choices (default {24, 36, 48, 64}; the
            paper's v3 uses (6, 12, 24, 36)).
        added_filters: Added to every filter choice (the paper's "more
            filters": 40).
        version: The space version (:data:`SPACE_VERSION`; 1 only to resume
            runs recorded by version 1; it counts the curriculum in children).

    Raises:
        ConfigError: unknown preset, num_layers <= 0, a bad curriculum, bad
            filter choices or version.

    Example:

    >>> space = CnnSpace("v1", num_layers=3)
    >>> [d.name for d in space.decisions()][:4]
    ['layer_0/filter_height', 'layer_0/filter_width', 'layer_0/filters', 'layer_0/inputs']
    >>> spec = space.tokens_to_spec(space.spec_to_tokens(space.tokens_to_spec(
    ...     (1, 1, 0) + (0, 0, 1, 1) + (2, 2, 3, 0, 1))))
    >>> spec.layers[2]
    CnnLayer(filter_height=5, filter_width=5, filters=64, stride=1, inputs=(1,))
    >>> CnnSpace("v2", num_layers=1).tokens_to_spec((0, 1, 1, 2, 0)).layers[0].stride
    (2, 3)
    """

    name = "cnn"

    def __init__(self, preset: str = "v1", num_layers: int | None = None,
                 curriculum_start: int | None = None, curriculum_step: int = 2,
                 curriculum_every: int = 1600, width_multiplier: float = 1,
                 curriculum_count: str = "samples", filters: Sequence[int] = NUM_FILTERS,
                 added_filters: int = 0, version: int = SPACE_VERSION):
        check_choice("preset", preset, sorted(PRESETS), "CNN preset")
        if version not in (1, SPACE_VERSION):
            raise ConfigError(f"CNN space version must be 1 or {SPACE_VERSION} (a run of a "
                              f"newer nas_tf?). Received: version={version!r}")
        default_layers, predict_strides, pooling = PRESETS[preset]
        num_layers = default_layers if num_layers is None else num_layers
        check_int("num_layers", num_layers)
        if curriculum_start is not None:
            for what, value in (("curriculum_start", curriculum_start),
                                ("curriculum_step", curriculum_step),
                                ("curriculum_every", curriculum_every)):
                check_int(what, value)
            if curriculum_start > num_layers:
                raise ConfigError(
                    f"curriculum_start must be <= num_layers ({num_layers}). "
                    f"Received: curriculum_start={curriculum_start}")
        if curriculum_count not in CURRICULUM_COUNTS:
            raise ConfigError(f"curriculum_count must be one of {CURRICULUM_COUNTS}. "
                              f"Received: curriculum_count={curriculum_count!r}")
        if version == 1:  # version 1 counted the curriculum in children
            curriculum_count = "children"
        base, choices = _filter_choices(filters, width_multiplier, added_filters, version)
        self.preset = preset
        self.version = version
        self.num_layers = num_layers
        self.predict_strides = predict_strides
        self.curriculum_start = curriculum_start
        self.curriculum_step = curriculum_step
        self.curriculum_every = curriculum_every
        self.curriculum_count = curriculum_count
        self.width_multiplier = width_multiplier
        self.base_filters = base
        self.added_filters = added_filters
        self.filter_choices = choices
        if pooling:
            self.pool_positions = tuple(sorted({p for p in (num_layers // 3, 2 * num_layers // 3)
                                                if 1 <= p < num_layers}))
        else:
            self.pool_positions = ()

    # ------------------------------------------------------------- versions

    @classmethod
    def from_config(cls, config: dict) -> CnnSpace:
        """The space of a recorded :meth:`config` (any version).

        Raises:
            ConfigError: the config is not a CNN space's.
        """
        if not isinstance(config, dict) or config.get("name") != cls.name:
            raise ConfigError(f"Not a CNN space config. Received: {config!r:.200}")
        version = config.get("version", 1)
        cur = config.get("curriculum") or {}
        return cls(preset=config.get("preset", "v1"), num_layers=config.get("num_layers"),
                   curriculum_start=cur.get("start"), curriculum_step=cur.get("step", 2),
                   curriculum_every=cur.get("every", 1600),
                   curriculum_count=cur.get("count", "samples" if version > 1 else "children"),
                   width_multiplier=config.get("width_multiplier", 1),
                   filters=tuple(config.get("base_filters", NUM_FILTERS)),
                   added_filters=config.get("added_filters", 0), version=version)

    def as_recorded(self, config: dict) -> CnnSpace | None:
        """This space in the format a run recorded, or None if ``config`` is another space.

        A run started by an older version of this space (same preset, depth,
        filters, curriculum) gets that version back, so it resumes with the
        decisions (and curriculum counting) it started with.
        """
        if canonical_json(config) == canonical_json(self.config()):
            return self
        try:
            recorded = CnnSpace.from_config(config)
        except (ConfigError, TypeError, ValueError):
            return None
        if canonical_json(recorded.config()) != canonical_json(config):
            return None
        same = CnnSpace(self.preset, self.num_layers, self.curriculum_start,
                        self.curriculum_step, self.curriculum_every, self.width_multiplier,
                        recorded.curriculum_count, self.base_filters, self.added_filters,
                        recorded.version)
        return recorded if canonical_json(same.config()) == canonical_json(config) else None

    # ------------------------------------------------------------- curriculum

    def depth(self, num_samples: int = 0) -> int:
        """Number of layers in force after ``num_samples`` samples (or
        children, as ``curriculum_count`` says; the search loop passes the
        count this space asks for)."""
        if self.curriculum_start is None:
            return self.num_layers
        stages = max(0, int(num_samples)) // self.curriculum_every
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
                f"{num_children} {self.curriculum_count}; there is no next stage."
            )
        return (max(0, int(num_children)) // self.curriculum_every + 1) * self.curriculum_every

    # -------------------------------------------------------------- decisions

    def _stride_names(self) -> tuple[str, ...]:
        if not self.predict_strides:
            return ()
        return ("stride",) if self.version == 1 else ("stride_height", "stride_width")

    def _layer_decisions(self, i: int) -> list[Decision]:
        sizes = [Categorical(f"layer_{i}/filter_height", FILTER_SIZES),
                 Categorical(f"layer_{i}/filter_width", FILTER_SIZES)]
        strides = [Categorical(f"layer_{i}/{s}", STRIDES) for s in self._stride_names()]
        filters = [Categorical(f"layer_{i}/filters", self.filter_choices)]
        # Version 2 follows §3.1's order (sizes, strides, filters); version 1 had the
        # stride after the filters.
        middle = filters + strides if self.version == 1 else strides + filters
        return sizes + middle + [Anchor(f"layer_{i}/inputs", num_inputs=i)]

    def decisions(self, num_children: int = 0) -> tuple[Decision, ...]:
        """The decisions in force after ``num_children`` samples (see :meth:`depth`)."""
        return self.decisions_of_depth(self.depth(num_children))

    def final_decisions(self) -> tuple[Decision, ...]:
        """The decisions of the full depth; every stage's :meth:`decisions` is a prefix."""
        return self.decisions_of_depth(self.num_layers)

    def decisions_of_depth(self, n: int) -> tuple[Decision, ...]:
        """The decisions of an ``n``-layer child (a curriculum stage's, when ``n`` is one)."""
        out: list[Decision] = []
        for i in range(n):
            out.extend(self._layer_decisions(i))
        return tuple(out)

    def _tokens_per_layer(self, i: int) -> int:
        return 3 + len(self._stride_names()) + i

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
            f"Received: {width} tokens")

    def pools_for_depth(self, n: int) -> tuple[int, ...]:
        """The fixed pool positions of an ``n``-layer child of this space."""
        return tuple(p for p in self.pool_positions if p < n)

    # ----------------------------------------------------------------- tokens

    def tokens_to_spec(self, tokens: Sequence[int]) -> CnnSpec:
        tokens = tuple(tokens)
        n = self._depth_for_width(len(tokens))
        decisions = self.decisions_of_depth(n)
        values = split_tokens(decisions, tokens)
        per_layer = len(self._layer_decisions(0))
        layers = []
        for i in range(n):
            chosen = {d.name.split("/")[1]: d.values[v] if isinstance(d, Categorical) else v
                      for d, v in zip(decisions[i * per_layer:(i + 1) * per_layer],
                                      values[i * per_layer:(i + 1) * per_layer])}
            stride = chosen.get("stride", 1)
            if "stride_height" in chosen:
                stride = (chosen["stride_height"], chosen["stride_width"])
            bits = chosen["inputs"]
            layers.append((chosen["filter_height"], chosen["filter_width"], chosen["filters"],
                           stride, tuple(j for j, b in enumerate(bits) if b)))
        return CnnSpec(layers=tuple(layers), pool_positions=self.pools_for_depth(n))

    def spec_to_tokens(self, spec: CnnSpec) -> tuple[int, ...]:
        if not isinstance(spec, CnnSpec):
            raise InvalidArchitectureError(
                f"Space 'cnn' needs a CnnSpec. Received: {type(spec).__name__}")
        n = spec.num_layers
        if n not in self._depths():
            raise InvalidArchitectureError(
                f"Space 'cnn' has children of depths {list(self._depths())}. "
                f"Received: a spec with {n} layers")
        if spec.pool_positions != self.pools_for_depth(n):
            raise InvalidArchitectureError(
                f"Space 'cnn' ({self.preset}) pools before layers {list(self.pools_for_depth(n))}."
                f" Received: pool_positions={list(spec.pool_positions)}")
        tokens: list[int] = []
        for i, layer in enumerate(spec.layers):
            if layer.filters not in self.filter_choices:
                raise InvalidArchitectureError(
                    f"Layer {i} filters must be one of {self.filter_choices} in this space. "
                    f"Received: filters={layer.filters}")
            if not self.predict_strides and layer.stride != 1:
                raise InvalidArchitectureError(
                    f"Preset {self.preset!r} does not predict strides; layer {i} must have "
                    f"stride 1. Received: stride={layer.stride}")
            if self.version == 1 and not isinstance(layer.stride, int):
                raise InvalidArchitectureError(
                    f"This run's space (version 1) predicts one stride per layer; layer {i} "
                    f"has different strides. Received: stride={layer.stride}")
            chosen = {"filter_height": FILTER_SIZES.index(layer.filter_height),
                      "filter_width": FILTER_SIZES.index(layer.filter_width),
                      "filters": self.filter_choices.index(layer.filters),
                      "stride": STRIDES.index(layer.stride_height),
                      "stride_height": STRIDES.index(layer.stride_height),
                      "stride_width": STRIDES.index(layer.stride_width)}
            for d in self._layer_decisions(i)[:-1]:
                tokens.append(chosen[d.name.split("/")[1]])
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
        rows = ["| layer | filter (h x w) | filters | stride (h x w) | inputs |",
                "|---:|:---:|---:|:---:|:---|"]
        pools = set(spec.pool_positions)
        for i, layer in enumerate(spec.layers):
            if i in pools:
                rows.append(f"| pool | {POOL_SIZE} x {POOL_SIZE} max | | "
                            f"{POOL_SIZE} x {POOL_SIZE} | all |")
            inputs = ", ".join(str(j) for j in layer.inputs) or "image"
            rows.append(f"| {i} | {layer.filter_height} x {layer.filter_width} | "
                        f"{layer.filters} | {layer.stride_height} x {layer.stride_width} | "
                        f"{inputs} |")
        unused = ", ".join(str(j) for j in spec.unused_outputs())
        rows.append("")
        rows.append(f"Classifier (global average pooling, dense softmax) input: layers {unused}.")
        return "\n".join(rows)

    def config(self) -> dict:
        curriculum = None
        if self.curriculum_start is not None:
            curriculum = {"start": self.curriculum_start, "step": self.curriculum_step,
                          "every": self.curriculum_every}
            if self.version > 1:
                curriculum["count"] = self.curriculum_count
        out = {
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
        if self.version > 1:
            out.update(version=self.version, stride_decisions=list(self._stride_names()),
                       base_filters=list(self.base_filters), added_filters=self.added_filters)
        return out
