"""The evaluator interface: what trains one child and returns its reward.

An evaluator is the only part of a search that knows how to turn a spec into
a number. It must be picklable (executors send it to worker processes), so it
holds plain configuration and loads data and builds models lazily inside
:meth:`Evaluator.evaluate`.

The reward is computed on validation data only; the test split is never used
for a reward (Zoph & Le 2017, arXiv:1611.01578, §3.2: "the accuracy on a
held-out validation set").
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ChildContext:
    """Where and how one child is trained.

    Attributes:
        child_id: The child's row id in the trial store.
        log_dir: Directory for the child's own TensorBoard logs
            (``RUN_DIR/children/<id>``), or None to write none.
        seed: Seed for the child's weight initialisation and data order.
        devices: Logical device names the child may use (e.g. ``("/gpu:0",
            "/gpu:1")`` for a MirroredStrategy), or None for the default.
    """

    child_id: int
    log_dir: str | None = None
    seed: int = 0
    devices: tuple[str, ...] | None = None


@dataclasses.dataclass
class EvalResult:
    """What an evaluator returns.

    Attributes:
        reward: The controller's reward (a finite float).
        metrics: Extra numbers to store with the child (validation accuracy
            or perplexity, parameter count, FLOPs, training seconds, ...).
    """

    reward: float
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


class Evaluator(abc.ABC):
    """Trains (or looks up) one child and returns its reward."""

    @abc.abstractmethod
    def evaluate(self, spec: Any, context: ChildContext) -> EvalResult:
        """Evaluates ``spec``.

        Raising any exception, or returning a non-finite reward, makes the
        search record the child as failed (with the error text) and go on.
        """

    def close(self) -> None:
        """Releases resources (data, sessions). Called once at the end."""


def seed_child(seed: int) -> None:
    """Seeds a child's training without touching TensorFlow's global state.

    Seeds Python's ``random`` (Keras 3 draws the default seed of every
    initializer and dropout layer from it) and NumPy's global generator.
    TensorFlow's global seed is deliberately left alone: setting it
    (``keras.utils.set_random_seed``, ``tf.random.set_seed``), like
    ``keras.backend.clear_session()``, clears the compiled kernels of every
    ``tf.function`` in the process, so a search running children in its own
    process would rebuild the controller's functions at every update
    (seconds each). Whatever else a child draws must take an explicit seed
    (``Dataset.shuffle(seed=...)``, stateless random ops).

    Args:
        seed: The child's seed (``ChildContext.seed``).
    """
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
