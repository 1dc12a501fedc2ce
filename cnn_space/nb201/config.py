"""Settings of the ``nb201`` space: which reward scores a cell, on which images,
at which size of the benchmark's skeleton (no TensorFlow).

The reward estimators (``reward``):

* ``table`` — the cell's accuracy looked up in the NAS-Bench-201 table (no
  training; the default when no images are given);
* ``naswot`` — the training-free score of Mellor et al. 2021 ("Neural
  Architecture Search without Training", ICML 2021) on one batch of the
  search's own training images, untrained weights (the default with images);
* ``synflow`` — the data-free synaptic-flow score (Tanaka et al. 2020, as a
  NAS proxy in Abdelfattah et al., ICLR 2021);
* ``train`` — a short training with the CNN space's child recipe
  (:mod:`cnn_space.train`, batch-norm recalibration included); the reward is
  the accuracy on a validation part held out of the *training* split;
* ``sharing`` — one supernet holding all five operations on every edge, one
  sampled cell per training batch (``--sharing=enas``'s machinery); the
  reward is the cell's accuracy with the shared weights on validation batches.

With images, the table (when given) is truth only: each child's record
carries ``table_test_accuracy`` beside a reward that never read it.
"""

from __future__ import annotations

import dataclasses

from nas_tf.errors import ConfigError

REWARDS = ("table", "naswot", "synflow", "train", "sharing")
PROXIES = ("naswot", "synflow")


@dataclasses.dataclass(frozen=True)
class Nb201Config:
    """How the ``nb201`` space scores a cell.

    Attributes:
        table: The NAS-Bench-201 CSV (``arch,test_accuracy``): the reward for
            ``reward="table"``, the truth beside any other reward, or None.
        reward: One of :data:`REWARDS`, or None: ``"table"`` without images,
            ``"naswot"`` with them. (``"table"`` with images: the images feed
            only a warm-up's proxy, ``--warmup``.)
        dataset, data_dir: The images (``"cifar10"`` with a folder of
            ``train/<class>/`` images such as ``../shared/data/cifar10``, any
            ``imagefolder``, any TFDS image dataset); None for the table.
        channels: C of the skeleton (NAS-Bench-201: 16).
        cells: N, cells per stage (NAS-Bench-201: 5).
        proxy_batch: Images in the batch a proxy scores (Mellor et al.: 64; a
            batch of the training part, never of validation or test).
        train_subset: Training images loaded (a validation part is held out of them).
        epochs, batch_size, learning_rate: ``reward="train"``'s training.
        eval_batch_size: Validation images per batch of a ``sharing`` score.
        shared_learning_rate: SGD's constant rate of the supernet (0.025, as the
            weight-sharing searches of NAS-Bench-201's paper).
        shared_warmup_steps: Batches the supernet trains on uniformly drawn
            cells before its first score.
        validation_fraction: Share of the loaded images held out for validation.
        image_size: Resize the images to this side (None: as stored).
        split_seed: Seed of the train/validation split and the proxy batch.
    """

    table: str | None = None
    reward: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    channels: int = 16
    cells: int = 5
    proxy_batch: int = 64
    train_subset: int | None = 5000
    epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 0.1
    eval_batch_size: int = 256
    shared_learning_rate: float = 0.025
    shared_warmup_steps: int = 100
    validation_fraction: float = 0.1
    image_size: int | None = None
    split_seed: int = 0

    def __post_init__(self):
        reward = self.reward or ("naswot" if self.dataset or self.data_dir else "table")
        object.__setattr__(self, "reward", reward)
        if reward not in REWARDS:
            raise ConfigError(f"Unknown nb201 reward; use one of {', '.join(REWARDS)}. "
                              f"Received: reward={reward!r}")
        if reward == "table" and not self.table:
            raise ConfigError("--nb201_reward=table needs the table: pass --nb201_table=CSV "
                              "(e.g. ../shared/data/nb201/cifar10.csv), or images (--dataset "
                              "and --data_dir) for another reward. Received: table=None")
        if reward != "table" and not (self.dataset or self.data_dir):
            raise ConfigError(f"--nb201_reward={reward} scores cells on images: pass "
                              "--dataset=cifar10 --data_dir=../shared/data/cifar10 (or any "
                              "image folder / TFDS dataset). Received: dataset=None")
        if not isinstance(self.shared_warmup_steps, int) or self.shared_warmup_steps < 0:
            raise ConfigError("shared_warmup_steps must be an integer >= 0. "
                              f"Received: shared_warmup_steps={self.shared_warmup_steps!r}")
        for name in ("channels", "cells", "proxy_batch", "epochs", "batch_size",
                     "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if self.proxy_batch < 2:
            raise ConfigError("proxy_batch must be at least 2 (a kernel over one image is a "
                              f"number). Received: proxy_batch={self.proxy_batch}")
        for name in ("learning_rate", "shared_learning_rate"):
            if not 0.0 < getattr(self, name) < 10.0:
                raise ConfigError(f"{name} must be in (0, 10). "
                                  f"Received: {name}={getattr(self, name)}")

    @property
    def uses_images(self) -> bool:
        return self.reward != "table"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
