"""Training CNN children and the evaluator of the CNN search.

A child is trained as in Zoph & Le 2017 (arXiv:1611.01578, §4.1) unless
configured otherwise: SGD with Nesterov momentum 0.9, learning rate 0.1 with a
(cosine) decay schedule, weight decay 1e-4 (an L2 term added by the builder),
standard CIFAR augmentation, N epochs; the reward is the maximum validation
accuracy of the last 5 epochs, cubed. Short children (< 2,000 steps) get their
batch-norm statistics recomputed before each validation pass
(:mod:`cnn_space.calibrate`), image folders are not flipped, and small datasets
get a smaller batch (see :class:`cnn_space.config.CnnSearchConfig`).

A child given several devices (``ChildContext.devices``) trains under a
``tf.distribute.MirroredStrategy`` over them (:func:`nas_tf.evaluator.make_strategy`,
the batch rule of every child trainer): ``batch_size`` is the global batch of
an update, each device takes ``batch_size / devices`` images, batch norm uses
the statistics of the global batch (synchronised), and the learning rate is
unchanged, so a child trains the same on one device or several. With no
devices (or one) it trains on the default strategy.

:class:`CnnSearchConfig` gathers the settings of the space, the data and the
children; :func:`make_space` and :func:`make_evaluator` turn it into the two
parts a search needs. Nothing here reads flags or prints.

Example:

    cfg = CnnSearchConfig(dataset="imagefolder", data_dir="../shared/data/cifar10",
                          train_subset=2000, num_layers=6, epochs=1)
    space, evaluator = make_space(cfg), make_evaluator(cfg)
    summary = run_search(space, evaluator, run_dir="runs/cnn", config=SearchConfig())
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

from cnn_space.calibrate import recalibrate_before_validation, training_calibrator
from cnn_space.config import (  # noqa: F401 - re-exported: the config's public home was here
    BN_RECALIBRATION,
    BN_RECALIBRATION_AUTO_STEPS,
    FEW_STEPS,
    LR_SCHEDULES,
    CnnSearchConfig,
)
from cnn_space.data import ImageData, load_image_data, steps_per_epoch
from cnn_space.pipeline import replica_eval_dataset
from cnn_space.space import CnnSpace, CnnSpec
from nas_tf.errors import ChildTrainingError, ConfigError
from nas_tf.evaluator import (  # noqa: F401 - make_strategy re-exported
    ChildContext,
    EvalResult,
    Evaluator,
    make_strategy,
    seed_child,
)

logger = logging.getLogger(__name__)

_FEW_STEPS_WARNED: set = set()  # settings already warned about (see _train_child)


def make_space(cfg: CnnSearchConfig) -> CnnSpace:
    """The :class:`CnnSpace` of a config (preset, depth, curriculum, width)."""
    return CnnSpace(
        preset=cfg.preset,
        num_layers=cfg.num_layers,
        curriculum_start=cfg.curriculum_start if cfg.curriculum else None,
        curriculum_step=cfg.curriculum_step,
        curriculum_every=cfg.curriculum_every,
        curriculum_count=cfg.curriculum_count,
        width_multiplier=cfg.width_multiplier,
    )


def make_evaluator(cfg: CnnSearchConfig) -> CnnEvaluator:
    """The picklable :class:`CnnEvaluator` of a config (with ``cfg.sharing``
    enabled: :class:`cnn_space.sharing.SharedCnnEvaluator`, one shared network)."""
    if cfg.sharing.enabled:
        from cnn_space.sharing import SharedCnnEvaluator

        return SharedCnnEvaluator(cfg, cfg.sharing)
    return CnnEvaluator(cfg)


def load_data(cfg: CnnSearchConfig, load_test: bool = False,
              test_subset: int | None = None) -> ImageData:
    """Loads the config's dataset (see :func:`cnn_space.data.load_image_data`)."""
    return load_image_data(
        cfg.dataset,
        cfg.data_dir,
        download=cfg.download,
        train_subset=cfg.train_subset,
        validation_fraction=cfg.validation_fraction,
        image_size=cfg.image_size,
        load_test=load_test,
        test_subset=test_subset,
        split_seed=cfg.split_seed,
    )


# ----------------------------------------------------------------------------
# Training one child.
# ----------------------------------------------------------------------------


