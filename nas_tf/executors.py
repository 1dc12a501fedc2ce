"""Executors: where children are trained.

The paper trains children in parallel on 800 GPUs (Zoph & Le 2017,
arXiv:1611.01578, §3.3); here an executor keeps several children running at
once and hands their results back as they finish. Three are provided:

* :class:`InlineExecutor` — in the search process, one child at a time;
* :class:`LocalExecutor` — a pool of worker processes on one machine, each
  training one child at a time on its own GPU set (``CUDA_VISIBLE_DEVICES``)
  or CPU slot, started with ``spawn`` and recycled after N children so memory
  cannot grow without bound;
* :class:`RayExecutor` — each child a Ray task with its resources, on a local
  Ray instance or an existing cluster (Ray is the optional extra
  ``nas_tf[ray]``).

The interface is asynchronous: :meth:`Executor.submit` a :class:`Job`,
:meth:`Executor.poll` for the :class:`Outcome` of the jobs that finished.
An executor never stops the search because of one child:

* a child that raises (out of memory included) or returns a non-finite
  reward gives a failed outcome with its error text;
* a child that runs past ``child_timeout`` seconds is killed (its worker is
  replaced) and gives a failed outcome;
* a worker that dies while training a child (killed, crashed, lost with its
  node) gets its job tried again, at most ``max_retries`` times, and then
  a failed outcome.

A finished child's outcome is also written atomically to ``Job.result_file``
(when given) before it is sent back, so a search killed in the moment between
the two finds it there on resume instead of training the child again.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterable, Iterator

from nas_tf.config import check_positive
from nas_tf.errors import ConfigError
from nas_tf.evaluator import ChildContext, EvalResult, Evaluator

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

    write_json_atomic(path, obj, indent=None, default=float)


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
    """

    name = "base"
    capacity = 1

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


# --------------------------------------------------------------------------
# Inline.
# --------------------------------------------------------------------------
class InlineExecutor(Executor):
    """Trains children in the search process, one at a time.

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
            return [evaluate_job(self.evaluator, job)]

        limit = float(self.child_timeout)

        def on_alarm(signum, frame):
            raise ChildTimeout(f"child {job.trial_id} ran past --child_timeout={limit:g}s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            return [evaluate_job(self.evaluator, job)]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def cancel(self):
        jobs = list(self._queue)
        self._queue.clear()
        return jobs


# --------------------------------------------------------------------------
# Devices.
# --------------------------------------------------------------------------
def visible_gpus() -> list[str]:
    """The GPU ids this process may use, without importing TensorFlow.

    ``CUDA_VISIBLE_DEVICES`` when set, else the GPUs ``nvidia-smi`` lists,
    else none.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


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


# --------------------------------------------------------------------------
# Local process pool.
# --------------------------------------------------------------------------
@dataclasses.dataclass
class _Task:
    job: Job
    attempts: int = 0
    started: float = 0.0


