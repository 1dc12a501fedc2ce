"""Rewards of NAS-Bench-201 cells on real images, with the table used only as truth.

Each evaluator builds the cell as a Keras model (:mod:`cnn_space.nb201.model`)
and scores it on the search's own *training* images: a training-free proxy
(:class:`Nb201ProxyEvaluator`) or a short training whose reward is the
accuracy on a validation part held out of the training split
(:class:`Nb201TrainEvaluator`). The test split is never read.

When a table is given, the child's record also carries
``table_test_accuracy``: read *after* the reward is computed, by
:meth:`_Truth.truth`, and never by the reward (a test swaps the table for a
shuffled one and checks that every reward is unchanged).

Everything heavy (TensorFlow, the data) is loaded on the first
:meth:`evaluate`; a pickled evaluator is its config.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from cnn_space.nb201.config import Nb201Config
from cnn_space.nb201.space import Nb201Spec
from cnn_space.nb201.table import load_table
from nas_tf.errors import ConfigError
from nas_tf.evaluator import ChildContext, EvalResult, Evaluator, seed_child

logger = logging.getLogger(__name__)

#: The reward of a cell whose proxy is not finite (a cell that passes no
#: signal: every image gets the same ReLU codes, so the NASWOT kernel is
#: singular). Real cells score far above it (NASWOT of 64 images: ~10^2-10^3).
DEGENERATE_SCORE = 0.0


class _Truth(Evaluator):
    """An evaluator of ``nb201`` cells on images, holding its :class:`Nb201Config`."""

    def __init__(self, config: Nb201Config):
        if not isinstance(config, Nb201Config):
            raise ConfigError(f"{type(self).__name__} needs an Nb201Config. "
                              f"Received: {type(config).__name__}")
        self.config = config
        self._table: dict[str, float] | None = None
        self._data = None

    def __getstate__(self):
        return {"config": self.config}

    def __setstate__(self, state):
        self.__init__(state["config"])

    @property
    def table_path(self) -> str | None:
        return self.config.table

    def input_files(self) -> dict[str, str]:
        """The files whose fingerprints a run directory records (the table)."""
        return {"nb201_table": self.config.table} if self.config.table else {}

    def truth(self, spec: Nb201Spec) -> dict[str, float]:
        """``{"table_test_accuracy": ...}`` when a table is given, else ``{}``."""
        if not self.config.table:
            return {}
        if self._table is None:
            self._table = load_table(self.config.table)
        acc = self._table.get(spec.to_arch_string())
        return {} if acc is None else {"table_test_accuracy": acc}

    def data(self):
        """The images (loaded once): :class:`cnn_space.data.ImageData`."""
        if self._data is None:
            from cnn_space.data import load_image_data

            c = self.config
            self._data = load_image_data(
                c.dataset or "imagefolder", c.data_dir, train_subset=self._subset(),
                validation_fraction=c.validation_fraction, image_size=c.image_size,
                split_seed=c.split_seed)
        return self._data

    def _subset(self) -> int | None:
        return self.config.train_subset

    def _build(self, spec: Nb201Spec, image_shape, num_classes: int, seed: int, dtype=None):
        from cnn_space.nb201.model import build_nb201_model

        return build_nb201_model(spec, channels=self.config.channels,
                                 cells_per_stage=self.config.cells, num_classes=num_classes,
                                 input_shape=tuple(image_shape), seed=seed, dtype=dtype)

    def evaluate(self, spec: Nb201Spec, context: ChildContext) -> EvalResult:
        reward, metrics = self.score(spec, context)
        metrics.update(self.truth(spec))  # after the reward: truth never feeds it
        return EvalResult(reward=reward, metrics=metrics)

    def score(self, spec: Nb201Spec, context: ChildContext) -> tuple[float, dict[str, Any]]:
        raise NotImplementedError


class Nb201ProxyEvaluator(_Truth):
    """Scores an untrained cell with a training-free proxy (``naswot`` or ``synflow``).

    NASWOT reads one batch of ``proxy_batch`` training images (the same batch
    for every cell, normalised like the training pipeline); synflow reads no
    images (it needs their shape and the number of classes only).
    """

    def _subset(self) -> int | None:
        # Enough images that the training part holds one batch (the rest is never read).
        c = self.config
        need = math.ceil(c.proxy_batch / (1.0 - c.validation_fraction)) + 10
        return need if c.train_subset is None else max(need, min(c.train_subset, need))

    def batch(self) -> np.ndarray:
        """The normalised proxy batch, ``(proxy_batch, H, W, C)`` float32."""
        data = self.data()
        n = self.config.proxy_batch
        if len(data.x_train) < n:
            raise ConfigError(f"proxy_batch is larger than the {len(data.x_train)} training "
                              f"images loaded. Received: proxy_batch={n}")
        x = data.x_train[:n].astype(np.float32)
        return (x - data.mean.astype(np.float32)) / data.std.astype(np.float32)

    def score(self, spec, context):
        from cnn_space.nb201 import proxies

        seed_child(context.seed)
        data = self.data()
        t0, c0 = time.perf_counter(), time.process_time()
        # synflow multiplies every layer's |weights|: float64 as the reference code.
        dtype = "float64" if self.config.reward == "synflow" else None
        model = self._build(spec, data.image_shape, data.num_classes, context.seed, dtype)
        if self.config.reward == "naswot":
            value = float(proxies.naswot(model, self.batch()))
        else:
            value = float(proxies.synflow(model, data.image_shape))
        degenerate = not math.isfinite(value)
        reward = DEGENERATE_SCORE if degenerate else value
        metrics = {self.config.reward: reward, "degenerate": degenerate,
                   "params": int(model.count_params()),
                   "proxy_seconds": time.perf_counter() - t0,
                   "proxy_cpu_seconds": time.process_time() - c0}
        return reward, metrics


class Nb201TrainEvaluator(_Truth):
    """Trains the cell briefly with the CNN space's child recipe
    (:func:`cnn_space.train.train_child`: SGD-Nesterov, cosine schedule,
    batch-norm recalibration for short runs); reward = the validation
    accuracy (held out of the training split)."""

    def cnn_config(self):
        from cnn_space.train import CnnSearchConfig

        c = self.config
        return CnnSearchConfig(
            dataset=c.dataset or "imagefolder", data_dir=c.data_dir, train_subset=c.train_subset,
            validation_fraction=c.validation_fraction, image_size=c.image_size,
            epochs=c.epochs, batch_size=c.batch_size, learning_rate=c.learning_rate,
            weight_decay=0.0, reward_last_k=1, reward_power=1.0, split_seed=c.split_seed)

    def score(self, spec, context):
        from cnn_space.train import train_child

        def build(spec_, image_shape, num_classes, weight_decay):
            import keras

            logits = self._build(spec_, image_shape, num_classes, context.seed)
            probs = keras.layers.Softmax(name="probabilities")(logits.outputs[0])
            return keras.Model(logits.inputs, probs, name=logits.name)

        metrics = train_child(spec, self.data(), self.cnn_config(), seed=context.seed,
                              devices=context.devices, log_dir=context.log_dir,
                              progress=context.report, build=build)
        metrics.pop("flops", None)
        return metrics.pop("reward"), metrics


def make_evaluator(config: Nb201Config, sharing=None):
    """The evaluator of a config's reward (the table look-up for ``"table"``;
    for ``"sharing"``, with ``sharing`` a SharingConfig, default mode ``enas``)."""
    if config.reward == "sharing":
        from cnn_space.nb201.sharing import SharedNb201Evaluator
        from nas_tf.sharing import SharingConfig

        return SharedNb201Evaluator(config, sharing or SharingConfig("enas"))
    if config.reward == "table":
        from cnn_space.nb201.table import Nb201TableEvaluator

        return Nb201TableEvaluator(config.table)
    if config.reward == "train":
        return Nb201TrainEvaluator(config)
    return Nb201ProxyEvaluator(config)
