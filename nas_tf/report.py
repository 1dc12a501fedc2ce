r"""Reports on a search: the top children, the failures, the reward curve.

  python -m nas_tf.report --run_dir=runs/x [--top_k=10]

prints a table of the top-k children (rank, reward, metric, params, time,
spec), the number of done / failed / pending children with the commonest
errors, and writes into the run directory:

* ``reward_curve.png`` — the reward of every child in the order they
  finished, the best so far and a moving mean (drawn with numpy, no
  matplotlib);
* ``report.md`` — the same table as markdown;
* ``report/`` — TensorBoard events with the curve as an image and the
  table as text, so ``tensorboard --logdir RUN_DIR`` shows them.

The trial store is opened read-only, so a report can be made while the
search is still running (or after it was resumed). Zoph & Le 2017
(arXiv:1611.01578) select the best children of a search this way before
retraining them (§4.1, §4.2); see :mod:`nas_tf.export`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas_tf.errors import ConfigError, RunDirError
from nas_tf.rundir import STORE_FILE, SUMMARY_FILE, open_store, read_summary  # noqa: F401
from nas_tf.store import DONE, FAILED, PENDING, RUNNING, Trial

CURVE_FILE = "reward_curve.png"
REPORT_FILE = "report.md"
REPORT_TB_DIR = "report"

#: Metric keys shown as "the space's metric", in order of preference.
METRIC_KEYS = ("val_accuracy", "val_perplexity", "test_accuracy", "accuracy", "perplexity")


# ----------------------------------------------------------------------------
# Reading a run directory.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the top-k table."""

    rank: int
    child_id: int
    reward: float
    metric: str | None
    metric_value: float | None
    params: int | None
    seconds: float | None
    spec: dict


@dataclasses.dataclass
class Report:
    """What :func:`make_report` gathers (all plain data).

    Attributes:
        run_dir: The run directory.
        space: The space's config (as recorded in the run).
        summary: ``summary.json`` (empty if not written yet).
        counts: Children per status (pending, running, done, failed).
        errors: The commonest errors of failed children, ``(line, count)``.
        top: The top-k rows, best first.
        order: Rewards of all finished children in finishing order (failed
            ones as None); ``rewards`` leaves the failed ones out.
        png_path: Where :func:`write_report` wrote the curve.
    """

    run_dir: str
    space: dict
    summary: dict
    counts: dict
    errors: list
    top: list
    order: list
    png_path: str | None = None

    @property
    def rewards(self) -> list[float]:
        return [r for r in self.order if r is not None]


def metric_of(metrics: dict) -> tuple[str | None, float | None]:
    """The space's headline metric in a child's metrics (name, value)."""
    for k in METRIC_KEYS:
        v = metrics.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return k, float(v)
    return None, None


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    if not lines:
        return "(no message)"
    # A traceback's last line names the error; otherwise the first line.
    last = lines[-1]
    return last if lines[0].startswith("Traceback") else lines[0]


def _finish_key(t: Trial):
    return (t.finished if t.finished is not None else math.inf, t.id)


