r"""Training-free estimators judged by the NAS-Bench-201 table, on real CIFAR-10 images.

Samples a fixed set of cells (uniform over the 15,625, ``--sample_seed``)
from the table, builds each cell's benchmark network in Keras
(cnn_space/nb201/model.py, ``--channels`` C and ``--cells`` N per stage),
scores the untrained network on one batch of real CIFAR-10 training images
(cnn_space/nb201/proxies.py: NASWOT, SynFlow; plus the parameter count, a
free baseline) and reports, per estimator, against the table's test
accuracy: Kendall's tau-b, Spearman's rho, the share of the estimator's top
10 % that lies in the table's top 10 % (of all 15,625 cells, and of the
sample), the table accuracy of the estimator's best cell, and the CPU and
wall seconds per cell.

  nice -n 10 python experiments/nb201_estimators.py --channels=16 --cells=5 --num_cells=200

Per-cell scores go to ``--out_json`` (one section per skeleton; re-running
the same skeleton resumes where it stopped); the summary rows, with the
command, date and ``uptime`` load, to ``--out_md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NAS_TF_SHARED_DATA", ROOT.parent / "shared" / "data"))
# NAS-Bench-201's CIFAR normalisation (its get_datasets: mean/std of the 0-255 pixels / 255).
MEAN = np.array([125.3, 123.0, 113.9]) / 255.0
STD = np.array([63.0, 62.1, 66.7]) / 255.0


def ranks(x) -> np.ndarray:
    """Ranks 0..n-1 with ties given their average rank (-inf ranks lowest)."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):
        tie = x == v
        r[tie] = r[tie].mean()
    return r


def spearman(a, b) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def kendall_tau_b(a, b) -> float:
    """Kendall's tau-b (ties as scipy.stats.kendalltau's default)."""
    ra, rb = ranks(a), ranks(b)
    da = np.sign(ra[:, None] - ra[None, :])
    db = np.sign(rb[:, None] - rb[None, :])
    iu = np.triu_indices(len(ra), 1)
    da, db = da[iu], db[iu]
    denom = math.sqrt(np.count_nonzero(da) * np.count_nonzero(db))
    return float(np.sum(da * db) / denom) if denom else math.nan


def top_share(scores, accs, k: int, threshold: float) -> float:
    """Share of the k best-scored cells whose accuracy is >= threshold."""
    best = np.argsort(-ranks(scores), kind="stable")[:k]
    return float(np.mean(np.asarray(accs)[best] >= threshold))


def load_images(folder: Path, n: int, seed: int) -> np.ndarray:
    """``n`` training images (uniform over the files, ``seed``), NAS-Bench-201-normalised."""
    from PIL import Image

    from nas_tf.errors import DataError

    files = sorted(folder.glob("*/*.jpg")) + sorted(folder.glob("*/*.png"))
    if len(files) < n:
        raise DataError(f"--images_dir must hold CIFAR-10 class folders of images (at least "
                        f"{n}). Received: {folder} with {len(files)} images")
    pick = np.random.default_rng(seed).choice(len(files), n, replace=False)
    batch = np.stack([np.asarray(Image.open(files[i]).convert("RGB"), np.float64) / 255.0
                      for i in sorted(pick)])
    if batch.shape[1:] != (32, 32, 3):
        raise DataError(f"CIFAR-10 images are 32x32 RGB. Received: {batch.shape[1:]} in {folder}")
    return ((batch - MEAN) / STD).astype("float32")


def score_cell(spec, images, args) -> dict:
    """Builds the cell's network and times every estimator on it."""
    import keras

    from cnn_space.nb201.model import benchmark_param_count, build_nb201_model
    from cnn_space.nb201.proxies import naswot, synflow

    row = {"params": benchmark_param_count(spec, args.channels, args.cells)}
    c0, w0 = time.process_time(), time.perf_counter()
    model = build_nb201_model(spec, channels=args.channels, cells_per_stage=args.cells,
                              seed=args.init_seed)
    c1, w1 = time.process_time(), time.perf_counter()
    row["build_cpu_s"], row["build_wall_s"] = c1 - c0, w1 - w0
    if "naswot" in args.estimators:
        row["naswot"] = naswot(model, images)
        c2, w2 = time.process_time(), time.perf_counter()
        row["naswot_cpu_s"], row["naswot_wall_s"] = c2 - c1, w2 - w1
    if "synflow" in args.estimators:
        c2, w2 = time.process_time(), time.perf_counter()
        twin = build_nb201_model(spec, channels=args.channels, cells_per_stage=args.cells,
                                 seed=args.init_seed, dtype="float64")
        twin.set_weights([w.astype("float64") for w in model.get_weights()])
        row["synflow"] = synflow(twin)
        c3, w3 = time.process_time(), time.perf_counter()
        row["synflow_cpu_s"], row["synflow_wall_s"] = c3 - c2, w3 - w2
    keras.backend.clear_session()
    return {k: round(v, 4) if k.endswith("_s") else v for k, v in row.items()}


