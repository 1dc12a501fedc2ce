"""The NAS-Bench-201 cell space: its spec and its six decisions (no TensorFlow).

NAS-Bench-201 (Dong & Yang 2020, arXiv:2001.00326) fixes a macro skeleton
and searches one cell: a DAG over 4 nodes whose 6 edges (j -> i, j < i) each
carry one of five operations. Every one of its 15,625 cells was trained, so
a search's "training" is a look-up in a table of published accuracies,
which measures a search algorithm on real results in seconds.

The table is a CSV with columns ``arch,test_accuracy``; ``arch`` is the
benchmark's own string, e.g.
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from nas_tf.errors import InvalidArchitectureError
from nas_tf.space import Categorical, SearchSpace, split_tokens

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
EDGES = tuple((i, j) for i in range(1, NUM_NODES) for j in range(i))  # (to, from)


@dataclasses.dataclass(frozen=True)
class Nb201Spec:
    """One NAS-Bench-201 cell: the operation on each of its 6 edges.

    Args:
        ops: Six operation names, in the benchmark's edge order
            (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2).

    Raises:
        InvalidArchitectureError: not six ops, or an unknown op.
    """

    ops: tuple[str, ...]

    def __post_init__(self):
        ops = tuple(self.ops)
        object.__setattr__(self, "ops", ops)
        if len(ops) != len(EDGES):
            raise InvalidArchitectureError(
                f"A NAS-Bench-201 cell has {len(EDGES)} edges. Received: {len(ops)} ops {ops}")
        for op in ops:
            if op not in OPS:
                raise InvalidArchitectureError(
                    f"Unknown NAS-Bench-201 op; use one of {', '.join(OPS)}. Received: op={op!r}")

    def to_json(self) -> dict:
        return {"ops": list(self.ops)}

    @classmethod
    def from_json(cls, obj: Any) -> "Nb201Spec":
        if not isinstance(obj, dict) or "ops" not in obj or not isinstance(obj["ops"], list):
            raise InvalidArchitectureError(
                f'A NAS-Bench-201 spec is {{"ops": [six op names]}}. Received: {obj!r:.200}')
        return cls(tuple(obj["ops"]))

    def to_arch_string(self) -> str:
        """The benchmark's own string for this cell."""
        parts, k = [], 0
        for i in range(1, NUM_NODES):
            node = []
            for j in range(i):
                node.append(f"{self.ops[k]}~{j}")
                k += 1
            parts.append("|" + "|".join(node) + "|")
        return "+".join(parts)

    @classmethod
    def from_arch_string(cls, arch: str) -> "Nb201Spec":
        """Parses the benchmark's string.

        Raises:
            InvalidArchitectureError: the string is malformed.
        """
        nodes = arch.strip().split("+")
        if len(nodes) != NUM_NODES - 1:
            raise InvalidArchitectureError(
                f"A NAS-Bench-201 string has {NUM_NODES - 1} nodes separated by '+'. "
                f"Received: {arch!r}")
        ops = []
        for i, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise InvalidArchitectureError(
                    f"Node {i} must be written |op~j|...|. Received: {node!r}")
            edges = node[1:-1].split("|")
            if len(edges) != i:
                raise InvalidArchitectureError(
                    f"Node {i} must have {i} incoming edges. Received: {node!r} in {arch!r}")
            for j, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if sep != "~" or src != str(j):
                    raise InvalidArchitectureError(
                        f"Edge {j} of node {i} must be written op~{j}. "
                        f"Received: {edge!r} in {arch!r}")
                ops.append(op)
        return cls(tuple(ops))


class Nb201Space(SearchSpace):
    """The NAS-Bench-201 space: six categorical decisions, one per edge."""

    name = "nb201"

    def __init__(self):
        self._decisions = tuple(Categorical(f"edge_{i}_{j}", OPS) for i, j in EDGES)

    def decisions(self, num_children: int = 0):
        return self._decisions

    def tokens_to_spec(self, tokens: Sequence[int]) -> Nb201Spec:
        parts = split_tokens(self._decisions, tokens)
        return Nb201Spec(tuple(OPS[t] for t in parts))

    def spec_to_tokens(self, spec: Nb201Spec):
        return tuple(OPS.index(op) for op in spec.ops)

    def spec_from_json(self, obj):
        return Nb201Spec.from_json(obj)

    def describe(self, spec: Nb201Spec) -> str:
        rows = ["| edge | op |", "|---|---|"]
        rows += [f"| {j} -> {i} | {op} |" for (i, j), op in zip(EDGES, spec.ops)]
        return f"`{spec.to_arch_string()}`\n\n" + "\n".join(rows)

    def hparams(self, spec: Nb201Spec) -> dict:
        return {f"edge_{i}_{j}": op for (i, j), op in zip(EDGES, spec.ops)}