def make_report(run_dir: str | os.PathLike, top_k: int = 10) -> Report:
    """Gathers the report of a run (read-only).

    Args:
        run_dir: The run directory.
        top_k: Number of children in the table.

    Returns:
        A :class:`Report`.

    Raises:
        ConfigError: ``top_k`` < 1.
        RunDirError: not a nas_tf run directory.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1. Received: top_k={top_k!r}")
    store = open_store(run_dir)
    try:
        space = store.get_meta("space") or {}
        counts = store.counts()
        trials = store.trials()
        best = store.best(top_k)
    except sqlite3.DatabaseError as e:
        raise RunDirError(f"{run_dir}: the trial store cannot be read ({e}).") from None
    finally:
        store.close()
    summary = read_summary(run_dir)
    errors: dict[str, int] = {}
    for t in trials:
        if t.status == FAILED:
            line = _first_line(t.error or "")
            errors[line] = errors.get(line, 0) + 1
    top = []
    for rank, t in enumerate(best, start=1):
        name, value = metric_of(t.metrics)
        params = t.metrics.get("params")
        seconds = t.metrics.get("train_seconds", t.duration)
        top.append(Row(rank=rank, child_id=t.id, reward=float(t.reward), metric=name,
                       metric_value=value, params=None if params is None else int(params),
                       seconds=None if seconds is None else float(seconds), spec=t.spec))
    finished = sorted((t for t in trials if t.status in (DONE, FAILED)), key=_finish_key)
    order = [float(t.reward) if t.status == DONE else None for t in finished]
    return Report(run_dir=str(run_dir), space=space, summary=summary, counts=counts,
                  errors=sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))[:5],
                  top=top, order=order)


def _fmt(v: Any, digits: int = 5) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def format_report(report: Report, markdown: bool = False, spec_width: int = 80) -> str:
    """The report as text (a fixed-width table) or markdown."""
    c = report.counts
    pending = c.get(PENDING, 0) + c.get(RUNNING, 0)
    status = report.summary.get("status", "unknown")
    lines = [
        f"run: {report.run_dir}  space: {json.dumps(report.space, sort_keys=True)}",
        (f"status: {status}  done: {c.get(DONE, 0)}  failed: {c.get(FAILED, 0)}  "
         f"pending: {pending}"),
    ]
    if report.errors:
        lines.append("commonest errors:")
        for err, n in report.errors:
            lines.append(f"  {n} x {err[:160]}")
    header = ["rank", "child", "reward", "metric", "params", "time_s", "spec"]
    rows = []
    for r in report.top:
        metric = "-" if r.metric is None else f"{r.metric}={_fmt(r.metric_value)}"
        spec = json.dumps(r.spec, separators=(",", ":"), sort_keys=True)
        if not markdown and len(spec) > spec_width:
            spec = spec[: spec_width - 3] + "..."
        rows.append([str(r.rank), str(r.child_id), _fmt(r.reward, 6), metric, _fmt(r.params),
                     _fmt(r.seconds, 3), spec])
    lines.append("")
    if not rows:
        lines.append("no finished children yet")
    elif markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in rows:
            row[-1] = f"`{row[-1]}`"
            lines.append("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        for row in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if report.png_path:
        lines.append("")
        lines.append(f"reward curve: {report.png_path}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# The reward curve, drawn with numpy.
# ----------------------------------------------------------------------------

# A 3x5 pixel font for axis labels (digits and a few signs).
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
    "e": "000111111100111", "+": "000010111010000", " ": "000000000000000",
}

_BG = (255, 255, 255)
_AXIS = (60, 60, 60)
_GRID = (225, 225, 225)
_POINT = (120, 160, 220)
_BEST = (200, 40, 40)
_MEAN = (30, 120, 30)
_FAIL = (250, 150, 0)


def _text(img: np.ndarray, x: int, y: int, text: str, color, scale: int = 2) -> None:
    for k, ch in enumerate(text):
        bits = _GLYPHS.get(ch, _GLYPHS[" "])
        for i, b in enumerate(bits):
            if b == "1":
                r, c = divmod(i, 3)
                y0, x0 = y + r * scale, x + (k * 4 + c) * scale
                img[max(0, y0): y0 + scale, max(0, x0): x0 + scale] = color


def _line(img: np.ndarray, x0, y0, x1, y1, color, width: int = 1) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.round(np.linspace(x0, x1, n)).astype(int)
    ys = np.round(np.linspace(y0, y1, n)).astype(int)
    h, w = img.shape[:2]
    for d in range(-(width // 2), width - width // 2):
        ok = (ys + d >= 0) & (ys + d < h) & (xs >= 0) & (xs < w)
        img[ys[ok] + d, xs[ok]] = color


def _label(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.2e}"


def reward_curve_image(order: Sequence[float | None], width: int = 640,
                       height: int = 360, window: int | None = None) -> np.ndarray:
    """Draws the rewards of a search as a uint8 RGB image ``(height, width, 3)``.

    Blue dots: each child's reward, in the order children finished; red
    line: the best reward so far; green line: the moving mean over
    ``window`` children (default: a tenth of the children, at least 5);
    orange ticks at the bottom: failed children.

    Args:
        order: Rewards in finishing order; None marks a failed child.
        width, height: Image size in pixels (at least 120 x 80).
        window: Moving-mean window.

    Returns:
        A numpy uint8 array.

    Raises:
        ConfigError: the image is too small.
    """
    if width < 120 or height < 80:
        raise ConfigError(f"The curve needs at least 120 x 80 pixels. Received: {width}x{height}")
    img = np.empty((height, width, 3), np.uint8)
    img[:] = _BG
    left, right, top, bottom = 70, 12, 12, 30
    pw, ph = width - left - right, height - top - bottom
    n = len(order)
    values = np.array([np.nan if r is None else float(r) for r in order], dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
    else:
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad

    def px(i):
        return left + (i * (pw - 1) / max(n - 1, 1) if n > 1 else pw / 2)

    def py(v):
        return top + (hi - v) / (hi - lo) * (ph - 1)

    for k in range(5):  # horizontal grid and labels
        v = lo + (hi - lo) * k / 4
        y = round(py(v))
        _line(img, left, y, left + pw - 1, y, _GRID)
        _text(img, 4, y - 5, _label(v), _AXIS)
    _line(img, left, top, left, top + ph - 1, _AXIS)
    _line(img, left, top + ph - 1, left + pw - 1, top + ph - 1, _AXIS)
    _text(img, left, height - 14, "0", _AXIS)
    end = str(max(n - 1, 0))
    _text(img, left + pw - len(end) * 8, height - 14, end, _AXIS)
    if n == 0:
        return img
    for i, v in enumerate(values):
        x = round(px(i))
        if np.isfinite(v):
            y = round(py(v))
            img[max(0, y - 1): y + 2, max(0, x - 1): x + 2] = _POINT
        else:
            _line(img, x, top + ph - 6, x, top + ph - 2, _FAIL)
    # Best so far and moving mean over the done children.
    idx = np.flatnonzero(np.isfinite(values))
    if idx.size:
        best = np.maximum.accumulate(values[idx])
        win = window or max(5, idx.size // 10)
        csum = np.cumsum(np.insert(values[idx], 0, 0.0))
        lo_i = np.maximum(0, np.arange(idx.size) - win + 1)
        mean = (csum[1:] - csum[lo_i]) / (np.arange(idx.size) + 1 - lo_i)
        for series, color in ((mean, _MEAN), (best, _BEST)):
            pts = [(px(i), py(v)) for i, v in zip(idx, series, strict=True)]
            if len(pts) == 1:
                pts = pts * 2
            for (x0, y0), (x1, y1) in itertools.pairwise(pts):
                _line(img, x0, y0, x1, y1, color, width=2)
    return img


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image (with ``tf.io.encode_png``)."""
    import tensorflow as tf

    return tf.io.encode_png(np.asarray(image, np.uint8)).numpy()


