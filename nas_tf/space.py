"""Search spaces as sequences of decisions.

A search space is, to the controller and to every search algorithm, nothing
but a sequence of *decisions* (Zoph & Le 2017, arXiv:1611.01578, §3.1–3.4):

* :class:`Categorical` — pick one of ``len(values)`` values; one token.
* :class:`Anchor` — a skip-connection anchor point (§3.3): for the k-th anchor
  of the sequence, one yes/no token for each of the k anchors before it.

The tokens of one architecture are a flat tuple of ints: one int for each
categorical decision (the index of the chosen value) and ``num_inputs`` ints
(0 or 1) for each anchor, in decision order. A space turns tokens into a
*spec* (a frozen, hashable, JSON-serialisable dataclass with no TensorFlow in
it) and a spec back into tokens. Nothing here imports TensorFlow.

A space may grow with the number of architectures sampled (a curriculum,
§4.1): ``decisions(n)`` returns the list in force after ``n`` samples (or
unique children, see ``SearchSpace.curriculum_count``), and a longer list
always extends a shorter one (the earlier list is a prefix of the later one).
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from typing import Any, Sequence

from nas_tf.errors import InvalidArchitectureError

Tokens = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Categorical:
    """One categorical decision.

    Args:
        name: Unique name of the decision within its space (e.g. "layer_3/filters").
        values: The candidate values (JSON scalars), at least one.
    """

    name: str
    values: tuple

    def __post_init__(self):
        if not self.name:
            raise ValueError(f"Categorical decision needs a name. Received: name={self.name!r}")
        object.__setattr__(self, "values", tuple(self.values))
        if len(self.values) < 1:
            raise ValueError(
                f"Categorical decision {self.name!r} needs at least one value. "
                f"Received: values={self.values!r}"
            )

    @property
    def width(self) -> int:
        """Number of tokens the decision takes in a token tuple."""
        return 1

    @property
    def num_choices(self) -> int:
        return len(self.values)


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A skip-connection anchor point (paper §3.3).

    The k-th anchor of a decision sequence (counting from 0) predicts one
    yes/no token per earlier anchor: token j is 1 when the layer of anchor j
    feeds the layer of this anchor. ``num_inputs`` must equal k; the first
    anchor has no inputs (and no tokens) but its controller state is what the
    later anchors attend to.

    Args:
        name: Unique name of the decision (e.g. "layer_3/inputs").
        num_inputs: Number of earlier anchors (= number of tokens).
    """

    name: str
    num_inputs: int

    def __post_init__(self):
        if not self.name:
            raise ValueError(f"Anchor decision needs a name. Received: name={self.name!r}")
        if self.num_inputs < 0:
            raise ValueError(
                f"Anchor {self.name!r} needs num_inputs >= 0. "
                f"Received: num_inputs={self.num_inputs}"
            )

    @property
    def width(self) -> int:
        return self.num_inputs


Decision = Categorical | Anchor


def validate_decisions(decisions: Sequence[Decision]) -> tuple[Decision, ...]:
    """Checks names are unique and the anchors are numbered in order."""
    decisions = tuple(decisions)
    names = set()
    anchors = 0
    for d in decisions:
        if not isinstance(d, (Categorical, Anchor)):
            raise TypeError(f"A decision must be Categorical or Anchor. Received: {d!r}")
        if d.name in names:
            raise ValueError(f"Duplicate decision name. Received: name={d.name!r}")
        names.add(d.name)
        if isinstance(d, Anchor):
            if d.num_inputs != anchors:
                raise ValueError(
                    f"Anchor {d.name!r} is anchor number {anchors} and must have "
                    f"num_inputs={anchors}. Received: num_inputs={d.num_inputs}"
                )
            anchors += 1
    return decisions


def token_width(decisions: Sequence[Decision]) -> int:
    """Total number of tokens of a decision sequence."""
    return sum(d.width for d in decisions)


