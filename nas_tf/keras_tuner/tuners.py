"""Ready-made tuners, as ``keras_tuner.RandomSearch`` is for its oracle:
``ReinforceSearch(build_model, objective="val_accuracy", max_trials=20)``."""

from __future__ import annotations

import keras_tuner

from nas_tf.keras_tuner.oracle import RegularizedEvolutionOracle, ReinforceOracle


class ReinforceSearch(keras_tuner.Tuner):
    """A tuner searched by :class:`ReinforceOracle` (the paper's controller).

    Args:
        hypermodel: A ``keras_tuner.HyperModel`` or a function ``build(hp)``
            returning a compiled Keras model.
        objective, max_trials, seed, hyperparameters, tune_new_entries,
            allow_new_entries, max_retries_per_trial, max_consecutive_failed_trials,
            preset, children_per_update: as for :class:`ReinforceOracle`.
        **kwargs: ``keras_tuner.Tuner``'s (``directory``, ``project_name``,
            ``overwrite``, ...).
    """

    def __init__(self, hypermodel=None, objective=None, max_trials=10, seed=None,
                 hyperparameters=None, tune_new_entries=True, allow_new_entries=True,
                 max_retries_per_trial=0, max_consecutive_failed_trials=3,
                 preset="small_budget", children_per_update=None, **kwargs):
        oracle = ReinforceOracle(
            objective=objective, max_trials=max_trials, seed=seed,
            hyperparameters=hyperparameters, tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries, max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials, preset=preset,
            children_per_update=children_per_update)
        super().__init__(oracle, hypermodel, **kwargs)


class RegularizedEvolutionSearch(keras_tuner.Tuner):
    """A tuner searched by :class:`RegularizedEvolutionOracle`; arguments as
    for :class:`ReinforceSearch`, with ``population_size`` and ``tournament_size``."""

    def __init__(self, hypermodel=None, objective=None, max_trials=10, seed=None,
                 hyperparameters=None, tune_new_entries=True, allow_new_entries=True,
                 max_retries_per_trial=0, max_consecutive_failed_trials=3,
                 population_size=20, tournament_size=5, **kwargs):
        oracle = RegularizedEvolutionOracle(
            objective=objective, max_trials=max_trials, seed=seed,
            hyperparameters=hyperparameters, tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries, max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            population_size=population_size, tournament_size=tournament_size)
        super().__init__(oracle, hypermodel, **kwargs)
