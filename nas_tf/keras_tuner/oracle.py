"""KerasTuner oracles driven by nas_tf's search algorithms.

:class:`ReinforceOracle` is the paper's controller (Zoph & Le 2017, §3.1-3.2)
trained with REINFORCE on the tuner's objective; :class:`RegularizedEvolutionOracle`
is aging evolution (Real et al. 2019). Both are ``keras_tuner.Oracle``
subclasses: any tuner takes them (``keras_tuner.Tuner(oracle=..., hypermodel=...)``
or a subclass with its own ``run_trial``), and ``tuner.search``,
``results_summary``, ``get_best_models`` and ``overwrite=False`` work unchanged.

How a trial is made (``populate_space``): the algorithm proposes one token
tuple over the decisions of :mod:`nas_tf.keras_tuner.space`; its active values
become the trial. A proposal KerasTuner already has (it dedups trials by the
hash of their active values) is not run again: when that trial has a score,
the proposal is fed back with it (as nas_tf's own loop does with duplicates),
and the algorithm proposes again. After ``_max_collisions + 1`` (21) duplicate
proposals for one trial, the oracle takes a random configuration not tried
yet, as KerasTuner's random search does, and stops the search (status
STOPPED) when it finds none either (the space is exhausted). REINFORCE does
not learn from such a random trial (it is not the policy's sample);
evolution adds it to its population.

Rewards: the trial's score, negated when the objective is minimised. A trial
that FAILED (after KerasTuner's retries) gets the worst reward seen so far
(none, and no feedback, before any trial completed). REINFORCE updates once
``children_per_update`` rewards are in (its preset's m: 1 for
``small_budget``, 8 for ``paper``).

The space may grow while the search runs (a hyperparameter first met in a
later trial, e.g. ``units_2`` under ``hp.Int("layers", 1, 3)``). The next
proposal then extends the controller: the learned weights are kept, the new
decisions get new heads, Adam's moments restart; evolution fills the new
decisions of older parents at random.

State: everything (controller weights, Adam, sampler, baseline, the batch
being filled, each trial's tokens) is in the oracle's ``get_state()``, which
KerasTuner writes to ``oracle.json``; a tuner made again with
``overwrite=False`` continues the same search.
"""

from __future__ import annotations

import base64
import dataclasses
import math

import keras_tuner
import numpy as np
from keras_tuner.engine.trial import TrialStatus

from nas_tf.algorithms import make_algorithm
from nas_tf.config import EvolutionConfig, SearchConfig, children_per_update_preset, preset_settings
from nas_tf.errors import RunDirError
from nas_tf.keras_tuner.space import (
    HyperParameterSpace,
    decisions_of,
    tokens_to_values,
    values_to_tokens,
)

_STATE_KEY = "nas_tf"


