"""Benchmark (issue 14): weight sharing for the recurrent tree space, throughput and ranking.

For ``--archs`` cells drawn uniformly from the tree space (seeded):

1. **Shared:** one :class:`cells.shared_lm.SharedLM` is trained for
   ``--warmup_steps`` windows, each on a uniformly sampled cell (random
   sampling with sharing, the baseline of Li & Talwalkar 2019); then every
   cell is scored on ``--score_windows`` validation windows (its search
   reward) and on the whole validation split.
2. **Alone:** every cell is trained from scratch as a search child
   (:class:`cells.search.RnnEvaluator`, the search's child recipe) and its
   validation perplexity measured.
3. **Ranking:** Kendall's tau-b between the shared-weights and the
   stand-alone perplexities (cells that fail in either are reported and left
   out). Target of the issue: tau >= 0.4.
4. **Throughput:** architectures scored per CPU-hour, with sharing (score +
   ``--steps_per_child`` training windows per architecture, as a
   ``--sharing=enas`` search does) vs without (one stand-alone child), and
   the split of the shared run's time (training, scoring).

Rows are appended to ``--out`` as they are measured (Markdown), with the
command, the date and the machine's load.

Usage::

    python experiments/sharing_benchmark.py --dataset=ptb --archs=20
    python experiments/sharing_benchmark.py --dataset=cifar10 --archs=20  # cnn space
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kendall_tau_b(xs, ys) -> float:
    """Kendall's tau-b of two equally long sequences (ties counted as in tau-b)."""
    n, concordant, discordant, ties_x, ties_y = len(xs), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom else math.nan


def summary_text(rows, per_step: float, steps_per_child: float, batches: str,
                 things: str, extra: str = "") -> str:
    """The tau, throughput and time-split lines of a benchmark's ``rows``
    (``(score, whole-split score, alone, score s, alone s)`` each)."""
    ok = [r for r in rows if all(math.isfinite(v) for v in r[:3])]
    tau_quick = kendall_tau_b([r[0] for r in ok], [r[2] for r in ok])
    tau_full = kendall_tau_b([r[1] for r in ok], [r[2] for r in ok])
    score_s = statistics.median(r[3] for r in rows)  # the median: the first call traces
    shared_per_arch = score_s + steps_per_child * per_step
    alone_per_arch = statistics.median(r[4] for r in rows)
    return (f"\n- Kendall tau-b, shared (score {batches}) vs alone: **{tau_quick:.3f}**; "
            f"shared (whole validation) vs alone: **{tau_full:.3f}** "
            f"({len(ok)} of {len(rows)} {things} finite in both)\n"
            f"- Per architecture: shared {shared_per_arch:.3f} s (score {score_s:.3f} s + "
            f"{steps_per_child} x {per_step:.3f} s training; medians) vs alone "
            f"{alone_per_arch:.1f} s: **{alone_per_arch / shared_per_arch:.0f}x** "
            f"architectures per CPU-hour ({3600 / shared_per_arch:.0f} vs "
            f"{3600 / alone_per_arch:.0f})\n"
            f"- Wall-time split of a sharing search per architecture: training "
            f"{100 * steps_per_child * per_step / shared_per_arch:.0f} %, scoring "
            f"{100 * score_s / shared_per_arch:.0f} % (controller not included){extra}\n")


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ptb", help="synthetic, ptb or ptb_char (rnn "
                   "space); cifar10 runs experiments/cnn_sharing_benchmark.py (cnn space)")
    shared = os.environ.get("NAS_TF_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    p.add_argument("--data_dir", default=str(Path(shared) / "ptb"))
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--cell_base", type=int, default=8)
    p.add_argument("--units", type=int, default=32, help="child units (the search default)")
    p.add_argument("--child_steps", type=int, default=100,
                   help="stand-alone training windows per child (the search default)")
    p.add_argument("--valid_tokens", type=int, default=None,
                   help="validate on the first N tokens (default: all)")
    p.add_argument("--warmup_steps", type=int, default=2000)
    p.add_argument("--steps_per_child", type=int, default=1)
    p.add_argument("--score_windows", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "sharing.md"))
    return p.parse_args(argv)


