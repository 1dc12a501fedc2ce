r"""What the search loop costs per child when a child costs nothing.

Runs a NAS-Bench-201 table search (a child is one dictionary lookup) in this
process, as ``python -m nas_tf.run --space=nb201 --algorithm=random`` runs it
(inline executor, TensorBoard logger, checkpoints at the default cadence), and
prints the loop's wall and CPU time per child (the CPU time of this
process: less sensitive to the load), the number of folders the run
directory holds, and the machine's load (``os.getloadavg``: the machine is
shared, so a figure without its load means little). ``--profile`` adds the
top functions by cumulative time (cProfile).

  python experiments/loop_cost.py [--children=3000] [--algorithm=random] [--profile]
      [--table=../shared/data/nb201/cifar10.csv]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TABLE = REPO.parent / "shared" / "data" / "nb201" / "cifar10.csv"


def count_dirs(root: str) -> int:
    return sum(len(dirs) for _, dirs, _ in os.walk(root))


def run(children: int, algorithm: str, table: str, m: int, profile: bool) -> dict:
    """One search in a temporary directory; returns its figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator
    from nas_tf.config import SearchConfig
    from nas_tf.loop import run_search

    evaluator = Nb201TableEvaluator(table)
    evaluator.table  # noqa: B018 - load it before the clock starts
    config = SearchConfig(algorithm=algorithm, max_children=children, children_per_update=m,
                          seed=0)
    run_dir = tempfile.mkdtemp(prefix="loop_cost_")
    load_before = os.getloadavg()
    prof = cProfile.Profile() if profile else None
    t, cpu = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    summary = run_search(Nb201Space(), evaluator, run_dir=run_dir, config=config)
    if prof:
        prof.disable()
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    n = max(1, summary["children_trained"])
    out = {"children": summary["children_trained"], "wall_s": wall,
           "ms_per_child": 1000 * wall / n, "cpu_ms_per_child": 1000 * cpu / n,
           "dirs": count_dirs(run_dir), "load_before": load_before,
           "load_after": os.getloadavg(), "run_dir": run_dir}
    if prof:
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(35)
        out["profile"] = text.getvalue()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--children", type=int, default=3000)
    p.add_argument("--algorithm", default="random")
    p.add_argument("--children_per_update", type=int, default=8)
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--profile", action="store_true")
    a = p.parse_args(argv)
    if not Path(a.table).is_file():
        print(f"error: no NAS-Bench-201 table at {a.table}; pass --table", file=sys.stderr)
        return 2
    r = run(a.children, a.algorithm, a.table, a.children_per_update, a.profile)
    print(f"{a.algorithm}, m={a.children_per_update}: {r['children']} children in "
          f"{r['wall_s']:.1f} s = {r['ms_per_child']:.2f} ms per child "
          f"(CPU {r['cpu_ms_per_child']:.2f} ms); "
          f"{r['dirs']} folders in the run directory; load average "
          f"{r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after "
          f"({os.cpu_count()} CPUs)")
    if a.profile:
        print(r["profile"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
