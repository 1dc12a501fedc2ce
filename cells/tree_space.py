"""The recurrent-cell search space of Zoph & Le 2017 (arXiv:1611.01578, §3.4, Fig. 5).

A recurrent cell is a full binary tree over ``base`` leaves (``base`` 2 or 8;
8 is the paper's main setting, §4.2). Nodes are numbered level by level,
leaves first: with base 8 the leaves are nodes 0–7, their parents 8–11, then
12–13, and node 14 is the root; with base 2 the leaves are 0 and 1 and the
root is 2 (the paper's "tree index").

* Leaf ``i`` computes ``act_i(comb_i(W_i x_t, U_i h_{t-1} + b_i))``.
* Inner node ``k`` computes ``act_k(comb_k(left, right))`` of its two children.
* The root's output is ``h_t``.

Each node has two decisions: a combination in {add, elem_mult} and an
activation in {identity, tanh, sigmoid, relu}. The memory state ``c`` adds
four decisions: two "cell inject" decisions (a combination and an activation)
that merge ``c_{t-1}`` into the output of one node, and two "cell index"
decisions: ``inject_node``, the node whose (activated) output ``o`` is
replaced by ``inject_act(inject_comb(o, c_{t-1}))``, and ``cell_node``, the
node whose output *before its activation* becomes ``c_t``. Both indices range
over all nodes, which gives the paper's count of about 6 x 10^16 base-8
cells (§4.2): 8^15 node choices x 8 inject choices x 15^2 indices.

Token layout (flat, one token per categorical decision): for each node in
number order its combination then its activation, then the inject
combination, the inject activation, ``inject_node`` and ``cell_node``.

This module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Sequence
from typing import Any

from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.space import Categorical, Decision, SearchSpace, split_tokens

#: Leaf counts the space supports (§3.4: base 2 in Fig. 5, base 8 in §4.2).
BASES = (2, 8)
#: Ways a node merges its two inputs.
COMBINATIONS = ("add", "elem_mult")
#: Activations a node applies to its merged inputs.
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu")

_JSON_KEYS = (
    "base",
    "combinations",
    "activations",
    "inject_combination",
    "inject_activation",
    "inject_node",
    "cell_node",
)


def num_nodes(base: int) -> int:
    """Number of nodes of the full binary tree over ``base`` leaves (2·base − 1)."""
    return 2 * base - 1


def tree_levels(base: int) -> list[list[int]]:
    """Node numbers per level, leaves first: base 8 -> [[0..7], [8..11], [12, 13], [14]]."""
    levels, start, width = [], 0, base
    while width >= 1:
        levels.append(list(range(start, start + width)))
        start += width
        width //= 2
    return levels


def node_children(base: int) -> dict[int, tuple[int, int]]:
    """Maps each inner node to its (left, right) children."""
    levels = tree_levels(base)
    children = {}
    for below, level in zip(levels, levels[1:]):
        for j, node in enumerate(level):
            children[node] = (below[2 * j], below[2 * j + 1])
    return children


def _check_base(base: Any, error=InvalidArchitectureError) -> int:
    if isinstance(base, bool) or not isinstance(base, numbers.Integral) or base not in BASES:
        raise error(
            f"The cell base (number of tree leaves) must be one of {list(BASES)}. "
            f"Received: base={base!r}"
        )
    return int(base)


def _check_name(field: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArchitectureError(
            f"{field} must be one of {list(allowed)}. Received: {field}={value!r}"
        )
    return value


def _check_index(field: str, value: Any, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < n:
        raise InvalidArchitectureError(
            f"{field} must be a node of the tree, an integer in [0, {n}). "
            f"Received: {field}={value!r}"
        )
    return int(value)


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """One recurrent cell of the tree space (paper §3.4, Fig. 5).

    Args:
        base: Number of leaves, one of :data:`BASES`.
        combinations: One of :data:`COMBINATIONS` per node (``2*base - 1``
            entries, node order: leaves first, root last).
        activations: One of :data:`ACTIVATIONS` per node.
        inject_combination: How ``c_{t-1}`` is merged into ``inject_node``'s output.
        inject_activation: Activation applied after that merge.
        inject_node: Node whose output receives ``c_{t-1}``.
        cell_node: Node whose output before its activation becomes ``c_t``.

    Raises:
        InvalidArchitectureError: a field has a value outside the space (the
            message names the field and the value).
    """

    base: int
    combinations: tuple[str, ...]
    activations: tuple[str, ...]
    inject_combination: str
    inject_activation: str
    inject_node: int
    cell_node: int

    def __post_init__(self):
        base = _check_base(self.base)
        n = num_nodes(base)
        object.__setattr__(self, "base", base)
        for field, allowed in (("combinations", COMBINATIONS), ("activations", ACTIVATIONS)):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise InvalidArchitectureError(
                    f"{field} must be a list with one entry per node ({n} for base {base}). "
                    f"Received: {field}={value!r}"
                )
            value = tuple(value)
            if len(value) != n:
                raise InvalidArchitectureError(
                    f"{field} needs one entry per node, {n} for base {base}. "
                    f"Received: {len(value)} entries"
                )
            for i, v in enumerate(value):
                _check_name(f"{field}[{i}]", v, allowed)
            object.__setattr__(self, field, value)
        _check_name("inject_combination", self.inject_combination, COMBINATIONS)
        _check_name("inject_activation", self.inject_activation, ACTIVATIONS)
        object.__setattr__(self, "inject_node", _check_index("inject_node", self.inject_node, n))
        object.__setattr__(self, "cell_node", _check_index("cell_node", self.cell_node, n))

    @property
    def num_nodes(self) -> int:
        return num_nodes(self.base)

    @property
    def root(self) -> int:
        return self.num_nodes - 1

    def to_json(self) -> dict:
        """The JSON form (a dict of JSON scalars and lists)."""
        return {
            "base": self.base,
            "combinations": list(self.combinations),
            "activations": list(self.activations),
            "inject_combination": self.inject_combination,
            "inject_activation": self.inject_activation,
            "inject_node": self.inject_node,
            "cell_node": self.cell_node,
        }

    @classmethod
    def from_json(cls, obj: Any) -> CellSpec:
        """Rebuilds a spec from :meth:`to_json`'s dict (or its JSON text).

        Raises:
            InvalidArchitectureError: ``obj`` is not the JSON form of a cell.
        """
        if isinstance(obj, CellSpec):
            return obj
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as e:
                raise InvalidArchitectureError(
                    f"A cell spec must be JSON text or a dict. Received: {obj[:80]!r} ({e})"
                ) from None
        if not isinstance(obj, dict):
            raise InvalidArchitectureError(
                f"A cell spec must be a dict with keys {list(_JSON_KEYS)}. Received: {obj!r}"
            )
        missing = [k for k in _JSON_KEYS if k not in obj]
        extra = sorted(set(obj) - set(_JSON_KEYS))
        if missing or extra:
            raise InvalidArchitectureError(
                f"A cell spec needs exactly the keys {list(_JSON_KEYS)}. "
                f"Received: missing={missing}, unknown={extra}"
            )
        return cls(**{k: obj[k] for k in _JSON_KEYS})


def nas_cell_spec() -> CellSpec:
    """The base-8 cell the paper found on Penn Treebank (Fig. 8, ``NASCell``).

    ``cells.TreeCell(nas_cell_spec(), units)`` computes the same function as
    ``cells.NASCell(units, use_bias=...)`` given the same weights (with the
    states in the order [h, c] instead of NASCell's [c, m]).
    """
    return CellSpec(
        base=8,
        # Nodes 0-7 are the leaves, 8-11 the first inner level, 12-13 the second, 14 the root.
        combinations=tuple(
            "add add add elem_mult add add add add "
            "elem_mult add elem_mult add "
            "elem_mult add elem_mult".split()
        ),
        activations=tuple(
            "sigmoid relu sigmoid relu tanh sigmoid tanh sigmoid "
            "tanh tanh tanh sigmoid "
            "identity tanh tanh".split()
        ),
        inject_combination="add",
        inject_activation="tanh",
        inject_node=8,
        cell_node=12,
    )


class TreeSpace(SearchSpace):
    """The recurrent-cell search space (paper §3.4), as categorical decisions.

    Args:
        base: Number of tree leaves, 2 or 8 (the paper's Penn Treebank search
            uses 8, §4.2).

    Raises:
        ConfigError: ``base`` is not supported.

    Example:

    >>> space = TreeSpace(base=2)
    >>> len(space.decisions())
    10
    >>> spec = space.tokens_to_spec([0, 1, 1, 3, 1, 2, 0, 3, 0, 1])
    >>> space.spec_to_tokens(spec)
    (0, 1, 1, 3, 1, 2, 0, 3, 0, 1)
    """

    name = "rnn"

    def __init__(self, base: int = 8):
        self.base = _check_base(base, ConfigError)
        n = num_nodes(self.base)
        decisions: list[Decision] = []
        for i in range(n):
            decisions.append(Categorical(f"node_{i}/combination", COMBINATIONS))
            decisions.append(Categorical(f"node_{i}/activation", ACTIVATIONS))
        decisions.append(Categorical("inject/combination", COMBINATIONS))
        decisions.append(Categorical("inject/activation", ACTIVATIONS))
        decisions.append(Categorical("inject_node", tuple(range(n))))
        decisions.append(Categorical("cell_node", tuple(range(n))))
        self._decisions = tuple(decisions)

    def decisions(self, num_children: int = 0) -> tuple[Decision, ...]:
        return self._decisions

    def tokens_to_spec(self, tokens: Sequence[int]) -> CellSpec:
        values = split_tokens(self._decisions, tokens)
        n = num_nodes(self.base)
        return CellSpec(
            base=self.base,
            combinations=tuple(COMBINATIONS[values[2 * i]] for i in range(n)),
            activations=tuple(ACTIVATIONS[values[2 * i + 1]] for i in range(n)),
            inject_combination=COMBINATIONS[values[2 * n]],
            inject_activation=ACTIVATIONS[values[2 * n + 1]],
            inject_node=values[2 * n + 2],
            cell_node=values[2 * n + 3],
        )

    def spec_to_tokens(self, spec: CellSpec) -> tuple[int, ...]:
        if not isinstance(spec, CellSpec):
            raise InvalidArchitectureError(f"Expected a CellSpec. Received: {type(spec).__name__}")
        if spec.base != self.base:
            raise InvalidArchitectureError(
                f"The spec has base {spec.base} but this space has base {self.base}. "
                f"Received: base={spec.base}"
            )
        tokens = []
        for comb, act in zip(spec.combinations, spec.activations):
            tokens += [COMBINATIONS.index(comb), ACTIVATIONS.index(act)]
        tokens += [
            COMBINATIONS.index(spec.inject_combination),
            ACTIVATIONS.index(spec.inject_activation),
            spec.inject_node,
            spec.cell_node,
        ]
        return tuple(tokens)

    def spec_from_json(self, obj: Any) -> CellSpec:
        spec = CellSpec.from_json(obj)
        if spec.base != self.base:
            raise InvalidArchitectureError(
                f"The spec has base {spec.base} but this space has base {self.base}. "
                f"Received: base={spec.base}"
            )
        return spec

    def describe(self, spec: CellSpec) -> str:
        return describe_cell(spec)

    def draw(self, spec: CellSpec):
        """The cell as a graph, like the paper's Figure 5 (a matplotlib figure)."""
        from cells.draw import draw_cell

        return draw_cell(spec)

    def config(self) -> dict:
        return {"name": self.name, "base": self.base}

    def __repr__(self) -> str:
        return f"TreeSpace(base={self.base})"


def _apply(comb: str, a: str, b: str) -> str:
    return f"{a} + {b}" if comb == "add" else f"{a} * {b}"


def _act(act: str, inner: str) -> str:
    return f"({inner})" if act == "identity" else f"{act}({inner})"


def describe_cell(spec: CellSpec) -> str:
    """The cell written as equations, one line per node (markdown code block)."""
    children = node_children(spec.base)
    lines = []
    pre = {}
    for k in range(spec.num_nodes):
        if k < spec.base:
            pre[k] = _apply(spec.combinations[k], f"W{k}·x_t", f"(U{k}·h_{{t-1}} + b{k})")
        else:
            left, right = children[k]
            pre[k] = _apply(spec.combinations[k], f"n{left}", f"n{right}")
        lines.append(f"n{k} = {_act(spec.activations[k], pre[k])}")
        if k == spec.inject_node:
            merged = _apply(spec.inject_combination, f"n{k}", "c_{t-1}")
            lines.append(f"n{k} <- {_act(spec.inject_activation, merged)}   # cell inject")
    lines.append(f"c_t = {pre[spec.cell_node]}   # node {spec.cell_node} before its activation")
    lines.append(f"h_t = n{spec.root}")
    return "```\n" + "\n".join(lines) + "\n```"
