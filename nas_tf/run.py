r"""Command line: run (or resume) a search.

  python -m nas_tf.run --space=nb201 --nb201_table=../shared/data/nb201/cifar10.csv \
      --algorithm=reinforce --max_children=500 --run_dir=runs/x --seed=0

Running the same command on an existing run directory resumes the search.
This is the only module that reads flags; it turns them into the typed
config dataclasses of :mod:`nas_tf.config` and of each space.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app, flags

# ----------------------------------------------------------------------------
# Common flags (the spine).
# ----------------------------------------------------------------------------
SPACE = flags.DEFINE_enum("space", "rnn", ["nb201", "rnn", "cnn"], "Search space.")
ALGORITHM = flags.DEFINE_enum(
    "algorithm", "reinforce", ["reinforce", "random", "evolution"], "Search algorithm."
)
RUN_DIR = flags.DEFINE_string("run_dir", None, "Run directory (created, or resumed).")
MAX_CHILDREN = flags.DEFINE_integer("max_children", None, "Budget of unique children.")
CHILDREN_PER_UPDATE = flags.DEFINE_integer(
    "children_per_update", None, "m, children per controller update (paper §3.3: 8)."
)
MAX_PROPOSALS = flags.DEFINE_integer(
    "max_proposals", None, "Bound on proposals incl. duplicates (default 20x max_children)."
)
PATIENCE_ROUNDS = flags.DEFINE_integer(
    "patience_rounds", 50, "Stop after this many updates in a row gave no new child."
)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the search.")
PRESET = flags.DEFINE_enum(
    "controller_preset",
    "auto",
    ["auto", "paper", "small_budget"],
    "REINFORCE settings: 'paper' (lr 6e-4, §4.1), 'small_budget' (tuned on NAS-Bench-201 "
    "for budgets of a few hundred children), 'auto' (small_budget when max_children <= 2000).",
)
LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Controller Adam learning rate.")
BASELINE_DECAY = flags.DEFINE_float("baseline_decay", None, "EMA decay of the baseline.")
ENTROPY_WEIGHT = flags.DEFINE_float("entropy_weight", None, "Entropy bonus weight.")
MAX_GRAD_NORM = flags.DEFINE_float("max_grad_norm", None, "Controller gradient-norm clip.")
TEMPERATURE = flags.DEFINE_float("temperature", None, "Controller sampling temperature.")
TANH_CONSTANT = flags.DEFINE_float("tanh_constant", None, "Controller tanh logit clipping.")
POPULATION_SIZE = flags.DEFINE_integer("population_size", 20, "Evolution: population P.")
TOURNAMENT_SIZE = flags.DEFINE_integer("tournament_size", 5, "Evolution: tournament S.")
CHECKPOINT_EVERY_S = flags.DEFINE_float(
    "checkpoint_every_s", 0.0,
    "Seconds between controller checkpoints (0: after every update). A resumed search replays "
    "from the last one without retraining stored children.")

# Flags shared by the trained spaces (rnn, cnn); None means the space's default.
DATASET = flags.DEFINE_string("dataset", None, "Dataset of the children (space-specific).")
DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory of the dataset files.")
CHILD_EPOCHS = flags.DEFINE_integer("child_epochs", None, "Epochs of child training.")
CHILD_STEPS = flags.DEFINE_integer("child_steps", None, "Cap on training steps per epoch.")
CHILD_BATCH_SIZE = flags.DEFINE_integer("child_batch_size", None, "Child batch size.")

# --- executor flags (owned by H5) ---

# ----------------------------------------------------------------------------
# nb201 flags.
# ----------------------------------------------------------------------------
NB201_TABLE = flags.DEFINE_string(
    "nb201_table", None, "CSV with columns arch,test_accuracy (NAS-Bench-201 table)."
)

# --- rnn flags begin (owned by cells/) ---
# --- rnn flags end ---

# --- cnn flags begin (owned by cnn_space/) ---
# --- cnn flags end ---


def _rnn_parts():
    """(space, evaluator) for --space=rnn."""
    # --- rnn parts begin (owned by cells/) ---
    raise NotImplementedError("--space=rnn is not available yet")
    # --- rnn parts end ---


def _cnn_parts():
    """(space, evaluator) for --space=cnn."""
    # --- cnn parts begin (owned by cnn_space/) ---
    raise NotImplementedError("--space=cnn is not available yet")
    # --- cnn parts end ---


# Default budget of each space when --max_children is not given: nb201 is a
# table look-up; rnn and cnn default to a short demonstration search (the
# paper trains 12,800 CIFAR-10 children, §4.1).
_DEFAULT_MAX_CHILDREN = {"nb201": 500, "rnn": 10, "cnn": 10}


def _nb201_parts():
    from nas_tf.nb201 import Nb201Space, Nb201TableEvaluator, load_table

    evaluator = Nb201TableEvaluator(NB201_TABLE.value)
    load_table(NB201_TABLE.value)  # validate now: one clear error before anything is written
    return Nb201Space(), evaluator


def _search_config(max_children: int):
    from nas_tf import config as cfgmod

    preset = PRESET.value
    if preset == "auto":
        preset = "small_budget" if max_children <= 2000 else "paper"
    ctrl = cfgmod.controller_preset(preset)
    rein = cfgmod.reinforce_preset(preset)
    ctrl_over = {k: v for k, v in (("temperature", TEMPERATURE.value),
                                   ("tanh_constant", TANH_CONSTANT.value)) if v is not None}
    rein_over = {k: v for k, v in (("learning_rate", LEARNING_RATE.value),
                                   ("baseline_decay", BASELINE_DECAY.value),
                                   ("entropy_weight", ENTROPY_WEIGHT.value),
                                   ("max_grad_norm", MAX_GRAD_NORM.value)) if v is not None}
    m = CHILDREN_PER_UPDATE.value or cfgmod.children_per_update_preset(preset)
    return cfgmod.SearchConfig(
        algorithm=ALGORITHM.value,
        max_children=max_children,
        children_per_update=m,
        seed=SEED.value,
        max_proposals=MAX_PROPOSALS.value,
        patience_rounds=PATIENCE_ROUNDS.value,
        controller=dataclasses.replace(ctrl, **ctrl_over),
        reinforce=dataclasses.replace(rein, **rein_over),
        evolution=cfgmod.EvolutionConfig(POPULATION_SIZE.value, TOURNAMENT_SIZE.value),
    )


def _run() -> dict:
    from nas_tf.errors import ConfigError
    from nas_tf.logger import ConsoleLogger
    from nas_tf.loop import run_search

    if not RUN_DIR.value:
        raise ConfigError("--run_dir is required (a new directory, or a run to resume). "
                          "Received: run_dir=None")
    max_children = MAX_CHILDREN.value
    if max_children is None:
        max_children = _DEFAULT_MAX_CHILDREN[SPACE.value]
    config = _search_config(max_children)  # validates budgets first
    parts = {"nb201": _nb201_parts, "rnn": _rnn_parts, "cnn": _cnn_parts}[SPACE.value]
    space, evaluator = parts()
    console = ConsoleLogger(sys.stderr)
    summary = run_search(space, evaluator, run_dir=RUN_DIR.value, config=config, logger=console,
                         checkpoint_every_s=CHECKPOINT_EVERY_S.value)
    console.message(
        f"{summary['status']}: {summary['stop_reason']}\n"
        f"children trained: {summary['children_trained']} "
        f"(failed: {summary['children_failed']}), best reward: {summary['best_reward']}\n"
        f"best spec: {json.dumps(summary['best_spec'])}\n"
        f"summary: {os.path.join(RUN_DIR.value, 'summary.json')}  "
        f"TensorBoard: tensorboard --logdir {RUN_DIR.value}")
    return summary


def main(argv):
    from absl import logging

    from nas_tf.errors import NasTfError

    logging.set_verbosity(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}; all options are --flags "
              "(see --helpfull).", file=sys.stderr)
        return 2
    try:
        _run()
    except NasTfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted. Run the same command again to resume from {RUN_DIR.value}.",
              file=sys.stderr)
        return 130
    return 0


def entry_point():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
