"""Every child of a search as a table: one row per child, for pandas and spreadsheets.

``python -m nas_tf.report --run_dir=R --format=csv`` (or ``json``) writes
these rows to stdout::

    import io, subprocess, pandas as pd
    out = subprocess.run(["python", "-m", "nas_tf.report", "--run_dir=runs/nb201",
                          "--format=csv"], capture_output=True, text=True, check=True).stdout
    children = pd.read_csv(io.StringIO(out))

Plain data (the trial store, read-only); no TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3

from nas_tf.errors import RunDirError
from nas_tf.findings import natural_metric
from nas_tf.rundir import open_store

#: The columns, in order. ``metric`` / ``metric_value``: the child's natural
#: metric (validation accuracy, perplexity, ...); ``table_test_accuracy``: the
#: truth of a space with a table of true results (empty elsewhere).
COLUMNS = ("id", "spec", "status", "reward", "metric", "metric_value", "params", "seconds",
           "table_test_accuracy", "error")


def child_rows(run_dir: str) -> list[dict]:
    """One dict per child of the run's store (columns :data:`COLUMNS`), by id.

    Raises:
        RunDirError: not a run directory, or a store that cannot be read.
    """
    store = open_store(run_dir)
    try:
        trials = store.trials()
    except sqlite3.DatabaseError as e:
        raise RunDirError(f"{run_dir}: the trial store cannot be read ({e}).") from None
    finally:
        store.close()
    rows = []
    for t in sorted(trials, key=lambda t: t.id):
        metrics = t.metrics or {}
        natural = natural_metric(metrics)
        seconds = metrics.get("train_seconds", metrics.get("proxy_seconds", t.duration))
        rows.append({
            "id": t.id,
            "spec": json.dumps(t.spec, separators=(",", ":"), sort_keys=True),
            "status": t.status,
            "reward": t.reward if t.status == "done" else None,  # a failed row holds 0.0
            "metric": natural[0] if natural else None,
            "metric_value": natural[1] if natural else None,
            "params": metrics.get("params"),
            "seconds": seconds,
            "table_test_accuracy": metrics.get("table_test_accuracy"),
            "error": (t.error or "").splitlines()[0][:200] if t.error else None,
        })
    return rows


def format_rows(rows: list[dict], fmt: str) -> str:
    """The rows as ``csv`` (a header line, then one line per child) or ``json``
    (a list of objects)."""
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return buf.getvalue()
