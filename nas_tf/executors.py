"""Executors: where children are trained.

An executor takes jobs (a trial id, a spec and its :class:`ChildContext`)
and yields one :class:`Outcome` per job, in any order. A child that raises,
or returns a non-finite reward, gives a failed outcome with its error text;
the executor itself never stops the search because of one child.

``InlineExecutor`` trains children in the search process, one at a time.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from typing import Any, Iterable, Iterator

from nas_tf.evaluator import ChildContext, EvalResult, Evaluator


@dataclasses.dataclass(frozen=True)
class Job:
    trial_id: int
    spec: Any
    context: ChildContext


@dataclasses.dataclass
class Outcome:
    """The result of one job: ``result`` on success, else ``error``."""

    job: Job
    result: EvalResult | None = None
    error: str | None = None
    duration: float = 0.0
    retry: bool = False  # the worker died: the job may be tried again

    @property
    def ok(self) -> bool:
        return self.result is not None


def _error_text(e: BaseException) -> str:
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(e).__name__}: {e}{where}"[:2000]


def evaluate_job(evaluator: Evaluator, job: Job) -> Outcome:
    """Runs one job and turns any exception or non-finite reward into a failure."""
    start = time.time()
    try:
        result = evaluator.evaluate(job.spec, job.context)
        reward = float(result.reward)
        if not math.isfinite(reward):
            return Outcome(job, error=f"non-finite reward: {reward}", duration=time.time() - start)
        result.reward = reward
        return Outcome(job, result=result, duration=time.time() - start)
    except Exception as e:  # noqa: BLE001 - a child's failure must not stop the search
        return Outcome(job, error=_error_text(e), duration=time.time() - start)


class Executor:
    """Base class: trains children given as jobs."""

    def run(self, evaluator: Evaluator, jobs: Iterable[Job]) -> Iterator[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InlineExecutor(Executor):
    """Trains children in the search process, one at a time."""

    def run(self, evaluator, jobs):
        for job in jobs:
            yield evaluate_job(evaluator, job)
