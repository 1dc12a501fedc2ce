"""The body of a :class:`nas_tf.executors.LocalExecutor` worker process.

A worker is started with ``spawn``: it sets its environment (GPU set, thread
counts) before anything imports TensorFlow, unpickles the evaluator, then
trains the children it receives over its pipe, one at a time, and sends each
:class:`nas_tf.executors.Outcome` back (and, while a child trains, its
``context.report(...)`` calls as :class:`nas_tf.executors.base.ProgressReport`).
It exits after ``recycle_after`` children, after a child that ran out of
memory, when it receives ``None``, and when the search process dies (so no
orphan keeps a GPU busy).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import threading
import time


def _die_with_parent(parent_pid: int) -> None:
    """Ends this process when ``parent_pid`` is gone (also after a SIGKILL)."""
    try:  # Linux: the kernel sends SIGKILL when the parent dies.
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch():
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=watch, name="nas_tf-parent-watch", daemon=True).start()


def worker_main(conn, env: dict, evaluator_blob: bytes, recycle_after: int,
                parent_pid: int) -> None:
    """Trains children received on ``conn`` until told to stop (see module doc)."""
    os.environ.update(env)
    _die_with_parent(parent_pid)
    if os.environ.get("NAS_TF_QUIET_STARTUP") == "1":  # the CLI quietened TensorFlow
        from nas_tf.cli import import_tensorflow_quietly

        import_tensorflow_quietly()
    from nas_tf.executors.base import (
        Outcome,
        ProgressReport,
        ThrottledReports,
        _error_text,
        evaluate_job,
        is_out_of_memory,
    )

    evaluator = pickle.loads(evaluator_blob)
    progress = ThrottledReports(lambda child_id, info: conn.send(ProgressReport(child_id, info)))
    done = 0
    try:
        while done < recycle_after:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            job = dataclasses.replace(job, context=dataclasses.replace(
                job.context, on_progress=progress))
            outcome = evaluate_job(evaluator, job)
            outcome.worker = f"pid {os.getpid()}"
            try:
                conn.send(outcome)
            except (EOFError, OSError):
                return
            except Exception as e:  # noqa: BLE001 - e.g. metrics that do not pickle
                conn.send(Outcome(job, error=f"result could not be sent: {_error_text(e)}",
                                  duration=outcome.duration))
            done += 1
            if is_out_of_memory(outcome.error):
                return  # a fresh process gets a clean allocator
    finally:
        try:
            evaluator.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
        conn.close()
