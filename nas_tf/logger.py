"""A small logger interface: what the search loop reports, and to where.

The loop never prints; it calls a :class:`Logger`. ``TensorBoardLogger``
writes TensorBoard event files into the run directory; the CLI adds a
``ConsoleLogger`` (:mod:`nas_tf.console`) for its progress bar. Several loggers combine with
:class:`MultiLogger`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from nas_tf.logger_archive import (  # noqa: F401 - re-exported
    ALL_CHILDREN_RUN,
    ARCHIVE_DIR,
    CHILDREN_DIR,
    RETAINED_FILE,
    _archive_child,
    _read_retained,
    restore_child_runs,
)

_log = logging.getLogger(__name__)

_FLOAT32_MAX = 3.4028234663852886e38


def _scalar32(value) -> float:
    """``value`` as a float that a float32 summary can hold: NaN and +-inf are
    kept (TensorBoard shows them), huge finite values are clipped to the float32
    range instead of making ``tf.summary.scalar`` raise."""
    v = float(value)
    if math.isfinite(v) and abs(v) > _FLOAT32_MAX:
        return math.copysign(_FLOAT32_MAX, v)
    return v


class Logger:
    """Receives the search's reports. Every method is optional."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Scalars at ``step`` (the number of children so far)."""

    def text(self, step: int, tag: str, text: str) -> None:
        """A (markdown) text at ``step``."""

    def child(self, trial: Any, space: Any) -> None:
        """One child has finished (a :class:`nas_tf.store.Trial`)."""

    def image(self, step: int, tag: str, image: Any) -> None:
        """A uint8 image ``(H, W, C)`` at ``step``."""

    def child_progress(self, child_id: int, info: Mapping[str, Any]) -> None:
        """A child in training says how far it is (``epoch``, ``epochs``,
        ``step``, ``steps``; see :meth:`nas_tf.evaluator.ChildContext.report`)."""

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

    def _each(self, name: str, *args, **kwargs) -> None:
        for lg in self.loggers:  # a duck-typed logger may leave a method out
            method = getattr(lg, name, None)
            if method is not None:
                method(*args, **kwargs)

    def scalars(self, step, values):
        self._each("scalars", step, values)

    def text(self, step, tag, text):
        self._each("text", step, tag, text)

    def child(self, trial, space):
        self._each("child", trial, space)

    def image(self, step, tag, image):
        self._each("image", step, tag, image)

    def child_progress(self, child_id, info):
        self._each("child_progress", child_id, info)

    def progress(self, done, total, best, note=""):
        self._each("progress", done, total, best, note)

    def message(self, text):
        self._each("message", text)

    def flush(self):
        self._each("flush")

    def close(self):
        self._each("close")


