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

# ----------------------------------------------------------------------------
# Common flags (the spine).
# ----------------------------------------------------------------------------
SPACE = flags.DEFINE_enum("space", "rnn", ["nb201", "rnn", "cnn"], "Search space.")
ALGORITHM = flags.DEFINE_enum(
    "algorithm", "reinforce", ["reinforce", "random", "evolution", "tpe"],
    "Search algorithm: the paper's REINFORCE controller, random search, aging evolution, or "
    "Optuna's TPE (needs pip install \"nas_tf[optuna]\"; one child per update by default)."
)
RUN_DIR = flags.DEFINE_string(
    "run_dir", None, "Run directory (created, or resumed). Default: runs/<space>.")
MAX_CHILDREN = flags.DEFINE_integer(
    "max_children", None, "Budget of unique children. Default depends on --space: nb201 500, "
    "rnn 10, cnn 10.")
CHILDREN_PER_UPDATE = flags.DEFINE_integer(
    "children_per_update", None, "m, children per controller update (paper §3.3: 8). Default "
    "depends on --controller_preset: paper 8, small_budget 3."
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
    "checkpoint_every_s", 0.0,
    "Seconds between controller checkpoints (0: after every update). A resumed search replays "
    "from the last one without retraining stored children.")

# Flags shared by the trained spaces (rnn, cnn); None means the space's default.
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

# --- executor flags (owned by H5) ---
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

# ----------------------------------------------------------------------------
# nb201 flags.
# ----------------------------------------------------------------------------
NB201_TABLE = flags.DEFINE_string(
    "nb201_table", None, "CSV with columns arch,test_accuracy (NAS-Bench-201 table)."
)

# --- rnn flags begin (owned by cells/) ---
# --dataset for rnn: synthetic (default, no file), ptb, ptb_char, or a TFDS text corpus
# tfds:NAME (word level) / tfds_char:NAME (character level), see cells/tfds_text.py.
RNN_DOWNLOAD = flags.DEFINE_boolean(
    "rnn_download", False, "rnn, --dataset=tfds:NAME: download and prepare the TFDS corpus "
    "into --data_dir when it is not prepared (needs network).")
CELL_BASE = flags.DEFINE_integer("cell_base", None, "rnn: leaves of the cell tree, 2 or 8 "
                                 "(paper §4.2: 8). Default 8.")
CHILD_UNITS = flags.DEFINE_integer(
    "child_units", None, "rnn: hidden units of each child layer (default 32).")
CHILD_LAYERS = flags.DEFINE_integer("child_layers", None, "rnn: recurrent layers of a child (2).")
BPTT = flags.DEFINE_integer("bptt", None, "rnn: truncated-BPTT window (35).")
CHILD_OPTIMIZER = flags.DEFINE_enum("child_optimizer", None, ["adam", "sgd"],
                                    "rnn: child optimizer (default adam; the paper's: sgd).")
CHILD_LR = flags.DEFINE_float(
    "child_learning_rate", None, "rnn: child learning rate (default depends on --dataset: "
    "synthetic 2e-2, ptb/ptb_char 3e-3).")
CHILD_DROPOUT = flags.DEFINE_float("child_dropout", None, "rnn: child dropout (default 0).")
CHILD_GRAD_CLIP = flags.DEFINE_float("child_grad_clip", None, "rnn: child gradient-norm clip (5).")
TIE_EMBEDDINGS = flags.DEFINE_bool(
    "tie_embeddings", None, "rnn: tie embedding and softmax (default false).")
REWARD_C = flags.DEFINE_float(
    "reward_c", None, "rnn: c of the reward c / ppl^2 (default and paper: 80).")
TRAIN_TOKENS = flags.DEFINE_integer(
    "train_tokens", None, "rnn: train on the first N tokens (default: all).")
VALID_TOKENS = flags.DEFINE_integer(
    "valid_tokens", None, "rnn: validate on the first N tokens (default: all).")
# --- rnn flags end ---

# --- cnn flags begin (owned by cnn_space/) ---
# --dataset for --space=cnn: cifar10 (TFDS), imagefolder (class-per-folder), or any TFDS
# image-classification dataset by name: mnist, cifar100, ..., tfds:NAME (cnn_space/
# tfds_images.py). Without --dataset, a quick demo on a slice of the CIFAR-10 image folders
# of ../shared/data.
CNN_PRESET = flags.DEFINE_enum(
    "cnn_preset", "v1", ["v1", "v2", "v3"],
    "CNN space (paper §4.1): v1 15 layers; v2 20 layers predicting strides; v3 39 layers "
    "with max pooling.")
