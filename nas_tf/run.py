r"""Runs (or resumes) a neural architecture search (Zoph & Le 2017, arXiv:1611.01578).

  python -m nas_tf.run --space=rnn
  python -m nas_tf.run --space=nb201 --nb201_table=../shared/data/nb201/cifar10.csv \
      --algorithm=reinforce --max_children=500 --run_dir=runs/nb201 --seed=0

The run lives in --run_dir (default runs/<space>); running the same command
again resumes it. Progress goes to stderr, the final results to stdout.
Afterwards: tensorboard --logdir RUN_DIR, python -m nas_tf.report
--run_dir=RUN_DIR, python -m nas_tf.export --run_dir=RUN_DIR --out=DIR.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import sys

from absl import app, flags

from nas_tf import cli


def _define_space_flags() -> tuple[dict[str, tuple[str, ...]], str | None]:
    """Defines the flags of every registered space (each in its plug-in's CLI
    module). Returns each space's flag names, and the error (one line) of a
    plug-in that could not be loaded, reported when the command runs."""
    from nas_tf import plugins
    from nas_tf.errors import NasTfError

    owned: dict[str, tuple[str, ...]] = {}
    # A plug-in whose package imports TensorFlow (rnn: its Keras layers register
    # on import) brings TensorFlow's C++ start-up lines: keep them out of the
    # output. The spine itself imports no TensorFlow until a search starts.
    with cli.quiet_startup():
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
    "algorithm", "reinforce", ["reinforce", "random", "evolution", "tpe"],
    "Search algorithm: the paper's REINFORCE controller, random search, aging evolution, or "
    "Optuna's TPE (needs pip install \"nas_tf[optuna]\"; one child per update by default)."
)
RUN_DIR = flags.DEFINE_string(
    "run_dir", None, "Run directory (created, or resumed). Default: runs/<space>.")
MAX_CHILDREN = flags.DEFINE_integer(
    "max_children", None, "Budget of unique children. Default: none when --max_search_s is "
    "given (the wall time binds); else 1000 with --sharing=enas; else by --space: nb201 500, "
    "rnn 10, cnn 10. Given with --max_search_s, the first budget reached stops the search.")
CHILDREN_PER_UPDATE = flags.DEFINE_integer(
    "children_per_update", None, "m, children per controller update (paper §3.3: 8). Default "
    "depends on --controller_preset: paper 8, small_budget 1."
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
LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Controller Adam learning rate. Default depends on "
    "--controller_preset: paper 6e-4, small_budget 0.01.")
BASELINE_DECAY = flags.DEFINE_float(
    "baseline_decay", None, "EMA decay of the baseline. Default: the --controller_preset's "
    "(small_budget 0.8).")
ENTROPY_WEIGHT = flags.DEFINE_float(
    "entropy_weight", None, "Entropy bonus weight. Default: the --controller_preset's "
    "(small_budget 0.2).")
MAX_GRAD_NORM = flags.DEFINE_float(
    "max_grad_norm", None, "Controller gradient-norm clip. Default: the --controller_preset's.")
NORMALIZE_ADVANTAGE = flags.DEFINE_bool(
    "normalize_advantage", None, "Divide the advantage R - b by a floored running std of the "
    "rewards and clip it (default: the preset's; off in the paper).")
REWARD_SCALE = flags.DEFINE_float(
    "reward_scale", None, "Rewards are multiplied by this before the controller update (1).")
TEMPERATURE = flags.DEFINE_float(
    "temperature", None, "Controller sampling temperature. Default: the --controller_preset's.")
TANH_CONSTANT = flags.DEFINE_float(
    "tanh_constant", None, "Controller tanh logit clipping. Default: the --controller_preset's.")
POPULATION_SIZE = flags.DEFINE_integer("population_size", 20, "Evolution: population P.")
TOURNAMENT_SIZE = flags.DEFINE_integer("tournament_size", 5, "Evolution: tournament S.")
CHECKPOINT_EVERY_S = flags.DEFINE_float(
    "checkpoint_every_s", None,
    "Seconds between controller checkpoints (0: after every update). Default: after every "
    "update unless saving would take over ~5 % of the time (fast scoring such as "
    "--sharing=enas: every few seconds). A resumed search replays from the last one without "
    "retraining stored children.")

# Flags shared by the spaces that train children; None means the space's default.
DATASET = flags.DEFINE_string(
    "dataset", None, "Dataset of the children. rnn: synthetic (default, built in), ptb, "
    "ptb_char, tfds:NAME (TFDS text, words), tfds_char:NAME (characters); cnn: imagefolder, "
    "cifar10, or any TFDS image dataset: mnist, fashion_mnist, cifar100, svhn_cropped, "
    "tfds:NAME (default: a demo on a slice of ../shared/data/cifar10); nb201: not used (see "
    "--nb201_table).")
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Directory of the dataset files (rnn ptb: ptb.{train,valid,test}.txt; "
    "cnn imagefolder: train/<class>/*.jpg).")
CHILD_EPOCHS = flags.DEFINE_integer(
    "child_epochs", None, "Epochs of child training. Default depends on --space: rnn 1, "
    "cnn 50 (demo: 1).")
CHILD_STEPS = flags.DEFINE_integer(
    "child_steps", None, "Cap on training steps per epoch. Default depends on --space: "
    "rnn 100, cnn none (one pass).")
CHILD_BATCH_SIZE = flags.DEFINE_integer(
    "child_batch_size", None, "Child batch size. Default depends on --space: rnn 20, cnn 128.")

# Weight sharing (nas_tf.sharing) and the wall-time budget.
SHARING = flags.DEFINE_enum(
    "sharing", "none", ["none", "enas"],
    "none: every child trains from scratch (the paper); enas: score architectures with one "
    "shared model (Pham et al. 2018; --space=rnn or cnn), thousands per hour on a CPU.")
SHARED_STEPS = flags.DEFINE_float(
    "shared_steps_per_child", None, "enas: shared-model training batches run on each scored "
    "architecture, after its score (default 1; a fraction such as 0.2, ENAS's ratio, trains "
    "one batch after every fifth).")
SHARED_SCORE = flags.DEFINE_integer(
    "shared_score_windows", None, "enas: validation batches of each reward (default 2).")
SHARED_TOP_K = flags.DEFINE_integer(
    "shared_top_k", None, "enas: best architectures scored again on the whole validation "
    "split at the end (default 10; RUN_DIR/shared/ranking.json).")
MAX_SEARCH_S = flags.DEFINE_float(
    "max_search_s", None, "Wall-time budget of the search in seconds (all resumed runs "
    "together); the children in flight then finish. Without --max_children it is the only "
    "budget. Default: none.")
WARMUP = flags.DEFINE_string(
    "warmup", None, "Zero-cost warm-up: a training-free proxy (naswot, synflow; what the "
    "space offers) scores --warmup_architectures architectures before the first child, and "
    "the algorithm starts from its picks (README 'Zero-cost warm-up'). Default: none.")
WARMUP_ARCHITECTURES = flags.DEFINE_integer(
    "warmup_architectures", None, "Architectures the --warmup proxy scores (e.g. 2000); "
    "they are not children and count in no child budget.")
WARMUP_TOP_K = flags.DEFINE_integer(
    "warmup_top_k", None, "random / tpe: the proxy's best trained first (default: m).")

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


def _search_config(max_children: int, preset_budget: int | None = None):
    from nas_tf import config as cfgmod
    from nas_tf.rundir import recorded_search
    from nas_tf.warmup import WarmupConfig

    # auto: a resumed search keeps the preset it started with, whatever its new budget.
    recorded = recorded_search(_run_dir())
    preset = cfgmod.resolve_preset(PRESET.value, preset_budget or max_children, recorded)
    ctrl, rein = cfgmod.preset_settings(preset, recorded)
    ctrl_over = {k: v for k, v in (("temperature", TEMPERATURE.value),
                                   ("tanh_constant", TANH_CONSTANT.value)) if v is not None}
    rein_over = {k: v for k, v in (("learning_rate", LEARNING_RATE.value),
                                   ("baseline_decay", BASELINE_DECAY.value),
                                   ("entropy_weight", ENTROPY_WEIGHT.value),
                                   ("max_grad_norm", MAX_GRAD_NORM.value),
                                   ("normalize_advantage", NORMALIZE_ADVANTAGE.value),
                                   ("reward_scale", REWARD_SCALE.value)) if v is not None}
    m = (CHILDREN_PER_UPDATE.value if CHILDREN_PER_UPDATE.value is not None
         else cfgmod.default_children_per_update(preset, ALGORITHM.value, recorded))
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
        max_search_s=MAX_SEARCH_S.value,
        warmup=WarmupConfig(WARMUP.value, WARMUP_ARCHITECTURES.value or 0, WARMUP_TOP_K.value),
    )


def _sharing_settings(plugin) -> dict:
    """``{"sharing": SharingConfig}`` for the plug-in, or {} without sharing."""
    from nas_tf.plugins import check_sharing
    from nas_tf.sharing import SharingConfig

    given = {k: v for k, v in (("steps_per_child", SHARED_STEPS.value),
                                ("score_windows", SHARED_SCORE.value),
                                ("top_k", SHARED_TOP_K.value)) if v is not None}
    sharing = SharingConfig(mode=SHARING.value, **given)
    check_sharing(plugin, sharing.mode)
    if not sharing.enabled:
        return {}
    if EXECUTOR.value != "inline":
        from nas_tf.errors import ConfigError

        raise ConfigError("--sharing keeps the shared model in the searching process: use "
                          f"--executor=inline. Received: executor={EXECUTOR.value}")
    return {"sharing": sharing}


def _check_float_flags() -> None:
    """Every float flag must be finite: absl parses "nan" and "inf" as floats."""
    from nas_tf.validation import check_finite

    for name in flags.FLAGS:
        flag = flags.FLAGS[name]
        if isinstance(flag.parser, flags.FloatParser) and flag.value is not None:
            check_finite(name, flag.value, flag=True)


def _check_spine_flags() -> None:
    """Refuses values absl accepts and the search cannot use, before anything is written."""
    from nas_tf.errors import ConfigError
    from nas_tf.validation import check_int, check_positive

    if RUN_DIR.value is not None and not RUN_DIR.value.strip():
        raise ConfigError("--run_dir is empty: pass a directory, or leave the flag out for "
                          f"runs/<space>. Received: run_dir={RUN_DIR.value!r}")
    check_int("max_retries", MAX_RETRIES.value, minimum=0, flag=True)
    check_positive("checkpoint_every_s", CHECKPOINT_EVERY_S.value, allow_zero=True, flag=True)


def _run_dir() -> str:
    """--run_dir, or runs/<space> (so that the same command again resumes)."""
    return RUN_DIR.value or os.path.join("runs", SPACE.value)


def _run() -> dict:
    from nas_tf import cli, plugins
    from nas_tf.console import ConsoleLogger
    from nas_tf.errors import ConfigError
    from nas_tf.loop import run_search

    _check_float_flags()
    _check_spine_flags()
    run_dir = _run_dir()
    if _PLUGIN_ERROR:
        raise ConfigError(_PLUGIN_ERROR)
    plugin = plugins.get(SPACE.value)
    from nas_tf.config import OPEN_CHILD_BUDGET, child_budget

    max_children, preset_budget = child_budget(
        MAX_CHILDREN.value, plugin.default_max_children, MAX_SEARCH_S.value,
        SHARING.value != "none")
    config = _search_config(max_children, preset_budget)  # validates budgets first
    from nas_tf.flag_checks import irrelevant_flags

    given = {name for name, fl in flags.FLAGS.__flags.items() if fl.present}
    for line in irrelevant_flags(given, plugin.name, EXECUTOR.value, ALGORITHM.value,
                                 SPACE_FLAGS, plugin.trains_children, SHARING.value):
        print(line, file=sys.stderr)
    if config.algorithm == "tpe":  # an optional extra: one clear error before anything is written
        from nas_tf.tpe import require_optuna

        require_optuna()
    sharing = _sharing_settings(plugin)
    settings = plugin.settings_from_flags(flags.FLAGS)
    space, evaluator = plugin.make(**settings, **sharing)
    proxy = plugin.make_proxy(config.warmup.proxy, **settings) if config.warmup.enabled else None
    plugin.check_data(space, evaluator)  # one clear error before a run dir is written
    console = ConsoleLogger(sys.stderr, total=0 if max_children == OPEN_CHILD_BUDGET
                            else max_children, max_search_s=MAX_SEARCH_S.value)
    from nas_tf.executors import make_executor

    executor = make_executor(
        EXECUTOR.value, num_workers=NUM_WORKERS.value, gpus_per_child=GPUS_PER_CHILD.value,
        cpus_per_child=CPUS_PER_CHILD.value, child_timeout=CHILD_TIMEOUT.value,
        max_retries=MAX_RETRIES.value, ray_address=RAY_ADDRESS.value)
    if not RUN_DIR.value:  # the default: say where the run lives
        console.message(f"run directory: {os.path.abspath(run_dir)} (the same command again "
                        "resumes it; --run_dir=DIR for another)")
    summary = run_search(space, evaluator, run_dir=run_dir, config=config, logger=console,
                         checkpoint_every_s=CHECKPOINT_EVERY_S.value, executor=executor,
                         max_in_flight=MAX_IN_FLIGHT.value, handle_signals=True, proxy=proxy)
    for line in _closing(run_dir, space, summary):
        cli.result(line)
    return summary


def _closing(run_dir: str, space, summary: dict) -> list[str]:
    """The final lines: best child in natural units, failures, pictures, next commands."""
    from nas_tf.findings import closing_lines
    from nas_tf.loop import read_trials

    trials = read_trials(run_dir)
    done = [t for t in trials if t.status == "done" and t.reward is not None]
    best = max(done, key=lambda t: t.reward) if done else None
    pictures = []
    try:
        from nas_tf.report import write_report

        report = write_report(run_dir)
        pictures = report.pictures
    except Exception as e:  # noqa: BLE001 - pictures must not hide the search's result
        from absl import logging

        logging.warning("No report pictures: %s", e)
    return closing_lines(summary, best, space, [t.error for t in trials if t.status == "failed"],
                         run_dir, pictures)


def _last_line() -> None:
    """Keeps the ``error:`` line last: TensorFlow's warnings logged while
    the process shuts down (e.g. of a checkpoint that failed to restore) are
    dropped."""
    import logging as py_logging

    from absl import logging

    logging.set_verbosity(logging.ERROR)
    py_logging.getLogger("tensorflow").setLevel(py_logging.ERROR)


def main(argv):
    from absl import logging

    from nas_tf import cli
    from nas_tf.errors import NasTfError

    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}; all options are --flags "
              "(see --helpfull).", file=sys.stderr)
        return 2
    cli.quiet_tensorflow()
    try:
        _run()
    except NasTfError as e:
        _last_line()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the machine's: a full disk, a read-only mount
        from nas_tf.rundir import describe_os_error, is_environment_error

        text = f"{type(e).__name__}: {e}"
        if not (isinstance(e, (OSError, sqlite3.Error)) or is_environment_error(text)
                or "No space left" in text or "Read-only file system" in text):
            raise
        print(f"error: {describe_os_error(e, _run_dir())}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted. Run the same command again to resume from {_run_dir()}.",
              file=sys.stderr)
        return 130
    return 0


def parse_flags(argv):
    """absl's parsing, with a bad flag as one ``error:`` line and exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {text}. See --helpfull for every flag.", file=sys.stderr)
        sys.exit(2)


def entry_point(argv=None):
    """``python -m nas_tf.run`` and the ``nas_tf`` console script."""
    from nas_tf import cli

    argv = list(sys.argv if argv is None else argv)
    which = cli.wants_help(argv)
    if which:
        sys.stdout.write(cli.help_text(__doc__, flags.FLAGS, full=which == "full"))
        sys.exit(0)
    app.run(main, argv=argv, flags_parser=parse_flags)


if __name__ == "__main__":
    entry_point()
