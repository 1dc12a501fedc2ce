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
from collections.abc import Callable
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
        on_progress: Called as ``on_progress(child_id, info)`` by
            :meth:`report` while the child trains (set by the search loop;
            dropped when the context is pickled).
    """

    child_id: int
    log_dir: str | None = None
    seed: int = 0
    devices: tuple[str, ...] | None = None
    on_progress: Callable[[int, dict], None] | None = dataclasses.field(
        default=None, compare=False, repr=False)

    def report(self, **progress: Any) -> None:
        """Tells the search how training goes (for the progress bar), e.g.
        ``context.report(epoch=1, epochs=5, step=40, steps=100)``. Does
        nothing when nobody listens (or in a worker process: the listener is
        not sent there); a failing listener never stops the child."""
        if self.on_progress is not None:
            try:
                self.on_progress(self.child_id, dict(progress))
            except Exception:  # noqa: BLE001 - progress display is best effort
                pass

    def __reduce__(self):
        # The listener belongs to the searching process; workers get none.
        return (ChildContext, (self.child_id, self.log_dir, self.seed, self.devices))


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

    #: Children cost next to nothing (a table lookup) and write nothing to
    #: their log directory: the search gives them none, and TensorBoard keeps
    #: an HParams run only for the best children, not for every recent one
    #: (thousands of children a minute would each make a folder).
    cheap_children: bool = False

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

#: The first Keras release whose ``fit`` divides the loss by the number of
#: replicas under a ``tf.distribute`` strategy (keras-team/keras#20609, the fix
#: of #19891, merged 2024-12-09 after 3.7.0, first released in 3.8.0). Before
#: it the replicas' gradients were summed: each update was ``replicas`` times
#: too large.
MIN_KERAS_FOR_REPLICAS = (3, 8)
_STRATEGIES: dict = {}  # see make_strategy


def make_strategy(devices):
    """The one device rule of every child trainer (CNN and LM).

    A child given several devices (``ChildContext.devices``) trains under a
    ``tf.distribute.MirroredStrategy`` over them; with none or one it trains
    without a strategy (None; the caller pins it to the one device).

    The batch rule that goes with it: a child's ``batch_size`` is the
    **global** batch of one update, whatever the device count; each of ``n``
    devices takes ``batch_size / n`` rows (see :func:`replica_batch`), the
    loss is the mean over the global batch, and the learning rate is
    unchanged. So a child trains the same on one device or several (up to
    float summation order): the devices speed a child up, they do not change
    its hyperparameters.

    Raises:
        ConfigError: several devices and a Keras older than
            :data:`MIN_KERAS_FOR_REPLICAS` (its ``fit`` sums the replicas'
            gradients).
    """
    if not devices or len(devices) < 2:
        return None
    import keras
    import tensorflow as tf

    from nas_tf.errors import ConfigError

    version = tuple(int(p) for p in keras.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_KERAS_FOR_REPLICAS:
        raise ConfigError(
            f"Training a child on {len(devices)} devices needs Keras >= 3.8 (older releases "
            "sum the replicas' gradients, keras-team/keras#19891). Upgrade Keras, or give each "
            f"child one device (--gpus_per_child=1). Received: keras {keras.__version__}")
    # One strategy per device set and process: a second MirroredStrategy over the same
    # devices restarts the collective instance keys, and its all-reduces then clash with
    # the first one's ("Shape mismatch in the collective instance 100"), so a worker
    # training a second multi-device child failed.
    key = tuple(devices)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=list(devices))
    return _STRATEGIES[key]


def replica_batch(batch_size: int, replicas: int) -> int:
    """The rows each of ``replicas`` devices takes of a global ``batch_size``.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of ``replicas``.
    """
    from nas_tf.errors import ConfigError

    if batch_size % replicas:
        raise ConfigError(
            f"batch_size must be a multiple of the number of devices ({replicas}): it is the "
            f"global batch, and each device takes batch_size / {replicas} rows. "
            f"Received: batch_size={batch_size}")
    return batch_size // replicas


def keras_progress_callback(report: Callable[..., None], epochs: int, steps: int | None,
                            every: int = 5):
    """A Keras callback that calls ``report(epoch=, epochs=, step=, steps=)`` (e.g.
    :meth:`ChildContext.report`) at each epoch's start and every ``every``
    training batches (Keras is imported here)."""
    import keras

    class _Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            report(epoch=epoch + 1, epochs=epochs, step=0, steps=steps)

        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % every == 0:
                report(epoch=self._epoch + 1, epochs=epochs, step=batch + 1,
                               steps=steps)

    return _Progress()
