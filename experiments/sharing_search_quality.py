"""Benchmark (issue 14, measurement 3): does a sharing search find better cells than chance?

Two ``--space=rnn --sharing=enas`` searches on PTB with the same wall-time
budget (``--search_s``), run side by side so that both see the same machine
load: REINFORCE (the paper's controller) and random sampling (Li & Talwalkar
2019's strong baseline for weight-sharing searches). The best cell of each
(rank 1 of ``RUN_DIR/shared/ranking.json``, i.e. the best of the top-k
re-scored on the whole validation split with the shared weights) is then
retrained from scratch, as are ``--uniform`` cells drawn uniformly from the
space (seeded), all with the PTB replication's small recipe
(``experiments/ptb_replication.py``: 2 layers, equal parameters to LSTM-200,
SGD lr 1.0 on the summed loss, batch 20, BPTT 20) for ``--retrain_epochs``
epochs. Validation perplexity only: the test split is not read.

The LSTM-200 row is epoch ``--retrain_epochs`` of the anchor run of
``ptb_replication.py --model=lstm`` (the same recipe and seed, so the same
numbers as a run stopped there: the learning rate decays only after epoch 4).

Usage (the searches take ``--search_s`` plus the final ranking; each
retrain ~5-10 min per epoch on 2 CPU cores)::

    nohup python experiments/sharing_search_quality.py --search_s=900 > /tmp/m3.log 2>&1 &

``--retrain_steps=N`` caps each retrain epoch at N windows (the same cap
for every cell, and an LSTM-200 row trained with it), for a machine that
cannot afford whole epochs. Running it again skips finished searches and
retrains (each retrain resumes per epoch); rows go to ``--out`` as they are measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ALGORITHMS = ("reinforce", "random")


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = os.environ.get("NAS_TF_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    p.add_argument("--data_dir", default=str(Path(shared) / "ptb"))
    p.add_argument("--search_s", type=float, default=900.0)
    p.add_argument("--top_k", type=int, default=3)
    p.add_argument("--uniform", type=int, default=5)
    p.add_argument("--retrain_epochs", type=int, default=1)
    p.add_argument("--retrain_steps", type=int, default=None,
                   help="windows per retrain epoch (default: the whole epoch, 2,323)")
    p.add_argument("--recipe", choices=("small", "search"), default="small",
                   help="small: the PTB replication's (SGD); search: the search's own child "
                        "recipe (Adam, 32 units, 100 windows), in this process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "nas_tf_sharing_quality"),
                   help="run directories, cell specs and retrain states")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "sharing.md"))
    return p.parse_args(argv)


def _search_args(args, algorithm: str) -> list[str]:
    return ["--space=rnn", "--sharing=enas", f"--algorithm={algorithm}", "--dataset=ptb",
            f"--data_dir={args.data_dir}", "--max_children=100000",
            f"--max_search_s={args.search_s:g}", f"--shared_top_k={args.top_k}",
            f"--seed={args.seed}", f"--run_dir={Path(args.root) / algorithm}"]


def run_searches(args, search_args=_search_args) -> dict:
    """Runs (or skips, when finished) both searches side by side; their summaries.

    ``search_args(args, algorithm)``: the ``nas_tf.run`` flags of one search.
    """
    procs = {}
    for algorithm in ALGORITHMS:
        if (Path(args.root) / algorithm / "shared" / "ranking.json").exists():
            continue
        log = open(Path(args.root) / f"{algorithm}.log", "a")
        procs[algorithm] = subprocess.Popen(
            [sys.executable, "-m", "nas_tf.run", *search_args(args, algorithm)], cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT)
    for algorithm, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"error: the {algorithm} search failed; see "
                             f"{Path(args.root) / (algorithm + '.log')}")
    return {a: json.loads((Path(args.root) / a / "summary.json").read_text())
            for a in ALGORITHMS}


def uniform_specs(n: int, seed: int) -> list:
    """``n`` cells of the base-8 tree space, every token uniform (seeded)."""
    from cells.tree_space import TreeSpace

    space, rng = TreeSpace(8), random.Random(seed)
    specs = []
    for _ in range(n):
        tokens = [rng.randrange(d.num_choices) for d in space.decisions()]
        specs.append(space.tokens_to_spec(tokens))
    return specs


def _state_dir(args) -> Path:
    return Path(args.root) / (f"retrain_{args.retrain_steps}" if args.retrain_steps
                              else "retrain")


def retrain(args, name: str, spec) -> dict:
    """Valid perplexity per epoch of ``spec`` (a CellSpec, or None: the LSTM)
    trained alone (resumes per epoch)."""
    model = ["--model=lstm"]
    if spec is not None:
        spec_file = Path(args.root) / f"{name}.json"
        spec_file.write_text(json.dumps(spec.to_json()))
        model = ["--model=tree", f"--spec={spec_file}"]
    state_dir = _state_dir(args)
    steps = [f"--steps_per_epoch={args.retrain_steps}"] if args.retrain_steps else []
    cmd = [sys.executable, str(ROOT / "experiments" / "ptb_replication.py"), *model, *steps,
           f"--epochs={args.retrain_epochs}", "--skip_test", f"--tag={name}",
           f"--data_dir={args.data_dir}", f"--state_dir={state_dir}",
           f"--out={state_dir / 'retrain.md'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    states = list(state_dir.glob(f"ptb-*-{name}/state.json"))
    if proc.returncode != 0 or not states:
        return {"name": name, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    history = json.loads(states[0].read_text())["history"]
    return {"name": name, "valid": [r["val_perplexity"] for r in history],
            "seconds": sum(r["seconds"] for r in history)}


def retrain_search_recipe(args, name: str, spec) -> dict:
    """Valid perplexity of ``spec`` (None: an LSTM) trained alone with the
    search's child recipe (the stand-alone side of ``sharing_benchmark.py``)."""
    import keras

    from cells.lm import train_lm
    from cells.ptb import load_ptb
    from cells.search import RnnSearchConfig
    from cells.tree_cell import TreeCell

    cfg = RnnSearchConfig(dataset="ptb", data_dir=args.data_dir)
    corpus = load_ptb(args.data_dir, download=False)
    units = cfg.child.units
    factory = ((lambda: keras.layers.LSTMCell(units)) if spec is None
               else (lambda: TreeCell(spec, units)))
    t0 = time.time()
    try:
        res = train_lm(factory, corpus.train, corpus.valid, corpus.vocab_size,
                       cfg.lm_config(), seed=args.seed)
    except Exception as e:  # noqa: BLE001 - a failed cell is a row, not a crash
        return {"name": name, "error": str(e).splitlines()[0]}
    return {"name": name, "valid": [res.val_perplexity], "seconds": time.time() - t0}


