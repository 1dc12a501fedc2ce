"""Settings of a CNN search: the space, the data and the training of the children.

:class:`CnnSearchConfig` is a frozen, JSON-able dataclass (no TensorFlow);
:mod:`cnn_space.train` turns it into a space and an evaluator. Defaults are
the paper's (Zoph & Le 2017, arXiv:1611.01578, §4.1) where it gives a value.
"""

from __future__ import annotations

import dataclasses
import logging

from cnn_space.data import AUGMENTATIONS, DATASETS, augmentation_mode
from cnn_space.space import PRESETS
from nas_tf.errors import ConfigError
from nas_tf.evaluator import replica_batch
from nas_tf.sharing import SharingConfig, sharing_config
from nas_tf.validation import check_finite, check_int, check_positive, check_rate

logger = logging.getLogger(__name__)

LR_SCHEDULES = ("cosine", "step", "constant")
BN_RECALIBRATION = ("auto", "on", "off")
# "auto" recalibrates batch norm when a child trains for fewer steps than this; longer
# children (the paper's 50 epochs: ~17,600 steps) keep Keras' moving averages.
BN_RECALIBRATION_AUTO_STEPS = 2000
# A child with fewer training steps than this gets a warning (its reward is mostly noise).
FEW_STEPS = 50
# The smallest batch the small-dataset cap (min_steps_per_epoch) may choose.
MIN_CAPPED_BATCH = 16


