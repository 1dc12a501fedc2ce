"""Pictures of a search, drawn with matplotlib (the optional ``report`` extra:
``pip install "nas_tf[report]"``).

* :func:`search_curves` — the reward of every child in the order they
  finished, the best so far and a moving mean; below it the same for the
  space's natural metric (validation perplexity, validation accuracy, test
  accuracy). Several runs overlay (``nas_tf.report --compare a b``).
* :func:`save_png` / :func:`figure_rgb` — a figure as a PNG file or as a
  uint8 array (for TensorBoard images).

Architecture drawings belong with their space (``space.draw(spec)``, e.g.
:mod:`cells.draw`, :mod:`cnn_space.draw`); this module only saves them.
Figures are made with ``matplotlib.figure.Figure`` (no pyplot state, no GUI).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Printed when matplotlib is not installed.
INSTALL_HINT = ('pictures need matplotlib: pip install "nas_tf[report]" '
                "(or: pip install matplotlib)")


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _moving_mean(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _running_best(values: Sequence[float], lower: bool) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else (min(out[-1], v) if lower else max(out[-1], v)))
    return out


_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _panel(ax, runs: Mapping[str, Sequence[float | None]], ylabel: str, lower: bool,
           window: int | None, several: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    for k, (name, order) in enumerate(runs.items()):
        color = _COLORS[k % len(_COLORS)]
        xs = [i + 1 for i, v in enumerate(order) if v is not None and math.isfinite(v)]
        ys = [float(v) for v in order if v is not None and math.isfinite(v)]
        prefix = f"{name}: " if several else ""
        if ys:
            win = window or max(5, len(ys) // 10)
            ax.scatter(xs, ys, s=16, color=color, alpha=0.6, linewidths=0,
                       label=f"{prefix}each child")
            ax.plot(xs, _moving_mean(ys, win), color=color, lw=1.2, ls="--",
                    label=f"{prefix}mean of last {win}")
            ax.step(xs, _running_best(ys, lower), where="post", color=color, lw=2,
                    label=f"{prefix}best so far")
        fails = [i + 1 for i, v in enumerate(order) if v is None or not math.isfinite(v)]
        if fails:
            ax.plot(fails, [0.02] * len(fails), "x", color=color, ms=5,
                    transform=ax.get_xaxis_transform(), label=f"{prefix}failed ({len(fails)})")
    ax.set_ylabel(ylabel + (" (lower is better)" if lower else ""))
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    finite = [float(v) for order in runs.values() for v in order
              if v is not None and math.isfinite(v) and v > 0]
    if "perplexity" in ylabel and finite and max(finite) / min(finite) > 10:
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best", ncol=2 if several else 1, framealpha=0.8)
    else:
        ax.text(0.5, 0.5, "no finished children yet", transform=ax.transAxes, ha="center",
                color="#777777")


def search_curves(runs: Mapping[str, Sequence[float | None]],
                  metrics: Mapping[str, Sequence[float | None]] | None = None,
                  metric_label: str | None = None, lower_is_better: bool = False,
                  title: str = "", window: int | None = None):
    """The reward curve (and the natural metric's) of one or several runs.

    Args:
        runs: Run name -> rewards in finishing order (None: failed child).
        metrics: Run name -> the natural metric per child, same order.
        metric_label: E.g. ``valid perplexity``; None draws the reward only.
        lower_is_better: The metric's best-so-far is a running minimum.
        title: Figure title.
        window: Moving-mean window (default: a tenth of the children, >= 5).

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    from matplotlib.figure import Figure

    with_metric = bool(metric_label and metrics and any(
        v is not None for order in metrics.values() for v in order))
    fig = Figure(figsize=(7, 5.5 if with_metric else 3.5), dpi=100, layout="constrained")
    axes = fig.subplots(2 if with_metric else 1, 1, sharex=True, squeeze=False)[:, 0]
    several = len(runs) > 1
    _panel(axes[0], runs, "reward", False, window, several)
    if with_metric:
        _panel(axes[1], metrics, metric_label, lower_is_better, window, several)
    axes[-1].set_xlabel("child (in the order they finished)")
    fig.suptitle(title or "search progress", fontsize=11)
    return fig


def save_png(fig, path: str | os.PathLike) -> str:
    """Writes ``fig`` to ``path`` (atomically) and returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from nas_tf.errors import RunDirError
    from nas_tf.rundir import describe_os_error

    path = Path(path)
    if path.is_dir():
        raise RunDirError(describe_os_error(IsADirectoryError(21, "Is a directory"), str(path)))
    tmp = path.with_name(path.name + ".tmp.png")
    FigureCanvasAgg(fig)
    try:
        fig.savefig(tmp, format="png", facecolor="white")
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise RunDirError(describe_os_error(e, str(path))) from None
    return str(path)


def figure_rgb(fig):
    """The figure as a uint8 ``(H, W, 3)`` array (for ``tf.summary.image``)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
