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

# Flags shared by the trained spaces (rnn, cnn); None means the space's default.
DATASET = flags.DEFINE_string(
    "dataset", None, "Dataset of the children. rnn: synthetic (default), ptb, ptb_char, "
    "tfds:NAME (TFDS text, words), tfds_char:NAME (characters). cnn: cifar10, imagefolder, "
    "or any TFDS image dataset: mnist, fashion_mnist, cifar100, svhn_cropped, tfds:NAME.")
DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory of the dataset files.")
CHILD_EPOCHS = flags.DEFINE_integer("child_epochs", None, "Epochs of child training.")
CHILD_STEPS = flags.DEFINE_integer("child_steps", None, "Cap on training steps per epoch.")
CHILD_BATCH_SIZE = flags.DEFINE_integer("child_batch_size", None, "Child batch size.")

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
CHILD_UNITS = flags.DEFINE_integer("child_units", None, "rnn: hidden units of each child layer.")
CHILD_LAYERS = flags.DEFINE_integer("child_layers", None, "rnn: recurrent layers of a child (2).")
BPTT = flags.DEFINE_integer("bptt", None, "rnn: truncated-BPTT window (35).")
CHILD_OPTIMIZER = flags.DEFINE_enum("child_optimizer", None, ["adam", "sgd"],
                                    "rnn: child optimizer (default adam; the paper's: sgd).")
CHILD_LR = flags.DEFINE_float("child_learning_rate", None, "rnn: child learning rate.")
CHILD_DROPOUT = flags.DEFINE_float("child_dropout", None, "rnn: child dropout.")
CHILD_GRAD_CLIP = flags.DEFINE_float("child_grad_clip", None, "rnn: child gradient-norm clip (5).")
TIE_EMBEDDINGS = flags.DEFINE_bool("tie_embeddings", None, "rnn: tie embedding and softmax.")
REWARD_C = flags.DEFINE_float("reward_c", None, "rnn: c of the reward c / ppl^2 (paper: 80).")
TRAIN_TOKENS = flags.DEFINE_integer("train_tokens", None, "rnn: train on the first N tokens.")
VALID_TOKENS = flags.DEFINE_integer("valid_tokens", None, "rnn: validate on the first N tokens.")
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
    "every 1,600 children; see --cnn_curriculum_every).")
CNN_CURRICULUM_EVERY = flags.DEFINE_integer(
    "cnn_curriculum_every", 1600, "Children per curriculum stage.")
CNN_TRAIN_SUBSET = flags.DEFINE_integer(
    "cnn_train_subset", None, "Use the first N training images (deterministic shuffle; "
    "10% of them validate). Default: all; demo: 1000.")
CNN_IMAGE_SIZE = flags.DEFINE_integer(
    "cnn_image_size", None, "Resize images to this square size on load (demo: 16).")
CNN_DOWNLOAD = flags.DEFINE_boolean(
    "cnn_download", False, "--dataset=cifar10 or a TFDS name (mnist, tfds:NAME): download "
    "and prepare it into --data_dir when it is not prepared (needs network).")
CNN_LR = flags.DEFINE_float("cnn_learning_rate", None, "Child SGD learning rate (paper: 0.1).")
CNN_LR_SCHEDULE = flags.DEFINE_enum(
    "cnn_lr_schedule", "cosine", ["cosine", "step", "constant"], "Child learning-rate decay.")
CNN_WEIGHT_DECAY = flags.DEFINE_float(
    "cnn_weight_decay", None, "Child L2 weight decay (paper: 1e-4).")
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
    if tfds_corpus:
        evaluator.data()  # load and check it now: one clear error before a run dir is written
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
    d = ({"num_layers": 3, "width": 0.5, "subset": 1000, "epochs": 1, "image_size": 16}
         if demo else {})
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
        epochs=pick(CHILD_EPOCHS.value, "epochs", defaults.epochs),
        steps_per_epoch=CHILD_STEPS.value,
        batch_size=pick(CHILD_BATCH_SIZE.value, "batch", defaults.batch_size),
        learning_rate=pick(CNN_LR.value, "lr", defaults.learning_rate),
        lr_schedule=CNN_LR_SCHEDULE.value,
        weight_decay=pick(CNN_WEIGHT_DECAY.value, "wd", defaults.weight_decay),
        reward_last_k=CNN_REWARD_LAST_K.value,
        reward_power=CNN_REWARD_POWER.value,
        jit_compile=CNN_JIT.value,
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
    from nas_tf.nb201 import Nb201Space, Nb201TableEvaluator, load_table

    evaluator = Nb201TableEvaluator(NB201_TABLE.value)
    load_table(NB201_TABLE.value)  # validate now: one clear error before anything is written
    return Nb201Space(), evaluator


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