class TensorBoardLogger(Logger):
    """Writes the search to TensorBoard event files in ``log_dir``.

    * Scalars and texts (controller curves, each new best architecture) go
      to ``log_dir`` itself.
    * Every finished child's metrics go to one run, ``all_children``, at
      step = child id (``child/reward``, ``child/failed``,
      ``child/duration_s`` and every numeric entry of its metrics:
      ``child/val_accuracy``, ``child/params``, ...): one curve over all
      children, however many.
    * A child also gets its own run, ``children/<id>`` (where the evaluator
      writes its training curves), holding a session of the HParams
      dashboard: its hparams are its decisions (``space.hparams(spec)``),
      the space's scalar settings (``space/<key>``) and its depth; its
      metrics as above.

    Scale: TensorBoard loads every run and lists them all in its run
    selector, which is unusable with thousands of children (Zoph & Le 2017,
    arXiv:1611.01578, sample 12,800; ``experiments/results/tensorboard_scale.md``
    measures a 2,000-child run). So only the ``keep_best`` best children
    (by reward) and the ``keep_recent`` most recently finished keep their
    run under ``children/``; a child that drops out of both has its
    directory moved to ``children_archive/<id>`` with its event files
    renamed (``tfevents`` -> ``tfarchive``), so TensorBoard no longer reads
    them. Nothing is deleted: :func:`restore_child_runs` brings children back
    (the store and ``python -m nas_tf.report`` list all of them). The
    choice is recorded in ``children_archive/retained.json``. ``keep_best=None``
    keeps every child's run (the behaviour before).

    Args:
        log_dir: The run directory.
        hparams: Write the HParams sessions (default True).
        keep_best: Children with the highest rewards whose runs are kept
            (default :attr:`KEEP_BEST`); None keeps all.
        keep_recent: Most recently finished children whose runs are kept
            (default :attr:`KEEP_RECENT`).

    Example:

    >>> logger = TensorBoardLogger("runs/x")  # doctest: +SKIP
    >>> logger.scalars(8, {"reward/mean": 0.5})  # doctest: +SKIP
    """

    #: Default number of best children whose runs are kept.
    KEEP_BEST: int | None = 20
    #: Default number of most recent children whose runs are kept.
    KEEP_RECENT: int = 20

    def __init__(self, log_dir: str, hparams: bool = True, keep_best: int | None | str = "default",
                 keep_recent: int | str = "default"):
        import tensorflow as tf

        self._tf = tf
        self.log_dir = str(log_dir)
        self.write_hparams = bool(hparams)
        self.keep_best = self.KEEP_BEST if keep_best == "default" else keep_best
        self.keep_recent = self.KEEP_RECENT if keep_recent == "default" else keep_recent
        for what, v in (("keep_best", self.keep_best), ("keep_recent", self.keep_recent)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{what} must be an integer >= 0 or None. Received: {what}={v}")
        self._writer = tf.summary.create_file_writer(self.log_dir)
        self._all_writer = None
        self._all_fns: dict = {}  # metric names -> tf.function writing them
        self._config_written = False
        self._retained = None  # {"best": [[reward, id], ...], "recent": [id, ...]}

    def scalars(self, step, values):
        tf = self._tf
        with self._writer.as_default(step=int(step)):
            for k, v in values.items():
                if v is not None:
                    tf.summary.scalar(k, _scalar32(v))

    def text(self, step, tag, text):
        with self._writer.as_default(step=int(step)):
            self._tf.summary.text(tag, text)

    def image(self, step: int, tag: str, image) -> None:
        """An image (uint8 array ``(H, W, C)`` or ``(N, H, W, C)``) at ``step``."""
        import numpy as np

        arr = np.asarray(image)
        if arr.ndim == 3:
            arr = arr[None]
        with self._writer.as_default(step=int(step)):
            self._tf.summary.image(tag, arr)

    def child(self, trial, space):
        metrics = child_metrics(trial)
        if self._all_writer is None:
            self._all_writer = self._tf.summary.create_file_writer(
                os.path.join(self.log_dir, ALL_CHILDREN_RUN))
        self._write_all(int(trial.id), metrics)
        kept = True
        if self.keep_best is not None:
            try:
                kept = self._retain(trial)
            except OSError as e:  # a full disk or odd file system must not stop the search
                _log.warning("Could not archive the TensorBoard runs of old children: %s", e)
        if self.write_hparams and kept:  # (a child kept by neither list gets no run)
            self._session(trial, space, metrics)

    def _write_all(self, step: int, metrics: Mapping[str, float]) -> None:
        """One child's metrics in the ``all_children`` run, through a
        ``tf.function`` per set of names (~3x cheaper than eager summary ops,
        which were a third of a table search's time per child)."""
        tf, names = self._tf, tuple(metrics)
        write = self._all_fns.get(names)
        if write is None:
            writer = self._all_writer

            def write_fn(step, values):
                with writer.as_default(step=step):
                    for i, name in enumerate(names):
                        tf.summary.scalar(name, values[i])
                return tf.constant(True)

            write = self._all_fns[names] = tf.function(write_fn, autograph=False)
        write(tf.constant(step, tf.int64),
              tf.constant([_scalar32(metrics[n]) for n in names], tf.float32))

    def _session(self, trial, space, metrics):
        try:
            hparams = child_hparams(trial, space)
        except Exception as e:  # noqa: BLE001 - a bad row must not stop the search
            _log.warning("No HParams session for child %s: %s", getattr(trial, "id", "?"), e)
            return
        if not self._config_written and trial.status == "done":
            self._write_config(space, metrics)
        from tensorboard.plugins.hparams import api as hp

        hparams = {k: _shown_value(v) for k, v in hparams.items()}
        writer = self._tf.summary.create_file_writer(
            os.path.join(self.log_dir, CHILDREN_DIR, str(trial.id)))
        try:
            with writer.as_default(step=int(trial.id)):
                hp.hparams(hparams, trial_id=str(trial.id),
                           start_time_secs=int(trial.started or trial.created or time.time()))
                for name, value in metrics.items():
                    self._tf.summary.scalar(name, _scalar32(value))
        finally:
            writer.close()

    def _retain(self, trial) -> bool:
        """Keeps the runs of the best and the most recent children; archives the
        rest. Returns whether ``trial`` is kept (with ``keep_recent=0``, only
        a child among the best is)."""
        path = os.path.join(self.log_dir, ARCHIVE_DIR, RETAINED_FILE)
        if self._retained is None:
            self._retained = _read_retained(path)
        state = self._retained
        before = {int(i) for _, i in state["best"]} | {int(i) for i in state["recent"]}
        reward = trial.reward if trial.status == "done" else None
        if reward is not None and math.isfinite(float(reward)):
            best = state["best"] + [[float(reward), int(trial.id)]]
            state["best"] = sorted(best, key=lambda r: (-r[0], r[1]))[:self.keep_best]
        state["recent"] = (state["recent"] + [int(trial.id)])[
            max(0, len(state["recent"]) + 1 - self.keep_recent):]
        kept = {int(i) for _, i in state["best"]} | {int(i) for i in state["recent"]}
        for child_id in sorted((before | {int(trial.id)}) - kept):
            _archive_child(self.log_dir, child_id)
        if kept == before and os.path.exists(path):
            return False  # nothing changed (a cheap child not among the best): no rewrite
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, path)
        return int(trial.id) in kept

    def _write_config(self, space, metrics: Mapping[str, float]) -> None:
        from tensorboard.plugins.hparams import api as hp

        hparams = [hp.HParam(name, _domain(values)) for name, values in
                   hparam_domains(space).items()]
        names = sorted(set(metrics) | {REWARD_TAG, DURATION_TAG, FAILED_TAG})
        with self._writer.as_default(step=0):
            hp.hparams_config(hparams=hparams, metrics=[hp.Metric(n) for n in names])
        self._config_written = True

    def flush(self):
        self._writer.flush()
        if self._all_writer is not None:
            self._all_writer.flush()

    def close(self):
        self.flush()
        self._writer.close()
        if self._all_writer is not None:
            self._all_writer.close()


