"""Weight sharing settings (``--sharing``), the same for every space that supplies it.

Without sharing (``none``, the paper's method: Zoph & Le 2017,
arXiv:1611.01578, §3) each child is trained from scratch. With ``enas``
(Pham et al. 2018, arXiv:1802.03268) a space supplies one shared model whose
sub-models are all the architectures of the space; a proposed architecture is
scored with the shared weights on a few validation batches (its reward), then
the shared weights train a few batches on it. So between two controller
updates the shared weights train on the m architectures the controller has
just sampled, and each reward is computed with weights trained on earlier
samples of the policy (never on the architecture itself, which would favour
whatever was sampled last): ENAS's alternation of shared-weight and controller
phases at the granularity of one architecture.

This module imports no TensorFlow; a space's evaluator reads the settings.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from nas_tf.errors import ConfigError
from nas_tf.validation import check_int, check_positive

#: ``none``: every child trains from scratch; ``enas``: one shared model.
SHARING_MODES = ("none", "enas")


@dataclasses.dataclass(frozen=True)
class SharingConfig:
    """How architectures are scored with shared weights.

    Attributes:
        mode: One of :data:`SHARING_MODES`.
        steps_per_child: Shared-weight training batches (windows for a
            language model) run on each scored architecture, after its score.
            ENAS (§3.2 of Pham et al.) trains the shared weights ~0.2 batches
            per architecture the controller scores; 1 keeps the shared model
            learning at the pace of the search. A fraction trains that many
            batches per architecture on average: 0.2 is one batch after
            every fifth (see :meth:`train_steps`).
        score_windows: Validation batches of a reward (ENAS: one batch). The
            same batches for every architecture, so rewards are comparable.
        top_k: At the end of a search, the ``top_k`` best-scoring
            architectures are scored again on the whole validation split and
            ranked (``ranking.json`` in the run directory).

    Raises:
        ConfigError: an unknown mode or a setting < 1.
    """

    mode: str = "none"
    steps_per_child: float = 1
    score_windows: int = 2
    top_k: int = 10

    def __post_init__(self):
        if self.mode not in SHARING_MODES:
            raise ConfigError(f"sharing must be one of {list(SHARING_MODES)}. "
                              f"Received: sharing={self.mode!r}")
        steps = self.steps_per_child
        if isinstance(steps, bool) or not isinstance(steps, numbers.Real):
            raise ConfigError(f"shared_steps_per_child must be a number > 0. "
                              f"Received: shared_steps_per_child={steps!r}")
        check_positive("shared_steps_per_child", steps)
        for name in ("score_windows", "top_k"):
            check_int(f"shared_{name}", getattr(self, name))

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def train_steps(self, index: int) -> int:
        """Shared training batches after the ``index``-th scored architecture.

        ``floor((index + 1) * s) - floor(index * s)`` for ``s =
        steps_per_child``: exactly ``s`` for an integer, and ``s`` on average
        for a fraction, e.g. 0.25 trains one batch after architectures 3, 7,
        11, ... The count depends only on ``index`` (a trial's id), so a
        resumed search keeps the schedule.

        Example:

        >>> [SharingConfig("enas", steps_per_child=0.5).train_steps(i) for i in range(4)]
        [0, 1, 0, 1]
        """
        s = self.steps_per_child
        return int(math.floor((index + 1) * s + 1e-9) - math.floor(index * s + 1e-9))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict | None) -> SharingConfig:
        """The config of a JSON dict (None: no sharing).

        Raises:
            ConfigError: unknown keys or bad values.
        """
        if obj is None:
            return cls()
        unknown = sorted(set(obj) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"Unknown sharing setting(s) {unknown}. Received: {obj!r}")
        return cls(**obj)


def sharing_config(value) -> SharingConfig:
    """A SharingConfig from itself, its mode (``"enas"``) or its JSON form (a search
    config's ``sharing`` field as given, or as a run directory recorded it).

    Raises:
        ConfigError: anything else, or a bad mode or setting.
    """
    if isinstance(value, SharingConfig):
        return value
    if isinstance(value, str):
        return SharingConfig(mode=value)
    if isinstance(value, dict):
        return SharingConfig.from_json(value)
    raise ConfigError(f"sharing must be a mode ('none', 'enas'), a dict or a SharingConfig. "
                      f"Received: sharing={value!r}")
