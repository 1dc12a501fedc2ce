"""The executor protocol and what every executor shares: jobs, outcomes,
result files, evaluating one job, and the retry rule for dead workers.

See :mod:`nas_tf.executors` for the executors themselves.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
import traceback
from typing import Any, Iterable, Iterator

from nas_tf.evaluator import ChildContext, EvalResult, Evaluator
from nas_tf.validation import check_positive

_log = logging.getLogger(__name__)

EXECUTORS = ("inline", "local", "ray")


@dataclasses.dataclass(frozen=True)
class Job:
    """One child to train.

    Attributes:
        trial_id: The child's row id in the trial store.
        spec: The child's spec.
        context: Where and how to train it.
        result_file: Where to write the outcome (JSON) before returning it,
            or None.
    """

    trial_id: int
    spec: Any
    context: ChildContext
    result_file: str | None = None


@dataclasses.dataclass(frozen=True)
class ProgressReport:
    """A child's ``context.report(...)`` sent from a worker process to the search."""

    child_id: int
    info: dict


class ThrottledReports:
    """A child's ``on_progress`` in a worker: passes ``(child_id, info)`` to
    ``send`` at most once every ``min_interval_s`` (a progress line needs no more)."""

    def __init__(self, send, min_interval_s: float = 0.5):
        self.send, self.min_interval_s, self._last = send, min_interval_s, float("-inf")

    def __call__(self, child_id: int, info: dict) -> None:
        now = time.monotonic()
        if now - self._last >= self.min_interval_s:
            self._last = now
            self.send(child_id, dict(info))


@dataclasses.dataclass
class Outcome:
    """The result of one job: ``result`` on success, else ``error``.

    Attributes:
        job: The job.
        result: The evaluator's result (None when the child failed).
        error: The error text of a failed child.
        duration: Seconds the last attempt took.
        retry: The worker died and the executor did not try again itself:
            the caller may submit the job again.
        attempts: How many times the child was started.
        worker: The worker that trained it (for logs).
    """

    job: Job
    result: EvalResult | None = None
    error: str | None = None
    duration: float = 0.0
    retry: bool = False
    attempts: int = 1
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None

    def to_json(self) -> dict:
        return {"trial_id": self.job.trial_id,
                "reward": None if self.result is None else self.result.reward,
                "metrics": None if self.result is None else self.result.metrics,
                "error": self.error, "duration": self.duration}

    @classmethod
    def from_json(cls, job: Job, obj: dict) -> "Outcome":
        result = None
        if obj.get("error") is None:
            result = EvalResult(reward=float(obj["reward"]), metrics=obj.get("metrics") or {})
        return cls(job, result=result, error=obj.get("error"),
                   duration=float(obj.get("duration") or 0.0), worker="recovered")


class ChildTimeout(Exception):
    """A child ran past ``child_timeout``."""


def _error_text(e: BaseException) -> str:
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(e).__name__}: {e}{where}"[:2000]


def is_out_of_memory(error: str | None) -> bool:
    """Whether an error text says the child ran out of (GPU or host) memory."""
    return bool(error) and any(k in error for k in (
        "ResourceExhausted", "MemoryError", "OOM", "out of memory", "OutOfMemory"))


def _write_json_atomic(path: str, obj: Any) -> None:
    from nas_tf.rundir import write_json_atomic

    # No fsync: the file outlives a killed process (the page cache keeps it),
    # and only a machine crash could lose it, as it loses the store's last
    # commits (WAL, synchronous=NORMAL). An fsync per child was ~5 ms of a
    # table search's ~10 ms per child (experiments/results/loop_cost.md).
    write_json_atomic(path, obj, indent=None, default=float, fsync=False)


def write_result_file(outcome: Outcome) -> None:
    """Writes ``outcome`` to its job's ``result_file`` (write-then-rename).

    Only when the file's grandparent (the run directory) exists, so a worker
    on another node without the shared run directory writes nothing.
    """
    path = outcome.job.result_file
    if not path:
        return
    parent = os.path.dirname(path)
    try:
        if not os.path.isdir(os.path.dirname(parent)):
            return
        os.makedirs(parent, exist_ok=True)
        _write_json_atomic(path, outcome.to_json())
    except (OSError, TypeError, ValueError) as e:
        _log.warning("Could not write %s: %s", path, e)