CNN_NUM_LAYERS = flags.DEFINE_integer(
    "cnn_num_layers", None, "Layers of the CNN children (default: the preset's; demo: 3).")
CNN_WIDTH = flags.DEFINE_float(
    "cnn_width_multiplier", None, "Multiplies the filter choices {24,36,48,64} (demo: 0.5).")
CNN_CURRICULUM = flags.DEFINE_boolean(
    "cnn_curriculum", False, "Grow the depth during the search (paper §4.1: from 6, +2 layers "
    "every 1,600 samples; see --cnn_curriculum_every).")
CNN_CURRICULUM_EVERY = flags.DEFINE_integer(
    "cnn_curriculum_every", 1600, "Samples (or children) per curriculum stage.")
CNN_CURRICULUM_COUNT = flags.DEFINE_enum(
    "cnn_curriculum_count", "samples", ["samples", "children"],
    "What --cnn_curriculum_every counts: samples (every proposed architecture, duplicates and "
    "failures included; the paper's §4.1) or unique finished children.")
CNN_TRAIN_SUBSET = flags.DEFINE_integer(
    "cnn_train_subset", None, "Use the first N training images (deterministic shuffle; "
    "10% of them validate). Default: all; demo: 1000.")
CNN_IMAGE_SIZE = flags.DEFINE_integer(
    "cnn_image_size", None, "Resize images to this square size on load (demo: 16).")
CNN_DOWNLOAD = flags.DEFINE_boolean(
    "cnn_download", False, "--dataset=cifar10 or a TFDS name (mnist, tfds:NAME): download "
    "and prepare it into --data_dir when it is not prepared (needs network).")
CNN_AUGMENT = flags.DEFINE_enum(
    "cnn_augment", "auto", ["auto", "none", "crop", "crop_flip"],
    "Child training augmentation: crop_flip (pad-4 random crop + horizontal flip, paper "
    "§4.1), crop (no flip), none. auto: crop_flip for --dataset=cifar10 and the CIFAR-10 "
    "demo, crop for --dataset=imagefolder (no flips: wrong for digits, text, arrows).")
CNN_BN_RECAL = flags.DEFINE_enum(
    "cnn_bn_recalibration", "auto", ["auto", "on", "off"],
    "Recompute the children's batch-norm statistics on training images before each "
    "validation pass. auto: when a child trains < 2,000 steps (short children's moving "
    "averages are stale; see experiments/results/cnn_reward.md).")
CNN_LR = flags.DEFINE_float(
    "cnn_learning_rate", None, "cnn: child SGD learning rate (default and paper: 0.1).")
CNN_LR_SCHEDULE = flags.DEFINE_enum(
    "cnn_lr_schedule", "cosine", ["cosine", "step", "constant"], "Child learning-rate decay.")
CNN_WEIGHT_DECAY = flags.DEFINE_float(
    "cnn_weight_decay", None, "cnn: child L2 weight decay (default and paper: 1e-4).")
CNN_REWARD_LAST_K = flags.DEFINE_integer(
    "cnn_reward_last_k", 5, "Reward: max validation accuracy of the last k epochs (paper: 5)...")
CNN_REWARD_POWER = flags.DEFINE_float(
    "cnn_reward_power", 3.0, "... raised to this power (paper: 3, cubed).")
CNN_JIT = flags.DEFINE_boolean(
    "cnn_jit_compile", False, "XLA-compile child training (see experiments/results/"
    "cnn_throughput.md; off under a multi-device strategy).")
# --- cnn flags end ---


def _rnn_parts():
    """(space, evaluator) for --space=rnn."""
    # --- rnn parts begin (owned by cells/) ---
    from cells.search import RnnSearchConfig, make_evaluator, make_space

    given = {
        "dataset": DATASET.value, "data_dir": DATA_DIR.value, "cell_base": CELL_BASE.value,
        "units": CHILD_UNITS.value, "num_layers": CHILD_LAYERS.value, "bptt": BPTT.value,
        "batch_size": CHILD_BATCH_SIZE.value, "epochs": CHILD_EPOCHS.value,
        "steps_per_epoch": CHILD_STEPS.value, "optimizer": CHILD_OPTIMIZER.value,
        "learning_rate": CHILD_LR.value, "dropout": CHILD_DROPOUT.value,
        "max_grad_norm": CHILD_GRAD_CLIP.value, "tie_embeddings": TIE_EMBEDDINGS.value,
        "reward_c": REWARD_C.value, "train_tokens": TRAIN_TOKENS.value,
        "valid_tokens": VALID_TOKENS.value,
    }
    from cells.tfds_text import parse_dataset

    tfds_corpus = parse_dataset(DATASET.value) is not None
    if tfds_corpus:  # a TFDS corpus is downloaded only when asked (PTB keeps its own rule)
        given["download"] = RNN_DOWNLOAD.value
    cfg = RnnSearchConfig(**{k: v for k, v in given.items() if v is not None})
    evaluator = make_evaluator(cfg)
    if cfg.dataset != "synthetic":
        evaluator.data()  # load and check the data now, before a run dir is written
    return make_space(cfg), evaluator
    # --- rnn parts end ---