@dataclasses.dataclass(frozen=True)
class CnnSearchConfig:
    """Settings of a CNN search: space, data and child training.

    Defaults follow the paper (Zoph & Le 2017, arXiv:1611.01578, §4.1) where it
    gives a value; the section is cited per field.

    Attributes:
        dataset: ``"cifar10"`` (TFDS), ``"imagefolder"`` (class-per-folder), or any
            TFDS image dataset by name (``"mnist"``, ``"tfds:NAME"``).
        data_dir: TFDS data dir (cifar10) or folder root (imagefolder).
        download: cifar10: download when missing (needs network; off by default).
        train_subset: Use only the first N training images (deterministic
            shuffle) — for CPU-scale runs; None uses all.
        validation_fraction: Held-out share of the training images for the
            reward (§4.1: 5,000 of 50,000 = 0.1).
        image_size: Resize images to this square size on load (None: keep).
        preset: ``"v1"``, ``"v2"`` or ``"v3"`` (§4.1's three CIFAR variants).
        num_layers: Depth of the space (None: the preset's 15 / 20 / 39).
        curriculum: Grow the depth during the search; off by default for
            small budgets. Zoph & Le 2017, §4.1 (CIFAR-10 training details):
            "we ask the controller to increase the depth by 2 for the child
            models every 1,600 samples, starting at 1 layer" -- so 1, 3, 5, ...
            layers, and v1's 15 at 11,200 samples (1 + 2 x 7). (Quoted from
            memory of the arXiv v2 text: no copy of the paper could be read
            where this was written; versions of this project before issue 28
            started at 6.)
        curriculum_start, curriculum_step, curriculum_every: The curriculum.
        curriculum_count: What ``curriculum_every`` counts: ``"samples"``
            (architectures proposed, duplicates and failures included; the
            paper's) or ``"children"`` (unique finished children).
        width_multiplier: The "more filters" variant (§4.1).
        epochs: Epochs per child (§4.1: 50).
        steps_per_epoch: Cap on training steps per epoch (None: one pass).
        batch_size: The global batch of an update (not given in the paper),
            split over a child's devices (it must be a multiple of their
            count; see :func:`nas_tf.evaluator.make_strategy`); lowered on
            small datasets by ``min_steps_per_epoch``.
        min_steps_per_epoch: Small datasets: the global batch is capped at
            ``train images // min_steps_per_epoch`` (never below 16), so an
            epoch has at least this many steps — 1,350 images at batch 128 would
            give 11 steps an epoch, too few for SGD with a decaying learning rate
            and for batch-norm statistics. None: no cap. No effect on CIFAR-10
            (45,000 / 128 = 352 steps). A child with fewer than 50 training steps
            in all is logged as a warning.
        learning_rate: Initial SGD learning rate (§4.1: 0.1).
        momentum: Nesterov momentum (§4.1: 0.9).
        weight_decay: L2 weight decay (§4.1: 1e-4).
        lr_schedule: ``"cosine"`` (decay to 0 over training), ``"step"``
            (/10 at 50% and 75%) or ``"constant"``.
        augment: Training augmentation: ``"crop_flip"`` (pad-4 random crop and
            horizontal flip, §4.1), ``"crop"`` (no flip: for digits, text or
            anything orientation-dependent), ``"none"``, or ``"auto"``:
            crop_flip for ``dataset="cifar10"``, crop for ``"imagefolder"``
            (flips are wrong for many image folders; ask for them). True / False
            mean crop_flip / none.
        bn_recalibration: Recompute every batch-norm moving mean / variance
            exactly on ``bn_recalibration_images`` training images (final
            weights, no augmentation) before each validation pass: ``"on"``,
            ``"off"`` (Keras' moving averages, momentum 0.99, as the paper's
            TF code), or ``"auto"``: on when the child trains for fewer than
            2,000 steps in all. Short children need it: after ~60 steps the
            moving averages are mostly their initial values and validation
            accuracy measures that, not the architecture
            (``experiments/results/cnn_reward.md``).
        bn_recalibration_images: Training images used by the recalibration
            (fewer when the training set is smaller).
        reward_last_k: The reward uses the last k epochs' validation
            accuracies (§4.1: 5).
        reward_power: ... raised to this power (§4.1: cubed, 3).
        jit_compile: XLA-compile the train step. Off by default: measured on
            CPU it does not pay for its per-architecture compile on short
            children (``experiments/results/cnn_throughput.md``); Keras turns
            it off under a distribution strategy anyway.
        steps_per_execution: Train steps per ``tf.function`` call (fewer
            Python round trips).
        eval_batch_size: Batch size of the validation pass.
        split_seed: Seed of the train/validation split (the same for every
            child, so rewards are comparable).
        sharing: Weight sharing (:class:`nas_tf.sharing.SharingConfig`, its
            mode ``"enas"`` or its JSON form): ``none`` trains every child from
            scratch (the paper); ``enas`` scores children with one shared
            network (:mod:`cnn_space.sharing`; presets v1 and v3).
    """

    dataset: str = "cifar10"
    data_dir: str | None = None
    download: bool = False
    train_subset: int | None = None
    validation_fraction: float = 0.1
    image_size: int | None = None
    preset: str = "v1"
    num_layers: int | None = None
    curriculum: bool = False
    curriculum_start: int = 1
    curriculum_step: int = 2
    curriculum_every: int = 1600
    curriculum_count: str = "samples"
    width_multiplier: float = 1.0
    epochs: int = 50
    steps_per_epoch: int | None = None
    batch_size: int = 128
    min_steps_per_epoch: int | None = 20
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    augment: str = "auto"
    bn_recalibration: str = "auto"
    bn_recalibration_images: int = 2000
    reward_last_k: int = 5
    reward_power: float = 3.0
    jit_compile: bool = False
    steps_per_execution: int = 1
    eval_batch_size: int = 500
    split_seed: int = 0
    sharing: SharingConfig = SharingConfig()

    def __post_init__(self):
        self._check_sharing()
        if self.dataset not in DATASETS:
            from cnn_space.tfds_images import tfds_name

            tfds_name(self.dataset)  # any TFDS image dataset by name; raises if misspelled
        if self.dataset == "imagefolder" and not self.data_dir:
            raise ConfigError(
                "dataset=imagefolder needs data_dir (a folder with train/<class>/*.jpg). "
                "Received: data_dir=None"
            )
        if self.preset not in PRESETS:
            raise ConfigError(
                f"Unknown CNN preset; use one of {', '.join(sorted(PRESETS))}. "
                f"Received: preset={self.preset!r}"
            )
        if isinstance(self.augment, bool):
            object.__setattr__(self, "augment", augmentation_mode(self.augment))
        if self.curriculum_count not in ("samples", "children"):
            raise ConfigError("curriculum_count must be 'samples' (the paper's) or 'children'. "
                              f"Received: curriculum_count={self.curriculum_count!r}")
        if self.augment != "auto" and self.augment not in AUGMENTATIONS:
            raise ConfigError(
                f"Unknown augment; use auto or one of {', '.join(AUGMENTATIONS)}. "
                f"Received: augment={self.augment!r}"
            )
        if self.bn_recalibration not in BN_RECALIBRATION:
            raise ConfigError(
                f"Unknown bn_recalibration; use one of {', '.join(BN_RECALIBRATION)}. "
                f"Received: bn_recalibration={self.bn_recalibration!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"Unknown lr_schedule; use one of {', '.join(LR_SCHEDULES)}. "
                f"Received: lr_schedule={self.lr_schedule!r}"
            )
        for name in ("epochs", "batch_size", "reward_last_k", "eval_batch_size",
                     "steps_per_execution", "curriculum_start", "curriculum_step",
                     "curriculum_every", "bn_recalibration_images"):
            check_int(name, getattr(self, name))
        for name in ("num_layers", "train_subset", "steps_per_epoch", "image_size",
                     "min_steps_per_epoch"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        for name in ("learning_rate", "reward_power", "width_multiplier"):
            check_finite(name, getattr(self, name))
            check_positive(name, getattr(self, name))
        check_rate("momentum", self.momentum)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(
                "validation_fraction must be in (0, 1). "
                f"Received: validation_fraction={self.validation_fraction}"
            )
        if self.reward_last_k > self.epochs:
            logger.debug("reward_last_k=%d > epochs=%d: all epochs count.", self.reward_last_k,
                         self.epochs)

    def _check_sharing(self) -> None:
        object.__setattr__(self, "sharing", sharing_config(self.sharing))
        if self.sharing.enabled and PRESETS.get(self.preset, (0, False))[1]:
            raise ConfigError("Weight sharing (--sharing=enas) supports the CNN presets v1 and "
                              "v3: predicted strides change the shapes of every later layer. "
                              f"Received: preset={self.preset!r}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def augmentation(self) -> str:
        """The augmentation this config trains with (``"auto"`` resolved by dataset)."""
        if self.augment != "auto":
            return self.augment
        return "crop_flip" if self.dataset == "cifar10" else "crop"

    def recalibrates(self, total_steps: int) -> bool:
        """Whether a child of ``total_steps`` training steps gets batch-norm recalibration."""
        if self.bn_recalibration == "auto":
            return total_steps < BN_RECALIBRATION_AUTO_STEPS
        return self.bn_recalibration == "on"

    def global_batch_size(self, train_images: int, replicas: int = 1) -> int:
        """The global batch of a child: ``batch_size`` on any number of devices
        (the batch rule of :func:`nas_tf.evaluator.make_strategy`), capped on
        small datasets (the cap is rounded down to a multiple of ``replicas``).

        Raises:
            ConfigError: an uncapped ``batch_size`` that ``replicas`` devices
                cannot split evenly.
        """
        batch = self.batch_size
        if self.min_steps_per_epoch is not None:
            cap = max(MIN_CAPPED_BATCH, train_images // self.min_steps_per_epoch)
            if cap < batch:
                batch = max(replicas, cap - cap % replicas)
        replica_batch(batch, replicas)
        return batch
