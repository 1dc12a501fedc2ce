"""The local executor: a pool of spawned worker processes on this machine."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import pickle
import subprocess
import time

from nas_tf.errors import ConfigError
from nas_tf.executors.base import (
    Executor,
    Outcome,
    ProgressReport,
    _after_wait,
    _check_positive,
    _error_text,
    _retry_or_give_up,
    _take_ready,
    _Task,
    _wait_seconds,
    is_out_of_memory,
)

_log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------
# Local process pool.
# --------------------------------------------------------------------------
class _Worker:
    """One spawned worker process and its end of a pipe."""

    def __init__(self, ctx, index: int, env: dict, devices, blob: bytes, recycle_after: int):
        from nas_tf.executors import worker as worker_mod

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
        self.devices_per_child = max(1, gpus_per_child)
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

    def _receive(self, w: _Worker) -> bool:
        """Reads what ``w`` has sent: progress reports go to its child's
        listener; True once its outcome arrived (or its pipe broke)."""
        while w.task is not None and w.conn.poll():
            try:
                msg = w.conn.recv()
            except (EOFError, OSError) as e:
                self._worker_died(w, f"worker {w.name} lost its pipe ({e})")
                return True
            except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
                msg = Outcome(w.task.job, error=f"result could not be received: "
                              f"{_error_text(e)}")
            if isinstance(msg, ProgressReport):
                w.task.job.context.report(**msg.info)
                continue
            self._finish(w, msg)
            return True
        return False

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
            if self._receive(w):  # it finished in time; the result was waiting
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
                    self._receive(w)
                elif not w.process.is_alive():
                    self._worker_died(w, f"worker {w.name} died")
            if _after_wait(self, deadline):
                break
        return _take_ready(self)

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
