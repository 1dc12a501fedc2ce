"""Zero-cost warm-up on the NAS-Bench-201 table, through the real search loop.

Each search runs ``nas_tf.Search`` on the CIFAR-10 table (rewards: the table),
with and without ``--warmup=naswot``; the proxy is looked up in the NASWOT
cache of every cell (``experiments/nb201_proxy_cache.py``, C=8 N=1, 64 real
CIFAR-10 training images) instead of being computed live. Rows (JSON lines)
are appended as they finish; a rerun skips rows already written.

    python experiments/warmup_benchmark.py --algorithms=reinforce,random --seeds=5 \
        --children=50,100 --warmup_architectures=500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(REPO.parent / "shared/data/nb201/cifar10.csv"))
    p.add_argument("--cache", default=str(REPO / "experiments/results/nb201_naswot_c8n1.json"))
    p.add_argument("--algorithms", default="reinforce,random,evolution,tpe")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--children", default="50,100,200,500")
    p.add_argument("--warmup_architectures", type=int, default=2000)
    p.add_argument("--out", default=str(REPO / "experiments/results/warmup_rows.jsonl"))
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import nas_tf
    from cnn_space.nb201 import load_table
    from nas_tf.warmup import WarmupConfig

    table = load_table(args.table)
    import itertools

    from cnn_space.nb201 import OPS, Nb201Spec

    listed = json.loads(Path(args.cache).read_text())["scores"]
    cache = {Nb201Spec(ops).to_arch_string(): v
             for ops, v in zip(itertools.product(OPS, repeat=6), listed)}
    done = set()
    out = Path(args.out)
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["algorithm"], r["warmup"], r["seed"], r["children"]))
    budgets = sorted(int(c) for c in args.children.split(","))
    for algorithm in args.algorithms.split(","):
        for warm in (0, args.warmup_architectures):
            for seed in range(args.seeds):
                if all((algorithm, warm, seed, b) in done for b in budgets):
                    continue
                warmup = WarmupConfig("naswot", warm) if warm else WarmupConfig()
                with tempfile.TemporaryDirectory() as d:
                    start = time.time()
                    s = nas_tf.Search("nb201", table=args.table, run_dir=d,
                                      config=nas_tf.api.search_config(
                                          algorithm, max(budgets), seed, warmup=warmup),
                                      proxy=lambda spec: cache[spec.to_arch_string()])
                    s.search()
                    trials = sorted((t for t in s.trials() if t["status"] == "done"),
                                    key=lambda t: t["id"])
                    seconds = time.time() - start
                for b in budgets:
                    best = max(table[s.space.spec_from_json(t["spec"]).to_arch_string()]
                               for t in trials[:b])
                    row = {"algorithm": algorithm, "warmup": warm, "seed": seed, "children": b,
                           "best": best, "seconds": round(seconds, 1)}
                    with out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                print(algorithm, warm, seed, seconds, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