REWARD_TAG = "child/reward"
DURATION_TAG = "child/duration_s"
FAILED_TAG = "child/failed"


def _hparam_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _shown_value(value: Any) -> Any:
    """An hparam value as the HParams dashboard shows it exactly: integers as
    strings. The dashboard prints every number with ``toPrecision(5)`` (its
    ``prettyPrint``), so a filter size of 3 written as a number reads
    ``3.0000``; written as ``"3"`` it reads ``3``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def child_hparams(trial: Any, space: Any) -> dict[str, Any]:
    """The HParams of one child: its decisions, the space's settings, its depth.

    Args:
        trial: A :class:`nas_tf.store.Trial`.
        space: The :class:`nas_tf.space.SearchSpace` of the search.

    Returns:
        A flat dict of JSON scalars.
    """
    spec = space.spec_from_json(trial.spec)
    out = {k: _hparam_value(v) for k, v in space.hparams(spec).items()}
    for k, v in space.config().items():
        if k != "name" and isinstance(v, (bool, int, float, str)):
            out[f"space/{k}"] = v
    depth = getattr(spec, "num_layers", None)
    if isinstance(depth, int):
        out["depth"] = depth
    return out


def child_metrics(trial: Any) -> dict[str, float]:
    """The HParams metrics of one child (finite numbers only)."""
    out = {FAILED_TAG: 0.0 if trial.status == "done" else 1.0}
    if trial.reward is not None and math.isfinite(float(trial.reward)):
        out[REWARD_TAG] = float(trial.reward)
    if trial.duration is not None:
        out[DURATION_TAG] = float(trial.duration)
    for k, v in (trial.metrics or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"child/{k}"] = float(v)
    return out


def hparam_domains(space: Any) -> dict[str, list | None]:
    """Every hparam name the space's children can have, with its values if known."""
    from nas_tf.space import Anchor

    out: dict[str, list | None] = {}
    for d in space.final_decisions():
        out[d.name] = None if isinstance(d, Anchor) else [_hparam_value(v) for v in d.values]
    for k, v in space.config().items():
        if k != "name" and isinstance(v, (bool, int, float, str)):
            out[f"space/{k}"] = [v]
    return out


def _domain(values):
    from tensorboard.plugins.hparams import api as hp

    if not values:
        return None
    types = {type(v) for v in values}
    if types == {int, float}:
        values, types = [float(v) for v in values], {float}
    if len(types) != 1 or next(iter(types)) not in (bool, int, float, str):
        return None
    if types == {int}:  # shown as written (see _shown_value); sorted as strings
        values = [_shown_value(v) for v in values]
    return hp.Discrete(sorted(set(values)))
