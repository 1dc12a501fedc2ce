"""KerasTuner hyperparameters as the categorical decisions of nas_tf's controller.

Every tunable hyperparameter of a ``keras_tuner.HyperParameters`` space becomes
one :class:`nas_tf.space.Categorical` decision, in the order KerasTuner holds
them (new hyperparameters are appended, so a space that grows while the
search runs only ever extends its decision list):

* ``hp.Choice`` -> its values;
* ``hp.Boolean`` -> (False, True);
* ``hp.Int`` -> ``range(min_value, max_value + 1, step)`` (KerasTuner's step
  defaults to 1; ``sampling="log"`` with a step gives min * step**k), at most
  :data:`MAX_VALUES` values;
* ``hp.Float`` -> its values on the step's grid; without a step it is refused
  (the controller writes one token from a finite list per decision);
* ``hp.Fixed`` -> no decision (its value is always used).

Conditional hyperparameters (``hp.conditional_scope``, ``parent_name``) are
decisions like the others: the controller writes a token for each, and the
values of the ones that are inactive for the chosen parent values are left
out of the trial (as KerasTuner's own oracles do), so their tokens do not
change the trial.
"""

from __future__ import annotations

import itertools
from typing import Sequence

from keras_tuner import HyperParameters
from keras_tuner.engine import hyperparameters as kt_hp

from nas_tf.errors import ConfigError
from nas_tf.space import Categorical, SearchSpace, Tokens

#: The most values one hyperparameter may take (an ``hp.Int`` range beyond it is refused).
MAX_VALUES = 1000


def _values_of(hp) -> tuple | None:
    """The finite list of values of ``hp``, or None for a Fixed one.

    Raises:
        ConfigError: an ``hp.Float`` without a step, an unknown kind, or too many values.
    """
    if isinstance(hp, kt_hp.Fixed):
        return None
    if isinstance(hp, kt_hp.Boolean):
        return (False, True)
    if isinstance(hp, kt_hp.Choice):
        return tuple(hp.values)
    if isinstance(hp, (kt_hp.Int, kt_hp.Float)):
        kind = "Int" if isinstance(hp, kt_hp.Int) else "Float"
        if hp.step is None:
            raise ConfigError(
                f"The nas_tf oracles need a step for hp.{kind}({hp.name!r}): the controller "
                "writes one token per hyperparameter, chosen from a finite list of values. "
                f"Give it a step (e.g. hp.{kind}({hp.name!r}, {hp.min_value}, {hp.max_value}, "
                "step=...)) or use hp.Choice. "
                f"Received: {hp!r}")
        values = tuple(itertools.islice(hp.values, MAX_VALUES + 1))
        if len(values) > MAX_VALUES:
            raise ConfigError(
                f"hp.{kind}({hp.name!r}) takes more than {MAX_VALUES} values; the controller "
                "needs one softmax entry per value. Use a larger step or hp.Choice. "
                f"Received: {hp!r}")
        cast = int if kind == "Int" else float
        return tuple(cast(v) for v in values)
    raise ConfigError(
        "The nas_tf oracles tune hp.Choice, hp.Int, hp.Boolean, hp.Float with a step and "
        f"hp.Fixed. Received: {hp!r}")


def decisions_of(hyperparameters: HyperParameters) -> tuple[tuple[Categorical, ...], tuple]:
    """The decisions of a KerasTuner space and, aligned with them, the
    hyperparameter objects they decide.

    Two hyperparameters may share a name under different conditions; their
    decisions are then named ``name``, ``name|2``, ... in order.
    """
    decisions, hps, seen = [], [], {}
    for hp in hyperparameters.space:
        values = _values_of(hp)
        if values is None:
            continue
        seen[hp.name] = seen.get(hp.name, 0) + 1
        name = hp.name if seen[hp.name] == 1 else f"{hp.name}|{seen[hp.name]}"
        decisions.append(Categorical(name, values))
        hps.append(hp)
    return tuple(decisions), tuple(hps)


class HyperParameterSpace(SearchSpace):
    """A fixed list of decisions derived from a KerasTuner space (one stage of
    it: the oracle makes a new one when the space grows).

    The algorithms see only ``decisions()``; the spec of tokens is the tuple
    of the chosen values, one per decision.
    """

    name = "keras_tuner"

    def __init__(self, decisions: Sequence[Categorical]):
        self._decisions = tuple(decisions)

    def decisions(self, num_children: int = 0):
        return self._decisions

    def tokens_to_spec(self, tokens):
        return tuple(d.values[int(t)] for d, t in zip(self._decisions, tokens))

    def spec_to_tokens(self, spec) -> Tokens:
        return tuple(d.values.index(v) for d, v in zip(self._decisions, spec))

    def spec_from_json(self, obj):
        return tuple(obj)

    def spec_to_json(self, spec) -> dict:
        return {"values": list(spec)}


def tokens_to_values(hyperparameters: HyperParameters, tokens: Sequence[int]) -> dict:
    """The trial values of ``tokens`` (a prefix of the space's decisions):
    every active hyperparameter gets its token's value (Fixed ones their
    value, ones beyond the tokens their default); inactive ones are left out."""
    decisions, hps = decisions_of(hyperparameters)
    chosen = {id(hp): d.values[int(t)] for d, hp, t in zip(decisions, hps, tokens)}
    out = HyperParameters()
    for hp in hyperparameters.space:
        out.merge([hp])
        if out.is_active(hp):
            if isinstance(hp, kt_hp.Fixed):
                out.values[hp.name] = hp.value
            else:
                out.values[hp.name] = chosen.get(id(hp), hp.default)
    return out.values


def values_to_tokens(hyperparameters: HyperParameters, values: dict) -> Tokens:
    """Tokens for trial ``values`` (a configuration the controller did not
    write, e.g. a random fallback): each decision takes the index of its
    hyperparameter's value, or of its default when the value is absent
    (inactive) or not on the decision's list (the nearest one for numbers)."""
    decisions, hps = decisions_of(hyperparameters)
    out = []
    for d, hp in zip(decisions, hps):
        active = all(c.is_active(values) for c in hp.conditions)
        v = values.get(hp.name, hp.default) if active else hp.default
        if v in d.values:
            out.append(d.values.index(v))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and all(
                isinstance(x, (int, float)) for x in d.values):
            out.append(min(range(len(d.values)), key=lambda i: abs(d.values[i] - v)))
        else:
            out.append(d.values.index(hp.default) if hp.default in d.values else 0)
    return tuple(out)