def read_result_file(job: Job) -> Outcome | None:
    """The outcome a worker wrote for ``job`` before the search died, if any."""
    if not job.result_file or not os.path.isfile(job.result_file):
        return None
    try:
        with open(job.result_file) as f:
            obj = json.load(f)
        if int(obj["trial_id"]) != job.trial_id:
            return None
        return Outcome.from_json(job, obj)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate_job(evaluator: Evaluator, job: Job, write_result: bool = True) -> Outcome:
    """Runs one job and turns any exception or non-finite reward into a failure."""
    start = time.time()
    try:
        result = evaluator.evaluate(job.spec, job.context)
        reward = float(result.reward)
        if not math.isfinite(reward):
            outcome = Outcome(job, error=f"non-finite reward: {reward}",
                              duration=time.time() - start)
        else:
            result.reward = reward
            outcome = Outcome(job, result=result, duration=time.time() - start)
    except Exception as e:  # noqa: BLE001 - a child's failure must not stop the search
        outcome = Outcome(job, error=_error_text(e), duration=time.time() - start)
    if write_result:
        write_result_file(outcome)
    return outcome


class Executor:
    """Base class: trains children given as jobs, several at once.

    Subclasses implement :meth:`submit`, :meth:`poll`, :meth:`num_in_flight`
    and :meth:`cancel`; :meth:`run` (all jobs, outcomes as they finish) is
    built on them.

    Attributes:
        name: ``inline``, ``local`` or ``ray``.
        capacity: How many children train at once.
        devices_per_child: The devices (replicas of a ``MirroredStrategy``)
            each child trains on; recorded in the run identity (meta
            ``devices``), since the batch split depends on it.
    """

    name = "base"
    capacity = 1
    devices_per_child = 1

    def start(self, evaluator: Evaluator) -> None:
        """Prepares to train children with ``evaluator`` (workers start here)."""
        self.evaluator = evaluator

    def submit(self, job: Job) -> None:
        """Queues ``job``; it starts when a worker is free."""
        raise NotImplementedError

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        """Waits up to ``timeout`` seconds (None: until one finishes) and
        returns the outcomes of the jobs that finished (maybe none)."""
        raise NotImplementedError

    def num_in_flight(self) -> int:
        """Jobs submitted and not yet returned by :meth:`poll`."""
        raise NotImplementedError

    def free_slots(self) -> int:
        return max(0, self.capacity - self.num_in_flight())

    def cancel(self) -> list[Job]:
        """Stops every job in flight (their workers are killed) and returns them."""
        return []

    def close(self) -> None:
        """Stops the workers."""

    def run(self, evaluator: Evaluator, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Trains all ``jobs``; yields their outcomes as they finish."""
        if getattr(self, "evaluator", None) is not evaluator:
            self.start(evaluator)
        for job in jobs:
            self.submit(job)
        while self.num_in_flight():
            yield from self.poll(None)


def _check_positive(name: str, value, allow_zero: bool = False) -> None:
    check_positive(name, value, allow_zero, flag=True)


def _wait_seconds(deadline: float | None, started: Iterable[float],
                  child_timeout: float | None) -> float | None:
    """How long a poll may block: until ``deadline`` (None: no limit), and not
    past the moment the earliest-started child runs out of ``child_timeout``."""
    wait_s = None if deadline is None else max(0.0, deadline - time.time())
    started = list(started)
    if child_timeout and started:
        left = max(0.0, min(started) + child_timeout - time.time()) + 0.01
        wait_s = left if wait_s is None else min(wait_s, left)
    return wait_s


def _after_wait(executor, deadline: float | None) -> bool:
    """A pool's poll, after each wait: stop the children past their timeout and
    start queued ones. Returns whether the poll's ``deadline`` has passed."""
    executor._check_timeouts()
    executor._dispatch()
    return deadline is not None and time.time() >= deadline


def _take_ready(executor) -> list[Outcome]:
    """The outcomes a pool collected, handed over once."""
    out, executor._ready = executor._ready, []
    return out


def _retry_or_give_up(executor, task: "_Task", error: str, worker: str | None = None) -> None:
    """A child's worker died: queue the child again, or give it up after
    ``executor.max_retries`` retries (then it fails with ``error``)."""
    executor.workers_died += 1
    if task.attempts <= executor.max_retries:
        _log.warning("%s; trying it again (attempt %d of %d).", error, task.attempts + 1,
                     executor.max_retries + 1)
        executor._queue.appendleft(task)
    else:
        executor._ready.append(Outcome(
            task.job, error=f"{error}; gave up after {task.attempts} attempts (--max_retries)",
            duration=time.time() - task.started, attempts=task.attempts, worker=worker))


@dataclasses.dataclass
class _Task:
    job: Job
    attempts: int = 0
    started: float = 0.0
