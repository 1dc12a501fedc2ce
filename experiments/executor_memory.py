r"""Benchmark: resident memory after 20 vs 200 small Keras children.

Each child builds, trains (2 epochs of 2 batches) and evaluates a tiny Keras
model (tests/fake_evaluators.py ``TinyKerasEvaluator``). Memory is the RSS of
the search process plus, for ``local``, its worker processes (sampled after
child 20 and after child 200). Target: after 200 <= 1.2x after 20.

  flock /tmp/nas_bench.lock python experiments/executor_memory.py

``inline`` trains in the search process (keras.backend.clear_session() per
child); ``local`` in one worker process recycled every ``--recycle_after``
children.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import psutil  # noqa: E402
from fake_evaluators import TinyKerasEvaluator  # noqa: E402

from cnn_space.nb201 import Nb201Space  # noqa: E402
from nas_tf.evaluator import ChildContext  # noqa: E402
from nas_tf.executors import Job, make_executor  # noqa: E402


def rss_mib() -> float:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def run(name: str, children: int, first: int, recycle_after: int):
    space = Nb201Space()
    ex = make_executor(name, num_workers=1, cpus_per_child=1, recycle_after=recycle_after)
    ev = TinyKerasEvaluator()
    jobs = [Job(i, space.tokens_to_spec(tuple((i * 7 + k // 2) % 5 for k in range(6))),
                ChildContext(child_id=i, seed=i)) for i in range(1, children + 1)]
    samples = {}
    t0 = time.time()
    try:
        for n, outcome in enumerate(ex.run(ev, jobs), 1):
            assert outcome.ok, outcome.error
            if n in (first, children):
                samples[n] = rss_mib()
    finally:
        ex.close()
    return samples[first], samples[children], time.time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--executors", default="inline,local")
    p.add_argument("--children", type=int, default=200)
    p.add_argument("--first", type=int, default=20)
    p.add_argument("--recycle_after", type=int, default=50)
    a = p.parse_args()
    rows = []
    for name in a.executors.split(","):
        m1, m2, took = run(name, a.children, a.first, a.recycle_after)
        rows.append((name, m1, m2, m2 / m1, took))
        print(f"{name}: {m1:.0f} MiB after {a.first}, {m2:.0f} MiB after {a.children} "
              f"({took:.0f} s)", flush=True)
    print(f"\nTiny Keras children, 1 worker; load average {os.getloadavg()[0]:.2f}\n")
    print(f"| executor | RSS after {a.first} (MiB) | RSS after {a.children} (MiB) | ratio "
          "| wall (s) |")
    print("|---|---|---|---|---|")
    for name, m1, m2, r, took in rows:
        print(f"| {name} | {m1:.0f} | {m2:.0f} | {r:.2f}x | {took:.0f} |")


if __name__ == "__main__":
    main()