# ----------------------------------------------------------------------------
# Writing a report.
# ----------------------------------------------------------------------------


def write_report(run_dir: str | os.PathLike, top_k: int = 10, tensorboard: bool = True) -> Report:
    """Makes the report of a run and writes ``reward_curve.png``, ``report.md``
    and TensorBoard events under ``report/`` into the run directory.

    Args:
        run_dir: The run directory (may belong to a running search).
        top_k: Rows of the table.
        tensorboard: Also write the image and the table for TensorBoard.

    Returns:
        The :class:`Report` (with ``png_path`` set).

    Raises:
        ConfigError, RunDirError: see :func:`make_report`.

    Example:

    >>> report = write_report("runs/x", top_k=5)  # doctest: +SKIP
    >>> print(format_report(report))  # doctest: +SKIP
    """
    report = make_report(run_dir, top_k)
    if not os.access(run_dir, os.W_OK):  # a finished run on a read-only mount: read only
        return report
    image = reward_curve_image(report.order)
    png = Path(run_dir) / CURVE_FILE
    tmp = png.with_name(png.name + ".tmp")
    tmp.write_bytes(encode_png(image))
    os.replace(tmp, png)
    report.png_path = str(png)
    text_md = format_report(report, markdown=True)
    (Path(run_dir) / REPORT_FILE).write_text(text_md + "\n")
    if tensorboard:
        from nas_tf.logger import TensorBoardLogger

        tb = TensorBoardLogger(str(Path(run_dir) / REPORT_TB_DIR), hparams=False)
        step = len(report.order)
        tb.image(step, "report/reward_curve", image)
        tb.text(step, "report/top_children", text_md)
        tb.close()
    return report


# ----------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from absl import flags

    fv = flags.FlagValues()
    flags.DEFINE_string("run_dir", None, "Run directory of a search.", flag_values=fv)
    flags.DEFINE_integer("top_k", 10, "Rows of the table of best children.", flag_values=fv)
    flags.DEFINE_boolean("tensorboard", True, "Also write the curve and table for TensorBoard.",
                         flag_values=fv)
    argv = list(sys.argv if argv is None else argv)
    try:
        rest = fv(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from nas_tf.errors import NasTfError

    if len(rest) > 1:
        print(f"error: unexpected arguments {rest[1:]}; all options are --flags.", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if not fv.run_dir:
            raise ConfigError("--run_dir is required (the directory of a search). "
                              "Received: run_dir=None")
        report = write_report(fv.run_dir, fv.top_k, tensorboard=fv.tensorboard)
        if report.png_path is None:
            print(f"warning: {fv.run_dir} is read-only; the report is printed, not written.",
                  file=sys.stderr)
    except NasTfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
