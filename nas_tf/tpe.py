"""Optuna's TPE sampler as a nas_tf search algorithm (``--algorithm=tpe``).

The Tree-structured Parzen Estimator (Bergstra et al. 2011; Optuna's default
sampler) behind the same ``propose`` / ``feedback`` protocol as REINFORCE,
random search and evolution, through Optuna's ask-and-tell interface on an
in-memory study. Optuna is an optional extra: ``pip install "nas_tf[optuna]"``
(Optuna >= 3.4); it is imported only when this algorithm is made.

How the space maps onto Optuna parameters:

* every :class:`~nas_tf.space.Categorical` decision with two or more values is
  one categorical parameter over the value *indices* (named as the decision);
  a decision with one value is not a parameter (its token is 0);
* every skip-connection :class:`~nas_tf.space.Anchor` gives one categorical
  parameter over {0, 1} per bit, named ``"<anchor name>[j]"`` (bit j: the
  layer of anchor j feeds this one);
* a curriculum (a decision list that grows with the number of children) just
  adds parameters: trials of an earlier stage lack them. The multivariate
  TPE models the parameters every trial has; the new ones are sampled by
  TPE one at a time from the trials that have them (randomly until there
  are ``n_startup_trials`` such trials).

The sampler is ``TPESampler(multivariate=True, constant_liar=True)`` with
Optuna's other defaults (10 random start-up trials, 24 EI candidates): the
defaults of Optuna 5, set explicitly so that Optuna 3.x/4.x behave alike.

Several children in flight: every proposal is an asked trial that stays
RUNNING until its reward is told. With the *constant liar*, TPE counts the
running trials as bad ones, so proposals made while others train are pushed
away from them instead of repeating them.

Duplicates: the loop feeds a proposal of an architecture already trained
its stored reward; that trial is told that value and counts as a completed
trial for TPE (so TPE learns from it), but it is not a new child: budgets
(``max_children``) count unique children, while ``max_proposals`` and
``patience_rounds`` count every proposal, as for the other algorithms.

Reproducibility: the sampler of each ``propose`` call is seeded from
(``config.seed``, number of proposals so far), so the same seed gives the
same sequence of architectures (on CPU, for the same order of rewards). The
checkpointed state lists every trial (tokens, value or pending) in ask order;
a resumed search rebuilds the study from it with ``study.add_trial`` and
continues exactly where the checkpoint was taken: the proposals after it are
made again, identical, and the children they name resolve from the trial
store without training. ``recover(history)`` rebuilds a study from
(tokens, reward) pairs alone (e.g. a trial store's children); that continues
sensibly but not identically (pending trials and the order of duplicates
are not in such a history).
"""

from __future__ import annotations

import collections
import math
import warnings
from typing import Sequence

import numpy as np

from nas_tf.algorithms import Algorithm
from nas_tf.errors import ConfigError
from nas_tf.space import Anchor, Categorical, Decision, Tokens

INSTALL_HINT = 'pip install "nas_tf[optuna]"'

# Trial states in the checkpointed state.
_RUNNING, _COMPLETE, _FAIL = "running", "complete", "fail"


