r"""Benchmark: does a short-trained CNN child's validation accuracy mean something?

Two measurements (issue 15), each comparing the old child recipe ("before":
Keras' batch-norm moving averages, pad-crop-flip on any data, batch not capped
on small datasets) with the current defaults ("after": batch-norm statistics
recomputed before each validation pass, no flips for image folders, batch
capped so an epoch has >= 20 steps). Both use the same code, switched by
CnnSearchConfig fields.

``gap``: the train / validation accuracy gap of random children on a generated
glyph folder (``cnn_space.synthetic``: 10 orientation-dependent classes,
24x24 grayscale, 1,500 images), with one fix at a time.

``corr``: on the CIFAR-10 JPEG folders at CPU scale, the Spearman correlation
between each random child's 1-epoch validation accuracy (before / after) and
its validation accuracy after 10 epochs (with recalibration: the best
estimate of its quality). Rows are appended to ``--rows`` as they finish.

  python experiments/cnn_reward.py gap --out=/tmp/gap.md
  python experiments/cnn_reward.py corr --children=20 --rows=/tmp/corr.jsonl
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_space import builder
from cnn_space.calibrate import recalibrate_batchnorm
from cnn_space.data import make_eval_dataset
from cnn_space.synthetic import write_glyph_folder
from cnn_space.train import CnnSearchConfig, load_data, make_space, train_child
from nas_tf.algorithms import random_tokens

BEFORE = {"bn_recalibration": "off", "augment": "crop_flip", "min_steps_per_epoch": None}


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):
            tie = x == v
            r[tie] = r[tie].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def random_specs(cfg, n, seed):
    space = make_space(cfg)
    rng = np.random.default_rng(seed)
    return [space.tokens_to_spec(random_tokens(space.decisions(), rng)) for _ in range(n)]


class _Momentum:
    """Temporarily builds CnnBody with another batch-norm momentum (an ablation only)."""

    def __init__(self, momentum):
        self.momentum = momentum

    def __enter__(self):
        self.orig = builder.CnnBody.__init__
        orig, m = self.orig, self.momentum

        def init(body, spec, weight_decay=0.0, momentum=0.99, **kw):
            orig(body, spec, weight_decay, m, **kw)

        builder.CnnBody.__init__ = init

    def __exit__(self, *exc):
        builder.CnnBody.__init__ = self.orig


def gap(args):
    root = args.glyph_dir or tempfile.mkdtemp(prefix="glyphs_")
    if not os.path.isdir(os.path.join(root, "train")):
        write_glyph_folder(root, per_class=150, size=24)
    variants = {
        "before (momentum 0.99, flips, batch 128)": (BEFORE, None),
        "+ BN recalibration only": ({**BEFORE, "bn_recalibration": "on"}, None),
        "+ BN momentum 0.9 only": (BEFORE, 0.9),
        "+ no flips only": ({**BEFORE, "augment": "crop"}, None),
        "+ batch cap only (>= 20 steps/epoch)": ({**BEFORE, "min_steps_per_epoch": 20}, None),
        "after (defaults)": ({}, None),
    }
    if args.variants:
        keep = [int(v) for v in args.variants.split(",")]
        variants = {k: v for i, (k, v) in enumerate(variants.items()) if i in keep}
    settings = [(6, 2), (6, 6), (15, 6)] if not args.settings else [
        tuple(int(v) for v in s.split("x")) for s in args.settings.split(",")]
    lines = [f"Glyph folder {root}: 10 classes x 150 images, 24x24 grayscale, 10% validation. "
             f"{args.children} random v1 children per setting, seed 0, batch 128, lr 0.1 cosine.",
             "", "| layers x epochs | variant | train acc | val acc | gap | steps | seconds |",
             "|---|---|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    data = None
    for layers, epochs in settings:
        base = CnnSearchConfig(dataset="imagefolder", data_dir=root, num_layers=layers,
                               epochs=epochs, reward_last_k=1)
        data = data or load_data(base)
        specs = random_specs(base, args.children, seed=layers * 100 + epochs)
        for name, (fields, momentum) in variants.items():
            cfg = dataclasses.replace(base, **fields)
            tr, va, t0 = [], [], time.time()
            for i, spec in enumerate(specs):
                if momentum is None:
                    m = train_child(spec, data, cfg, seed=i)
                else:
                    with _Momentum(momentum):
                        m = train_child(spec, data, cfg, seed=i)
                tr.append(m["train_accuracy_last"])
                va.append(m["val_accuracy_last"])
            line = (f"| {layers} x {epochs} | {name} | {np.mean(tr):.3f} | {np.mean(va):.3f} | "
                    f"{np.mean(tr) - np.mean(va):+.3f} | {m['steps_per_epoch'] * epochs} | "
                    f"{time.time() - t0:.0f} |")
            lines.append(line)
            print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n\n")


def small(args):
    """The setting of tests/test_cnn_calibrate.py: 400 glyphs at 16 px, a 3-layer child."""
    from cnn_space.space import CnnSpec

    spec = CnnSpec(layers=((3, 3, 24, 1, ()), (3, 3, 24, 1, (0,)), (3, 3, 24, 1, (1,))))
    root = tempfile.mkdtemp(prefix="glyphs_small_")
    write_glyph_folder(root, per_class=40, size=16, seed=0)
    base = CnnSearchConfig(dataset="imagefolder", data_dir=root, validation_fraction=0.25,
                           epochs=3, reward_last_k=1)
    data = load_data(base)
    train_ds = make_eval_dataset(data, data.x_train, data.y_train, 100)
    variants = [("before (off, crop_flip, no cap)", BEFORE),
                ("off, crop_flip, cap", {"bn_recalibration": "off", "augment": "crop_flip"}),
                ("off, crop, cap", {"bn_recalibration": "off"}), ("after (defaults)", {})]
    for name, fields in variants:
        for seed in (0, 1):
            m, model = train_child(spec, data, dataclasses.replace(base, **fields), seed=seed,
                                   return_model=True)
            tr = model.evaluate(train_ds, verbose=0, return_dict=True)["accuracy"]
            print(f"{name} seed {seed}: train(inference) {tr:.3f} val "
                  f"{m['val_accuracy_last']:.3f} fit-train {m['train_accuracy_last']:.3f} "
                  f"steps {m['steps_per_epoch'] * 3}", flush=True)


def corr(args):
    base = CnnSearchConfig(
        dataset="imagefolder", data_dir=args.data_dir, train_subset=args.train_subset,
        image_size=args.image_size, num_layers=args.num_layers,
        width_multiplier=args.width_multiplier, batch_size=args.batch_size, augment="crop_flip",
        epochs=1, reward_last_k=1, validation_fraction=args.validation_fraction)
    data = load_data(base)
    specs = random_specs(base, args.children, seed=args.seed)
    short = dataclasses.replace(base, bn_recalibration="off")
    ref = dataclasses.replace(base, bn_recalibration="on", epochs=args.ref_epochs)
    val_ds = make_eval_dataset(data, data.x_val, data.y_val, 500)
    idx = np.random.default_rng(0).permutation(len(data.y_train))[:2000]
    idx = idx[:len(idx) - len(idx) % args.batch_size]
    cal_ds = make_eval_dataset(data, data.x_train[idx], data.y_train[idx], args.batch_size)
    def done():  # children finished by this process or another one sharing the rows file
        if not (args.rows and os.path.exists(args.rows)):
            return set()
        with open(args.rows) as f:
            return {json.loads(line)["child"] for line in f if line.strip()}

    print(f"{data.source}: {len(data.y_train)} train / {len(data.y_val)} val, "
          f"{data.image_shape}; {len(specs)} children", flush=True)
    order = list(enumerate(specs))
    for i, spec in order[::-1] if args.reverse else order:
        if i in done() or (args.rows and os.path.exists(f"{args.rows}.{i}.started")):
            continue
        if args.rows:
            Path(f"{args.rows}.{i}.started").touch()
        row = {"child": i, "spec": spec.to_json()}
        # One 1-epoch child, validated twice: with Keras' moving averages (before) and
        # after recomputing the batch-norm statistics (after) — the same trained weights.
        t0 = time.time()
        m, model = train_child(spec, data, short, seed=args.seed + i, return_model=True)
        row["before_1ep"] = m["val_accuracy_last"]
        row["before_1ep_train"] = row["after_1ep_train"] = m["train_accuracy_last"]
        recalibrate_batchnorm(model, cal_ds)
        row["after_1ep"] = float(model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"])
        row["short_seconds"] = round(time.time() - t0, 1)
        t0 = time.time()
        m = train_child(spec, data, ref, seed=args.seed + i)
        name = f"ref_{args.ref_epochs}ep"
        row[name], row[name + "_train"] = m["val_accuracy_last"], m["train_accuracy_last"]
        row[name + "_seconds"] = round(time.time() - t0, 1)
        row["params"] = m["params"]
        print(json.dumps({k: v for k, v in row.items() if k != "spec"}), flush=True)
        if args.rows:
            with open(args.rows, "a") as f:
                f.write(json.dumps(row) + "\n")
    summarize(args.rows, args.ref_epochs)


def summarize(rows_path, ref_epochs=10):
    with open(rows_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    ref = [r[f"ref_{ref_epochs}ep"] for r in rows]
    out = [f"{len(rows)} children. Spearman correlation with the {ref_epochs}-epoch validation "
           "accuracy:", "", "| 1-epoch reward | Spearman rho | mean 1-epoch val acc | "
           "mean 1-epoch train acc |", "|---|---:|---:|---:|"]
    for name in ("before_1ep", "after_1ep"):
        vals = [r[name] for r in rows]
        out.append(f"| {name} | {spearman(vals, ref):.3f} | {np.mean(vals):.3f} | "
                   f"{np.mean([r[name + '_train'] for r in rows]):.3f} |")
    # Paired bootstrap over children: how sure is the difference of the two correlations?
    rng = np.random.default_rng(0)
    before, after = [r["before_1ep"] for r in rows], [r["after_1ep"] for r in rows]
    diffs = []
    for _ in range(2000):
        k = rng.integers(0, len(rows), len(rows))
        refk, bk, ak = ([v[j] for j in k] for v in (ref, before, after))
        if min(len(set(refk)), len(set(bk)), len(set(ak))) < 2:
            continue
        diffs.append(spearman(ak, refk) - spearman(bk, refk))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    out.append(f"\nrho(after) - rho(before): {spearman(after, ref) - spearman(before, ref):+.3f}, "
               f"paired bootstrap 95% interval [{lo:+.3f}, {hi:+.3f}] ({len(diffs)} resamples).")
    out.append(f"\nMean {ref_epochs}-epoch val acc {np.mean(ref):.3f} "
               f"(min {min(ref):.3f}, max {max(ref):.3f}).")
    print("\n".join(out), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    g = sub.add_parser("gap")
    g.add_argument("--glyph_dir", default=None)
    g.add_argument("--children", type=int, default=3)
    g.add_argument("--settings", default=None, help="e.g. 6x2,15x6 (layers x epochs)")
    g.add_argument("--variants", default=None, help="indices of the variants to run, e.g. 0,5")
    g.add_argument("--out", default=None)
    sub.add_parser("small")
    c = sub.add_parser("corr")
    default_data = os.environ.get(
        "NAS_TF_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    c.add_argument("--data_dir", default=os.path.join(default_data, "cifar10"))
    c.add_argument("--train_subset", type=int, default=2000)
    c.add_argument("--validation_fraction", type=float, default=0.1)
    c.add_argument("--image_size", type=int, default=16)
    c.add_argument("--num_layers", type=int, default=6)
    c.add_argument("--width_multiplier", type=float, default=0.5)
    c.add_argument("--batch_size", type=int, default=64)
    c.add_argument("--children", type=int, default=20)
    c.add_argument("--ref_epochs", type=int, default=10)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--rows", default=None, help="append one JSON row per child here")
    c.add_argument("--reverse", action="store_true",
                   help="last child first (a second process sharing --rows)")
    s = sub.add_parser("summary")
    s.add_argument("--rows", required=True)
    s.add_argument("--ref_epochs", type=int, default=10)
    args = parser.parse_args()
    if args.what == "gap":
        gap(args)
    elif args.what == "small":
        small(args)
    elif args.what == "corr":
        corr(args)
    else:
        summarize(args.rows, args.ref_epochs)


if __name__ == "__main__":
    main()
