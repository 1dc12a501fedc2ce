r"""Cost of making trials.sqlite self-sufficient at every controller update.

Simulates the store's writes of a search (per update: m = 3 children added,
marked running, marked done; a meta write) in a temporary directory, with
and without ``PRAGMA wal_checkpoint(PASSIVE)`` after each update, and with
``journal_mode=DELETE`` instead of WAL. Prints a markdown table.

  nice -n 5 python experiments/store_flush_cost.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_tf.store import TrialStore  # noqa: E402


def run(mode: str, updates: int, m: int = 3) -> float:
    with tempfile.TemporaryDirectory() as d:
        s = TrialStore(os.path.join(d, "trials.sqlite"))
        if mode == "delete":
            s._db.execute("PRAGMA journal_mode=DELETE")
        per = []
        k = 0
        for _ in range(updates):
            t0 = time.perf_counter()
            for _ in range(m):
                t = s.add(f"h{k}", {"ops": ["x"] * 6}, list(range(6)))
                s.mark_running(t.id)
                s.mark_done(t.id, 0.5, {"test_accuracy": 0.5})
                k += 1
            s.set_meta(duplicates=0, wall_time_s=1.0)
            if mode == "wal+checkpoint":
                s.flush_wal()
            per.append(time.perf_counter() - t0)
        s.close()
    per.sort()
    return 1000 * per[len(per) // 2], 1000 * sum(per) / len(per)


def main():
    updates = 300
    print(f"load average {os.getloadavg()[0]:.2f}; {updates} updates of m = 3 children; "
          "ms per update (all store writes of the update)\n")
    print("| journal | median ms / update | mean ms / update |")
    print("|---|---|---|")
    for mode in ("wal", "wal+checkpoint", "delete"):
        med, mean = run(mode, updates)
        print(f"| {mode} | {med:.2f} | {mean:.2f} |")


if __name__ == "__main__":
    main()