class _Worker:
    """One spawned worker process and its end of a pipe."""

    def __init__(self, ctx, index: int, env: dict, devices, blob: bytes, recycle_after: int):
        from nas_tf import worker as worker_mod

        self.index = index
        self.devices = devices
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=worker_mod.worker_main, name=f"nas_tf-worker-{index}",
            args=(child_conn, env, blob, recycle_after, os.getpid()), daemon=True)
        self.process.start()
        child_conn.close()
        self.task: _Task | None = None
        self.done = 0
        self.exiting = False
        self.recycle_after = recycle_after

    @property
    def name(self) -> str:
        return f"local-{self.index}(pid {self.process.pid})"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class LocalExecutor(Executor):
    """A pool of worker processes on this machine.

    Each worker is a process started with ``spawn`` (no TensorFlow state is
    inherited) that trains one child at a time: on its own GPU set
    (``CUDA_VISIBLE_DEVICES``; the child's ``ChildContext.devices`` names
    them, so an evaluator can use a ``MirroredStrategy`` over several), or,
    without GPUs, on a CPU slot (``TF_NUM_INTRAOP_THREADS`` and
    ``OMP_NUM_THREADS`` set to ``cpus_per_child``). A worker exits after
    ``recycle_after`` children, and after a child that ran out of memory,
    and a fresh one takes its place: TensorFlow and Keras leak memory across
    many models in one process, even with ``keras.backend.clear_session()``
    (which also resets the mixed-precision policy, so evaluators set it per
    child).

    Args:
        num_workers: Worker processes (default: one per GPU set, or one per
            ``cpus_per_child`` CPUs on a machine without GPUs).
        gpus_per_child: GPUs of each worker (default 1 when there are GPUs;
            0 hides the GPUs from the children).
        cpus_per_child: CPU threads of each child on a CPU machine.
        child_timeout: Seconds after which a child's worker is killed and the
            child recorded as failed (None: never).
        max_retries: Times a child whose worker died is tried again.
        recycle_after: Children per worker process before it is replaced.

    Raises:
        ConfigError: a bad setting (e.g. more GPUs per child than visible).
    """

    name = "local"

    def __init__(self, num_workers: int | None = None, gpus_per_child: int | None = None,
                 cpus_per_child: int | None = None, child_timeout: float | None = None,
                 max_retries: int = 2, recycle_after: int = 50):
        _check_positive("num_workers", num_workers)
        _check_positive("gpus_per_child", gpus_per_child, allow_zero=True)
        _check_positive("cpus_per_child", cpus_per_child)
        _check_positive("child_timeout", child_timeout)
        _check_positive("max_retries", max_retries, allow_zero=True)
        _check_positive("recycle_after", recycle_after)
        gpus = visible_gpus()
        if gpus_per_child is None:
            gpus_per_child = 1 if gpus else 0
        if gpus_per_child > len(gpus):
            raise ConfigError(
                f"--gpus_per_child={gpus_per_child} but {len(gpus)} GPU(s) are visible "
                f"({','.join(gpus) or 'none'}). Use --gpus_per_child=0 for CPU children. "
                f"Received: gpus_per_child={gpus_per_child}")
        if num_workers is None:
            if gpus_per_child:
                num_workers = len(gpus) // gpus_per_child
            else:
                num_workers = max(1, (os.cpu_count() or 1) // (cpus_per_child or 1))
        if gpus_per_child and num_workers * gpus_per_child > len(gpus):
            raise ConfigError(
                f"{num_workers} workers x {gpus_per_child} GPU(s) need "
                f"{num_workers * gpus_per_child} GPUs; {len(gpus)} are visible. "
                "Lower --num_workers or --gpus_per_child. "
                f"Received: num_workers={num_workers}")
        self.capacity = num_workers
        self.gpus, self.gpus_per_child = gpus, gpus_per_child
        self.cpus_per_child = cpus_per_child
        self.child_timeout = child_timeout
        self.max_retries = max_retries
        self.recycle_after = recycle_after
        self._ctx = None
        self._blob = b""
        self._workers: list[_Worker | None] = []
        self._queue: collections.deque[_Task] = collections.deque()
        self._ready: list[Outcome] = []
        self.workers_started = 0
        self.workers_died = 0

    # ------------------------------------------------------------ workers
    def _env_and_devices(self, index: int):
        env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        if self.gpus_per_child:
            ids = self.gpus[index * self.gpus_per_child:(index + 1) * self.gpus_per_child]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
            devices = tuple(f"/gpu:{i}" for i in range(len(ids)))
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
            devices = None
            if self.cpus_per_child:
                n = str(self.cpus_per_child)
                env.update(TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS="1",
                           OMP_NUM_THREADS=n)
        return env, devices

    def _spawn(self, index: int) -> _Worker:
        env, devices = self._env_and_devices(index)
        w = _Worker(self._ctx, index, env, devices, self._blob, self.recycle_after)
        self._workers[index] = w
        self.workers_started += 1
        return w

    def start(self, evaluator):
        import multiprocessing

        super().start(evaluator)
        try:
            self._blob = pickle.dumps(evaluator)
        except Exception as e:  # noqa: BLE001 - any pickling error means the same fix
            raise ConfigError(
                f"The evaluator {type(evaluator).__name__} cannot be sent to worker processes "
                f"({type(e).__name__}: {e}). Keep only plain configuration in it and load data "
                "lazily in evaluate(), or use --executor=inline.") from None
        self._ctx = multiprocessing.get_context("spawn")
        self.close()
        self._workers = [None] * self.capacity
        for i in range(self.capacity):
            self._spawn(i)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w is not None]

    def busy_workers(self) -> dict[int, int]:
        """{pid: trial id} of the workers training a child now."""
        return {w.process.pid: w.task.job.trial_id for w in self._workers
                if w is not None and w.task is not None}

    # ------------------------------------------------------------- jobs
    def submit(self, job):
        self._queue.append(_Task(job))
        self._dispatch()

    def num_in_flight(self):
        busy = sum(1 for w in self._workers if w is not None and w.task is not None)
        return len(self._queue) + busy + len(self._ready)

    def _dispatch(self) -> None:
        for i, w in enumerate(self._workers):
            if not self._queue:
                return
            if w is not None and w.task is not None:
                continue
            if w is None or w.exiting or not w.process.is_alive():
                if w is not None:  # recycled (it exits by itself), or died idle
                    w.process.join(timeout=30)
                    w.kill()
                w = self._spawn(i)
            task = self._queue.popleft()
            task.attempts += 1
            task.started = time.time()
            job = dataclasses.replace(task.job, context=dataclasses.replace(
                task.job.context, devices=w.devices))
            try:
                w.conn.send(job)
            except (OSError, EOFError):  # it died just now: put the task back, try another
                self._queue.appendleft(task)
                task.attempts -= 1
                w.kill()
                self._spawn(i)
                continue
            w.task = task

    def _finish(self, w: _Worker, outcome: Outcome) -> None:
        task = w.task
        w.task = None
        w.done += 1
        # The worker exits by itself after recycle_after children or an OOM.
        w.exiting = w.done >= w.recycle_after or is_out_of_memory(outcome.error)
        outcome.job = task.job
        outcome.attempts = task.attempts
        outcome.worker = w.name
        self._ready.append(outcome)

    def _worker_died(self, w: _Worker, why: str) -> None:
        task = w.task
        w.task = None
        code = w.process.exitcode
        w.kill()
        self._workers[w.index] = None
        if task is None:
            return  # recycled, or died idle: replaced on the next dispatch
        _retry_or_give_up(
            self, task,
            f"WorkerDied: {why} (exit code {code}) while training child {task.job.trial_id}",
            worker=w.name)

    def _check_timeouts(self) -> None:
        if not self.child_timeout:
            return
        now = time.time()
        for w in list(self._workers):
            if w is None or w.task is None or now - w.task.started <= self.child_timeout:
                continue
            if w.conn.poll():  # it finished in time; the result is waiting
                continue
            task = w.task
            w.task = None
            w.kill()
            self._workers[w.index] = None
            self._ready.append(Outcome(
                task.job, error=f"ChildTimeout: child {task.job.trial_id} ran past "
                f"--child_timeout={self.child_timeout:g}s (its worker was killed)",
                duration=now - task.started, attempts=task.attempts, worker=w.name))

    def poll(self, timeout=None):
        from multiprocessing.connection import wait

        self._dispatch()
        deadline = None if timeout is None else time.time() + timeout
        while not self._ready:
            busy = [w for w in self._workers if w is not None and w.task is not None]
            if not busy:
                if not self._queue:
                    return []
                self._dispatch()
                continue
            wait_s = _wait_seconds(deadline, (w.task.started for w in busy), self.child_timeout)
            handles = {}
            for w in busy:
                handles[w.conn] = w
                handles[w.process.sentinel] = w
            for h in wait(list(handles), timeout=wait_s):
                w = handles[h]
                if w.task is None or self._workers[w.index] is not w:
                    continue
                if w.conn.poll():
                    try:
                        outcome = w.conn.recv()
                    except (EOFError, OSError) as e:
                        self._worker_died(w, f"worker {w.name} lost its pipe ({e})")
                        continue
                    except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
                        outcome = Outcome(w.task.job, error=f"result could not be received: "
                                          f"{_error_text(e)}")
                    self._finish(w, outcome)
                elif not w.process.is_alive():
                    self._worker_died(w, f"worker {w.name} died")
            self._check_timeouts()
            self._dispatch()
            if deadline is not None and time.time() >= deadline:
                break
        out, self._ready = self._ready, []
        return out

    def cancel(self):
        jobs = [t.job for t in self._queue]
        self._queue.clear()
        for i, w in enumerate(self._workers):
            if w is not None and w.task is not None:
                jobs.append(w.task.job)
                w.task = None
                w.kill()
                self._workers[i] = None
        jobs.extend(o.job for o in self._ready)
        self._ready = []
        return jobs

    def close(self):
        for w in self._workers:
            if w is None:
                continue
            if w.task is None and w.process.is_alive():
                try:
                    w.conn.send(None)
                except (OSError, EOFError):
                    pass
        for w in self._workers:
            if w is None:
                continue
            w.process.join(timeout=5 if w.task is None else 0)
            w.kill()
        self._workers = [None] * len(self._workers)
        self._queue.clear()


