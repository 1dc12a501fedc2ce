"""The NAS-Bench-201 table: reading it, and the look-up evaluator (no TensorFlow).

The table is a CSV with columns ``arch,test_accuracy`` holding the 200-epoch
CIFAR-10 test accuracy of every one of the 15,625 cells (mean over seeds).
A search whose reward is the table measures a search algorithm in seconds;
a search on real images uses the table only as truth (see
:mod:`cnn_space.nb201.estimators`).
"""

from __future__ import annotations

import csv
import itertools
import math
import os

from cnn_space.nb201.space import EDGES, OPS, Nb201Spec
from nas_tf.errors import DataError, InvalidArchitectureError
from nas_tf.evaluator import EvalResult, Evaluator


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
        return EvalResult(reward=acc, metrics={"test_accuracy": acc, "table_test_accuracy": acc})

    def input_files(self) -> dict[str, str]:
        """The files whose fingerprints a run directory records."""
        return {"nb201_table": self.table_path}

    def optimum(self) -> float:
        return max(self.table.values())
