"""Checks of configuration values, shared by every package of the project.

Each raises :class:`nas_tf.errors.ConfigError` with one sentence naming the
setting, what it must be, and ``Received: name=value``; ``flag=True`` writes
the name as a command-line flag (``--name``) in the sentence. No TensorFlow,
no flags: configs, layers and executors call them alike.

Example:

>>> check_int("units", 32)
32
>>> check_rate("dropout", 1.5)
Traceback (most recent call last):
...
nas_tf.errors.ConfigError: dropout must be in [0, 1). Received: dropout=1.5
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from nas_tf.errors import ConfigError


def _shown(name: str, flag: bool) -> str:
    return f"--{name}" if flag else name


def check_finite(name: str, value: Any, flag: bool = False) -> None:
    """Raises unless ``value`` is a finite number (absl and ``float()`` accept
    "nan" and "inf")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)):
        raise ConfigError(f"{_shown(name, flag)} must be a finite number (not NaN or "
                          f"infinity). Received: {name}={value}")


def check_positive(name: str, value: Any, allow_zero: bool = False, flag: bool = False) -> None:
    """Raises unless ``value`` is None or > 0 (>= 0 with ``allow_zero``).

    NaN and +-infinity are refused too (``nan > 0`` is False, but ``inf > 0``
    is True: an infinite learning rate or budget is never meant).
    """
    if value is None:
        return
    check_finite(name, value, flag)
    if value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{_shown(name, flag)} must be {need}. Received: {name}={value}")


def check_int(name: str, value: Any, minimum: int = 1, flag: bool = False) -> int:
    """Returns ``value`` as an int if it is an integer >= ``minimum`` (not a
    bool), else raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{_shown(name, flag)} must be an integer >= {minimum}. "
                          f"Received: {name}={value!r}")
    return int(value)


def check_rate(name: str, value: Any) -> float:
    """Returns ``value`` as a float if it is in [0, 1) (a dropout or decay
    rate), else raises."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = math.nan
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"{name} must be in [0, 1). Received: {name}={value!r}")
    return rate


def check_choice(name: str, value: Any, choices, what: str | None = None) -> None:
    """Raises unless ``value`` is one of ``choices``: ``Unknown <what>; use
    one of a, b. Received: name='value'``."""
    if value not in choices:
        raise ConfigError(f"Unknown {what or name}; use one of {', '.join(map(str, choices))}. "
                          f"Received: {name}={value!r}")
