"""What a search found, in words a user reads: the natural metric of a child
(validation perplexity, validation accuracy, test accuracy) rather than the
reward, failures grouped by kind, and the closing lines of a search.

Plain functions over plain data (trials, summaries); no TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: (metrics key, label, lower is better), in order of preference: language
#: models report perplexity, image classifiers a validation accuracy, a table
#: of published results a test accuracy (it has no other). A child scored
#: against a table of true results also carries ``table_test_accuracy``
#: (truth, shown beside the natural metric; see :func:`truth_line`).
NATURAL_METRICS = (
    ("best_val_perplexity", "valid perplexity", True),
    ("val_perplexity", "valid perplexity", True),
    ("best_val_accuracy", "valid accuracy", False),
    ("val_accuracy", "valid accuracy", False),
    ("test_accuracy", "test accuracy", False),
    ("accuracy", "accuracy", False),
    ("perplexity", "perplexity", True),
    ("naswot", "NASWOT score", False),
    ("synflow", "synflow score", False),
)


def natural_metric(metrics: Mapping[str, Any] | None) -> tuple[str, float, bool] | None:
    """``(label, value, lower_is_better)`` of a child's headline metric, or None."""
    for key, label, lower in NATURAL_METRICS:
        v = (metrics or {}).get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return label, float(v), lower
    return None


def format_metric(label: str, value: float) -> str:
    """``valid perplexity 41.5`` / ``valid accuracy 93.21%``."""
    if "accuracy" in label and 0.0 <= value <= 1.0:
        return f"{label} {100 * value:.2f}%"
    if "accuracy" in label:  # a table that stores percentages already
        return f"{label} {value:.2f}%"
    return f"{label} {value:.4g}"


def format_params(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    n = float(n)
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit} params"
    return f"{int(n)} params"


_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?")


def error_kind(error: str | None) -> str:
    """A short kind for a failed child's error text (numbers removed, so that
    two NaN failures at different steps are one kind)."""
    text = (error or "").strip()
    low = text.lower()
    if "non-finite reward" in low:
        return "non-finite reward"
    if any(k in low for k in ("diverged", "not finite", "loss became", "floatingpointerror")) \
            or re.search(r"\bnan\b", low):
        return "diverged (NaN loss)"
    if "childtimeout" in low or "timed out" in low or "ran past" in low:
        return "timed out"
    if any(k in text for k in ("ResourceExhausted", "MemoryError", "OOM", "out of memory")):
        return "out of memory"
    if "gave up after" in low or ("worker" in low and "died" in low):
        return "worker died"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    line = re.sub(r" \(at [^)]*\)$", "", line)
    return _NUMBER.sub("N", line)[:160]


def failure_kinds(errors: Iterable[str | None]) -> list[tuple[str, int]]:
    """Failed children grouped by :func:`error_kind`, commonest first."""
    counts: dict[str, int] = {}
    for e in errors:
        k = error_kind(e)
        counts[k] = counts.get(k, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def failure_line(kinds: list[tuple[str, int]], total: int) -> str | None:
    """``2 of 10 children failed: 2 diverged (NaN loss)`` (None without failures)."""
    failed = sum(n for _, n in kinds)
    if not failed:
        return None
    parts = ", ".join(f"{n} {k}" for k, n in kinds)
    return f"{failed} of {total} children failed: {parts}"


def truth_line(metrics: Mapping[str, Any] | None) -> str | None:
    """``table test accuracy 93.47% (truth: ...)`` when a child carries the
    accuracy of a table of true results that its reward did not read."""
    v = (metrics or {}).get("table_test_accuracy")
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return None
    if (metrics or {}).get("test_accuracy") == v:
        return None  # the reward is the table look-up itself
    return (f"truth: {format_metric('table test accuracy', float(v))} (looked up after the "
            "search; its reward never read the table)")


def closing_lines(summary: Mapping[str, Any], best_trial: Any, space: Any,
                  failed_errors: list[str | None], run_dir: str,
                  pictures: Iterable[str] = ()) -> list[str]:
    """The lines printed (to stdout) when a search ends.

    Args:
        summary: The loop's summary dict.
        best_trial: The best :class:`nas_tf.store.Trial` (or None).
        space: The search space (its ``describe`` shortens the spec).
        failed_errors: Error texts of the failed children.
        run_dir: The run directory.
        pictures: Paths of the pictures written.
    """
    trained = summary.get("children_trained", 0)
    failed = summary.get("children_failed", 0)
    lines = [f"search {summary.get('status', 'finished')}: {summary.get('stop_reason', '')}",
             f"run directory: {run_dir}",
             f"children: {trained} trained, {failed} failed"]
    fl = failure_line(failure_kinds(failed_errors), trained)  # (trained counts the failed)
    if fl:
        lines.append(fl)
    if best_trial is not None:
        m = natural_metric(best_trial.metrics)
        what = format_metric(m[0], m[1]) if m else "no metric"
        size = format_params((best_trial.metrics or {}).get("params"))
        lines.append(f"best child: #{best_trial.id}  {what}  "
                     f"{'' if size == '-' else size + '  '}reward {float(best_trial.reward):.4g}")
        truth = truth_line(best_trial.metrics)
        if truth:
            lines.append(truth)
        try:
            text = space.describe(space.spec_from_json(best_trial.spec))
        except Exception:  # noqa: BLE001 - a description must not hide the result
            text = json.dumps(best_trial.spec)
        lines.append("architecture:")
        lines += ["  " + ln for ln in text.splitlines() if ln.strip() and ln.strip() != "```"]
    else:
        lines.append("no child finished successfully")
    for p in pictures:
        lines.append(f"picture: {p}")
    lines += ["next:",
              f"  tensorboard --logdir {run_dir}",
              f"  python -m nas_tf.report --run_dir={run_dir}",
              f"  python -m nas_tf.export --run_dir={run_dir} --rank=1 "
              f"--out=exported/{os.path.basename(os.path.normpath(run_dir))}"]
    return lines