def _append(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(text)
    print(text, end="", flush=True)


def main(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--dataset")
    if pre.parse_known_args(argv)[0].dataset == "cifar10":  # the CNN space
        sys.path.insert(0, str(ROOT / "experiments"))
        from cnn_sharing_benchmark import main as cnn_main

        return cnn_main(argv)
    args = _parse(argv)
    from cells.search import RnnEvaluator, RnnSearchConfig
    from cells.shared_lm import SharedLM
    from cells.tree_space import TreeSpace
    from nas_tf.evaluator import ChildContext

    out = Path(args.out)
    settings = dict(dataset=args.dataset, cell_base=args.cell_base, units=args.units,
                    steps_per_epoch=args.child_steps, valid_tokens=args.valid_tokens)
    if args.dataset != "synthetic":
        settings["data_dir"] = args.data_dir
    cfg = RnnSearchConfig(**settings)
    alone_eval = RnnEvaluator(cfg)
    train, valid, vocab = alone_eval.data()
    space, rng = TreeSpace(args.cell_base), random.Random(args.seed)
    specs = [space.tokens_to_spec([rng.randrange(d.num_choices) for d in space.decisions()])
             for _ in range(args.archs)]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    _append(out, f"\n### Sharing benchmark, {args.dataset} ({now} UTC, load {load})\n\n"
                 f"`python experiments/sharing_benchmark.py "
                 f"{' '.join(sys.argv[1:])}` — {args.archs} cells drawn uniformly (seed "
                 f"{args.seed}), base {args.cell_base}, {args.units} units, child recipe "
                 f"{args.child_steps} windows (LMConfig of the search: "
                 f"{json.dumps(cfg.to_json(), default=str)})\n\n")
    lm = SharedLM(args.cell_base, vocab, train, valid, cfg.lm_config(), seed=args.seed)
    t0 = time.time()
    warm_loss = lm.train(lambda: [rng.randrange(d.num_choices) for d in space.decisions()],
                         args.warmup_steps)
    warm_s = time.time() - t0
    _append(out, f"Shared warm-up: {args.warmup_steps} windows on uniformly sampled cells in "
                 f"{warm_s:.1f} s ({warm_s / max(1, args.warmup_steps) * 1000:.1f} ms per "
                 f"window), mean loss {warm_loss:.3f}, {lm.skipped} non-finite steps skipped\n\n"
                 "| cell | shared ppl (score windows) | shared ppl (whole valid) | score s | "
                 "alone ppl | alone s |\n|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for i, spec in enumerate(specs):
        ts = time.time()
        quick = lm.score(spec, max_windows=args.score_windows)
        score_s = time.time() - ts
        full = lm.score(spec)
        ta = time.time()
        try:
            res = alone_eval.evaluate(spec, ChildContext(child_id=i, seed=args.seed))
            alone = res.metrics["val_perplexity"]
        except Exception as e:  # noqa: BLE001 - a failed child is a row, not a crash
            alone = math.nan
            print(f"cell {i}: stand-alone child failed: {e}", file=sys.stderr)
        alone_s = time.time() - ta
        rows.append((quick, full, alone, score_s, alone_s))
        _append(out, f"| {i} | {quick:.2f} | {full:.2f} | {score_s:.2f} | {alone:.2f} | "
                     f"{alone_s:.1f} |\n")
    # One architecture of a --sharing=enas search: its score + steps_per_child windows.
    t1 = time.time()
    lm.train(lambda: specs[0], 20 * args.steps_per_child)
    per_window = (time.time() - t1) / (20 * args.steps_per_child)
    _append(out, summary_text(rows, per_window, args.steps_per_child, "windows", "cells"))


if __name__ == "__main__":
    main()