# --------------------------------------------------------------------------
# Ray.
# --------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor=ray needs Ray, which is not installed. Install it with "
            "pip install 'nas_tf[ray]' (or pip install 'ray[default]'), or use "
            "--executor=local. Received: executor='ray'") from None
    return ray


def _ray_evaluate(evaluator, job):
    """The body of one Ray task (runs in a Ray worker)."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    if gpu_ids:
        job = dataclasses.replace(job, context=dataclasses.replace(
            job.context, devices=tuple(f"/gpu:{i}" for i in range(len(gpu_ids)))))
    outcome = evaluate_job(evaluator, job)
    outcome.worker = f"ray(pid {os.getpid()})"
    return outcome


def _ray_warm_up(evaluator) -> int:
    """A no-op Ray task: starts a worker process and unpickles the evaluator."""
    del evaluator
    return os.getpid()


def _code_paths(objs) -> list[str]:
    """Directories that make the modules of ``objs``' classes importable."""
    paths = []
    for obj in objs:
        mod = sys.modules.get(type(obj).__module__)
        f = getattr(mod, "__file__", None)
        if not f:
            continue
        d = Path(f).resolve().parent
        while (d / "__init__.py").is_file():
            d = d.parent
        s = str(d)
        if "site-packages" in s or "dist-packages" in s:
            continue
        if s not in paths:
            paths.append(s)
    return paths


