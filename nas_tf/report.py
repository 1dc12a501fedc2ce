r"""Reports on a search: the top children, the failures, pictures.

  python -m nas_tf.report --run_dir=runs/rnn [--top_k=10]
  python -m nas_tf.report --run_dir=runs/rnn --format=csv > children.csv   (or json)
  python -m nas_tf.report --compare runs/reinforce runs/random

prints a table of the top-k children (rank, reward, metric, params, time,
spec) and the failed children grouped by kind, and writes into the run
directory (pictures need matplotlib: pip install "nas_tf[report]"):

* ``reward_curve.png`` — the reward of every child in the order they
  finished, the best so far and a moving mean, and the same for the
  space's metric (validation perplexity / accuracy, test accuracy);
* ``best_architecture.png`` — the best child's architecture (the recurrent
  cell as a graph, the CNN's layers and skip connections);
* ``report.md`` — the same table as markdown;
* ``report/`` — TensorBoard events with the pictures and the table, so
  ``tensorboard --logdir RUN_DIR`` shows them.

``--compare RUN_A RUN_B ...`` overlays the curves of several runs
(e.g. REINFORCE against random search) in ``--out`` (default
compare.png). The trial store is opened read-only, so a report can be
made while the search is still running.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas_tf.errors import ConfigError, RunDirError
from nas_tf.findings import failure_kinds, natural_metric
from nas_tf.rundir import STORE_FILE, SUMMARY_FILE, open_store, read_summary  # noqa: F401
from nas_tf.store import DONE, FAILED, PENDING, RUNNING, Trial
from nas_tf.validation import check_int

CURVE_FILE = "reward_curve.png"
ARCH_FILE = "best_architecture.png"
REPORT_FILE = "report.md"
REPORT_TB_DIR = "report"

_log = logging.getLogger(__name__)

#: Metric keys shown as "the space's metric", in order of preference.
METRIC_KEYS = ("val_accuracy", "val_perplexity", "test_accuracy", "accuracy", "perplexity",
               "naswot", "synflow")


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
        metric_order: The natural metric of the same children (validation
            perplexity / accuracy, test accuracy; None when missing).
        metric_label, metric_lower: Its name and whether lower is better.
        pictures: The PNGs :func:`write_report` wrote.
        written: Whether :func:`write_report` wrote its files (not in a
            read-only run directory).
    """

    run_dir: str
    space: dict
    summary: dict
    counts: dict
    errors: list
    top: list
    order: list
    metric_order: list = dataclasses.field(default_factory=list)
    metric_label: str | None = None
    metric_lower: bool = False
    pictures: list = dataclasses.field(default_factory=list)
    written: bool = False

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
    check_int("top_k", top_k)
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
    errors = failure_kinds(t.error for t in trials if t.status == FAILED)
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
    natural = [natural_metric(t.metrics) if t.status == DONE else None for t in finished]
    label = next((m[0] for m in natural if m), None)
    return Report(run_dir=str(run_dir), space=space, summary=summary, counts=counts,
                  errors=errors, top=top, order=order,
                  metric_order=[m[1] if m and m[0] == label else None for m in natural],
                  metric_label=label, metric_lower=any(m[2] for m in natural if m))


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
        lines.append(f"failed children by kind ({c.get(FAILED, 0)} of "
                     f"{c.get(DONE, 0) + c.get(FAILED, 0)}):")
        for err, n in report.errors:
            lines.append(f"  {n} x {err[:160]}")
    header = ["rank", "child", "reward", "metric", "params", "time_s", "spec"]
    rows = []
    for r in report.top:
        metric = "-" if r.metric is None else f"{r.metric}={_fmt(r.metric_value)}"
        spec = json.dumps(r.spec, separators=(",", ":"), sort_keys=True)
        if len(spec) > spec_width:
            spec = spec[: spec_width - 3] + "..."
        rows.append([str(r.rank), str(r.child_id), _fmt(r.reward, 6), metric, _fmt(r.params),
                     _fmt(r.seconds, 3), spec])
    lines.append("")
    if not rows:
        lines.append("no finished children yet")
    elif markdown:  # specs below the table: a long cell squeezes the other columns
        lines.append("| " + " | ".join(header[:-1]) + " |")
        lines.append("|" + "---|" * (len(header) - 1))
        for row in rows:
            lines.append("| " + " | ".join(row[:-1]) + " |")
        lines.append("")
        for r in report.top:
            lines.append(f"- child {r.child_id}: "
                         f"`{json.dumps(r.spec, separators=(',', ':'), sort_keys=True)}`")
    else:
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        for row in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if report.pictures:
        lines.append("")
        lines += [f"picture: {p}" for p in report.pictures]
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Writing a report.
# ----------------------------------------------------------------------------


