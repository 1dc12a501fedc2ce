r"""Benchmark: children per minute with 1 vs 2 workers, and scheduling overhead.

Children are CPU-bound fakes (each keeps one core busy for ``--busy_s``
seconds; tests/fake_evaluators.py), so on a 2-core machine 2 workers should
train close to 2x as many children per minute as 1. The scheduling overhead
is measured with instant children on one worker: (wall time) / children.

  flock /tmp/nas_bench.lock python experiments/executor_scaling.py

Prints a markdown table (paste it into experiments/results/executors.md).
The machine must be otherwise idle for the speed-up to mean anything: the
load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fake_evaluators import FakeEvaluator  # noqa: E402

from cnn_space.nb201 import Nb201Space  # noqa: E402
from nas_tf.evaluator import ChildContext  # noqa: E402
from nas_tf.executors import Job, make_executor  # noqa: E402


def make_jobs(n: int) -> list[Job]:
    space = Nb201Space()
    return [Job(i, space.tokens_to_spec(tuple((i * 7 + k) % 5 for k in range(6))),
                ChildContext(child_id=i, seed=i)) for i in range(1, n + 1)]


def timed(executor, evaluator, jobs) -> float:
    """Seconds to train ``jobs`` (workers already started)."""
    t0 = time.perf_counter()
    out = list(executor.run(evaluator, jobs))
    took = time.perf_counter() - t0
    assert len(out) == len(jobs) and all(o.ok for o in out), [o.error for o in out if not o.ok]
    return took


def measure(name: str, workers: int, children: int, busy_s: float, overhead_children: int):
    ex = make_executor(name, num_workers=workers, cpus_per_child=1)
    busy_ev = FakeEvaluator(busy_s=busy_s)
    try:
        ex.start(busy_ev)  # workers start (and warm up) outside the timing
        timed(ex, busy_ev, make_jobs(workers))  # first child per worker: imports
        wall = timed(ex, busy_ev, make_jobs(children))
        overhead = None
        if workers == 1:
            instant = FakeEvaluator()
            ex.close()
            ex.start(instant)
            timed(ex, instant, make_jobs(5))
            overhead = timed(ex, instant, make_jobs(overhead_children)) / overhead_children
    finally:
        ex.close()
    return wall, overhead


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--executors", default="local,ray")
    p.add_argument("--children", type=int, default=24)
    p.add_argument("--busy_s", type=float, default=0.5)
    p.add_argument("--overhead_children", type=int, default=200)
    a = p.parse_args()
    load_before = os.getloadavg()
    rows = []
    for name in a.executors.split(","):
        if name == "ray":
            try:
                import ray
            except ImportError:
                print("ray is not installed: skipped")
                continue
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        walls, overhead = {}, None
        for workers in (1, 2):
            wall, ov = measure(name, workers, a.children, a.busy_s, a.overhead_children)
            walls[workers] = wall
            overhead = ov if ov is not None else overhead
        if name == "ray":
            ray.shutdown()
        ideal = a.children * a.busy_s
        rows.append((name, 60 * a.children / walls[1], 60 * a.children / walls[2],
                     walls[1] / walls[2], walls[1] - ideal, overhead))
    load_after = os.getloadavg()
    print(f"\n{a.children} CPU-bound children of {a.busy_s:g} s each; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
          f"{os.cpu_count()} CPUs\n")
    print("| executor | children/min, 1 worker | children/min, 2 workers | speed-up "
          "| 1-worker wall minus work (s) | overhead per instant child (ms) |")
    print("|---|---|---|---|---|---|")
    for name, c1, c2, sp, extra, ov in rows:
        print(f"| {name} | {c1:.1f} | {c2:.1f} | {sp:.2f}x | {extra:.2f} | "
              f"{'n/a' if ov is None else f'{1000 * ov:.1f}'} |")


if __name__ == "__main__":
    main()
