"""The Ray executor: each child a Ray task, on a local instance or a cluster."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

from nas_tf.errors import ConfigError
from nas_tf.executors.base import (
    Executor,
    Outcome,
    ThrottledReports,
    _after_wait,
    _check_positive,
    _error_text,
    _retry_or_give_up,
    _take_ready,
    _Task,
    _wait_seconds,
    evaluate_job,
)

_log = logging.getLogger(__name__)

#: Seconds between two relays of the children's progress reports to the search.
PROGRESS_EVERY_S = 1.0


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


#: Ray turns a loopback node address into the machine's own address unless this
#: variable is "0" (``resolve_ip_for_localhost`` -> ``get_node_ip_address`` in
#: ray/_private/services.py, which keeps 127.0.0.1 only when
#: ``ray_constants.ENABLE_RAY_CLUSTER`` is off), and Ray's gRPC servers listen on
#: 127.0.0.1 only when the node address is exactly "127.0.0.1" (else on all
#: interfaces: src/ray/rpc/grpc_server.cc, ``GrpcServer::Run``).
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _init_local_ray(ray, **kwargs) -> None:
    """Starts a local Ray instance whose every process listens on 127.0.0.1 only.

    The variable is set while Ray starts its processes (they inherit it), and
    Ray's copy of it is switched too in case Ray was imported before; both
    are put back afterwards. A warning is logged if Ray still chose another
    address (a Ray version that changed these internals).
    """
    consts = sys.modules.get("ray._private.ray_constants")
    saved_env = os.environ.get(_LOCAL_ONLY_ENV)
    saved_const = getattr(consts, "ENABLE_RAY_CLUSTER", None)
    os.environ[_LOCAL_ONLY_ENV] = "0"
    if saved_const is not None:
        consts.ENABLE_RAY_CLUSTER = False
    try:
        # "local": a new instance, never the cluster a `ray start` left on this machine.
        ray.init(address="local", _node_ip_address="127.0.0.1", **kwargs)
    finally:
        if saved_env is None:
            os.environ.pop(_LOCAL_ONLY_ENV, None)
        else:
            os.environ[_LOCAL_ONLY_ENV] = saved_env
        if saved_const is not None:
            consts.ENABLE_RAY_CLUSTER = saved_const
    ip = ray.util.get_node_ip_address()
    if ip != "127.0.0.1":
        _log.warning("The local Ray instance took the address %s, not 127.0.0.1: its servers may "
                     "listen on all interfaces; firewall its ports (README 'Ray').", ip)


class _ProgressBoard:
    """A Ray actor (no CPU reserved) holding each training child's latest
    ``context.report(...)``; the driver takes them while it waits."""

    def __init__(self):
        self._latest: dict[int, dict] = {}

    def put(self, child_id: int, info: dict) -> None:
        self._latest[child_id] = info

    def take(self) -> dict[int, dict]:
        out, self._latest = self._latest, {}
        return out


def _ray_evaluate(evaluator, job, board=None):
    """The body of one Ray task (runs in a Ray worker)."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    if gpu_ids:
        job = dataclasses.replace(job, context=dataclasses.replace(
            job.context, devices=tuple(f"/gpu:{i}" for i in range(len(gpu_ids)))))
    if board is not None:
        job = dataclasses.replace(job, context=dataclasses.replace(
            job.context, on_progress=ThrottledReports(board.put.remote)))  # fire and forget
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


def check_ray_address(address: str | None) -> None:
    """Refuses an address Ray could never reach (a malformed host or port),
    before Ray starts or a run directory is written.

    Raises:
        ConfigError: not ``auto``, ``local``, ``[ray://]host:port`` with a
            valid host name or IPv4 address and a port in 1..65535.
    """
    if address in (None, "", "auto", "local"):
        return
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    parts = host.split(".")
    ok = bool(host) and port.isdigit() and 0 < int(port) < 65536
    if ok and all(p.isdigit() for p in parts):  # an IPv4 address
        ok = len(parts) == 4 and all(int(p) <= 255 for p in parts)
    elif ok and ":" not in host:  # a host name (IPv6 in brackets passes as it is)
        ok = all(p and all(c.isalnum() or c == "-" for c in p) for p in parts)
    if not ok:
        raise ConfigError(
            "--ray_address must be 'auto', 'local' or [ray://]HOST:PORT with a valid host and "
            f"a port in 1..65535 (leave it out for a local Ray). Received: ray_address={address!r}")


class RayExecutor(Executor):
    """Each child is a Ray task with its own resources.

    Args:
        address: A Ray cluster to join (``auto``: the one started on this
            machine by ``ray start --head``; ``ray://host:10001``: a remote
            one); None joins ``$RAY_ADDRESS`` if set, else starts a local
            Ray instance that listens on 127.0.0.1 only (or uses the one this
            process already started with ``ray.init``).
        num_workers: Children in flight (default: as many as the cluster's
            CPUs, or GPUs, can hold at once).
        gpus_per_child: GPUs of each child task (Ray sets its
            ``CUDA_VISIBLE_DEVICES``).
        cpus_per_child: CPUs of each child task.
        child_timeout: Seconds after which a child's task is cancelled (its
            worker killed) and the child recorded as failed. They count from
            the task's submission to Ray, so they include the start-up of a
            new worker (seconds on a loaded machine) after one died.
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
        check_ray_address(address)
        self._ray = _import_ray()
        self.address = address
        self._num_workers = num_workers
        self.capacity = num_workers or 1
        self.gpus_per_child = gpus_per_child or 0
        self.devices_per_child = max(1, int(self.gpus_per_child))  # 0.5 GPU: one device
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
        self._board = None  # the _ProgressBoard actor, once started
        self.workers_died = 0

    def start(self, evaluator):
        ray = self._ray
        super().start(evaluator)
        if not ray.is_initialized():
            try:
                options = dict(include_dashboard=False, ignore_reinit_error=True,
                               log_to_driver=False)
                if self.address or os.environ.get("RAY_ADDRESS"):
                    ray.init(address=self.address, **options)
                else:
                    # Every process of a local instance (GCS, raylet, object manager,
                    # agents, workers) listens on 127.0.0.1 only; README "Ray": clusters.
                    _init_local_ray(ray, **options)
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
        board = {k: v for k, v in options.items() if k == "runtime_env"}
        self._board = ray.remote(num_cpus=0)(_ProgressBoard).options(**board).remote()
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
            self._refs[self._fn.remote(self._evaluator_ref, task.job, self._board)] = task

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

    def _relay_progress(self) -> None:
        """Hands the children's latest reports (from the board) to their listeners."""
        if self._board is None:
            return
        try:
            reports = self._ray.get(self._board.take.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - progress display is best effort: stop asking
            self._board = None
            return
        training = {t.job.trial_id: t for t in self._refs.values()}
        for child_id, info in reports.items():
            if child_id in training:
                training[child_id].job.context.report(**info)

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
            # Wake at least once a second to relay the children's progress.
            wait_s = PROGRESS_EVERY_S if wait_s is None else min(wait_s, PROGRESS_EVERY_S)
            done, rest = ray.wait(refs, num_returns=1, timeout=wait_s)
            if done and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                done += more
            self._relay_progress()  # before collecting: a finished child's last report
            for ref in done:
                self._collect(ref)
            if _after_wait(self, deadline):
                break
        return _take_ready(self)

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
        if self._board is not None:
            try:
                self._ray.kill(self._board)
            except Exception:  # noqa: BLE001 - it dies with the driver anyway
                pass
            self._board = None
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False