def _space_of(report: Report):
    from nas_tf.export import space_from_config

    return space_from_config(report.space)


def _curves_figure(reports: dict[str, Report], title: str):
    from nas_tf import plots

    label = next((r.metric_label for r in reports.values() if r.metric_label), None)
    lower = any(r.metric_lower for r in reports.values())
    return plots.search_curves({k: r.order for k, r in reports.items()},
                               {k: r.metric_order for k, r in reports.items()},
                               metric_label=label, lower_is_better=lower, title=title)


def write_pictures(report: Report, tb=None) -> list[str]:
    """Writes ``reward_curve.png`` and ``best_architecture.png`` (when the space
    draws its specs) into the run directory, and into ``tb`` as images.

    Returns:
        The paths written; empty (with one logged line saying how to install
        it) when matplotlib is missing.
    """
    from nas_tf import plots

    if not plots.available():
        _log.warning(plots.INSTALL_HINT)
        return []
    run_dir = Path(report.run_dir)
    step = len(report.order)
    figures = [(CURVE_FILE, "report/reward_curve", _curves_figure(
        {run_dir.name: report}, f"{report.space.get('name', '?')} search "
        f"({report.summary.get('algorithm', '?')}), {len(report.order)} children: {run_dir}"))]
    if report.top:
        try:
            space = _space_of(report)
            fig = space.draw(space.spec_from_json(report.top[0].spec))
        except Exception as e:  # noqa: BLE001 - a drawing must not stop the report
            _log.warning("No architecture picture: %s", e)
            fig = None
        if fig is not None:
            figures.append((ARCH_FILE, "report/best_architecture", fig))
    paths = []
    for name, tag, fig in figures:
        paths.append(plots.save_png(fig, run_dir / name))
        if tb is not None:
            tb.image(step, tag, plots.figure_rgb(fig))
    return paths


def write_report(run_dir: str | os.PathLike, top_k: int = 10, tensorboard: bool = True) -> Report:
    """Makes the report of a run and writes the pictures (``reward_curve.png``,
    ``best_architecture.png``), ``report.md`` and TensorBoard events under
    ``report/`` into the run directory.

    Args:
        run_dir: The run directory (may belong to a running search).
        top_k: Rows of the table.
        tensorboard: Also write the pictures and the table for TensorBoard.

    Returns:
        The :class:`Report` (with ``pictures`` set).

    Raises:
        ConfigError, RunDirError: see :func:`make_report`.

    Example:

    >>> report = write_report("runs/x", top_k=5)  # doctest: +SKIP
    >>> print(format_report(report))  # doctest: +SKIP
    """
    report = make_report(run_dir, top_k)
    if not os.access(run_dir, os.W_OK):  # a finished run on a read-only mount: read only
        return report
    tb = None
    if tensorboard:
        from nas_tf.logger import TensorBoardLogger

        tb = TensorBoardLogger(str(Path(run_dir) / REPORT_TB_DIR), hparams=False)
    try:
        report.pictures = write_pictures(report, tb)
        text_md = format_report(report, markdown=True)
        try:
            (Path(run_dir) / REPORT_FILE).write_text(text_md + "\n")
        except OSError as e:
            from nas_tf.rundir import describe_os_error

            raise RunDirError(describe_os_error(e, str(Path(run_dir) / REPORT_FILE))) from None
        report.written = True
        if tb is not None:
            tb.text(len(report.order), "report/top_children", text_md)
    finally:
        if tb is not None:
            tb.close()
    return report


