"""What the shared models of ``--sharing=enas`` have in common.

The shared language model (:mod:`cells.shared_lm`) and the shared CNN
(:mod:`cnn_space.shared`) keep their state (weights, optimizer variables and a
few counters) in one ``.npz`` file in ``RUN_DIR/shared/``
(:func:`save_state`, :func:`restore_state`: NumPy only; the model needs
``get_weights``/``set_weights``, the optimizer ``variables``), and take a
training step only when it is finite (:func:`apply_if_finite`: a sampled
architecture that blows up must not poison the weights every other one shares).
TensorFlow is imported only by :func:`apply_if_finite`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nas_tf.errors import ConfigError


def save_state(path: str | Path, model, optimizer, counters) -> None:
    """Writes ``model``'s weights, ``optimizer``'s variables and the integer
    ``counters`` to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    arrays["counters"] = np.asarray([int(c) for c in counters], dtype=np.int64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def check_state_file(path: str | Path) -> None:
    """Reads every array of a file :func:`save_state` wrote, without a model.

    Raises:
        ValueError: it is cut short, not an ``.npz`` file, or has no counters.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            names = list(data.files)
            for name in names:
                data[name]  # reads (and CRC-checks) each array
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{type(e).__name__}: {str(e)[:160]}") from None
    if "counters" not in names and "position" not in names:
        raise ValueError(f"it holds no counters (arrays: {', '.join(names[:5]) or 'none'})")
    if not any(n.startswith("w") for n in names):
        raise ValueError("it holds no weights")


def restore_state(path: str | Path, model, optimizer, what: str,
                  num_counters: int) -> list[int]:
    """Loads what :func:`save_state` wrote into ``model`` and ``optimizer``.

    Args:
        path: The ``.npz`` file.
        model: Has ``get_weights`` / ``set_weights`` (its weights are built).
        optimizer: Has ``variables`` (built).
        what: The model's name in the error message ("the shared CNN").
        num_counters: How many counters the model saved.

    Returns:
        The counters, as ints.

    Raises:
        ConfigError: the file is missing, unreadable, cut short (a killed
            write), or of another model.
    """
    try:
        with np.load(Path(path)) as data:
            weights = [data[f"w{i}"] for i in range(len(model.get_weights()))]
            opt = [data[f"o{i}"] for i in range(len(optimizer.variables))]
            # "position": the shared LM's name for its counters before this module
            counters = data["counters"] if "counters" in data.files else data["position"]
            counters = [int(v) for v in counters]
            if len(counters) != num_counters:
                raise ValueError(f"{len(counters)} counters where {num_counters} were expected")
        model.set_weights(weights)
        for var, value in zip(optimizer.variables, opt):
            if tuple(var.shape) != value.shape:
                raise ValueError(f"an optimizer variable has shape {tuple(var.shape)}, "
                                 f"the file's {value.shape}")
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"Cannot restore {what} from {path}: {e}. Delete it to start the "
                          "shared weights afresh.") from None
    for var, value in zip(optimizer.variables, opt):
        var.assign(value)
    return counters


def apply_if_finite(optimizer, grads, variables, loss, clip: float):
    """Inside a ``tf.function``: applies ``grads`` clipped to global norm
    ``clip`` when they and ``loss`` are finite; otherwise changes nothing.

    Returns:
        A boolean tensor: whether the step was applied.
    """
    import tensorflow as tf

    finite = tf.math.logical_and(tf.math.is_finite(tf.linalg.global_norm(grads)),
                                 tf.math.is_finite(loss))

    def apply():
        clipped, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply_gradients(zip(clipped, variables))
        return tf.constant(True)

    return tf.cond(finite, apply, lambda: tf.constant(False))