def make_learning_rate(cfg: CnnSearchConfig, total_steps: int):
    """The learning-rate schedule of a child (a float for ``"constant"``)."""
    import keras

    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, max(1, total_steps))
    bounds = [max(1, total_steps // 2), max(2, (3 * total_steps) // 4)]
    if bounds[1] <= bounds[0]:
        bounds[1] = bounds[0] + 1
    values = [cfg.learning_rate, cfg.learning_rate * 0.1, cfg.learning_rate * 0.01]
    return keras.optimizers.schedules.PiecewiseConstantDecay(bounds, values)


def compute_reward(val_accuracies, last_k: int, power: float) -> tuple[float, float]:
    """(reward, accuracy): accuracy = max of the last ``last_k`` values, reward = accuracy**power.

    Paper §4.1: "the maximum validation accuracy of the last 5 epochs cubed".

    Raises:
        ValueError: no accuracies, or a non-finite one among the last k.
    """
    values = [float(v) for v in val_accuracies][-last_k:]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"No finite validation accuracies to reward. Received: {values}")
    acc = max(values)
    return acc**power, acc


class _Monitor:
    """Keras callback pieces: NaN check and train/eval timing (built lazily)."""

    @staticmethod
    def make(cfg: CnnSearchConfig):
        import keras

        class Monitor(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.train_seconds = 0.0
                self.epoch_train_seconds = []
                self.eval_seconds = 0.0
                self.epoch = 0
                self._t = None

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch
                self._t = time.perf_counter()

            def on_test_begin(self, logs=None):
                if self._t is not None:
                    self._end_train()
                self._t = time.perf_counter()

            def _end_train(self):
                seconds = time.perf_counter() - self._t
                self.train_seconds += seconds
                self.epoch_train_seconds.append(seconds)

            def on_test_end(self, logs=None):
                self.eval_seconds += time.perf_counter() - self._t
                self._t = None

            def on_epoch_end(self, epoch, logs=None):
                if self._t is not None:  # no validation this epoch
                    self._end_train()
                    self._t = None
                self._check(logs, f"epoch {epoch + 1}")

            def _check(self, logs, where):
                loss = (logs or {}).get("loss")
                if loss is not None and not math.isfinite(float(loss)):
                    raise ChildTrainingError(
                        f"The child's training loss became {float(loss)} at {where}; the "
                        "architecture does not train at these settings (learning_rate="
                        f"{cfg.learning_rate}). It is recorded as failed."
                    )

        return Monitor()


def train_child(
    spec: CnnSpec,
    data: ImageData,
    cfg: CnnSearchConfig,
    *,
    seed: int = 0,
    devices: tuple[str, ...] | None = None,
    log_dir: str | None = None,
    evaluate_test: bool = False,
    return_model: bool = False,
    progress=None,
    build=None,
):
    """Trains one child and computes its reward.

    Args:
        spec: The child's :class:`CnnSpec`.
        data: The loaded data (train/validation; test only if
            ``evaluate_test``).
        cfg: Training settings.
        seed: Seed of the weights, the data order and the augmentation.
        devices: Devices for a MirroredStrategy (see :func:`make_strategy`).
        log_dir: If set, Keras TensorBoard curves (train/ and validation/).
        evaluate_test: Also report ``test_accuracy`` (final evaluation of a
            chosen child; never part of the reward).
        progress: Called as ``progress(epoch=, epochs=, step=, steps=)`` while
            training (e.g. :meth:`nas_tf.evaluator.ChildContext.report`).
        return_model: Also return the trained Keras model.
        build: ``build(spec, image_shape, num_classes, weight_decay) -> keras.Model`` (softmax
            out) for another image space's spec (FLOPs then not counted).

    Returns:
        ``metrics`` (a dict with ``reward`` and the numbers below), or
        ``(metrics, model)`` when ``return_model``.

    Raises:
        ChildTrainingError: the training loss became NaN or infinite.
        cnn_space errors: the spec cannot be built.
    """
    import tensorflow as tf

    device = devices[0] if devices and len(devices) == 1 else None
    with tf.device(device) if device else contextlib.nullcontext():
        return _train_child(spec, data, cfg, seed, devices, log_dir, evaluate_test, return_model,
                            progress, build)


def _train_child(spec, data, cfg, seed, devices, log_dir, evaluate_test, return_model,
                 progress=None, build=None):  # long: one child's whole training, in order
    import tensorflow as tf

    from cnn_space.builder import build_model
    from cnn_space.data import make_train_dataset

    strategy = make_strategy(devices) or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.global_batch_size(len(data.y_train), replicas)
    steps = steps_per_epoch(len(data.y_train), global_batch)
    if cfg.steps_per_epoch is not None:
        steps = min(steps, cfg.steps_per_epoch)
    total_steps = steps * cfg.epochs
    _warn_few_steps(total_steps, cfg.epochs, steps, global_batch)

    seed_child(seed)  # not keras.utils.set_random_seed: see nas_tf.evaluator.seed_child
    train_ds = make_train_dataset(data, global_batch, seed, augment=cfg.augmentation)
    val_ds = replica_eval_dataset(data, data.x_val, data.y_val, cfg.eval_batch_size,
                                  replicas)

    t_build = time.perf_counter()
    with strategy.scope():
        if build is None:
            model = build_model(spec, data.image_shape, data.num_classes, cfg.weight_decay,
                                synchronized_batch_norm=replicas > 1)
        else:
            model = build(spec, data.image_shape, data.num_classes, cfg.weight_decay)
        _compile(model, cfg, total_steps, steps, replicas)
    build_seconds = time.perf_counter() - t_build

    monitor = _Monitor.make(cfg)
    calibrator = None
    if cfg.recalibrates(total_steps):
        calibrator = training_calibrator(model, data, cfg, global_batch, seed)
    callbacks = _callbacks(monitor, calibrator, cfg, steps, progress, log_dir)
    t0 = time.perf_counter()
    history = model.fit(train_ds, epochs=cfg.epochs, steps_per_epoch=steps,
                        validation_data=val_ds, callbacks=callbacks, verbose=0)
    fit_seconds = time.perf_counter() - t0
    hist = history.history
    losses = hist.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        raise ChildTrainingError(
            f"The child's training loss is not finite ({losses[-1:]}); recorded as failed."
        )
    metrics = _metrics(hist, cfg, model, spec if build is None else None, data, steps,
                       global_batch, replicas)
    metrics.update({
        "bn_recalibrated": calibrator is not None,
        "build_seconds": build_seconds,
        "train_seconds": fit_seconds,
        "train_step_seconds": monitor.train_seconds,
        "eval_seconds": monitor.eval_seconds,
        "images_per_second": steps * cfg.epochs * global_batch / max(monitor.train_seconds, 1e-9),
    })
    if len(monitor.epoch_train_seconds) > 1:
        # Epochs after the first: no tracing / compilation in them.
        later = monitor.epoch_train_seconds[1:]
        metrics["images_per_second_steady"] = steps * len(later) * global_batch / sum(later)
    if evaluate_test:
        metrics.update(_test_metrics(model, data, cfg, calibrator))
    return (metrics, model) if return_model else metrics


def _warn_few_steps(total_steps: int, epochs: int, steps: int, global_batch: int) -> None:
    if total_steps < FEW_STEPS:
        # Once per process and setting (a search would repeat it for every child).
        key = (total_steps, epochs, steps, global_batch)
        log = logger.debug if key in _FEW_STEPS_WARNED else logger.warning
        _FEW_STEPS_WARNED.add(key)
        log("A child trains for only %d steps (%d epoch(s) x %d batches of %d); its validation "
            "accuracy is a noisy reward. Use more epochs or images.", total_steps, epochs,
            steps, global_batch)


def _test_metrics(model, data, cfg, calibrator) -> dict:
    """Accuracy and loss on the test split (exports only, never a reward)."""
    if calibrator is not None and calibrator.calls == 0:
        calibrator()
    if data.x_test is None:
        raise ValueError("evaluate_test=True needs data loaded with load_test=True.")
    test_ds = replica_eval_dataset(data, data.x_test, data.y_test, cfg.eval_batch_size,
                                   model.distribute_strategy.num_replicas_in_sync)
    result = model.evaluate(test_ds, verbose=0, return_dict=True)
    return {"test_accuracy": float(result["accuracy"]), "test_loss": float(result["loss"])}


def _compile(model, cfg: CnnSearchConfig, total_steps: int, steps: int, replicas: int) -> None:
    """SGD with Nesterov momentum on the configured schedule, cross entropy."""
    import keras

    optimizer = keras.optimizers.SGD(learning_rate=make_learning_rate(cfg, total_steps),
                                     momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=cfg.jit_compile and replicas == 1,
        steps_per_execution=min(cfg.steps_per_execution, steps),
    )


def _callbacks(monitor, calibrator, cfg, steps: int, progress, log_dir) -> list:
    """fit()'s callbacks: timing, progress, batch-norm recalibration, TensorBoard."""
    import keras

    callbacks = [monitor]
    if progress is not None:
        from nas_tf.evaluator import keras_progress_callback

        callbacks.append(keras_progress_callback(progress, cfg.epochs, steps))
    if calibrator is not None:
        callbacks.append(recalibrate_before_validation(calibrator))
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(
            log_dir=log_dir, write_graph=False, update_freq="epoch", profile_batch=0))
    return callbacks


def _metrics(hist: dict, cfg, model, spec, data, steps: int, global_batch: int,
             replicas: int) -> dict[str, Any]:
    """A trained child's reward, accuracies, losses, size and training shape (FLOPs
    only for a :class:`CnnSpec`; ``spec`` is None for another space's model)."""
    from cnn_space.builder import count_flops, count_params

    val_acc = hist.get("val_accuracy", [])
    reward, acc = compute_reward(val_acc, cfg.reward_last_k, cfg.reward_power)
    return {
        "reward": float(reward),
        "val_accuracy": float(acc),
        "val_accuracy_last": float(val_acc[-1]),
        "val_loss_last": float(hist["val_loss"][-1]),
        "train_loss_last": float(hist["loss"][-1]),
        "train_accuracy_last": float(hist["accuracy"][-1]),
        "params": count_params(model),
        "flops": count_flops(spec, data.image_shape, data.num_classes) if spec else None,
        "epochs": cfg.epochs,
        "steps_per_epoch": steps,
        "global_batch_size": global_batch,
        "replicas": replicas,
        "train_images": len(data.y_train),
        "augment": cfg.augmentation,
    }


# ----------------------------------------------------------------------------
# The evaluator.
# ----------------------------------------------------------------------------


class CnnEvaluator(Evaluator):
    """Trains a CNN child on the configured images; reward from validation only.

    Holds only its :class:`CnnSearchConfig` when pickled; the data are loaded
    on the first :meth:`evaluate` and kept in memory for the next children.

    Args:
        config: A :class:`CnnSearchConfig`.
        data: Already loaded data of this config to use instead of loading
            (not pickled; benchmarks share one copy between evaluators).

    Example:

        evaluator = CnnEvaluator(CnnSearchConfig(dataset="imagefolder", data_dir=d, epochs=1))
        result = evaluator.evaluate(spec, ChildContext(child_id=1))
        result.reward, result.metrics["val_accuracy"]
    """

    def __init__(self, config: CnnSearchConfig, data: ImageData | None = None):
        if not isinstance(config, CnnSearchConfig):
            raise ConfigError(
                f"CnnEvaluator needs a CnnSearchConfig. Received: {type(config).__name__}"
            )
        self.config = config
        self._data: ImageData | None = data

    def __getstate__(self):
        return {"config": self.config}

    def __setstate__(self, state):
        self.config = state["config"]
        self._data = None

    def data(self) -> ImageData:
        """The loaded data (loaded on first use)."""
        if self._data is None:
            self._data = load_data(self.config)
        return self._data

    def evaluate(self, spec: CnnSpec, context: ChildContext) -> EvalResult:
        metrics = train_child(
            spec,
            self.data(),
            self.config,
            seed=context.seed,
            devices=context.devices,
            log_dir=context.log_dir,
            progress=context.report,
        )
        reward = metrics.pop("reward")
        logger.info(
            "child %d: val_accuracy %.4f reward %.4f (%d params, %.1fs)",
            context.child_id,
            metrics["val_accuracy"],
            reward,
            metrics["params"],
            metrics["train_seconds"],
        )
        return EvalResult(reward=reward, metrics=metrics)

    def close(self) -> None:
        self._data = None
