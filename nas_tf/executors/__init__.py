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

from nas_tf.errors import ConfigError
from nas_tf.executors.base import (  # noqa: F401 - the package's public names
    EXECUTORS,
    ChildTimeout,
    Executor,
    Job,
    Outcome,
    evaluate_job,
    is_out_of_memory,
    read_result_file,
    write_result_file,
)
from nas_tf.executors.inline import InlineExecutor
from nas_tf.executors.local import LocalExecutor, visible_gpus
from nas_tf.executors.ray_executor import RayExecutor

__all__ = ["EXECUTORS", "ChildTimeout", "Executor", "InlineExecutor", "Job", "LocalExecutor",
           "Outcome", "RayExecutor", "evaluate_job", "is_out_of_memory", "make_executor",
           "read_result_file", "visible_gpus", "write_result_file"]


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