def require_optuna():
    """Imports Optuna, or raises one ConfigError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "--algorithm=tpe needs Optuna (>= 3.4), which is not installed. Install it with: "
            f"{INSTALL_HINT}, or choose another --algorithm. Received: algorithm='tpe'"
        ) from None
    return optuna


def parameters(decisions: Sequence[Decision]) -> list[tuple[str, int]]:
    """(Optuna parameter name, number of choices) for each token of ``decisions``,
    in token order (a categorical decision with one value gives ``(name, 1)``)."""
    out = []
    for d in decisions:
        if isinstance(d, Categorical):
            out.append((d.name, d.num_choices))
        else:
            assert isinstance(d, Anchor)
            out.extend((f"{d.name}[{j}]", 2) for j in range(d.num_inputs))
    return out


class TpeSearch(Algorithm):
    """Optuna's TPE sampler (multivariate, constant liar) over a space's decisions.

    Args:
        space: The search space.
        config: The search config (``seed`` is used).

    Raises:
        ConfigError: Optuna is not installed.
    """

    name = "tpe"

    def __init__(self, space, config):
        super().__init__(space, config)
        self._optuna = require_optuna()
        # Optuna logs every trial at INFO; the search loop logs what matters.
        self._optuna.logging.set_verbosity(self._optuna.logging.ERROR)
        self._params: dict[int, tuple[list[tuple[str, int]], dict]] = {}
        self._reset_study()

    # ------------------------------------------------------------ helpers
    def _reset_study(self) -> None:
        self._trials: list[list] = []  # [tokens, value, state] per trial, in ask order
        self._pending: dict[Tokens, collections.deque] = {}
        self._study = self._optuna.create_study(direction="maximize",
                                                sampler=self._sampler(self.config.seed))

    def _sampler(self, seed: int):
        with warnings.catch_warnings():  # experimental / deprecation notes of some versions
            warnings.simplefilter("ignore")
            return self._optuna.samplers.TPESampler(seed=int(seed), multivariate=True,
                                                    constant_liar=True)

    def _reseed(self, seed: int) -> None:
        """Seeds the study's sampler as ``TPESampler(seed=seed)`` would be.

        The sampler is kept (it caches the intersection search space, which
        otherwise costs O(trials) distribution comparisons per proposal) and
        its two random states are reseeded; where an Optuna version lays them
        out differently, a new sampler gives the same proposals, only slower.
        """
        sampler = self._study.sampler
        try:
            sampler._rng.rng.seed(seed)
            sampler._random_sampler._rng.rng.seed(seed)
        except AttributeError:
            self._study.sampler = self._sampler(seed)

    def _space_of(self, width: int, decisions=None):
        """(token parameters, Optuna distributions) of the stage with ``width`` tokens."""
        if width not in self._params:
            if decisions is None:
                decisions = self.space.decisions_for_tokens(width)
            params = parameters(decisions)
            dist = self._optuna.distributions.CategoricalDistribution
            self._params[width] = (params, {name: dist(tuple(range(k)))
                                            for name, k in params if k > 1})
        return self._params[width]

    def _add(self, tokens: Tokens, value: float | None, state: str) -> None:
        """Adds a finished (or running) trial to the study without asking the sampler."""
        from optuna.trial import TrialState, create_trial

        params, dists = self._space_of(len(tokens))
        values = {name: int(t) for (name, k), t in zip(params, tokens) if k > 1}
        kind = {_RUNNING: TrialState.RUNNING, _COMPLETE: TrialState.COMPLETE,
                _FAIL: TrialState.FAIL}[state]
        self._study.add_trial(create_trial(params=values, distributions=dists, state=kind,
                                           value=value if state == _COMPLETE else None))
        if state == _RUNNING:
            self._pending.setdefault(tokens, collections.deque()).append(len(self._trials))
        self._trials.append([tokens, value, state])

    # ----------------------------------------------------------- protocol
    def propose(self, n, num_children=0):
        decisions = self.space.decisions(num_children)
        width = sum(d.width for d in decisions)
        params, dists = self._space_of(width, decisions)
        seed = np.random.SeedSequence([self.config.seed, self.num_proposed]).generate_state(1)[0]
        self._reseed(int(seed))
        self.num_proposed += n
        out = self._take_preferred(n, width)
        for tokens in out:  # a warm-up's picks: the study's first trials
            self._add(tokens, None, _RUNNING)
        for _ in range(n - len(out)):
            trial = self._study.ask(dists)
            tokens = tuple(int(trial.params[name]) if k > 1 else 0 for name, k in params)
            self._pending.setdefault(tokens, collections.deque()).append(trial.number)
            self._trials.append([tokens, None, _RUNNING])
            out.append(tokens)
        return out

    def feedback(self, tokens, rewards):
        for t, r in zip(tokens, rewards):
            t = tuple(int(x) for x in t)
            r = float(r)
            queue = self._pending.get(t)
            if not queue:  # not proposed by this instance (e.g. adopted by the loop)
                self._add(t, r if math.isfinite(r) else None,
                          _COMPLETE if math.isfinite(r) else _FAIL)
                continue
            number = queue.popleft()
            if not queue:
                del self._pending[t]
            if math.isfinite(r):
                self._study.tell(number, r)
                self._trials[number][1:] = [r, _COMPLETE]
            else:
                self._study.tell(number, state=self._optuna.trial.TrialState.FAIL)
                self._trials[number][1:] = [None, _FAIL]
        return {"trials_told": sum(1 for tr in self._trials if tr[2] != _RUNNING),
                "trials_pending": sum(len(q) for q in self._pending.values())}

    def recover(self, history):
        """Rebuilds the study from (tokens, reward) pairs, oldest first: each
        is a completed trial (pending proposals are dropped)."""
        self._reset_study()
        for t, r in history:
            r = float(r)
            self._add(tuple(int(x) for x in t), r if math.isfinite(r) else None,
                      _COMPLETE if math.isfinite(r) else _FAIL)

    def get_state(self):
        return {**super().get_state(),
                "trials": [[",".join(map(str, t)), v, s] for t, v, s in self._trials]}

    def set_state(self, state):
        super().set_state(state)
        self._reset_study()
        for text, value, kind in state.get("trials", []):
            tokens = tuple(int(x) for x in text.split(",")) if text else ()
            self._add(tokens, None if value is None else float(value), kind)
