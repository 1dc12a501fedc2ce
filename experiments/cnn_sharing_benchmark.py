"""Benchmark (issue 14): weight sharing for the CNN space on CIFAR-10, throughput and ranking.

The CNN half of ``experiments/sharing_benchmark.py`` (which runs this for
``--dataset=cifar10``). For ``--archs`` children drawn uniformly from a
small v1 space (seeded; every choice uniform, each skip connection with
probability 1/2):

1. **Shared:** one :class:`cnn_space.shared.SharedCnn` is trained for
   ``--warmup_steps`` batches, each on a uniformly sampled child (random
   sampling with sharing); then every child is scored on ``--score_batches``
   validation batches (its search reward) and on the whole validation split.
2. **Alone:** every child is trained from scratch as a search child
   (:class:`cnn_space.train.CnnEvaluator`, the same fixed short recipe for
   all) and its validation accuracy measured.
3. **Ranking:** Kendall's tau-b between the shared-weights and the
   stand-alone validation accuracies. Target of the issue: tau >= 0.4.
4. **Throughput:** architectures scored per CPU-hour with sharing (score +
   ``--steps_per_child`` training batches per architecture, as a
   ``--sharing=enas`` search does) vs without, and the split of the shared
   run's time (training, scoring).

Rows are appended to ``--out`` (Markdown) as they are measured, with the
command, the date and the machine's load. The CIFAR-10 JPEG folders are read
from ``$NAS_TF_SHARED_DATA/cifar10`` (or ``--data_dir``); never the test split.

Usage::

    python experiments/sharing_benchmark.py --dataset=cifar10 --archs=20
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cifar10", help="cifar10 (the image folders)")
    shared = os.environ.get("NAS_TF_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    p.add_argument("--data_dir", default=str(Path(shared) / "cifar10"))
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--train_subset", type=int, default=5000,
                   help="training images (10%% of them validate)")
    p.add_argument("--num_layers", type=int, default=6)
    p.add_argument("--width_multiplier", type=float, default=0.25,
                   help="filters {24,36,48,64} times this")
    p.add_argument("--child_epochs", type=int, default=2, help="stand-alone recipe")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--eval_batch_size", type=int, default=100,
                   help="validation batch (the shared model's batch-norm statistics)")
    p.add_argument("--warmup_steps", type=int, default=500)
    p.add_argument("--steps_per_child", type=int, default=1)
    p.add_argument("--score_batches", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alone_json", default=None,
                   help="[[accuracy, seconds], ...] of the same children trained alone by an "
                        "earlier run (same seed and recipe): reused instead of retraining")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "sharing.md"))
    return p.parse_args(argv)


def _append(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(text)
    print(text, end="", flush=True)


def _header(args, cfg, out):
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    _append(out, f"\n### Sharing benchmark, CIFAR-10, cnn space ({now} UTC, load {load})\n\n"
                 f"`python experiments/sharing_benchmark.py {' '.join(sys.argv[1:])}` — "
                 f"{args.archs} children drawn uniformly (seed {args.seed}), v1, "
                 f"{args.num_layers} layers, filters x{args.width_multiplier}; stand-alone "
                 f"recipe: {args.child_epochs} epochs (config: "
                 f"{json.dumps(cfg.to_json(), default=str)})\n\n")


def main(argv=None):
    args = _parse(argv)
    from sharing_benchmark import summary_text

    from cnn_space.shared import SharedCnn, uniform_spec
    from cnn_space.train import CnnEvaluator, CnnSearchConfig, load_data, make_space
    from nas_tf.evaluator import ChildContext

    out = Path(args.out)
    cfg = CnnSearchConfig(dataset="imagefolder", data_dir=args.data_dir,
                          train_subset=args.train_subset, num_layers=args.num_layers,
                          width_multiplier=args.width_multiplier, epochs=args.child_epochs,
                          batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
                          augment="crop_flip")
    data = load_data(cfg)
    space, rng = make_space(cfg), random.Random(args.seed)
    specs = [uniform_spec(space, rng) for _ in range(args.archs)]
    _header(args, cfg, out)
    model = SharedCnn(space, data, cfg, seed=args.seed)
    t0 = time.time()
    warm_loss = model.train(lambda: uniform_spec(space, rng), args.warmup_steps)
    warm_s = time.time() - t0
    _append(out, f"Shared warm-up: {args.warmup_steps} batches of {model.batch_size} on "
                 f"uniformly sampled children in {warm_s:.1f} s "
                 f"({warm_s / max(1, args.warmup_steps) * 1000:.0f} ms per batch), mean loss "
                 f"{warm_loss:.3f}, {model.skipped} non-finite steps skipped, train step "
                 f"traced {model.traces} time(s); {len(data.y_train)} training / "
                 f"{len(data.y_val)} validation images\n\n"
                 "| child | shared acc (score batches) | shared acc (whole valid) | score s | "
                 "alone acc | alone s |\n|---:|---:|---:|---:|---:|---:|\n")
    alone_eval = CnnEvaluator(cfg, data)
    known = json.loads(Path(args.alone_json).read_text()) if args.alone_json else None
    rows = []
    for i, spec in enumerate(specs):
        ts = time.time()
        quick = model.score(spec, max_batches=args.score_batches)
        score_s = time.time() - ts
        full = model.score(spec)
        ta = time.time()
        if known:
            rows.append((quick, full, known[i][0], score_s, known[i][1]))
            _append(out, f"| {i} | {quick:.3f} | {full:.3f} | {score_s:.2f} | {known[i][0]:.3f} "
                         f"(earlier run) | {known[i][1]:.1f} |\n")
            continue
        try:
            alone = alone_eval.evaluate(spec, ChildContext(child_id=i, seed=args.seed))
            alone = alone.metrics["val_accuracy"]
        except Exception as e:  # noqa: BLE001 - a failed child is a row, not a crash
            alone = math.nan
            print(f"child {i}: stand-alone training failed: {e}", file=sys.stderr)
        alone_s = time.time() - ta
        rows.append((quick, full, alone, score_s, alone_s))
        _append(out, f"| {i} | {quick:.3f} | {full:.3f} | {score_s:.2f} | {alone:.3f} | "
                     f"{alone_s:.1f} |\n")
    # One architecture of a --sharing=enas search: its score + steps_per_child batches.
    t1 = time.time()
    model.train(lambda: specs[0], 20 * args.steps_per_child)
    per_step = (time.time() - t1) / (20 * args.steps_per_child)
    _append(out, summary_text(rows, per_step, args.steps_per_child, "batches", "children",
                              f"; train step traced {model.traces} time(s) in all"))


if __name__ == "__main__":
    main()
