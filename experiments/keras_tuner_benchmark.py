r"""nas_tf's oracles (nas_tf.keras_tuner) beside KerasTuner's own, through KerasTuner.

Two parts, each run with ``keras_tuner.Tuner`` and ``tuner.search``:

* ``--part=nb201``: the NAS-Bench-201 table as six ``hp.Choice`` (one per edge,
  five ops each), no training: a Tuner whose ``run_trial`` looks the cell up
  in the table, so the true accuracy of every oracle's best is known.
* ``--part=cnn``: a small Keras CNN (filters, kernel, depth, pooling, dense
  width, learning rate) trained for a few epochs on the generated glyph
  images of ``cnn_space/synthetic.py``; best validation accuracy.

One JSON line per (part, oracle, seed) goes to ``--rows`` as it finishes (a
rerun skips the rows already there), and the tables (mean ± std over seeds of
the best objective within each budget) are written into ``--md`` between
markers for the part, with the command, the date and the machine's load.

  python experiments/keras_tuner_benchmark.py --part=nb201 --seeds=20 --trials=100
  python experiments/keras_tuner_benchmark.py --part=cnn --seeds=3 --trials=12
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time

from absl import app, flags

PART = flags.DEFINE_enum("part", "nb201", ["nb201", "cnn"], "Which benchmark.")
TABLE = flags.DEFINE_string("table", "../shared/data/nb201/cifar10.csv", "NAS-Bench-201 CSV.")
SEEDS = flags.DEFINE_integer("seeds", 20, "Seeds per oracle (1..N).")
TRIALS = flags.DEFINE_integer("trials", 100, "max_trials of every search.")
BUDGETS = flags.DEFINE_list("budgets", ["50", "100"], "Report the best within these many trials.")
ORACLES = flags.DEFINE_list(
    "oracles", ["reinforce", "reinforce_paper", "evolution", "random", "bayesian"],
    "reinforce (small_budget preset), reinforce_paper, evolution, random, bayesian.")
EPOCHS = flags.DEFINE_integer("epochs", 3, "cnn: training epochs per trial.")
PER_CLASS = flags.DEFINE_integer("per_class", 60, "cnn: training images per class (10 classes).")
BO_INITIAL = flags.DEFINE_integer(
    "bayesian_initial_points", None,
    "num_initial_points of KerasTuner's Bayesian oracle (its default: 3 x the number of "
    "hyperparameters, random trials before the Gaussian process is used).")
ROWS = flags.DEFINE_string("rows", "experiments/results/keras_tuner_rows.jsonl",
                           "Append one JSON line per search here.")
MD = flags.DEFINE_string("md", "experiments/results/keras_tuner.md", "Write the tables here.")
REPORT_ONLY = flags.DEFINE_bool("report_only", False,
                                "Only write the tables from the rows already in --rows.")

NAMES = {"reinforce": "ReinforceOracle (small_budget)",
         "reinforce_paper": "ReinforceOracle (paper)",
         "evolution": "RegularizedEvolutionOracle", "random": "RandomSearchOracle (KerasTuner)",
         "bayesian": "BayesianOptimizationOracle (KerasTuner)"}


def make_oracle(name, objective, trials, seed, hyperparameters=None):
    import keras_tuner

    from nas_tf.keras_tuner import RegularizedEvolutionOracle, ReinforceOracle

    kw = dict(objective=objective, max_trials=trials, seed=seed,
              hyperparameters=hyperparameters)
    if name == "reinforce":
        return ReinforceOracle(preset="small_budget", **kw)
    if name == "reinforce_paper":
        return ReinforceOracle(preset="paper", **kw)
    if name == "evolution":
        return RegularizedEvolutionOracle(**kw)
    if name == "random":
        return keras_tuner.oracles.RandomSearchOracle(**kw)
    return keras_tuner.oracles.BayesianOptimizationOracle(
        num_initial_points=BO_INITIAL.value, **kw)


def nb201_search(name, seed, trials, table, directory):
    """One search on the table; returns the scores in trial order."""
    import keras_tuner

    from cnn_space.nb201 import EDGES, OPS, Nb201Spec

    hp = keras_tuner.HyperParameters()
    for to, frm in EDGES:
        hp.Choice(f"edge_{to}_{frm}", list(OPS))

    class TableTuner(keras_tuner.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            values = trial.hyperparameters.values
            ops = tuple(values[f"edge_{to}_{frm}"] for to, frm in EDGES)
            return {"accuracy": table[Nb201Spec(ops).to_arch_string()]}

    oracle = make_oracle(name, keras_tuner.Objective("accuracy", "max"), trials, seed, hp)
    tuner = TableTuner(oracle=oracle, directory=directory, project_name=f"{name}_{seed}",
                       overwrite=True)
    tuner.search(verbose=0)
    return [oracle.trials[t].score for t in oracle.start_order], oracle


def glyph_data(per_class, size=16, seed=0):
    import numpy as np

    from cnn_space.synthetic import GLYPHS, draw_glyph

    rng = np.random.default_rng(seed)

    def split(n):
        x = np.stack([draw_glyph(g, size, rng) for g in GLYPHS for _ in range(n)])
        y = np.repeat(np.arange(len(GLYPHS)), n)
        order = rng.permutation(len(y))
        return (x[order, :, :, None] / 255.0).astype("float32"), y[order].astype("int32")

    return split(per_class), split(max(per_class // 2, 10))


def build_cnn(hp):
    import keras

    inputs = keras.Input((16, 16, 1))
    x = inputs
    for i in range(hp.Int("conv_layers", 1, 2)):
        x = keras.layers.Conv2D(hp.Int("filters", 4, 16, step=4), hp.Choice("kernel", [3, 5]),
                                padding="same", activation="relu")(x)
        if hp.Boolean("pool"):
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    dense = hp.Choice("dense", [0, 32])
    if dense:
        x = keras.layers.Dense(dense, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(hp.Choice("lr", [1e-3, 3e-3, 1e-2])),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def cnn_search(name, seed, trials, data, directory, epochs):
    import keras
    import keras_tuner

    (x, y), (xv, yv) = data
    oracle = make_oracle(name, keras_tuner.Objective("val_accuracy", "max"), trials, seed)
    tuner = keras_tuner.Tuner(oracle=oracle, hypermodel=build_cnn, directory=directory,
                              project_name=f"{name}_{seed}", overwrite=True)
    keras.utils.set_random_seed(seed)  # the children's initialisation, as for every oracle
    tuner.search(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=32, verbose=0)
    return [oracle.trials[t].score for t in oracle.start_order], oracle


def best_within(scores, budget):
    done = [s for s in scores[:budget] if s is not None]
    return max(done) if done else float("nan")


def write_md(rows, part, budgets, argv, loads, optimum=None):
    import numpy as np

    now = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    said = (f"Tables made from the rows by ({now}; the runs' own commands are above):"
            if REPORT_ONLY.value else
            f"Command ({now}; load average at start {loads[0]}, at end {loads[1]}; "
            "2 shared CPU cores):")
    lines = [f"<!-- part:{part} -->", said, "", "    python " + " ".join(argv), ""]
    head = "| oracle | seeds | " + " | ".join(f"best @ {b} trials" for b in budgets)
    head += " | optimum found |" if optimum else " |"
    head += " distinct configurations | s / search |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name in ORACLES.value:
        mine = [r for r in rows if r["part"] == part and r["oracle"] == name]
        if not mine:
            continue
        cells = []
        for b in budgets:
            v = np.array([best_within(r["scores"], b) for r in mine])
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}")
        line = f"| {NAMES[name]} | {len(mine)} | " + " | ".join(cells) + " |"
        if optimum:
            hit = np.mean([best_within(r["scores"], budgets[-1]) >= optimum - 1e-9 for r in mine])
            line += f" {100 * hit:.0f} % |"
        distinct = [r["distinct"] for r in mine if "distinct" in r]
        line += f" {np.mean(distinct):.1f} |" if distinct else " - |"
        line += f" {np.mean([r['seconds'] for r in mine]):.1f} |"
        lines.append(line)
    lines.append(f"<!-- end:{part} -->")
    section = "\n".join(lines)
    text = open(MD.value).read() if os.path.exists(MD.value) else ""
    start, end = text.find(f"<!-- part:{part} -->"), text.find(f"<!-- end:{part} -->")
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(f"<!-- end:{part} -->"):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    with open(MD.value, "w") as f:
        f.write(text)
    return section


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    part, trials = PART.value, TRIALS.value
    budgets = sorted({min(int(b), trials) for b in BUDGETS.value} | {trials})
    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []
    if os.path.exists(ROWS.value):
        with open(ROWS.value) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    optimum, data = None, None
    if part == "nb201":
        from cnn_space.nb201 import load_table

        table = load_table(TABLE.value)
        optimum = max(table.values())
    elif not REPORT_ONLY.value:
        data = glyph_data(PER_CLASS.value)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ORACLES.value:
            for seed in range(1, SEEDS.value + 1):  # KerasTuner's oracles read seed 0 as "random"
                if REPORT_ONLY.value:
                    break
                key = dict(part=part, oracle=name, seed=seed, trials=trials)
                if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
                    continue
                t = time.perf_counter()
                if part == "nb201":
                    scores, oracle = nb201_search(name, seed, trials, table, tmp)
                else:
                    scores, oracle = cnn_search(name, seed, trials, data, tmp, EPOCHS.value)
                distinct = {json.dumps(oracle.trials[t].hyperparameters.values, sort_keys=True)
                            for t in oracle.start_order}
                row = {**key, "scores": scores, "seconds": time.perf_counter() - t,
                       "distinct": len(distinct), "counts": getattr(oracle, "counts", None),
                       "bayesian_initial_points": BO_INITIAL.value}
                rows.append(row)
                with open(ROWS.value, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{name} seed {seed}: best {max(s for s in scores if s is not None):.4f} "
                      f"in {len(scores)} trials, {row['seconds']:.1f} s", flush=True)
    load_end = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = [r for r in rows if r.get("trials") == trials]
    print(write_md(rows, part, budgets, sys.argv, (load_start, load_end), optimum))


if __name__ == "__main__":
    app.run(main)
