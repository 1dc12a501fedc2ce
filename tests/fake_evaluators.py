"""Cheap evaluators for the executor and fault tests and benchmarks.

They live in an importable module (not in a test file) because executors send
them to spawned worker processes and Ray workers, which must import their
class. Plain Python only: no TensorFlow, no data files.

Children are picked out by their trial id (``ChildContext.child_id``), which
is the same under every executor, so a test can say "child 3 fails" or
"the worker training child 5 dies once".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time

from nas_tf.evaluator import EvalResult, Evaluator


def spec_reward(spec) -> float:
    """A deterministic reward in [0, 1) from the spec (same in every process)."""
    obj = spec.to_json() if hasattr(spec, "to_json") else repr(spec)
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
    return int(digest[:8], 16) / 2.0**32


def busy(seconds: float) -> int:
    """Spins one CPU core for ``seconds`` (CPU-bound work, unlike sleep)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        for i in range(2000):
            n += i * i % 7
    return n


class FakeEvaluator(Evaluator):
    """Reward = :func:`spec_reward`; misbehaves on chosen children.

    Args:
        sleep_s: Seconds each child sleeps (an I/O-bound child).
        busy_s: Seconds each child keeps one CPU core busy (a CPU-bound child).
        fail_ids: Children that raise.
        nan_ids: Children whose reward is NaN.
        oom_ids: Children that raise ``MemoryError``.
        hang_ids: Children that sleep ``hang_s`` seconds (for timeouts).
        die_once_ids: Children whose process SIGKILLs itself the first time
            (needs ``marker_dir``, where a file remembers the first try).
        die_always_ids: Children whose process SIGKILLs itself every time.
        calls_file: Each evaluation appends ``"<child_id> <pid>"`` here when
            it starts (O_APPEND, so lines from several processes do not mix).
        done_file: The same, when an evaluation returns a reward.
        alloc_mb: Allocates (and frees) this many MiB per child.
        report_steps: Reports ``step=i, steps=report_steps`` this many times,
            ``sleep_s / report_steps`` apart (instead of one sleep).
    """

    def __init__(self, sleep_s: float = 0.0, busy_s: float = 0.0, fail_ids=(), nan_ids=(),
                 oom_ids=(), hang_ids=(), hang_s: float = 60.0, die_once_ids=(),
                 die_always_ids=(), marker_dir: str | None = None,
                 calls_file: str | None = None, alloc_mb: int = 0,
                 done_file: str | None = None, report_steps: int = 0):
        self.sleep_s = sleep_s
        self.busy_s = busy_s
        self.fail_ids = frozenset(fail_ids)
        self.nan_ids = frozenset(nan_ids)
        self.oom_ids = frozenset(oom_ids)
        self.hang_ids = frozenset(hang_ids)
        self.hang_s = hang_s
        self.die_once_ids = frozenset(die_once_ids)
        self.die_always_ids = frozenset(die_always_ids)
        self.marker_dir = marker_dir
        self.calls_file = calls_file
        self.alloc_mb = alloc_mb
        self.done_file = done_file
        self.report_steps = report_steps

    def _log_call(self, child_id: int, path: str | None = None) -> None:
        path = path or self.calls_file
        if not path:
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{child_id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def evaluate(self, spec, context) -> EvalResult:
        cid = context.child_id
        self._log_call(cid)
        if cid in self.die_always_ids:
            os.kill(os.getpid(), signal.SIGKILL)
        if cid in self.die_once_ids:
            marker = os.path.join(self.marker_dir, f"died_{cid}")
            if not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        for step in range(1, self.report_steps + 1):
            time.sleep(self.sleep_s / self.report_steps)
            context.report(step=step, steps=self.report_steps)
        if self.sleep_s and not self.report_steps:
            time.sleep(self.sleep_s)
        if self.busy_s:
            busy(self.busy_s)
        if self.alloc_mb:
            block = bytearray(self.alloc_mb * 1024 * 1024)
            block[::4096] = b"\1" * len(block[::4096])
            del block
        if cid in self.hang_ids:
            time.sleep(self.hang_s)
        if cid in self.fail_ids:
            raise RuntimeError(f"synthetic failure of child {cid}")
        if cid in self.oom_ids:
            raise MemoryError(f"synthetic out of memory in child {cid}")
        if cid in self.nan_ids:
            return EvalResult(reward=math.nan)
        if self.done_file:
            self._log_call(cid, self.done_file)
        return EvalResult(reward=spec_reward(spec), metrics={"pid": os.getpid()})


class TinyKerasEvaluator(Evaluator):
    """Builds and trains a tiny Keras model per child (for memory benchmarks).

    The width of its hidden layer comes from the spec, so children differ.
    Keras is imported inside :meth:`evaluate` (the evaluator pickles as plain
    settings).
    """

    def __init__(self, steps: int = 2, clear_session: bool = True):
        self.steps = steps
        self.clear_session = clear_session

    def evaluate(self, spec, context) -> EvalResult:
        import keras
        import numpy as np

        if self.clear_session:
            keras.backend.clear_session()
        width = 8 + int(spec_reward(spec) * 24)
        rng = np.random.default_rng(context.seed)
        x = rng.normal(size=(64, 16)).astype("float32")
        y = (x[:, :1] > 0).astype("float32")
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(width, "relu"),
                                  keras.layers.Dense(1, "sigmoid")])
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=32, epochs=self.steps, verbose=0)
        loss, acc = model.evaluate(x, y, verbose=0)
        return EvalResult(reward=float(acc), metrics={"loss": float(loss), "pid": os.getpid()})