def _cnn_parts():
    """(space, evaluator) for --space=cnn."""
    # --- cnn parts begin (owned by cnn_space/) ---
    from pathlib import Path

    from absl import logging as absl_logging

    from cnn_space.train import CnnSearchConfig, make_evaluator, make_space
    from nas_tf.errors import DataError

    demo = DATASET.value is None
    dataset, data_dir = DATASET.value or "imagefolder", DATA_DIR.value
    # The demo (no --dataset): a small, quick search on the CIFAR-10 image folders
    # of ../shared/data; every value can still be set by its flag.
    d = ({"num_layers": 3, "width": 0.5, "subset": 1000, "epochs": 1, "image_size": 16,
          "augment": "crop_flip"} if demo else {})
    if demo and not data_dir:
        shared = os.environ.get("NAS_TF_SHARED_DATA")
        candidates = ([Path(shared) / "cifar10"] if shared else []) + [
            Path("..", "shared", "data", "cifar10"),
            Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10",
        ]
        found = [p for p in candidates if (p / "train").is_dir()]
        if not found:
            raise DataError(
                "--space=cnn without --dataset runs a demo on the CIFAR-10 image folders in "
                "../shared/data/cifar10 (or $NAS_TF_SHARED_DATA/cifar10), which are not there. "
                "Pass --dataset=imagefolder --data_dir=DIR (DIR/train/<class>/*.jpg) or "
                "--dataset=cifar10 --data_dir=TFDS_DIR [--cnn_download]. "
                f"Received: looked in {', '.join(str(p) for p in candidates)}")
        data_dir = str(found[0])
    if demo:
        absl_logging.warning(
            "No --dataset: demo search on %s (imagefolder, %s training images resized to "
            "%spx, %s-layer children, width x%s, %s epoch(s) each). Set --dataset for a real "
            "search.", data_dir, CNN_TRAIN_SUBSET.value or d["subset"],
            CNN_IMAGE_SIZE.value or d["image_size"], CNN_NUM_LAYERS.value or d["num_layers"],
            CNN_WIDTH.value or d["width"], CHILD_EPOCHS.value or d["epochs"])

    def pick(flag_value, key, default):
        if flag_value is not None:
            return flag_value
        return d.get(key, default)

    defaults = CnnSearchConfig()
    cfg = CnnSearchConfig(
        dataset=dataset,
        data_dir=data_dir,
        download=CNN_DOWNLOAD.value,
        train_subset=pick(CNN_TRAIN_SUBSET.value, "subset", None),
        image_size=pick(CNN_IMAGE_SIZE.value, "image_size", None),
        preset=CNN_PRESET.value,
        num_layers=pick(CNN_NUM_LAYERS.value, "num_layers", None),
        width_multiplier=pick(CNN_WIDTH.value, "width", defaults.width_multiplier),
        curriculum=CNN_CURRICULUM.value,
        curriculum_every=CNN_CURRICULUM_EVERY.value,
        curriculum_count=CNN_CURRICULUM_COUNT.value,
        epochs=pick(CHILD_EPOCHS.value, "epochs", defaults.epochs),
        steps_per_epoch=CHILD_STEPS.value,
        batch_size=pick(CHILD_BATCH_SIZE.value, "batch", defaults.batch_size),
        learning_rate=pick(CNN_LR.value, "lr", defaults.learning_rate),
        lr_schedule=CNN_LR_SCHEDULE.value,
        weight_decay=pick(CNN_WEIGHT_DECAY.value, "wd", defaults.weight_decay),
        reward_last_k=CNN_REWARD_LAST_K.value,
        reward_power=CNN_REWARD_POWER.value,
        jit_compile=CNN_JIT.value,
        augment=(CNN_AUGMENT.value if CNN_AUGMENT.value != "auto"
                 else d.get("augment", "auto")),
        bn_recalibration=CNN_BN_RECAL.value,
    )
    space, evaluator = make_space(cfg), make_evaluator(cfg)
    evaluator.data()  # load and check the data now: one clear error before a run dir is written
    return space, evaluator
    # --- cnn parts end ---


