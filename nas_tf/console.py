"""The console logger of the command line: a progress bar and messages on stderr.

See :mod:`nas_tf.logger` for the logger interface.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from nas_tf.logger import Logger


class ConsoleLogger(Logger):
    """A one-line progress bar and messages on a text stream (the CLI's stderr).

    The bar shows children done of the budget, the best child's natural
    metric (validation perplexity for rnn, validation accuracy for cnn, test
    accuracy for nb201; the reward when a child has none), the elapsed time
    and, while a child trains, its epoch and step, so that it keeps moving.
    On a terminal the line is redrawn in place; otherwise (a log file) a line
    is written at most every ``interval_s`` seconds. A search bounded by
    its wall time alone (no child budget: ``total`` 0 or the open budget)
    shows the children done and, with ``max_search_s``, the time used.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30,
                 interval_s: float = 5.0, total: int = 0, max_search_s: float | None = None):
        self.stream = stream or sys.stderr
        self.max_search_s = max_search_s
        self.width = width
        self.interval_s = interval_s
        self._start = time.time()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._done, self._total, self._best_reward = 0, int(total), None
        self._best_text = ""
        self._child = ""
        self._dirty_line = False

    def child(self, trial, space):
        from nas_tf.findings import format_metric, natural_metric

        if trial.status != "done" or trial.reward is None:
            return
        if self._best_reward is None or trial.reward > self._best_reward:
            self._best_reward = float(trial.reward)
            m = natural_metric(trial.metrics)
            self._best_text = (format_metric(m[0], m[1]) if m else
                               f"reward {self._best_reward:.4g}")

    def child_progress(self, child_id, info):
        parts = [f"child {child_id}"]
        if info.get("epochs"):
            parts.append(f"epoch {info.get('epoch', '?')}/{info['epochs']}")
        if info.get("steps"):
            parts.append(f"step {info.get('step', '?')}/{info['steps']}")
        elif info.get("step") is not None:
            parts.append(f"step {info['step']}")
        self._child = " ".join(parts)
        self._draw(final=False, min_interval=0.25 if self._tty else 6 * self.interval_s)

    def progress(self, done, total, best, note=""):
        self._done, self._total = done, total
        if not self._best_text and best is not None:
            self._best_text = f"reward {best:.4g}"
        self._child = note
        self._draw(final=done >= total and not note,
                   min_interval=0.0 if self._tty else self.interval_s)

    def _draw(self, final: bool, min_interval: float) -> None:
        now = time.time()
        if not final and now - self._last < min_interval:
            return
        self._last = now
        from nas_tf.config import OPEN_CHILD_BUDGET

        open_budget = self._total <= 0 or self._total >= OPEN_CHILD_BUDGET
        if open_budget:  # the wall time binds: the bar is the time used
            frac = min(1.0, (now - self._start) / self.max_search_s) if self.max_search_s else 0.0
            done = f"{self._done}"
        else:
            frac = min(1.0, self._done / max(self._total, 1))
            done = f"{self._done}/{self._total}"
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        best = f"best {self._best_text}" if self._best_text else "best -"
        line = (f"[{bar}] {done} children  {best}  "
                f"{now - self._start:.0f}s  {self._child}").rstrip()
        if self._tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
            self._dirty_line = not final
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text):
        if self._tty and self._dirty_line:
            self.stream.write("\n")
            self._dirty_line = False
        self.stream.write(text + "\n")
        self.stream.flush()
