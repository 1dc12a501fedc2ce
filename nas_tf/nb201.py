"""The NAS-Bench-201 cell space and its table look-up evaluator.

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

import csv
import dataclasses
import math
import os
from typing import Any, Sequence

from nas_tf.errors import DataError, InvalidArchitectureError
from nas_tf.evaluator import EvalResult, Evaluator
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


def load_table(path: str) -> dict[str, float]:
    """Reads a NAS-Bench-201 CSV (``arch,test_accuracy``) into {arch: accuracy}.

    Raises:
        DataError: the file is missing, has other columns, an unparseable
            architecture string, or a non-numeric accuracy.
    """
    fix = ("--nb201_table must be a CSV with header 'arch,test_accuracy' "
           "(e.g. ../shared/data/nb201/cifar10.csv)")
    if not path:
        raise DataError(f"No NAS-Bench-201 table given. {fix}.")
    if not os.path.isfile(path):
        raise DataError(f"NAS-Bench-201 table not found: {path}. {fix}.")
    table: dict[str, float] = {}
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["arch", "test_accuracy"]:
                raise DataError(f"{path}: wrong columns {header}. {fix}.")
            for lineno, row in enumerate(reader, start=2):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 2:
                    raise DataError(f"{path}:{lineno}: expected 2 columns, got {row}. {fix}.")
                try:
                    spec = Nb201Spec.from_arch_string(row[0])
                except InvalidArchitectureError as e:
                    raise DataError(
                        f"{path}:{lineno}: bad architecture string: {e}. {fix}.") from None
                try:
                    acc = float(row[1])
                except ValueError:
                    raise DataError(
                        f"{path}:{lineno}: test_accuracy is not a number. {fix}. "
                        f"Received: {row[1]!r}") from None
                if not math.isfinite(acc):
                    raise DataError(
                        f"{path}:{lineno}: test_accuracy is not finite. {fix}. "
                        f"Received: {row[1]!r}")
                arch = spec.to_arch_string()
                if arch in table:
                    raise DataError(
                        f"{path}:{lineno}: the cell {arch} is listed twice (which accuracy "
                        f"holds?). {fix}, one row per cell.")
                table[arch] = acc
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text CSV file. {fix}.") from None
    except OSError as e:  # unreadable: a read error, not the run directory's
        raise DataError(f"cannot read the NAS-Bench-201 table {path} ({e.strerror or e}): fix "
                        "its permissions, or pass another --nb201_table.") from None
    if not table:
        raise DataError(f"{path} has no rows. {fix}.")
    return table


def check_table_covers(table: dict[str, float], path: str) -> None:
    """Raises DataError unless the table has a row for every cell of the space.

    A search proposes any of the 5^6 = 15,625 cells; a missing one could only fail.
    """
    import itertools

    total = len(OPS) ** len(EDGES)
    if len(table) < total:
        missing = next(a for a in (Nb201Spec(ops).to_arch_string() for ops in
                                   itertools.product(OPS, repeat=len(EDGES))) if a not in table)
        raise DataError(
            f"{path} has {len(table)} cells but the NAS-Bench-201 space has {total} (e.g. "
            f"{missing} is missing); a search would propose cells it cannot score. Pass the "
            "complete table (e.g. ../shared/data/nb201/cifar10.csv).")


class Nb201TableEvaluator(Evaluator):
    """Looks a cell up in a NAS-Bench-201 table; the reward is its accuracy.

    Args:
        table_path: The CSV (see :func:`load_table`). It is read once, lazily,
            so the evaluator pickles as a path.
    """

    cheap_children = True  # a lookup: no log directory, no HParams run per child

    def __init__(self, table_path: str):
        self.table_path = table_path
        self._table: dict[str, float] | None = None

    def __getstate__(self):
        return {"table_path": self.table_path, "_table": None}

    @property
    def table(self) -> dict[str, float]:
        if self._table is None:
            self._table = load_table(self.table_path)
        return self._table

    def evaluate(self, spec: Nb201Spec, context) -> EvalResult:
        arch = spec.to_arch_string()
        if arch not in self.table:
            raise DataError(f"{arch} is not in the table {self.table_path}")
        acc = self.table[arch]
        return EvalResult(reward=acc, metrics={"test_accuracy": acc})

    def optimum(self) -> float:
        return max(self.table.values())