def read_calls(calls_file: str) -> list[int]:
    """The child ids evaluated, in order (one per evaluation)."""
    if not os.path.exists(calls_file):
        return []
    with open(calls_file) as f:
        return [int(line.split()[0]) for line in f if line.strip()]


def fake_search_config(algorithm: str = "evolution", max_children: int = 12,
                       children_per_update: int = 2, seed: int = 0):
    """The search settings of :func:`main` (evolution: population 4, tournament 2;
    reinforce: the small-budget preset)."""
    from nas_tf.config import EvolutionConfig, SearchConfig, reinforce_preset

    return SearchConfig(algorithm=algorithm, max_children=max_children,
                        children_per_update=children_per_update, seed=seed,
                        reinforce=reinforce_preset("small_budget"),
                        evolution=EvolutionConfig(population_size=4, tournament_size=2))


def main(argv=None) -> int:
    """Runs a search of the NAS-Bench-201 space with a :class:`FakeEvaluator`
    (the fault tests run it in a subprocess they kill). Prints ``STATUS <status>``
    and the summary's stop reason."""
    import argparse

    from cnn_space.nb201 import Nb201Space
    from nas_tf.executors import make_executor
    from nas_tf.loop import run_search

    p = argparse.ArgumentParser()
    p.add_argument("--run_dir", required=True)
    p.add_argument("--max_children", type=int, default=12)
    p.add_argument("--children_per_update", type=int, default=2)
    p.add_argument("--max_in_flight", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--algorithm", default="evolution")
    p.add_argument("--executor", default="inline")
    p.add_argument("--num_workers", type=int, default=None)
    p.add_argument("--sleep_s", type=float, default=0.0)
    p.add_argument("--busy_s", type=float, default=0.0)
    p.add_argument("--calls_file", default=None)
    p.add_argument("--done_file", default=None)
    p.add_argument("--die_once_ids", default="")
    p.add_argument("--marker_dir", default=None)
    p.add_argument("--checkpoint_every_s", type=float, default=0.0)
    a = p.parse_args(argv)
    ids = [int(x) for x in a.die_once_ids.split(",") if x]
    evaluator = FakeEvaluator(sleep_s=a.sleep_s, busy_s=a.busy_s, calls_file=a.calls_file,
                              done_file=a.done_file,
                              die_once_ids=ids, marker_dir=a.marker_dir)
    config = fake_search_config(a.algorithm, a.max_children, a.children_per_update, a.seed)
    executor = make_executor(a.executor, num_workers=a.num_workers, cpus_per_child=1)
    summary = run_search(Nb201Space(), evaluator, run_dir=a.run_dir, config=config,
                         executor=executor, max_in_flight=a.max_in_flight, child_logs=False,
                         checkpoint_every_s=a.checkpoint_every_s, handle_signals=True)
    print(f"STATUS {summary['status']}")
    print(summary["stop_reason"], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
