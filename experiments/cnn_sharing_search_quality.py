"""Benchmark (issue 14, measurement 3, CIFAR-10): a CNN sharing search vs chance.

The CNN half of ``experiments/sharing_search_quality.py``: two ``--space=cnn
--sharing=enas`` searches side by side with the same wall-time budget
(``--search_s``), REINFORCE and random sampling, on the small CNN space of
``experiments/cnn_sharing_benchmark.py`` (v1, ``--num_layers`` layers,
filters x``--width_multiplier``, the first ``--train_subset`` CIFAR-10
training images, 10 % of them validating). The best child of each (rank 1
of ``RUN_DIR/shared/ranking.json``) is retrained from scratch with that
benchmark's fixed short recipe (SGD momentum 0.9, lr 0.1 cosine, batch 64,
crop + flip, ``--child_epochs`` epochs), as are ``--uniform`` children drawn
uniformly (seeded) and a plain CNN of the same depth (every layer 3x3 with
the third filter choice, each layer fed by the one before: no skips).
Validation accuracy only: the test split is not read.

Usage::

    nohup python experiments/cnn_sharing_search_quality.py --search_s=600 > /tmp/m3c.log 2>&1 &
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = os.environ.get("NAS_TF_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    p.add_argument("--data_dir", default=str(Path(shared) / "cifar10"))
    p.add_argument("--search_s", type=float, default=600.0)
    p.add_argument("--top_k", type=int, default=3)
    p.add_argument("--uniform", type=int, default=5)
    p.add_argument("--train_subset", type=int, default=5000)
    p.add_argument("--num_layers", type=int, default=6)
    p.add_argument("--width_multiplier", type=float, default=0.25)
    p.add_argument("--child_epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=str(Path(tempfile.gettempdir())
                                          / "nas_tf_cnn_sharing_quality"))
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "sharing.md"))
    return p.parse_args(argv)


def _search_args(args, algorithm: str) -> list[str]:
    return ["--space=cnn", "--sharing=enas", f"--algorithm={algorithm}",
            "--dataset=imagefolder", f"--data_dir={args.data_dir}",
            f"--cnn_train_subset={args.train_subset}", f"--cnn_num_layers={args.num_layers}",
            f"--cnn_width_multiplier={args.width_multiplier}", "--cnn_augment=crop_flip",
            "--child_batch_size=64", "--max_children=100000",
            f"--max_search_s={args.search_s:g}", f"--shared_top_k={args.top_k}",
            f"--seed={args.seed}", f"--run_dir={Path(args.root) / algorithm}"]


def plain_spec(space):
    """Every layer 3x3 with the third filter choice, fed by the layer before it only."""
    from nas_tf.space import Anchor

    tokens = []
    for d in space.decisions():
        if isinstance(d, Anchor):
            tokens += [int(j == d.num_inputs - 1) for j in range(d.num_inputs)]
        elif d.name.endswith("/filters"):
            tokens.append(2)
        else:
            tokens.append(list(d.values).index(3))
    return space.tokens_to_spec(tokens)


def main(argv=None):
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    Path(args.root).mkdir(parents=True, exist_ok=True)
    from sharing_search_quality import ALGORITHMS, run_searches

    summaries = run_searches(args, _search_args)
    from cnn_space.shared import uniform_spec
    from cnn_space.spec import CnnSpec
    from cnn_space.train import CnnEvaluator, CnnSearchConfig, load_data, make_space
    from nas_tf.evaluator import ChildContext

    cfg = CnnSearchConfig(dataset="imagefolder", data_dir=args.data_dir,
                          train_subset=args.train_subset, num_layers=args.num_layers,
                          width_multiplier=args.width_multiplier, epochs=args.child_epochs,
                          batch_size=64, eval_batch_size=100, augment="crop_flip")
    data, space = load_data(cfg), make_space(cfg)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [f"\n### Measurement 3, CIFAR-10 ({now:%Y-%m-%d %H:%M} UTC, load {load})\n\n"
             f"`python experiments/cnn_sharing_search_quality.py {' '.join(sys.argv[1:])}`\n\n"
             "| search | architectures scored | wall s | best shared-weights valid acc "
             "(whole split) |\n|---|---:|---:|---:|\n"]
    tops = []
    for a in ALGORITHMS:
        s = summaries[a]
        top = json.loads((Path(args.root) / a / "shared" / "ranking.json").read_text())[0]
        tops.append((f"top-{a}", CnnSpec.from_json(top["spec"])))
        lines.append(f"| {a} + sharing | {s.get('architectures_evaluated')} | "
                     f"{s.get('wall_time_s', float('nan')):.0f} | {top['val_accuracy']:.3f} |\n")
    lines.append(f"\nRetrained alone, fixed short recipe ({args.child_epochs} epochs), "
                 "valid acc:\n\n| child | valid acc | retrain s |\n|---|---:|---:|\n")
    with open(args.out, "a") as f:
        f.write("".join(lines))
    rng = random.Random(args.seed)
    children = tops + [(f"uniform-{i}", uniform_spec(space, rng)) for i in range(args.uniform)]
    children.append(("plain CNN (3x3, no skips)", plain_spec(space)))
    evaluator, uniform = CnnEvaluator(cfg, data), []
    for i, (name, spec) in enumerate(children):
        t0 = time.time()
        try:
            acc = evaluator.evaluate(spec, ChildContext(child_id=i, seed=args.seed))
            acc = acc.metrics["val_accuracy"]
        except Exception as e:  # noqa: BLE001 - a failed child is a row, not a crash
            acc = float("nan")
            print(f"{name}: training failed: {e}", file=sys.stderr)
        if name.startswith("uniform"):
            uniform.append(acc)
        row = f"| {name} | {acc:.3f} | {time.time() - t0:.0f} |\n"
        with open(args.out, "a") as f:
            f.write(row)
        print(row.strip(), flush=True)
    finite = [u for u in uniform if u == u]
    with open(args.out, "a") as f:
        f.write(f"| mean of the {len(finite)} uniform children | "
                f"{statistics.mean(finite) if finite else float('nan'):.3f} | |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