# Default budget of each space when --max_children is not given: nb201 is a
# table look-up; rnn and cnn default to a short demonstration search (the
# paper trains 12,800 CIFAR-10 children, §4.1).
_DEFAULT_MAX_CHILDREN = {"nb201": 500, "rnn": 10, "cnn": 10}


def _nb201_parts():
    from nas_tf.nb201 import Nb201Space, Nb201TableEvaluator, check_table_covers

    evaluator = Nb201TableEvaluator(NB201_TABLE.value)
    # Validate now (rows, duplicates, every cell of the space): one clear error
    # before anything is written.
    check_table_covers(evaluator.table, NB201_TABLE.value)
    return Nb201Space(), evaluator


def _stored_preset(run_dir: str | None) -> str | None:
    """The controller preset an existing run directory was started with, if any."""
    from nas_tf import config as cfgmod
    from nas_tf.rundir import STORE_FILE, is_run_dir
    from nas_tf.store import TrialStore

    if not run_dir or not is_run_dir(run_dir):
        return None
    try:
        with TrialStore(os.path.join(run_dir, STORE_FILE), readonly=True) as store:
            search = store.get_meta("search") or {}
    except Exception:  # noqa: BLE001 - a broken run dir is reported later, by the loop
        return None
    for name in ("small_budget", "paper"):
        ms = {cfgmod.children_per_update_preset(name)}
        if search.get("algorithm") == "tpe":
            ms.add(1)  # TPE's default m (see _search_config)
        if search.get("reinforce") == dataclasses.asdict(cfgmod.reinforce_preset(name)) and \
                search.get("children_per_update") in ms:
            return name
    return None


def _search_config(max_children: int):
    from nas_tf import config as cfgmod

    preset = PRESET.value
    if preset == "auto":
        # A resumed search keeps the preset it started with, whatever its new budget.
        preset = _stored_preset(_run_dir()) or (
            "small_budget" if max_children <= 2000 else "paper")
    ctrl = cfgmod.controller_preset(preset)
    rein = cfgmod.reinforce_preset(preset)
    ctrl_over = {k: v for k, v in (("temperature", TEMPERATURE.value),
                                   ("tanh_constant", TANH_CONSTANT.value)) if v is not None}
    rein_over = {k: v for k, v in (("learning_rate", LEARNING_RATE.value),
                                   ("baseline_decay", BASELINE_DECAY.value),
                                   ("entropy_weight", ENTROPY_WEIGHT.value),
                                   ("max_grad_norm", MAX_GRAD_NORM.value),
                                   ("normalize_advantage", NORMALIZE_ADVANTAGE.value),
                                   ("reward_scale", REWARD_SCALE.value)) if v is not None}
    m = (CHILDREN_PER_UPDATE.value if CHILDREN_PER_UPDATE.value is not None
         else 1 if ALGORITHM.value == "tpe"  # TPE refits at every reward (nas_tf/tpe.py)
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


def _check_float_flags() -> None:
    """Every float flag must be finite: absl parses "nan" and "inf" as floats."""
    import math

    from nas_tf.errors import ConfigError

    for name in flags.FLAGS:
        flag = flags.FLAGS[name]
        if isinstance(flag.parser, flags.FloatParser) and flag.value is not None \
                and not math.isfinite(flag.value):
            raise ConfigError(f"--{name} must be a finite number (not NaN or infinity). "
                              f"Received: {name}={flag.value}")


def _run_dir() -> str:
    """--run_dir, or runs/<space> (so that the same command again resumes)."""
    return RUN_DIR.value or os.path.join("runs", SPACE.value)


def _run() -> dict:
    from nas_tf import cli
    from nas_tf.logger import ConsoleLogger
    from nas_tf.loop import run_search

    _check_float_flags()
    run_dir = _run_dir()
    max_children = MAX_CHILDREN.value
    if max_children is None:
        max_children = _DEFAULT_MAX_CHILDREN[SPACE.value]
    config = _search_config(max_children)  # validates budgets first
    from nas_tf.flag_checks import irrelevant_flags

    given = {name for name, fl in flags.FLAGS.__flags.items() if fl.present}
    for line in irrelevant_flags(given, SPACE.value, EXECUTOR.value, ALGORITHM.value):
        print(line, file=sys.stderr)
    if config.algorithm == "tpe":  # an optional extra: one clear error before anything is written
        from nas_tf.tpe import require_optuna

        require_optuna()
    parts = {"nb201": _nb201_parts, "rnn": _rnn_parts, "cnn": _cnn_parts}[SPACE.value]
    space, evaluator = parts()
    console = ConsoleLogger(sys.stderr, total=max_children)
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
                         max_in_flight=MAX_IN_FLIGHT.value, handle_signals=True)
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