class RayExecutor(Executor):
    """Each child is a Ray task with its own resources.

    Args:
        address: A Ray cluster to join (``auto``: the one started on this
            machine by ``ray start --head``; ``ray://host:10001``: a remote
            one); None starts a local Ray instance (or uses the one this
            process already started with ``ray.init``).
        num_workers: Children in flight (default: as many as the cluster's
            CPUs, or GPUs, can hold at once).
        gpus_per_child: GPUs of each child task (Ray sets its
            ``CUDA_VISIBLE_DEVICES``).
        cpus_per_child: CPUs of each child task.
        child_timeout: Seconds after which a child's task is cancelled (its
            worker killed) and the child recorded as failed.
        max_retries: Times a child whose worker or node died is tried again.
        recycle_after: Children per Ray worker process before it is replaced
            (Ray's ``max_calls``).

    Raises:
        ConfigError: Ray is not installed, or a bad setting.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_workers: int | None = None,
                 gpus_per_child: float = 0, cpus_per_child: float = 1,
                 child_timeout: float | None = None, max_retries: int = 2,
                 recycle_after: int = 50):
        _check_positive("num_workers", num_workers)
        _check_positive("gpus_per_child", gpus_per_child, allow_zero=True)
        _check_positive("cpus_per_child", cpus_per_child, allow_zero=True)
        _check_positive("child_timeout", child_timeout)
        _check_positive("max_retries", max_retries, allow_zero=True)
        _check_positive("recycle_after", recycle_after)
        self._ray = _import_ray()
        self.address = address
        self._num_workers = num_workers
        self.capacity = num_workers or 1
        self.gpus_per_child = gpus_per_child or 0
        self.cpus_per_child = cpus_per_child if cpus_per_child is not None else 1
        self.child_timeout = child_timeout
        self.max_retries = max_retries
        self.recycle_after = recycle_after
        self._owns_ray = False
        self._refs: dict = {}  # ObjectRef -> _Task
        # Jobs beyond `capacity` wait here, not in Ray's queue, so that a
        # child's timeout counts from when it can start.
        self._queue: collections.deque[_Task] = collections.deque()
        self._ready: list[Outcome] = []
        self._fn = None
        self.workers_died = 0

    def start(self, evaluator):
        ray = self._ray
        super().start(evaluator)
        if not ray.is_initialized():
            try:
                local = {} if self.address else {"_node_ip_address": "127.0.0.1"}
                # A local instance listens on the loopback interface only (its GCS,
                # raylet, object manager and workers); see README "Ray" for clusters.
                ray.init(address=self.address, include_dashboard=False,
                         ignore_reinit_error=True, log_to_driver=False, **local)
            except ConnectionError as e:
                raise ConfigError(
                    f"Cannot join the Ray cluster at --ray_address={self.address} ({e}). Start "
                    "one with `ray start --head`, or leave --ray_address empty for a local one. "
                    f"Received: ray_address={self.address!r}") from None
            self._owns_ray = True
        if self._num_workers is None:
            res = ray.cluster_resources()
            if self.gpus_per_child:
                n = res.get("GPU", 0) // self.gpus_per_child
            else:
                n = res.get("CPU", 1) // max(self.cpus_per_child, 1e-9)
            self.capacity = max(1, int(n))
        options = dict(num_cpus=self.cpus_per_child, num_gpus=self.gpus_per_child,
                       max_retries=0)
        paths = _code_paths([evaluator])
        if paths:
            pp = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": pp}}
        # max_calls can only be given to ray.remote, not to .options().
        self._fn = ray.remote(max_calls=self.recycle_after)(_ray_evaluate).options(**options)
        self._evaluator_ref = ray.put(evaluator)
        # Start the worker processes now (with the evaluator's module importable),
        # so the first children's timeouts do not count Ray's worker start-up.
        warm = ray.remote(_ray_warm_up).options(**options)
        try:
            ray.get([warm.remote(self._evaluator_ref) for _ in range(self.capacity)],
                    timeout=300)
        except Exception as e:  # noqa: BLE001 - e.g. the evaluator's module is not importable
            raise ConfigError(
                f"Ray workers cannot load the evaluator {type(evaluator).__name__} "
                f"({type(e).__name__}: {str(e).splitlines()[0][:300]}). Make its module "
                "importable on every node (install the package, or put it on PYTHONPATH). "
                f"Received: ray_address={self.address!r}") from None

    def submit(self, job):
        self._queue.append(_Task(job))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and len(self._refs) < self.capacity:
            task = self._queue.popleft()
            task.attempts += 1
            task.started = time.time()
            self._refs[self._fn.remote(self._evaluator_ref, task.job)] = task

    def num_in_flight(self):
        return len(self._refs) + len(self._queue) + len(self._ready)

    def _collect(self, ref) -> None:
        ray = self._ray
        task = self._refs.pop(ref)
        try:
            outcome = ray.get(ref)
            outcome.job = task.job
            outcome.attempts = task.attempts
            self._ready.append(outcome)
            return
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError, ray.exceptions.LocalRayletDiedError) as e:
            why = (f"WorkerDied: {type(e).__name__}: {str(e).splitlines()[0][:300]} "
                   f"while training child {task.job.trial_id}")
        except ray.exceptions.TaskCancelledError:
            return
        except Exception as e:  # noqa: BLE001 - e.g. the task could not unpickle its job
            self._ready.append(Outcome(task.job, error=_error_text(e),
                                       duration=time.time() - task.started,
                                       attempts=task.attempts))
            return
        _retry_or_give_up(self, task, why)

    def _check_timeouts(self) -> None:
        if not self.child_timeout:
            return
        now = time.time()
        for ref, task in list(self._refs.items()):
            if now - task.started > self.child_timeout:
                self._ray.cancel(ref, force=True)
                del self._refs[ref]
                self._ready.append(Outcome(
                    task.job, error=f"ChildTimeout: child {task.job.trial_id} ran past "
                    f"--child_timeout={self.child_timeout:g}s (its Ray task was cancelled)",
                    duration=now - task.started, attempts=task.attempts))

    def poll(self, timeout=None):
        ray = self._ray
        deadline = None if timeout is None else time.time() + timeout
        self._dispatch()
        while not self._ready and self._refs:
            wait_s = _wait_seconds(deadline, (t.started for t in self._refs.values()),
                                   self.child_timeout)
            refs = list(self._refs)
            done, rest = ray.wait(refs, num_returns=1, timeout=wait_s)
            if done and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                done += more
            for ref in done:
                self._collect(ref)
            self._check_timeouts()
            self._dispatch()
            if deadline is not None and time.time() >= deadline:
                break
        out, self._ready = self._ready, []
        return out

    def cancel(self):
        jobs = []
        for ref, task in list(self._refs.items()):
            self._ray.cancel(ref, force=True)
            jobs.append(task.job)
        self._refs.clear()
        jobs.extend(t.job for t in self._queue)
        self._queue.clear()
        jobs.extend(o.job for o in self._ready)
        self._ready = []
        return jobs

    def close(self):
        self.cancel()
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False


def make_executor(name: str = "inline", *, num_workers: int | None = None,
                  gpus_per_child: float | None = None, cpus_per_child: float | None = None,
                  child_timeout: float | None = None, max_retries: int = 2,
                  recycle_after: int = 50, ray_address: str | None = None) -> Executor:
    """The executor named ``name`` (``inline``, ``local`` or ``ray``).

    Raises:
        ConfigError: an unknown name or a bad setting.
    """
    if name == "inline":
        return InlineExecutor(child_timeout=child_timeout)
    if name == "local":
        return LocalExecutor(num_workers=num_workers,
                             gpus_per_child=None if gpus_per_child is None else int(gpus_per_child),
                             cpus_per_child=None if cpus_per_child is None else int(cpus_per_child),
                             child_timeout=child_timeout, max_retries=max_retries,
                             recycle_after=recycle_after)
    if name == "ray":
        return RayExecutor(address=ray_address or None, num_workers=num_workers,
                           gpus_per_child=gpus_per_child or 0,
                           cpus_per_child=1 if cpus_per_child is None else cpus_per_child,
                           child_timeout=child_timeout, max_retries=max_retries,
                           recycle_after=recycle_after)
    raise ConfigError(f"Unknown executor; use one of {', '.join(EXECUTORS)}. "
                      f"Received: executor={name!r}")