def _anchor_lstm(epochs: int) -> float | None:
    # The anchor run of ptb_replication.py, at its default --state_dir.
    state = Path(tempfile.gettempdir()) / "nas_tf_ptb_replication" / "ptb-lstm-200" / "state.json"
    if not state.exists():
        return None
    history = json.loads(state.read_text())["history"]
    return history[epochs - 1]["val_perplexity"] if len(history) >= epochs else None


def main(argv=None):
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    Path(args.root).mkdir(parents=True, exist_ok=True)
    from cells.tree_space import CellSpec

    summaries = run_searches(args)
    load = os.getloadavg()
    out = Path(args.out)
    with open(out, "a") as f:
        now = datetime.datetime.now(datetime.timezone.utc)
        f.write(f"\n### Measurement 3, ptb ({now:%Y-%m-%d %H:%M} UTC, "
                f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})\n\n"
                f"`python experiments/sharing_search_quality.py {' '.join(sys.argv[1:])}`\n\n"
                "| search | architectures scored | wall s | best shared-weights valid ppl "
                "(whole split) |\n|---|---:|---:|---:|\n")
        for a, s in summaries.items():
            top = json.loads((Path(args.root) / a / "shared" / "ranking.json").read_text())[0]
            f.write(f"| {a} + sharing | {s.get('architectures_evaluated')} | "
                    f"{s.get('wall_time_s', float('nan')):.0f} | {top['val_perplexity']:.2f} |\n")
        steps = f" of {args.retrain_steps} windows" if args.retrain_steps else ""
        recipe = (f"small recipe, {args.retrain_epochs} epoch(s){steps}"
                  if args.recipe == "small" else
                  "the search's child recipe (Adam, 32 units, 100 windows)")
        f.write(f"\nRetrained alone, {recipe}, valid ppl:\n\n"
                "| cell | valid ppl | retrain s |\n|---|---:|---:|\n")
    cells = [(f"top-{a}", CellSpec.from_json(json.loads(
        (Path(args.root) / a / "shared" / "ranking.json").read_text())[0]["spec"]))
        for a in ALGORITHMS]
    cells += [(f"uniform-{i}", s) for i, s in enumerate(uniform_specs(args.uniform, args.seed))]
    if args.recipe == "search":
        cells.append(("lstm-32", None))
    elif args.retrain_steps:  # the anchor run trained whole epochs: an LSTM row of its own
        cells.append(("lstm-200", None))
    uniform = []
    for name, spec in cells:
        row = (retrain_search_recipe if args.recipe == "search" else retrain)(args, name, spec)
        valid = row.get("valid", [float("nan")])[-1]
        if name.startswith("uniform"):
            uniform.append(valid)
        text = (f"| {name} | {valid:.2f} | {row['seconds']:.0f} |\n" if "valid" in row
                else f"| {name} | failed: {row['error']} | |\n")
        with open(out, "a") as f:
            f.write(text)
        print(text.strip(), flush=True)
    finite = [v for v in uniform if v == v and v < float("inf")]
    with open(out, "a") as f:
        f.write(f"| mean of the {len(finite)} finite uniform cells (of {len(uniform)}) | "
                f"{statistics.mean(finite) if finite else float('nan'):.2f} | |\n")
        if args.recipe == "small" and not args.retrain_steps:
            lstm = _anchor_lstm(args.retrain_epochs)
            f.write(f"| LSTM-200 (anchor run, epoch {args.retrain_epochs}) | "
                    f"{lstm if lstm is not None else float('nan'):.2f} | |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
