r"""NAS-Bench-201 benchmark: REINFORCE vs random search vs regularized evolution vs TPE.

Every search runs through the real search loop (trial store, dedup,
checkpoints at the end) on the NAS-Bench-201 table, for ``--seeds`` seeds.
One search of ``max(--budgets)`` unique children per seed and algorithm gives
the best accuracy found within each smaller budget too (children are stored
in the order they were trained, and no algorithm looks at its budget).

  python experiments/nb201_benchmark.py --table=../shared/data/nb201/cifar10.csv \
      --budgets=50,100,200,500 --seeds=20 --out=experiments/results/nb201.json

Prints, per algorithm and budget: mean ± std of the best test accuracy found,
the fraction of seeds that found the table's global optimum, and the
controller's cost per child (sample + update, ms; the one-off tf.function
tracing is reported apart).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time

from absl import app, flags, logging

TABLE = flags.DEFINE_string("table", "../shared/data/nb201/cifar10.csv", "NAS-Bench-201 CSV.")
BUDGETS = flags.DEFINE_list("budgets", ["50", "100", "200", "500"], "Budgets of unique children.")
SEEDS = flags.DEFINE_integer("seeds", 20, "Number of seeds per algorithm.")
ALGORITHMS = flags.DEFINE_list("algorithms", ["reinforce", "random", "evolution", "tpe"],
                               "Algorithms (tpe needs Optuna: pip install \"nas_tf[optuna]\").")
TPE_M = flags.DEFINE_integer("tpe_children_per_update", 1,
                             "m for tpe (its default is 1: TPE refits at every reward).")
PRESET = flags.DEFINE_enum("controller_preset", "small_budget", ["paper", "small_budget"],
                           "REINFORCE settings (see nas_tf/config.py).")
OUT = flags.DEFINE_string("out", None, "Write the table as JSON here.")
PATIENCE = flags.DEFINE_integer("patience_rounds", None,
                                "Override SearchConfig.patience_rounds (default: its default).")


class _Timed:
    """Wraps an algorithm and times propose + feedback (the controller's cost)."""

    def __init__(self, algorithm):
        self._a = algorithm
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self._a, name)

    def propose(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self._a.propose(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t

    def feedback(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self._a.feedback(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t


def main(argv):
    logging.set_verbosity(logging.WARNING)  # no per-checkpoint INFO lines from TensorFlow
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator
    from nas_tf import config as cfgmod
    from nas_tf.algorithms import make_algorithm
    from nas_tf.loop import read_trials, run_search

    budgets = sorted(int(b) for b in BUDGETS.value)
    space = Nb201Space()
    evaluator = Nb201TableEvaluator(TABLE.value)
    optimum = evaluator.optimum()
    rows, raw = [], {}
    for algo in ALGORITHMS.value:
        extra = {} if PATIENCE.value is None else {"patience_rounds": PATIENCE.value}
        cfg = cfgmod.SearchConfig(**extra,
            algorithm=algo, max_children=budgets[-1],
            children_per_update=(TPE_M.value if algo == "tpe"
                                 else cfgmod.children_per_update_preset(PRESET.value)),
            controller=cfgmod.controller_preset(PRESET.value),
            reinforce=cfgmod.reinforce_preset(PRESET.value),
        )
        t0 = time.perf_counter()
        algorithm = make_algorithm(space, cfg)
        if algo == "reinforce":  # trace the compiled functions once, outside the timing
            m = cfg.children_per_update
            algorithm.feedback(algorithm.propose(m), [0.0] * m)
        trace_s = time.perf_counter() - t0
        best = {b: [] for b in budgets}
        found = {b: [] for b in budgets}
        unique, cost_ms, proposals = [], [], []
        for seed in range(SEEDS.value):
            scfg = dataclasses.replace(cfg, seed=seed)
            if algo == "reinforce":
                algorithm.reset(scfg)
                timed = _Timed(algorithm)
            else:
                timed = _Timed(make_algorithm(space, scfg))
            with tempfile.TemporaryDirectory() as run_dir:
                summary = run_search(space, evaluator, run_dir=run_dir, config=scfg,
                                     child_logs=False, checkpoint_every_s=1e9, algorithm=timed)
                rewards = [t.reward for t in read_trials(run_dir) if t.status == "done"]
            for b in budgets:
                best[b].append(max(rewards[:b]))
                found[b].append(any(r >= optimum - 1e-9 for r in rewards[:b]))
            unique.append(len(rewards))
            proposals.append(summary["proposals"])
            cost_ms.append(1000.0 * timed.seconds / max(1, summary["proposals"]))
            print(f"{algo} seed {seed}: best " + " ".join(
                f"@{b}={best[b][-1]:.2f}" for b in budgets) + f", {len(rewards)} children, "
                f"{summary['proposals']} proposals, {cost_ms[-1]:.2f} ctrl ms/child",
                file=sys.stderr, flush=True)  # progress: a long run can be read as it goes
        for b in budgets:
            rows.append({
                "algorithm": algo, "budget": b,
                "best_mean": float(np.mean(best[b])), "best_std": float(np.std(best[b])),
                "optimum_fraction": float(np.mean(found[b])),
                "seeds": SEEDS.value,
                "unique_children_mean": float(np.mean(unique)),
                "proposals_mean": float(np.mean(proposals)),
                "controller_ms_per_child": float(np.mean(cost_ms)),
                "trace_s": trace_s,
            })
        raw[algo] = {"best": {str(b): best[b] for b in budgets}, "unique": unique}

    print(f"NAS-Bench-201 CIFAR-10 table: {TABLE.value} (optimum {optimum:.2f}); "
          f"{SEEDS.value} seeds; REINFORCE preset: {PRESET.value}")
    head = (f"{'algorithm':<10} {'budget':>6} {'best test acc (mean ± std)':>28} "
            f"{'found optimum':>14} {'unique':>7} {'proposals':>9} {'ctrl ms/child':>13}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['algorithm']:<10} {r['budget']:>6} "
              f"{r['best_mean']:>19.3f} ± {r['best_std']:<6.3f} "
              f"{100 * r['optimum_fraction']:>13.0f}% "
              f"{r['unique_children_mean']:>7.0f} {r['proposals_mean']:>9.0f} "
              f"{r['controller_ms_per_child']:>13.2f}")
    print("(ctrl ms/child: controller sample + update time per proposed child; "
          f"one-off tracing: {rows[0]['trace_s']:.1f}s for {rows[0]['algorithm']})")
    if OUT.value:
        with open(OUT.value, "w") as f:
            json.dump({"table": TABLE.value, "optimum": optimum, "rows": rows, "raw": raw}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
