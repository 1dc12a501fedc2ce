"""Command-line flags of the CNN space (``--space=cnn``).

Imported by ``python -m nas_tf.run`` (through :mod:`cnn_space.plugin`) before
the flags are parsed; nothing else imports it. ``--dataset`` for cnn:
``cifar10`` (TFDS), ``imagefolder`` (class-per-folder) or any TFDS image
dataset by name (``mnist``, ``tfds:NAME``, see :mod:`cnn_space.tfds_images`); without
``--dataset``, a quick demo on a slice of the CIFAR-10 image folders of
``../shared/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from absl import flags

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
    "cnn_curriculum", False, "Grow the depth during the search (paper §4.1: from 1 layer, "
    "+2 layers every 1,600 samples; see --cnn_curriculum_every).")
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
CNN_EVAL_BATCH = flags.DEFINE_integer(
    "cnn_eval_batch_size", None, "cnn: images per validation batch (default 500); with "
    "--sharing=enas each reward scores --shared_score_windows such batches (ENAS: one batch).")
CNN_JIT = flags.DEFINE_boolean(
    "cnn_jit_compile", False, "XLA-compile child training (see experiments/results/"
    "cnn_throughput.md; off under a multi-device strategy).")


def _demo_data_dir() -> str:
    from nas_tf.errors import DataError

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
    return str(found[0])


#: The demo's note of the last :func:`settings_from_flags` (logged by the plug-in's
#: ``make`` once the settings are known to be valid).
DEMO_NOTE: list[str] = []


def settings_from_flags(fv) -> dict:
    """The settings of :class:`cnn_space.train.CnnSearchConfig` from the flags.

    Without ``--dataset`` this is the demo: a small, quick search on the
    CIFAR-10 image folders of ``../shared/data``; every value can still be
    set by its flag.
    """
    from cnn_space.train import CnnSearchConfig

    demo = fv.dataset is None
    dataset, data_dir = fv.dataset or "imagefolder", fv.data_dir
    d = ({"num_layers": 3, "width": 0.5, "subset": 1000, "epochs": 1, "image_size": 16,
          "augment": "crop_flip"} if demo else {})
    if demo and not data_dir:
        data_dir = _demo_data_dir()
    if demo:  # said by the plug-in once the settings are valid (no line before an error)
        DEMO_NOTE[:] = [
            f"No --dataset: demo search on {data_dir} (imagefolder, "
            f"{fv.cnn_train_subset or d['subset']} training images resized to "
            f"{fv.cnn_image_size or d['image_size']}px, "
            f"{fv.cnn_num_layers or d['num_layers']}-layer children, width "
            f"x{fv.cnn_width_multiplier or d['width']}, {fv.child_epochs or d['epochs']} "
            "epoch(s) each). Set --dataset for a real search."]

    def pick(flag_value, key, default):
        if flag_value is not None:
            return flag_value
        return d.get(key, default)

    defaults = CnnSearchConfig()
    return dict(
        dataset=dataset,
        data_dir=data_dir,
        download=fv.cnn_download,
        train_subset=pick(fv.cnn_train_subset, "subset", None),
        image_size=pick(fv.cnn_image_size, "image_size", None),
        preset=fv.cnn_preset,
        num_layers=pick(fv.cnn_num_layers, "num_layers", None),
        width_multiplier=pick(fv.cnn_width_multiplier, "width", defaults.width_multiplier),
        curriculum=fv.cnn_curriculum,
        curriculum_every=fv.cnn_curriculum_every,
        curriculum_count=fv.cnn_curriculum_count,
        epochs=pick(fv.child_epochs, "epochs", defaults.epochs),
        steps_per_epoch=fv.child_steps,
        batch_size=pick(fv.child_batch_size, "batch", defaults.batch_size),
        learning_rate=pick(fv.cnn_learning_rate, "lr", defaults.learning_rate),
        lr_schedule=fv.cnn_lr_schedule,
        weight_decay=pick(fv.cnn_weight_decay, "wd", defaults.weight_decay),
        reward_last_k=fv.cnn_reward_last_k,
        reward_power=fv.cnn_reward_power,
        jit_compile=fv.cnn_jit_compile,
        eval_batch_size=pick(fv.cnn_eval_batch_size, "eval_batch", defaults.eval_batch_size),
        augment=(fv.cnn_augment if fv.cnn_augment != "auto" else d.get("augment", "auto")),
        bn_recalibration=fv.cnn_bn_recalibration,
    )
