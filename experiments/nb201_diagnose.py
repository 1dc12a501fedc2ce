r"""Why does the REINFORCE policy collapse? Per-window statistics of a search.

Runs REINFORCE (the ``small_budget`` preset, overridable) on the in-memory
NAS-Bench-201 harness of ``experiments/nb201_tune.py`` and prints, per
window of proposals, averaged over seeds: the policy's entropy (nats summed
over the 6 decisions; uniform = 9.66), the share of new (not yet trained)
architectures, the mean |advantage| fed to the update, the baseline, the
normaliser sigma (RMS of R - b), the mean reward and the best so far.

  python experiments/nb201_diagnose.py --seeds=5 --overrides='{"tanh_constant": 2.5}'
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nb201_tune  # noqa: E402 - its flags (--seeds, --table) and tables

WINDOW = flags.DEFINE_integer("window", 50, "Proposals per printed row.")
BUDGET = flags.DEFINE_integer("budget", 500, "Unique children per search.")
OVERRIDES = flags.DEFINE_string("overrides", "{}", "JSON ReinforceConfig overrides, plus "
                                "'temperature' / 'tanh_constant' for the controller.")
TABLE_NAME = flags.DEFINE_string("table_name", "cifar10", "cifar10, transformed, synthetic.")


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from nas_tf import config as cfgmod
    from nas_tf.algorithms import make_algorithm

    over = json.loads(OVERRIDES.value)
    ccfg = dataclasses.replace(cfgmod.controller_preset("small_budget"), **{
        k: over.pop(k) for k in ("temperature", "tanh_constant") if k in over})
    rcfg = dataclasses.replace(cfgmod.reinforce_preset("small_budget"), **over)
    space, tables = nb201_tune._tables(nb201_tune.TABLE.value)
    table = tables[TABLE_NAME.value]
    cfg = cfgmod.SearchConfig(algorithm="reinforce", max_children=BUDGET.value,
                              children_per_update=1, reinforce=rcfg, controller=ccfg)
    algo = make_algorithm(space, cfg)
    patience = cfg.patience_rounds
    windows: dict[int, list] = {}
    for seed in range(nb201_tune.SEEDS.value):
        algo.reset(dataclasses.replace(cfg, seed=seed))
        seen, rows, stale = {}, [], 0
        while len(seen) < BUDGET.value and len(rows) < cfg.proposal_limit and stale < patience:
            t = algo.propose(1)[0]
            ent = algo.last_entropy
            new = t not in seen
            if new:
                seen[t] = table[t]
            st = algo.feedback([t], [seen[t]])
            sigma = float(np.sqrt(algo.reward_var.numpy()))
            rows.append((ent, new, st["advantage_abs"], st["baseline"], sigma, seen[t],
                         max(seen.values())))
            stale = 0 if new else stale + 1
        print(f"seed {seed}: {len(seen)} children, {len(rows)} proposals, best "
              f"{max(seen.values()):.3f}", file=sys.stderr, flush=True)
        for w in range(0, len(rows), WINDOW.value):
            r = np.asarray(rows[w:w + WINDOW.value], float)
            windows.setdefault(w, []).append(list(r.mean(axis=0)[:6]) + [r[-1, 6]])
    print("proposals  entropy  new %   |adv|  baseline   sigma  reward    best  seeds")
    for w in sorted(windows):
        a = np.asarray(windows[w]).mean(axis=0)
        print(f"{w:5d}+   {a[0]:8.3f} {100 * a[1]:6.1f} {a[2]:7.2f} {a[3]:9.3f} {a[4]:7.3f} "
              f"{a[5]:7.2f} {a[6]:7.3f}  {len(windows[w]):5d}")


if __name__ == "__main__":
    sys.exit(app.run(main))
