"""The inline executor: children train in the search process, one at a time."""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time

from nas_tf.executors.base import (
    ChildTimeout,
    Executor,
    Job,
    _check_positive,
    evaluate_job,
)

_log = logging.getLogger(__name__)


class InlineExecutor(Executor):
    """Trains children in the search process, one at a time.

    Writes no result files: the search records each outcome as it returns
    (a result file, written and renamed per child, was half of a table
    search's time per child; experiments/results/loop_cost.md).

    Args:
        child_timeout: Seconds after which a child is stopped (None: never).
            In the process's main thread only (through ``SIGALRM``), and only
            where the child runs Python code: a long TensorFlow op finishes
            first. Use the ``local`` executor for a hard limit.
    """

    name = "inline"
    capacity = 1

    def __init__(self, child_timeout: float | None = None):
        _check_positive("child_timeout", child_timeout)
        self.child_timeout = child_timeout
        self._queue: collections.deque[Job] = collections.deque()

    def submit(self, job):
        self._queue.append(job)

    def num_in_flight(self):
        return len(self._queue)

    def poll(self, timeout=None):
        if not self._queue:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return []
        job = self._queue.popleft()
        use_alarm = (self.child_timeout and hasattr(signal, "setitimer")
                     and threading.current_thread() is threading.main_thread())
        if not use_alarm:
            return [evaluate_job(self.evaluator, job, write_result=False)]

        limit = float(self.child_timeout)

        def on_alarm(signum, frame):
            raise ChildTimeout(f"child {job.trial_id} ran past --child_timeout={limit:g}s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            return [evaluate_job(self.evaluator, job, write_result=False)]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def cancel(self):
        jobs = list(self._queue)
        self._queue.clear()
        return jobs