def split_tokens(decisions: Sequence[Decision], tokens: Sequence[int]) -> list:
    """Splits flat tokens into one entry per decision.

    Returns a list with an int for each categorical decision and a tuple of
    0/1 ints for each anchor.

    Raises:
        InvalidArchitectureError: wrong length or a token out of range.
    """
    tokens = tuple(int(t) for t in tokens)
    if len(tokens) != token_width(decisions):
        raise InvalidArchitectureError(
            f"Expected {token_width(decisions)} tokens for {len(decisions)} decisions. "
            f"Received: {len(tokens)} tokens"
        )
    out, pos = [], 0
    for d in decisions:
        if isinstance(d, Categorical):
            t = tokens[pos]
            if not 0 <= t < d.num_choices:
                raise InvalidArchitectureError(
                    f"Token for decision {d.name!r} must be in [0, {d.num_choices}). Received: {t}"
                )
            out.append(t)
        else:
            bits = tokens[pos : pos + d.width]
            if any(b not in (0, 1) for b in bits):
                raise InvalidArchitectureError(
                    f"Anchor tokens for {d.name!r} must be 0 or 1. Received: {bits}"
                )
            out.append(tuple(bits))
        pos += d.width
    return out


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of a JSON-able object (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def spec_hash(space_name: str, spec_json: dict) -> str:
    """Stable hash of a spec: sha256 of the space name and canonical spec JSON."""
    text = space_name + "\n" + canonical_json(spec_json)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SearchSpace(abc.ABC):
    """A search space: decisions, and the mapping between tokens and specs.

    Subclasses set ``name`` and implement the abstract methods. A space holds
    no TensorFlow state and must be picklable (it travels to worker processes).
    """

    #: Short name of the space, as given to ``--space``.
    name: str = ""
    #: What ``decisions(n)`` counts for a curriculum: ``"samples"`` (every
    #: proposal, duplicates and failures included; Zoph & Le §4.1) or
    #: ``"children"`` (unique finished children). The search loop passes it.
    curriculum_count: str = "samples"

    @abc.abstractmethod
    def decisions(self, num_children: int = 0) -> tuple[Decision, ...]:
        """The decisions in force after ``num_children`` samples (or unique
        children, as :attr:`curriculum_count` says).

        A space without a curriculum ignores ``num_children``. A growing space
        returns longer lists for larger counts; each extends the previous.
        """

    def final_decisions(self) -> tuple[Decision, ...]:
        """The longest decision list the space will ever use (the last
        curriculum stage). The controller creates weights for all of it."""
        return self.decisions(0)

    @abc.abstractmethod
    def tokens_to_spec(self, tokens: Sequence[int]) -> Any:
        """Builds the spec for flat tokens (any length a curriculum stage gives).

        Raises:
            InvalidArchitectureError: the tokens do not fit the space.
        """

    @abc.abstractmethod
    def spec_to_tokens(self, spec: Any) -> Tokens:
        """The flat tokens that produce ``spec``."""

    @abc.abstractmethod
    def spec_from_json(self, obj: Any) -> Any:
        """Rebuilds (and validates) a spec from its JSON form.

        Raises:
            InvalidArchitectureError: ``obj`` is not a spec of this space.
        """

    def spec_to_json(self, spec: Any) -> dict:
        """The JSON form of a spec (by default ``spec.to_json()``)."""
        return spec.to_json()

    def describe(self, spec: Any) -> str:
        """A human-readable (markdown) description of a spec."""
        return "```\n" + json.dumps(self.spec_to_json(spec), indent=1, sort_keys=True) + "\n```"

    def draw(self, spec: Any) -> Any:
        """A picture of a spec as a ``matplotlib.figure.Figure``, or None when the
        space has none (the default). Spaces import matplotlib only here."""
        return None

    def hparams(self, spec: Any) -> dict[str, Any]:
        """The spec's decisions as a flat dict of scalars (for the HParams dashboard)."""
        decisions = self.decisions_for_tokens(len(self.spec_to_tokens(spec)))
        out = {}
        for d, v in zip(decisions, split_tokens(decisions, self.spec_to_tokens(spec))):
            if isinstance(d, Categorical):
                out[d.name] = d.values[v]
            else:
                out[d.name] = ",".join(str(j) for j, b in enumerate(v) if b) or "-"
        return out

    def config(self) -> dict:
        """JSON-able description of the space; a run directory records it and
        refuses to resume under a different one."""
        return {"name": self.name}

    def as_recorded(self, config: dict) -> "SearchSpace | None":
        """This space as a run directory recorded it (``config``), or None
        when ``config`` describes another space. Spaces whose format changed
        return an equivalent space in the recorded (older) format, so old
        runs resume with their own decisions."""
        return self if canonical_json(config) == canonical_json(self.config()) else None

    def hash_spec(self, spec: Any) -> str:
        return spec_hash(self.name, self.spec_to_json(spec))

    def decisions_for_tokens(self, width: int) -> tuple[Decision, ...]:
        """The curriculum stage whose decisions take exactly ``width`` tokens."""
        n = 0
        seen = set()
        while True:
            decisions = self.decisions(n)
            w = token_width(decisions)
            if w == width:
                return decisions
            if w > width or w in seen:
                raise InvalidArchitectureError(
                    f"No stage of space {self.name!r} takes {width} tokens."
                )
            seen.add(w)
            n = self._next_stage(n)

    def _next_stage(self, num_children: int) -> int:
        """The child count at which the next curriculum stage starts.

        Spaces with a curriculum override it; the default has one stage.
        """
        raise InvalidArchitectureError(f"Space {self.name!r} has a single stage.")
