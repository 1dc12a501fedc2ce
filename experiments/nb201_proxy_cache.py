"""A proxy score for every NAS-Bench-201 cell, computed once (for benchmarks).

Scores every one of the 15,625 cells with a training-free proxy through the
same evaluator the CLI uses (:class:`cnn_space.nb201.estimators.Nb201ProxyEvaluator`,
seed 0, one batch of real CIFAR-10 training images), so benchmarks that run
thousands of searches can look the proxy up instead of building models.
Cells whose networks are identical once dead edges are pruned (9,445 distinct
networks) are scored once. Resumable: rows are appended to a JSON-lines file
as they are computed; the final JSON lists the scores in itertools.product(OPS, repeat=6) order.

    python experiments/nb201_proxy_cache.py --channels=8 --cells=1 \
        --out=experiments/results/nb201_naswot_c8n1.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def pruned_key(spec) -> tuple:
    from cnn_space.nb201.model import live_edges

    return tuple(op if live else "none" for op, live in zip(spec.ops, live_edges(spec)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proxy", default="naswot", choices=["naswot", "synflow"])
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--cells", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data" / "cifar10"))
    p.add_argument("--out", default=str(REPO / "experiments" / "results" /
                                        "nb201_naswot_c8n1.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cnn_space.nb201 import OPS, Nb201Spec
    from cnn_space.nb201.config import Nb201Config
    from cnn_space.nb201.estimators import Nb201ProxyEvaluator
    from nas_tf.evaluator import ChildContext

    ev = Nb201ProxyEvaluator(Nb201Config(
        reward=args.proxy, dataset="cifar10", data_dir=args.data_dir, channels=args.channels,
        cells=args.cells, proxy_batch=args.batch))
    partial = Path(args.out + ".partial.jsonl")
    done: dict[tuple, float] = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            try:
                row = json.loads(line)
                done[tuple(row["key"])] = row["score"]
            except (ValueError, KeyError):
                pass  # a line cut by a kill
    cells = [Nb201Spec(ops) for ops in itertools.product(OPS, repeat=6)]
    keys = {c: pruned_key(c) for c in cells}
    todo = sorted({k for k in keys.values() if k not in done})
    t0 = time.time()
    with partial.open("a") as f:
        for i, key in enumerate(todo):
            reward, _ = ev.score(Nb201Spec(key), ChildContext(child_id=0, seed=0))
            done[key] = reward
            f.write(json.dumps({"key": list(key), "score": reward}) + "\n")
            f.flush()
            if i % 200 == 0:
                print(f"{i}/{len(todo)} {time.time() - t0:.0f}s", flush=True)
    scores = [round(done[keys[c]], 4) for c in cells]  # itertools.product(OPS, repeat=6) order
    meta = {"proxy": args.proxy, "channels": args.channels, "cells": args.cells,
            "batch": args.batch, "seed": 0, "data": "CIFAR-10 training images (first batch "
            "of the training part, split seed 0)", "networks_scored": len(done),
            "order": "scores[i] is the cell itertools.product(OPS, repeat=6)[i]",
            "command": " ".join(sys.argv), "finished": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                     time.gmtime())}
    Path(args.out).write_text(json.dumps({"meta": meta, "scores": scores},
                                         separators=(",", ":")))
    partial.unlink()
    print(f"wrote {args.out}: {len(scores)} cells, {len(done)} networks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
