"""What an export needs from a space: the exporter protocol and its helpers.

A space's plug-in (:mod:`nas_tf.plugins`) supplies an exporter with the
:class:`SpaceExporter` methods; :func:`get_exporter` finds it by the space's
name. The export itself (choosing the child, writing the files, the command
line) is :mod:`nas_tf.export`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Protocol

from nas_tf.errors import ConfigError

_log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"
CELL_FILE = "cell.keras"
CELL_SPEC_FILE = "cell.json"
README_FILE = "README.md"
SAVED_MODEL_DIR = "saved_model"

class NoModelBuilderError(ConfigError):
    """The space has no model builder (a table benchmark such as nb201)."""


def space_from_config(config: dict):
    """Rebuilds a search space from the ``space.config()`` a run recorded,
    through the space's plug-in (see :func:`nas_tf.plugins.space_from_config`).

    Raises:
        RunDirError: no installed plug-in provides that space.
    """
    from nas_tf import plugins

    return plugins.space_from_config(config)


def config_from(cls, base: dict, overrides: dict, what: str):
    """``cls(**{**base, **overrides})`` keeping only known fields."""
    from nas_tf.plugins import setting_names

    fields = set(setting_names(cls))
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"Unknown {what} setting(s) {unknown}; use some of {sorted(fields)}. "
                          f"Received: child_config={overrides}")
    dropped = sorted(set(base) - fields)
    if dropped:
        _log.warning("Ignoring recorded %s settings %s (not known to this version).", what, dropped)
    values = {k: v for k, v in base.items() if k in fields}
    values.update(overrides)
    return cls(**values)


# ----------------------------------------------------------------------------
# The exporter protocol and the adapters of the spaces.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Retrained:
    """What :meth:`SpaceExporter.retrain` returns.

    Attributes:
        model: The exportable Keras model, trained.
        metrics: Test metrics and training facts (JSON numbers).
        extras: Further Keras objects to save, ``{file name: keras model}``.
        extra_json: Further JSON files, ``{file name: object}``.
        saved_model: Also export ``model`` as a TensorFlow SavedModel (for
            serving) into ``saved_model/``.
    """

    model: Any
    metrics: dict
    extras: dict = dataclasses.field(default_factory=dict)
    extra_json: dict = dataclasses.field(default_factory=dict)
    saved_model: bool = False


class SpaceExporter(Protocol):
    """How a space turns a spec into a saved Keras model.

    ``child_config`` reads the recorded evaluator config (plus overrides);
    ``build`` builds the exportable model with fresh weights; ``retrain``
    trains it from scratch on the full training set and evaluates on test.
    A space with no model (a table benchmark) sets ``has_model = False`` and
    ``message`` (what its export holds instead). ``readme_lines(retrain_epochs)``
    (optional) adds the space's lines to the export's README.
    """

    space_name: str
    has_model: bool

    def child_config(self, recorded: dict | None, overrides: dict, retrain_epochs: int | None): ...

    def build(self, space, spec, child_config) -> Retrained: ...

    def retrain(self, space, spec, child_config, *, seed: int,
                test_limit: int | None) -> Retrained: ...


def get_exporter(space_name: str) -> SpaceExporter:
    """The exporter of a space, by name (from the space's plug-in).

    Raises:
        ConfigError: no such space, or it has no exporter.

    Example:

    >>> get_exporter("rnn").space_name
    'rnn'
    """
    from nas_tf import plugins

    exporter = plugins.get(space_name).exporter()
    if exporter is None:
        raise ConfigError(f"The space {space_name!r} has no exporter. "
                          f"Received: space={space_name!r}")
    return exporter
