r"""Benchmark: a CPU-scale CNN search on real CIFAR-10, REINFORCE vs random search.

Zoph & Le 2017 (arXiv:1611.01578, §4.1) train 12,800 children for 50 epochs
each on 800 GPUs. This is the same loop scaled to one CPU: small children
(``--num_layers`` layers of the v1 space, filter choices times
``--width_multiplier``), a slice of the CIFAR-10 training images (10% of it
the validation set that gives the reward), ``--epochs`` epochs per child.

Both algorithms get the same number of children, the same data and the same
seed. The script prints (and appends to ``--out``) per block of 10 children
the best and the mean validation accuracy, then retrains the best child found
(highest validation accuracy over both searches) for ``--retrain_epochs`` and
reports its test accuracy on the CIFAR-10 test images (the test split is used
only here, never for a reward).

  python experiments/cnn_cifar_search.py --data_dir=../shared/data/cifar10 \
      --children=20 --out=experiments/results/cnn_cifar_search.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_space.space import CnnSpec
from cnn_space.train import (
    CnnEvaluator,
    CnnSearchConfig,
    load_data,
    make_space,
    train_child,
)
from nas_tf import config as cfgmod
from nas_tf.loop import run_search
from nas_tf.store import DONE, TrialStore


def search(algorithm, cfg, data, args, run_dir):
    preset = "small_budget"
    config = cfgmod.SearchConfig(
        algorithm=algorithm,
        max_children=args.children,
        children_per_update=args.children_per_update
        or cfgmod.children_per_update_preset(preset),
        seed=args.seed,
        controller=cfgmod.controller_preset(preset),
        reinforce=cfgmod.reinforce_preset(preset),
    )
    t0 = time.time()
    summary = run_search(make_space(cfg), CnnEvaluator(cfg, data=data), run_dir=run_dir,
                         config=config, child_logs=False)
    seconds = time.time() - t0
    store = TrialStore(os.path.join(run_dir, "trials.sqlite"))
    try:
        trials = sorted(store.trials(), key=lambda t: t.id)
    finally:
        store.close()
    accs = [t.metrics["val_accuracy"] if t.status == DONE else 0.0 for t in trials]
    return {"summary": summary, "trials": trials, "accs": accs, "seconds": seconds,
            "config": config}


def block_table(results, block):
    names = list(results)
    lines = ["| children | " + " | ".join(f"{n} best | {n} mean" for n in names) + " |",
             "|---|" + "---:|---:|" * len(names)]
    n = max(len(r["accs"]) for r in results.values())
    for start in range(0, n, block):
        cells = []
        for name in names:
            accs = results[name]["accs"]
            part = accs[start:start + block]
            if not part:
                cells += ["", ""]
                continue
            best_so_far = max(accs[:start + block])
            cells += [f"{max(part):.4f} ({best_so_far:.4f})", f"{sum(part) / len(part):.4f}"]
        lines.append(f"| {start + 1}-{start + len(part)} | " + " | ".join(cells) + " |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = os.environ.get(
        "NAS_TF_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--data_dir", default=os.path.join(default_data, "cifar10"))
    parser.add_argument("--train_subset", type=int, default=5000)
    parser.add_argument("--num_layers", type=int, default=6)
    parser.add_argument("--width_multiplier", type=float, default=0.5)
    parser.add_argument("--image_size", type=int, default=None,
                        help="resize the 32x32 images to this size (None: keep 32)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--children_per_update", type=int, default=None)
    parser.add_argument("--algorithms", default="reinforce,random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain_epochs", type=int, default=10)
    parser.add_argument("--retrain_subset", type=int, default=None,
                        help="training images for the retraining (default: --train_subset)")
    parser.add_argument("--test_subset", type=int, default=None)
    parser.add_argument("--bn_recalibration", default="auto", choices=["auto", "on", "off"],
                        help="batch-norm recalibration of the children (off: the old recipe)")
    parser.add_argument("--run_root", default=None, help="keep the run directories here")
    parser.add_argument("--out", default=None, help="append the markdown report to this file")
    args = parser.parse_args()

    cfg = CnnSearchConfig(
        dataset="imagefolder", data_dir=args.data_dir, train_subset=args.train_subset,
        num_layers=args.num_layers, width_multiplier=args.width_multiplier, epochs=args.epochs,
        image_size=args.image_size,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        reward_last_k=min(5, args.epochs), augment="crop_flip",
        bn_recalibration=args.bn_recalibration,
    )
    t_start = time.time()
    data = load_data(cfg)
    root = args.run_root or tempfile.mkdtemp(prefix="cnn_cifar_search_")
    results = {}
    for algorithm in args.algorithms.split(","):
        run_dir = os.path.join(root, f"{algorithm}_s{args.seed}")
        results[algorithm] = search(algorithm, cfg, data, args, run_dir)
        r = results[algorithm]
        print(f"{algorithm}: {len(r['trials'])} children in {r['seconds']:.0f}s, best val acc "
              f"{max(r['accs']):.4f}, mean {sum(r['accs']) / len(r['accs']):.4f}", flush=True)

    # The search table first (flushed), so a run cut short still shows it.
    print("\n".join(block_table(results, 10)), flush=True)

    # The best child over both searches (by validation accuracy only).
    best_alg, best = max(
        ((name, t) for name, r in results.items() for t in r["trials"] if t.status == DONE),
        key=lambda p: p[1].metrics["val_accuracy"],
    )
    spec = CnnSpec.from_json(best.spec)
    retrain_cfg = dataclasses.replace(
        cfg, epochs=args.retrain_epochs, reward_last_k=min(5, args.retrain_epochs),
        train_subset=args.retrain_subset or args.train_subset,
    )
    full = load_data(retrain_cfg, load_test=True, test_subset=args.test_subset)
    t0 = time.time()
    final = train_child(spec, full, retrain_cfg, seed=args.seed, evaluate_test=True)
    retrain_seconds = time.time() - t0

    first = results[next(iter(results))]
    lines = [
        f"### CNN search on CIFAR-10, CPU scale (seed {args.seed})",
        "",
        (f"Data: {data.source}; {len(data.y_train)} train / {len(data.y_val)} validation images "
        f"(first {args.train_subset} of a deterministic shuffle), "
        f"{data.image_shape[0]}x{data.image_shape[1]}."),
        (f"Children: v1 space, {args.num_layers} layers, filters x{args.width_multiplier} "
        f"({list(make_space(cfg).filter_choices)}), {args.epochs} epoch(s), batch "
        f"{args.batch_size}, SGD Nesterov lr {args.learning_rate} cosine, wd 1e-4, "
        f"augmentation crop_flip, batch-norm recalibration {args.bn_recalibration}."),
        (f"Reward: max validation accuracy of the last {cfg.reward_last_k} epoch(s), cubed. "
        f"Controller: small_budget preset, m={first['config'].children_per_update}."),
        f"Machine: {os.cpu_count()} CPU cores (shared with other jobs while this ran).",
        "",
        "Validation accuracy per block of 10 children: best in the block (best so far), mean.",
        "",
        *block_table(results, 10),
        "",
        "| algorithm | children | failed | search seconds | best val acc | mean val acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        failed = sum(1 for t in r["trials"] if t.status != DONE)
        lines.append(f"| {name} | {len(r['trials'])} | {failed} | {r['seconds']:.0f} | "
                     f"{max(r['accs']):.4f} | {sum(r['accs']) / len(r['accs']):.4f} |")
    lines += [
        "",
        (f"Best child: {best_alg} child {best.id}, val acc {best.metrics['val_accuracy']:.4f} "
        f"after {args.epochs} epoch(s), {best.metrics['params']} params, "
        f"{best.metrics['flops'] / 1e6:.1f} MFLOPs (multiply-adds)."),
        (f"Retrained {args.retrain_epochs} epochs on {len(full.y_train)} images "
        f"({retrain_seconds:.0f}s): val acc {final['val_accuracy']:.4f}, "
        f"**test acc {final['test_accuracy']:.4f}** on {len(full.y_test)} CIFAR-10 test images."),
        "",
        "Best spec: `" + json.dumps(best.spec) + "`",
        "",
        f"Total wall time: {time.time() - t_start:.0f}s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")


if __name__ == "__main__":
    main()
