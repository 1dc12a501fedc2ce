r"""Fast in-process tuning harness for REINFORCE on NAS-Bench-201-shaped tables.

Not the benchmark (``experiments/nb201_benchmark.py`` runs the real loop);
this replays the loop's rules in memory (a duplicate gets its stored reward
at once and costs no budget; stop after ``patience_rounds`` updates with no
new child, or after 20 x budget proposals) to compare settings quickly, on
three tables, so that settings are not fitted to one:

* ``cifar10``: the NAS-Bench-201 CIFAR-10 table;
* ``transformed``: the same table with the five op labels permuted and the
  rewards passed through the monotone map r -> exp(r / 10) (same ranking,
  other scale and gaps);
* ``synthetic``: a table of the same shape (6 edges x 5 ops) with other
  structure: per-edge op values plus pairwise edge interactions, seeded.

  python experiments/nb201_tune.py --tables=cifar10,synthetic --seeds=10 \
      --configs='{"lr02": {"learning_rate": 0.02}}'
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import sys
import time

from absl import app, flags

TABLE = flags.DEFINE_string("table", "/work/shared/data/nb201/cifar10.csv",
                           "NAS-Bench-201 CSV.")
TABLES = flags.DEFINE_list("tables", ["cifar10"], "cifar10, transformed, synthetic.")
SEEDS = flags.DEFINE_integer("seeds", 10, "Seeds per setting.")
SEED_OFFSET = flags.DEFINE_integer("seed_offset", 0, "First seed (to split a run in parts).")
BUDGETS = flags.DEFINE_list("budgets", ["50", "100", "200", "500"], "Budgets.")
CONFIGS = flags.DEFINE_string("configs", "{}", "JSON {name: {ReinforceConfig overrides, "
                              "optional 'm', 'patience', and ControllerConfig overrides "
                              "'temperature' / 'tanh_constant'}}; the small_budget preset is "
                              "the base.")
ALGOS = flags.DEFINE_list("algorithms", ["reinforce"], "Algorithms (others ignore configs).")


def _tables(path):
    import numpy as np

    from cnn_space.nb201 import OPS, Nb201Space, Nb201Spec, load_table

    space = Nb201Space()
    real = {space.spec_to_tokens(Nb201Spec.from_arch_string(a)): r
            for a, r in load_table(path).items()}
    perm = (3, 0, 4, 1, 2)  # token t of the transformed space means op perm[t] of the real one
    transformed = {tuple(perm.index(t) for t in k): math.exp(v / 10) for k, v in real.items()}
    rng = np.random.default_rng(2024)
    unary = rng.normal(size=(6, len(OPS)))
    pair = rng.normal(scale=0.6, size=(6, 6, len(OPS), len(OPS)))
    synthetic = {}
    for k in itertools.product(range(len(OPS)), repeat=6):
        v = sum(unary[e, k[e]] for e in range(6)) + sum(
            pair[i, j, k[i], k[j]] for i in range(6) for j in range(i + 1, 6))
        synthetic[k] = v
    lo, hi = min(synthetic.values()), max(synthetic.values())
    synthetic = {k: 10 + 85 * (v - lo) / (hi - lo) for k, v in synthetic.items()}
    return space, {"cifar10": real, "transformed": transformed, "synthetic": synthetic}


def run_one(algo, table, budget, m, patience):
    seen, rewards, stale, proposals = {}, [], 0, 0
    while len(rewards) < budget and proposals < 20 * budget:
        toks = algo.propose(m)
        proposals += m
        rs, new = [], 0
        for t in toks:
            if t not in seen:
                seen[t] = table[t]
                rewards.append(seen[t])
                new += 1
            rs.append(seen[t])
        algo.feedback(toks, rs)
        stale = 0 if new else stale + 1
        if stale >= patience:
            break
    return rewards, proposals


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from nas_tf import config as cfgmod
    from nas_tf.algorithms import make_algorithm

    space, tables = _tables(TABLE.value)
    budgets = sorted(int(b) for b in BUDGETS.value)
    settings = json.loads(CONFIGS.value) or {"small_budget": {}}
    for algo_name in ALGOS.value:
        for name, over in (settings.items() if algo_name == "reinforce" else [(algo_name, {})]):
            over = dict(over)
            m = over.pop("m", cfgmod.children_per_update_preset("small_budget"))
            patience = over.pop("patience", cfgmod.SearchConfig().patience_rounds)
            ccfg = dataclasses.replace(cfgmod.controller_preset("small_budget"), **{
                k: over.pop(k) for k in ("temperature", "tanh_constant") if k in over})
            rcfg = dataclasses.replace(cfgmod.reinforce_preset("small_budget"), **over)
            cfg = cfgmod.SearchConfig(algorithm=algo_name, max_children=budgets[-1],
                                      children_per_update=m, reinforce=rcfg, controller=ccfg,
                                      patience_rounds=patience)
            algo = make_algorithm(space, cfg) if algo_name == "reinforce" else None
            for tname in TABLES.value:
                table = tables[tname]
                opt = max(table.values())
                t0 = time.time()
                best = {b: [] for b in budgets}
                found = {b: 0 for b in budgets}
                props = []
                for seed in range(SEED_OFFSET.value, SEED_OFFSET.value + SEEDS.value):
                    scfg = dataclasses.replace(cfg, seed=seed)
                    if algo is not None:
                        algo.reset(scfg)
                        a = algo
                    else:
                        a = make_algorithm(space, scfg)
                    rewards, p = run_one(a, table, budgets[-1], m, cfg.patience_rounds)
                    props.append(p)
                    print(f"  {name} {tname} seed {seed}: best " + " ".join(
                        f"@{b}={max(rewards[:b]):.4f}" for b in budgets) +
                        f", {len(rewards)} children, {p} proposals", file=sys.stderr, flush=True)
                    for b in budgets:
                        best[b].append(max(rewards[:b]))
                        found[b] += max(rewards[:b]) >= opt - 1e-9
                if tname == "transformed":  # back to accuracy units (same ranking)
                    best = {b: [10 * math.log(v) for v in best[b]] for b in budgets}
                cells = " ".join(f"{b}:{np.mean(best[b]):.3f}±{np.std(best[b]):.3f}/"
                                 f"{100 * found[b] / SEEDS.value:.0f}%" for b in budgets)
                print(f"{name:<28} {tname:<11} {cells}  prop {np.mean(props):.0f} "
                      f"{time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(app.run(main))
