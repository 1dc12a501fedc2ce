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

# Registering the spaces' flags imports their packages (and so TensorFlow):
# quiet its C++ start-up lines first, unless the user chose a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _define_space_flags() -> tuple[dict[str, tuple[str, ...]], str | None]:
    """Defines the flags of every registered space (each in its plug-in's CLI
    module). Returns each space's flag names, and the error (one line) of a
    plug-in that could not be loaded, reported when the command runs."""
    from nas_tf import plugins
    from nas_tf.errors import NasTfError

    owned: dict[str, tuple[str, ...]] = {}
    try:
        for name in plugins.names():
            before = set(flags.FLAGS)
            plugins.get(name).define_flags()
            owned[name] = tuple(sorted(set(flags.FLAGS) - before))
    except NasTfError as e:
        return owned, str(e)
    return owned, None


# ----------------------------------------------------------------------------
# Common flags (the spine).
# ----------------------------------------------------------------------------
SPACE = flags.DEFINE_string(
    "space", "rnn", "Search space: one of the registered spaces (nb201, rnn, cnn and any "
    "installed plug-in; see README 'Add your own search space').")
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
    "patience_rounds", 200, "Stop after this many updates in a row gave no new child."
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

# Flags shared by the trained spaces; None means the space's default.
DATASET = flags.DEFINE_string("dataset", None, "Dataset of the children (space-specific).")
DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory of the dataset files.")
CHILD_EPOCHS = flags.DEFINE_integer("child_epochs", None, "Epochs of child training.")
CHILD_STEPS = flags.DEFINE_integer("child_steps", None, "Cap on training steps per epoch.")
CHILD_BATCH_SIZE = flags.DEFINE_integer("child_batch_size", None, "Child batch size.")

# Executors.
EXECUTOR = flags.DEFINE_enum(
    "executor", "inline", ["inline", "local", "ray"],
    "Where children train: in this process, a pool of local worker processes, or Ray tasks.")
NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", None, "local/ray: children training at once (default: one per GPU set, "
    "or one per --cpus_per_child CPUs).")
MAX_IN_FLIGHT = flags.DEFINE_integer(
    "max_in_flight", None, "W, proposals outstanding at once (default: max(m, workers)); the "
    "controller is updated each time m rewards arrived.")
CHILD_TIMEOUT = flags.DEFINE_float(
    "child_timeout", None, "Seconds after which a child is stopped and recorded as failed.")
MAX_RETRIES = flags.DEFINE_integer(
    "max_retries", 2, "Times a child whose worker process died is trained again.")
GPUS_PER_CHILD = flags.DEFINE_float(
    "gpus_per_child", None, "local/ray: GPUs of each child (default 1 when there are GPUs).")
CPUS_PER_CHILD = flags.DEFINE_float(
    "cpus_per_child", None, "local/ray: CPU threads (Ray: CPUs) of each child (default 1).")
RAY_ADDRESS = flags.DEFINE_string(
    "ray_address", None, "ray: cluster to join ('auto', 'ray://host:10001'); none starts a "
    "local Ray instance.")

# Each space defines its own flags (in its plug-in's CLI module).
SPACE_FLAGS, _PLUGIN_ERROR = _define_space_flags()



def _stored_preset(run_dir: str | None) -> str | None:
    """The controller preset an existing run directory was started with, if any."""
    from nas_tf import config as cfgmod
    from nas_tf.loop import STORE_FILE, is_run_dir
    from nas_tf.store import TrialStore

    if not run_dir or not is_run_dir(run_dir):
        return None
    try:
        with TrialStore(os.path.join(run_dir, STORE_FILE), readonly=True) as store:
            search = store.get_meta("search") or {}
    except Exception:  # noqa: BLE001 - a broken run dir is reported later, by the loop
        return None
    for name in ("small_budget", "paper"):
        if search.get("reinforce") == dataclasses.asdict(cfgmod.reinforce_preset(name)) and \
                search.get("children_per_update") == cfgmod.children_per_update_preset(name):
            return name
    return None


def _search_config(max_children: int):
    from nas_tf import config as cfgmod

    preset = PRESET.value
    if preset == "auto":
        # A resumed search keeps the preset it started with, whatever its new budget.
        preset = _stored_preset(RUN_DIR.value) or (
            "small_budget" if max_children <= 2000 else "paper")
    ctrl = cfgmod.controller_preset(preset)
    rein = cfgmod.reinforce_preset(preset)
    ctrl_over = {k: v for k, v in (("temperature", TEMPERATURE.value),
                                   ("tanh_constant", TANH_CONSTANT.value)) if v is not None}
    rein_over = {k: v for k, v in (("learning_rate", LEARNING_RATE.value),
                                   ("baseline_decay", BASELINE_DECAY.value),
                                   ("entropy_weight", ENTROPY_WEIGHT.value),
                                   ("max_grad_norm", MAX_GRAD_NORM.value)) if v is not None}
    m = (CHILDREN_PER_UPDATE.value if CHILDREN_PER_UPDATE.value is not None
         else cfgmod.children_per_update_preset(preset))
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
    from absl import logging

    from nas_tf import plugins
    from nas_tf.errors import ConfigError
    from nas_tf.logger import ConsoleLogger
    from nas_tf.loop import run_search

    if not RUN_DIR.value:
        raise ConfigError("--run_dir is required (a new directory, or a run to resume). "
                          "Received: run_dir=None")
    if _PLUGIN_ERROR:
        raise ConfigError(_PLUGIN_ERROR)
    plugin = plugins.get(SPACE.value)
    max_children = MAX_CHILDREN.value
    if max_children is None:
        max_children = plugin.default_max_children
    config = _search_config(max_children)  # validates budgets first
    others = sorted(f for other, names in SPACE_FLAGS.items() if other != plugin.name
                    for f in names if flags.FLAGS[f].present)
    if others:
        logging.warning("--%s do(es) nothing for --space=%s (flag(s) of another space).",
                        ", --".join(others), plugin.name)
    space, evaluator = plugin.make(**plugin.settings_from_flags(flags.FLAGS))
    plugin.check_data(space, evaluator)  # one clear error before a run dir is written
    console = ConsoleLogger(sys.stderr)
    from nas_tf.executors import make_executor

    executor = make_executor(
        EXECUTOR.value, num_workers=NUM_WORKERS.value, gpus_per_child=GPUS_PER_CHILD.value,
        cpus_per_child=CPUS_PER_CHILD.value, child_timeout=CHILD_TIMEOUT.value,
        max_retries=MAX_RETRIES.value, ray_address=RAY_ADDRESS.value)
    summary = run_search(space, evaluator, run_dir=RUN_DIR.value, config=config, logger=console,
                         checkpoint_every_s=CHECKPOINT_EVERY_S.value, executor=executor,
                         max_in_flight=MAX_IN_FLIGHT.value, handle_signals=True)
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