def summary(rows: list, table: dict, estimators: list) -> list[dict]:
    accs = np.array([r["test_accuracy"] for r in rows])
    k = max(1, math.ceil(0.1 * len(rows)))
    global_top = np.quantile(np.array(list(table.values())), 0.9)
    sample_top = np.sort(accs)[-k]
    out = []
    for name in ["params"] + estimators:
        s = np.array([r[name] for r in rows], float)
        best = int(np.argmax(ranks(s) + np.arange(len(s)) * 1e-9))
        cpu = [r.get(f"{name}_cpu_s", 0.0) + r["build_cpu_s"] * (name == "naswot")
               for r in rows]
        wall = [r.get(f"{name}_wall_s", 0.0) + r["build_wall_s"] * (name == "naswot")
                for r in rows]
        out.append({"estimator": name, "cells": len(rows),
                    "tau": kendall_tau_b(s, accs), "rho": spearman(s, accs),
                    "top10_global": top_share(s, accs, k, global_top),
                    "top10_sample": top_share(s, accs, k, sample_top),
                    "best_acc": float(accs[best]), "cpu_s": float(np.mean(cpu)),
                    "wall_s": float(np.mean(wall))})
    return out


def write_md(path: Path, args, results, rows, elapsed):
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    accs = [r["test_accuracy"] for r in rows]
    lines = [
        f"\n## C={args.channels}, N={args.cells}: {len(rows)} cells, {args.batch} images "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n",
        f"`{' '.join(['python'] + sys.argv)}`  ",
        f"load at the end: `{load}`; {elapsed / 60:.1f} min in all. Sample: best table "
        f"accuracy {max(accs):.2f}, mean {np.mean(accs):.2f}. CPU s counts every thread; "
        "naswot's seconds include building the float32 model, synflow's its float64 twin.\n",
        "| estimator | Kendall tau | Spearman rho | top-10% (table) | top-10% (sample) | "
        "acc of its best | CPU s/cell | wall s/cell |",
        "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['estimator']} | {r['tau']:.3f} | {r['rho']:.3f} | "
                     f"{r['top10_global']:.2f} | {r['top10_sample']:.2f} | {r['best_acc']:.2f} "
                     f"| {r['cpu_s']:.2f} | {r['wall_s']:.2f} |")
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")


def _save(path: Path, key: str, section: dict):
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = section
    tmp = path.with_suffix(".tmp")
    # One cell per line; NASWOT's -inf (a singular kernel) is written as -Infinity.
    text = json.dumps(data, separators=(",", ":")).replace('{"arch"', '\n{"arch"')
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def run(args) -> list[dict]:
    from cnn_space.nb201 import Nb201Spec, check_table_covers, load_table

    table = load_table(str(args.table))
    check_table_covers(table, str(args.table))
    archs = sorted(table)
    sample = [archs[i] for i in np.random.default_rng(args.sample_seed).choice(
        len(archs), args.num_cells, replace=False)]
    images = load_images(Path(args.images_dir), args.batch, args.image_seed)
    key = f"C{args.channels}_N{args.cells}_B{args.batch}_seed{args.init_seed}"
    out_json = Path(args.out_json)
    old = json.loads(out_json.read_text()).get(key, {}) if out_json.is_file() else {}
    done = {r["arch"]: r for r in old.get("rows", []) if all(e in r for e in args.estimators)}
    rows, start = [], time.perf_counter()
    for n, arch in enumerate(sample, 1):
        row = done.get(arch) or {"arch": arch, "test_accuracy": table[arch],
                                 **score_cell(Nb201Spec.from_arch_string(arch), images, args)}
        rows.append(row)
        if n % 10 == 0 or n == len(sample):
            _save(out_json, key, {"channels": args.channels, "cells": args.cells,
                                  "batch": args.batch, "sample_seed": args.sample_seed,
                                  "init_seed": args.init_seed, "rows": rows})
            print(f"{n}/{len(sample)} cells, {time.perf_counter() - start:.0f} s", flush=True)
    results = summary(rows, table, args.estimators)
    write_md(Path(args.out_md), args, results, rows, time.perf_counter() - start)
    for r in results:
        print(json.dumps(r))
    return results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=str(SHARED / "nb201" / "cifar10.csv"))
    p.add_argument("--images_dir", default=str(SHARED / "cifar10" / "train"))
    p.add_argument("--num_cells", type=int, default=200)
    p.add_argument("--sample_seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64, help="images scored (NASWOT's batch)")
    p.add_argument("--image_seed", type=int, default=0)
    p.add_argument("--init_seed", type=int, default=0, help="weights of every network")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=5, help="cells per stage (N)")
    p.add_argument("--estimators", default="naswot,synflow")
    p.add_argument("--out_json", default=str(ROOT / "experiments" / "results" /
                                             "nb201_naswot_sample200.json"))
    p.add_argument("--out_md", default=str(ROOT / "experiments" / "results" / "nb201_real.md"))
    args = p.parse_args(argv)
    args.estimators = [e for e in args.estimators.split(",") if e]
    bad = [e for e in args.estimators if e not in ("naswot", "synflow")]
    if bad:
        p.error(f"--estimators takes naswot,synflow. Received: --estimators={','.join(bad)}")
    for name in ("num_cells", "batch", "channels", "cells"):
        if getattr(args, name) < (2 if name == "batch" else 1):
            p.error(f"--{name} is too small. Received: --{name}={getattr(args, name)}")
    if args.num_cells > 15625:
        p.error(f"--num_cells is at most 15625. Received: --num_cells={args.num_cells}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nas_tf.errors import NasTfError

    try:
        run(args)
    except NasTfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