def compare(run_dirs: Sequence[str], out: str | os.PathLike) -> str:
    """Overlays the curves of several runs in one PNG (``--compare``)."""
    from nas_tf import plots

    if len(run_dirs) < 2:
        raise ConfigError(f"--compare needs two or more run directories. Received: {run_dirs}")
    if not plots.available():
        raise ConfigError(plots.INSTALL_HINT)
    reports = {}
    for d in run_dirs:
        r = make_report(d, 1)
        algo = (r.summary.get("algorithm") or "")
        name = f"{Path(d).name} ({algo})" if algo and algo not in Path(d).name else Path(d).name
        reports[name] = r
    spaces = {r.space.get("name") for r in reports.values()}
    title = f"{' / '.join(sorted(str(s) for s in spaces))}: " + " vs ".join(reports)
    return plots.save_png(_curves_figure(reports, title), out)


# ----------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from absl import flags

    from nas_tf import cli

    fv = flags.FlagValues()
    flags.DEFINE_string("run_dir", None, "Run directory of a search (required unless --compare).",
                        flag_values=fv)
    flags.DEFINE_integer("top_k", 10, "Rows of the table of best children.", flag_values=fv)
    flags.DEFINE_boolean("tensorboard", True, "Also write the pictures and table for "
                         "TensorBoard (RUN_DIR/report).", flag_values=fv)
    flags.DEFINE_multi_string("compare", None, "Overlay the curves of these runs (give two or "
                              "more: --compare runs/a runs/b) in --out.", flag_values=fv)
    flags.DEFINE_string("out", "compare.png", "--compare: the PNG to write.", flag_values=fv)
    flags.DEFINE_enum("format", "text", ["text", "csv", "json"], "text: the report (and its "
                      "files); csv / json: one row per child to stdout, nothing written.",
                      flag_values=fv)
    argv = list(sys.argv if argv is None else argv)
    which = cli.wants_help(argv)
    if which:
        sys.stdout.write(cli.help_text(_USAGE, fv, full=which == "full"))
        return 0
    try:
        rest = fv(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from nas_tf.errors import NasTfError

    compared = list(fv.compare or [])
    if compared:  # --compare a b: the runs after the first come as arguments
        compared += rest[1:]
        rest = rest[:1]
    if len(rest) > 1:
        print(f"error: unexpected arguments {rest[1:]}; all options are --flags.", file=sys.stderr)
        return 2
    cli.quiet_tensorflow()
    try:
        if compared:
            path = compare(compared, fv.out)
            cli.result(f"compared {len(compared)} runs: {path}")
            return 0
        if not fv.run_dir:
            raise ConfigError("--run_dir is required (the directory of a search). "
                              "Received: run_dir=None")
        if fv.format != "text":
            from nas_tf.report_rows import child_rows, format_rows

            sys.stdout.write(format_rows(child_rows(fv.run_dir), fv.format))
            return 0
        report = write_report(fv.run_dir, fv.top_k, tensorboard=fv.tensorboard)
        if not report.written:
            print(f"warning: {fv.run_dir} is read-only; the report is printed, not written.",
                  file=sys.stderr)
    except NasTfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cli.result(format_report(report))
    return 0


_USAGE = """Reports on a search: the best children, failures grouped by kind, pictures.

  python -m nas_tf.report --run_dir=runs/rnn [--top_k=10]
  python -m nas_tf.report --run_dir=runs/rnn --format=csv > children.csv   (or json)
  python -m nas_tf.report --compare runs/reinforce runs/random [--out=compare.png]

Writes reward_curve.png, best_architecture.png, report.md and TensorBoard
images (RUN_DIR/report) into the run directory; pictures need matplotlib
(pip install "nas_tf[report]").
"""


if __name__ == "__main__":
    sys.exit(main())
