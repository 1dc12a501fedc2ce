"""A small logger interface: what the search loop reports, and to where.

The loop never prints; it calls a :class:`Logger`. ``TensorBoardLogger``
writes TensorBoard event files into the run directory; the CLI adds a
``ConsoleLogger`` for its progress bar. Several loggers combine with
:class:`MultiLogger`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping, TextIO


class Logger:
    """Receives the search's reports. Every method is optional."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Scalars at ``step`` (the number of children so far)."""

    def text(self, step: int, tag: str, text: str) -> None:
        """A (markdown) text at ``step``."""

    def child(self, trial: Any, space: Any) -> None:
        """One child has finished (a :class:`nas_tf.store.Trial`)."""

    def progress(self, done: int, total: int, best: float | None, note: str = "") -> None:
        """Progress of the search (children done of the budget)."""

    def message(self, text: str) -> None:
        """A line for the user (resumed, stopped, ...)."""

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MultiLogger(Logger):
    """Sends every report to each of several loggers."""

    def __init__(self, loggers):
        self.loggers = [lg for lg in loggers if lg is not None]

    def __getattribute__(self, name):
        if name in ("scalars", "text", "child", "progress", "message", "flush", "close"):
            loggers = object.__getattribute__(self, "loggers")

            def call(*args, **kwargs):
                for lg in loggers:
                    getattr(lg, name)(*args, **kwargs)

            return call
        return object.__getattribute__(self, name)


class TensorBoardLogger(Logger):
    """Writes scalars and texts as TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir: str):
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(log_dir))

    def scalars(self, step, values):
        tf = self._tf
        with self._writer.as_default(step=int(step)):
            for k, v in values.items():
                if v is not None:
                    tf.summary.scalar(k, float(v))

    def text(self, step, tag, text):
        with self._writer.as_default(step=int(step)):
            self._tf.summary.text(tag, text)

    def flush(self):
        self._writer.flush()

    def close(self):
        self._writer.flush()
        self._writer.close()


class ConsoleLogger(Logger):
    """A one-line progress bar and messages on a text stream (the CLI's)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self._start = time.time()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def progress(self, done, total, best, note=""):
        now = time.time()
        if not self._tty and now - self._last < 5.0 and done < total:
            return
        self._last = now
        frac = min(1.0, done / max(total, 1))
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        best_s = "-" if best is None else f"{best:.4g}"
        line = (f"[{bar}] {done}/{total} children  best={best_s}  "
                f"{now - self._start:.0f}s {note}")
        end = "\r" if self._tty and done < total else "\n"
        self.stream.write(line + end)
        self.stream.flush()

    def message(self, text):
        if self._tty:
            self.stream.write("\n")
        self.stream.write(text + "\n")
        self.stream.flush()