class _AlgorithmOracle(keras_tuner.Oracle):
    """A KerasTuner oracle whose proposals come from a nas_tf algorithm."""

    #: Whether random fallback trials (not the algorithm's proposals) are fed back.
    learns_from_fallback = False

    def __init__(self, objective=None, max_trials=10, seed=None, hyperparameters=None,
                 allow_new_entries=True, tune_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3, *, config: SearchConfig):
        super().__init__(objective=objective, max_trials=max_trials,
                         hyperparameters=hyperparameters, allow_new_entries=allow_new_entries,
                         tune_new_entries=tune_new_entries, seed=seed,
                         max_retries_per_trial=max_retries_per_trial,
                         max_consecutive_failed_trials=max_consecutive_failed_trials)
        if seed is not None:  # KerasTuner draws a random seed for seed=0 ("seed or random")
            self.seed = self._seed_state = int(seed)
        self._config = config
        self._algo = None
        self._stages: list[int] = []  # number of decisions at creation and at each growth
        self._trial_tokens: dict[str, list] = {}  # trial_id -> [tokens, "policy" | "fallback"]
        self._rewards: dict[str, float] = {}  # values hash -> reward
        self._fed: set[str] = set()
        self._worst: float | None = None
        self._encoded: list | None = None  # the variables as saved, until they change
        self.counts = {"proposals": 0, "duplicates": 0, "fallbacks": 0, "feedback": 0}

    # ------------------------------------------------------------ the space
    def update_space(self, hyperparameters):
        super().update_space(hyperparameters)
        decisions_of(self.hyperparameters)  # refuses hp.Float without a step, at once

    def _sync(self):
        """The current decisions; makes or extends the algorithm to them."""
        decisions, _ = decisions_of(self.hyperparameters)
        if decisions and self._algo is None:
            config = dataclasses.replace(self._config, seed=int(self.seed) % (2 ** 31))
            self._algo = make_algorithm(HyperParameterSpace(decisions), config)
            self._stages = [len(decisions)]
        elif self._algo is not None and len(decisions) > self._stages[-1]:
            self._grow(decisions)
            self._stages.append(len(decisions))
        return decisions

    def _grow(self, decisions) -> None:
        self._algo.space = HyperParameterSpace(decisions)

    # ------------------------------------------------------------ trials
    def populate_space(self, trial_id):
        self._encoded = None  # proposing moves the sampler (and duplicates may train)
        if not self._sync():  # nothing to decide: KerasTuner's own rule
            values = self._random_values()
            status = TrialStatus.RUNNING if values is not None else TrialStatus.STOPPED
            return {"status": status, "values": values}
        for _ in range(self._max_collisions + 1):
            tokens = self._algo.propose(1)[0]
            self.counts["proposals"] += 1
            values = tokens_to_values(self.hyperparameters, tokens)
            key = self._compute_values_hash(values)
            if key not in self._tried_so_far:
                self._trial_tokens[trial_id] = [list(tokens), "policy"]
                return {"status": TrialStatus.RUNNING, "values": values}
            self.counts["duplicates"] += 1
            if key in self._rewards:
                self._learn(tokens, self._rewards[key])
        values = self._random_values()
        if values is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        self.counts["fallbacks"] += 1
        tokens = values_to_tokens(self.hyperparameters, values)
        self._trial_tokens[trial_id] = [list(tokens), "fallback"]
        return {"status": TrialStatus.RUNNING, "values": values}

    @keras_tuner.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        trial = self.trials[trial.trial_id]
        entry = self._trial_tokens.get(trial.trial_id)
        if entry is None or trial.trial_id in self._fed or trial.status not in (
                TrialStatus.COMPLETED, TrialStatus.FAILED):
            return  # not ours, already fed back, or waiting for a retry
        reward = None
        if trial.status == TrialStatus.COMPLETED and trial.score is not None \
                and math.isfinite(trial.score):
            reward = float(trial.score) if self.objective.direction == "max" \
                else -float(trial.score)
            self._rewards[self._id_to_hash[trial.trial_id]] = reward
            self._worst = reward if self._worst is None else min(self._worst, reward)
        elif trial.status == TrialStatus.FAILED:
            reward = self._worst
        self._fed.add(trial.trial_id)
        tokens, source = entry
        if reward is not None and (source == "policy" or self.learns_from_fallback):
            self._learn(tuple(tokens), reward)
            self._encoded = None
        self.save()

    def _learn(self, tokens, reward: float) -> None:
        self.counts["feedback"] += 1
        self._algo.feedback([tuple(tokens)], [reward])

    # ------------------------------------------------------------ state
    def _variables(self) -> list:
        """The TensorFlow variables of the algorithm's state (none by default)."""
        return []

    def _extra_state(self) -> dict:
        return {}

    def _set_extra_state(self, state: dict) -> None:
        pass

    def get_state(self):
        state = super().get_state()
        if self._encoded is None:  # KerasTuner saves the oracle 4 times per trial
            self._encoded = [_encode(v) for v in self._variables()]
        state[_STATE_KEY] = {
            "oracle": type(self).__name__,
            "stages": self._stages,
            "algorithm": self._algo.get_state() if self._algo is not None else None,
            "variables": self._encoded,
            "trial_tokens": self._trial_tokens,
            "rewards": self._rewards,
            "fed": sorted(self._fed),
            "worst": self._worst,
            "counts": self.counts,
            **self._extra_state(),
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        mine = state.get(_STATE_KEY)
        where = "oracle.json of " + (
            f"{self._directory}/{self._project_name}" if getattr(self, "_directory", None)
            else "the tuner's project")
        if not isinstance(mine, dict) or mine.get("oracle") != type(self).__name__:
            made_by = mine.get("oracle") if isinstance(mine, dict) else "another oracle"
            raise RunDirError(
                f"{where} was written by {made_by}, not {type(self).__name__}: resume it "
                "with the same oracle, or start afresh with overwrite=True or another "
                f"project_name. Received: oracle={type(self).__name__}")
        try:
            self._restore(mine)
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirError(
                f"{where}: the {type(self).__name__} state is corrupt ({e}); start afresh "
                "with overwrite=True or another project_name.") from None

    def _restore(self, mine: dict) -> None:
        self._algo, self._stages, self._encoded = None, [], None
        decisions, _ = decisions_of(self.hyperparameters)
        stages = [int(s) for s in mine["stages"]]
        if stages:
            self._algo = make_algorithm(
                HyperParameterSpace(decisions[:stages[0]]),
                dataclasses.replace(self._config, seed=int(self.seed) % (2 ** 31)))
            self._stages = [stages[0]]
            for s in stages[1:]:
                self._grow(decisions[:s])
                self._stages.append(s)
            self._algo.set_state(mine["algorithm"])
        variables = self._variables()
        if len(variables) != len(mine["variables"]):
            raise ValueError(f"{len(mine['variables'])} variables saved, {len(variables)} "
                             "expected")
        for v, saved in zip(variables, mine["variables"]):
            v.assign(_decode(saved, tuple(v.shape)))
        self._trial_tokens = {str(k): [list(t), s] for k, (t, s) in mine["trial_tokens"].items()}
        self._rewards = {str(k): float(r) for k, r in mine["rewards"].items()}
        self._fed = set(mine["fed"])
        self._worst = mine["worst"]
        self.counts = dict(mine["counts"])
        self._set_extra_state(mine)


def _encode(variable) -> dict:
    array = np.asarray(variable.numpy())  # tobytes() is C order (0-d arrays stay 0-d)
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def _decode(saved: dict, shape: tuple) -> np.ndarray:
    if tuple(saved["shape"]) != shape:
        raise ValueError(f"a variable of shape {tuple(saved['shape'])} saved, {shape} expected")
    array = np.frombuffer(base64.b64decode(saved["data"]), dtype=np.dtype(saved["dtype"]))
    return array.reshape(shape)


class ReinforceOracle(_AlgorithmOracle):
    """The paper's controller trained with REINFORCE, as a KerasTuner oracle.

    Args:
        objective, max_trials, seed, hyperparameters, allow_new_entries,
            tune_new_entries, max_retries_per_trial, max_consecutive_failed_trials:
            as for ``keras_tuner.oracles.RandomSearchOracle``.
        preset: ``"small_budget"`` (default; tuned for a few hundred trials) or
            ``"paper"`` (Zoph & Le's values), as ``--controller_preset`` of
            ``nas_tf.run`` (:mod:`nas_tf.config`).
        children_per_update: m, rewards per controller update (default: the
            preset's, 1 or 8).
        controller, reinforce: A ``ControllerConfig`` / ``ReinforceConfig``
            replacing the preset's.

    Example:

        oracle = ReinforceOracle(objective=keras_tuner.Objective("val_accuracy", "max"),
                                 max_trials=20, seed=0)
        tuner = keras_tuner.Tuner(oracle=oracle, hypermodel=build_model,
                                  directory="kt", project_name="reinforce")
        tuner.search(x, y, validation_data=(x_val, y_val), epochs=3)
    """

    def __init__(self, objective=None, max_trials=10, seed=None, hyperparameters=None,
                 allow_new_entries=True, tune_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3, preset="small_budget",
                 children_per_update=None, controller=None, reinforce=None):
        ctrl, rein = preset_settings(preset)
        config = SearchConfig(
            algorithm="reinforce",
            children_per_update=children_per_update or children_per_update_preset(preset),
            controller=controller or ctrl, reinforce=reinforce or rein)
        super().__init__(objective, max_trials, seed, hyperparameters, allow_new_entries,
                         tune_new_entries, max_retries_per_trial, max_consecutive_failed_trials,
                         config=config)
        self.preset = preset
        self._pending: list[tuple[tuple, float]] = []

    def _grow(self, decisions):
        super()._grow(decisions)
        self._algo.extend_decisions()

    def _learn(self, tokens, reward):
        self.counts["feedback"] += 1
        self._pending.append((tuple(tokens), float(reward)))
        m = self._config.children_per_update
        while len(self._pending) >= m:
            batch, self._pending = self._pending[:m], self._pending[m:]
            # One update per run of equal widths (tokens from before a growth are shorter).
            start = 0
            for i in range(1, len(batch) + 1):
                if i == len(batch) or len(batch[i][0]) != len(batch[start][0]):
                    part = batch[start:i]
                    self._algo.feedback([t for t, _ in part], [r for _, r in part])
                    start = i

    def _variables(self):
        a = self._algo
        if a is None:
            return []
        return [*a.controller.weights, *a.optimizer.variables, a.controller.rng.state,
                a.baseline, a.reward_var, a.baseline_ready]

    def _extra_state(self):
        return {"pending": [[list(t), r] for t, r in self._pending]}

    def _set_extra_state(self, state):
        self._pending = [(tuple(t), float(r)) for t, r in state.get("pending", [])]


class RegularizedEvolutionOracle(_AlgorithmOracle):
    """Regularized (aging) evolution (Real et al. 2019) as a KerasTuner oracle.

    The population is the ``population_size`` most recent trials; each
    proposal mutates one hyperparameter of the best of ``tournament_size``
    trials drawn from it (random proposals until the population is full).
    Other arguments as for :class:`ReinforceOracle`.
    """

    learns_from_fallback = True

    def __init__(self, objective=None, max_trials=10, seed=None, hyperparameters=None,
                 allow_new_entries=True, tune_new_entries=True, max_retries_per_trial=0,
                 max_consecutive_failed_trials=3, population_size=20, tournament_size=5):
        config = SearchConfig(algorithm="evolution", evolution=EvolutionConfig(
            population_size=population_size, tournament_size=tournament_size))
        super().__init__(objective, max_trials, seed, hyperparameters, allow_new_entries,
                         tune_new_entries, max_retries_per_trial, max_consecutive_failed_trials,
                         config=config)
