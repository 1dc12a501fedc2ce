"""nas_tf.keras_tuner: the controller (and evolution) as KerasTuner oracles.

Fake tuners score hyperparameters without training (run_trial returns a
number computed from them); one search trains a real tiny Keras model."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

keras_tuner = pytest.importorskip(
    "keras_tuner", reason='KerasTuner is not installed (pip install "nas_tf[keras-tuner]")')

from nas_tf.errors import ConfigError, MissingExtraError, RunDirError  # noqa: E402
from nas_tf.keras_tuner import (  # noqa: E402
    RegularizedEvolutionOracle,
    RegularizedEvolutionSearch,
    ReinforceOracle,
    ReinforceSearch,
    decisions_of,
)

MAX = keras_tuner.Objective("score", "max")
MIN = keras_tuner.Objective("score", "min")


class ScoreTuner(keras_tuner.Tuner):
    """Scores a trial with ``score_fn(hp)``: no model, no training."""

    def __init__(self, score_fn, **kwargs):
        self.score_fn = score_fn
        super().__init__(**kwargs)

    def run_trial(self, trial, *args, **kwargs):
        return {"score": float(self.score_fn(trial.hyperparameters))}


class Declares(keras_tuner.HyperModel):
    """A hypermodel that only declares hyperparameters (build returns nothing)."""

    def __init__(self, declare):
        super().__init__()
        self.declare = declare

    def build(self, hp):
        self.declare(hp)


def _tuner(tmp_path, oracle, score_fn, declare=None, name="p", overwrite=True):
    return ScoreTuner(score_fn, oracle=oracle, hypermodel=Declares(declare) if declare else None,
                      directory=str(tmp_path), project_name=name, overwrite=overwrite)


def _values(oracle):
    return [dict(oracle.trials[t].hyperparameters.values) for t in oracle.start_order]


def _conditional_space(hp):
    kind = hp.Choice("kind", ["mlp", "cnn"])
    with hp.conditional_scope("kind", ["mlp"]):
        hp.Int("units", 8, 32, step=8)
    with hp.conditional_scope("kind", ["cnn"]):
        hp.Choice("kernel", [3, 5])
    hp.Int("depth", 1, 3, parent_name="kind", parent_values=["cnn"])
    hp.Boolean("dropout")
    hp.Float("lr", 0.001, 0.004, step=0.001)
    hp.Fixed("batch", 16)
    return kind


def test_choices_conditions_and_max_trials(tmp_path):
    oracle = ReinforceOracle(MAX, max_trials=12, seed=1)
    tuner = _tuner(tmp_path, oracle, lambda hp: len(hp.values), _conditional_space)
    decisions, _ = decisions_of(oracle.hyperparameters)
    assert [d.name for d in decisions] == ["kind", "units", "kernel", "depth", "dropout", "lr"]
    assert decisions[1].values == (8, 16, 24, 32) and decisions[4].values == (False, True)
    assert decisions[5].values == pytest.approx((0.001, 0.002, 0.003, 0.004))
    tuner.search(verbose=0)
    seen = _values(oracle)
    assert len(seen) == 12 == len(oracle.trials)
    assert len({tuple(sorted(v.items())) for v in seen}) == 12  # no trial twice
    for v in seen:
        assert v["kind"] in ("mlp", "cnn") and v["batch"] == 16
        assert isinstance(v["dropout"], bool) and 0.001 <= v["lr"] <= 0.004
        if v["kind"] == "mlp":
            assert v["units"] in (8, 16, 24, 32)
            assert "kernel" not in v and "depth" not in v
        else:
            assert v["kernel"] in (3, 5) and v["depth"] in (1, 2, 3) and "units" not in v
    assert {v["kind"] for v in seen} == {"mlp", "cnn"}
    assert oracle.counts["feedback"] >= 12


def test_same_name_under_two_conditions_and_token_round_trip():
    from nas_tf.keras_tuner.space import tokens_to_values, values_to_tokens

    hp = keras_tuner.HyperParameters()
    hp.Choice("kind", ["a", "b"])
    with hp.conditional_scope("kind", ["a"]):
        hp.Int("units", 1, 3)
    with hp.conditional_scope("kind", ["b"]):
        hp.Choice("units", [10, 20])
    decisions, _ = decisions_of(hp)
    assert [(d.name, d.values) for d in decisions] == [
        ("kind", ("a", "b")), ("units", (1, 2, 3)), ("units|2", (10, 20))]
    assert tokens_to_values(hp, (1, 2, 1)) == {"kind": "b", "units": 20}
    assert tokens_to_values(hp, (0, 2, 1)) == {"kind": "a", "units": 3}
    assert values_to_tokens(hp, {"kind": "a", "units": 3}) == (0, 2, 0)  # inactive: default
    assert values_to_tokens(hp, {"kind": "b", "units": 20}) == (1, 0, 1)


def _digits(hp):
    return 10 * hp.Int("a", 0, 9) + hp.Choice("b", list(range(10)))


def _share_of_high_a(oracle, n=400):
    tokens, _, _ = oracle._algo.controller.sample(n)
    return float(np.mean(tokens[:, 0] >= 5))


@pytest.mark.parametrize("objective", [MAX, MIN])
def test_objective_direction(tmp_path, objective):
    oracle = ReinforceOracle(objective, max_trials=40, seed=0)
    fed = []
    tuner = _tuner(tmp_path, oracle, _digits, lambda hp: _digits(hp))
    tuner.search(verbose=0)
    original = oracle._algo.feedback

    def spy(tokens, rewards):
        fed.extend(rewards)
        return original(tokens, rewards)

    oracle._algo.feedback = spy
    oracle.max_trials = 41
    tuner.search(verbose=0)
    last = oracle.trials[oracle.start_order[-1]]
    sign = 1 if objective.direction == "max" else -1
    assert fed[-1] == sign * last.score  # the score, negated when minimised
    share = _share_of_high_a(oracle)
    # The controller moved towards the objective's side: a >= 5 is more likely
    # after maximising than uniform (0.5), less likely after minimising.
    assert share > 0.6 if objective.direction == "max" else share < 0.4


def test_failed_trials_get_the_worst_reward(tmp_path):
    def score(hp):
        if hp.values["b"] == 0:
            raise ValueError("this configuration fails")
        return _digits(hp)

    oracle = ReinforceOracle(MAX, max_trials=30, seed=2, max_consecutive_failed_trials=30)
    tuner = _tuner(tmp_path, oracle, score, _digits)
    learned, fed = [], {}
    original_learn, original_end = oracle._learn, oracle.end_trial
    oracle._learn = lambda tokens, reward: (learned.append(reward), original_learn(tokens, reward))

    def end_trial(trial):
        before = len(learned)
        original_end(trial)
        fed[trial.trial_id] = learned[before:]  # what this trial's end fed back

    oracle.end_trial = end_trial
    tuner.search(verbose=0)
    failed = [t for t in oracle.end_order if oracle.trials[t].status == "FAILED"]
    assert failed and len(failed) < len(oracle.end_order)
    for t in failed:
        done = oracle.end_order[:oracle.end_order.index(t)]
        scores = [oracle.trials[d].score for d in done if oracle.trials[d].status == "COMPLETED"]
        assert fed[t] == ([min(scores)] if scores else [])  # the worst reward so far
    assert any(fed[t] for t in failed)
    for t in oracle.end_order:
        if oracle.trials[t].status == "COMPLETED":
            assert fed[t] == [oracle.trials[t].score]


def test_duplicates_stop_when_the_space_is_exhausted(tmp_path):
    oracle = ReinforceOracle(MAX, max_trials=50, seed=0)
    tuner = _tuner(tmp_path, oracle, lambda hp: hp.values["x"],
                   lambda hp: hp.Choice("x", [1, 2, 3]))
    tuner.search(verbose=0)  # would loop forever if duplicates were retried without end
    assert sorted(v["x"] for v in _values(oracle)) == [1, 2, 3]
    assert oracle.counts["duplicates"] > 0
    assert oracle.counts["feedback"] > 3  # duplicates taught the controller their reward


def test_a_collapsed_controller_falls_back_to_new_random_values(tmp_path):
    oracle = ReinforceOracle(MAX, max_trials=6, seed=0)
    tuner = _tuner(tmp_path, oracle, _digits, _digits)
    tuner.search(verbose=0)  # makes the controller
    oracle._algo.propose = lambda n, num_children=0: [(0, 0)] * n  # always the same
    oracle.max_trials = 10
    tuner.search(verbose=0)
    seen = _values(oracle)
    assert len(seen) == 10 and len({(v["a"], v["b"]) for v in seen}) == 10
    assert oracle.counts["fallbacks"] >= 3


def _growing(hp):
    """A space that grows while searching: units_1, units_2 appear only
    once a trial has chosen more layers than the first one had."""
    total = 0
    for i in range(hp.Int("layers", 1, 3)):
        total += hp.Int(f"units_{i}", 0, 30, step=10)
    return total + 5 * hp.Boolean("bonus")


@pytest.mark.parametrize("cls", [ReinforceOracle, RegularizedEvolutionOracle])
def test_resume_continues_the_same_search(tmp_path, cls):
    kwargs = dict(max_trials=14, seed=5)
    if cls is ReinforceOracle:
        kwargs["children_per_update"] = 3  # leaves a part-filled batch at the break
    else:
        kwargs.update(population_size=4, tournament_size=2)
    # No hypermodel: the space is discovered by the trials, and grows.
    whole = cls(MAX, **kwargs)
    _tuner(tmp_path / "whole", whole, _growing).search(verbose=0)
    assert len(whole._stages) >= 2  # the space grew during the search

    first = cls(MAX, **{**kwargs, "max_trials": 8})
    _tuner(tmp_path / "split", first, _growing).search(verbose=0)
    saved = [v.numpy() for v in first._variables()]
    second = cls(MAX, **kwargs)
    tuner = _tuner(tmp_path / "split", second, _growing, overwrite=False)
    # The state came back: the same controller (weights, Adam, sampler, baseline).
    assert second._stages == first._stages and len(second.trials) == 8
    assert second.counts == first.counts
    restored = [v.numpy() for v in second._variables()]
    assert len(restored) == len(saved)
    assert all(np.array_equal(a, b) for a, b in zip(saved, restored))
    if cls is ReinforceOracle:
        assert saved and second._pending == first._pending
    tuner.search(verbose=0)
    # ... and the search went on as if never stopped.
    assert _values(second) == _values(whole)


def test_resume_refuses_another_oracles_project(tmp_path):
    _tuner(tmp_path, RegularizedEvolutionOracle(MAX, max_trials=2, seed=0), _digits,
           _digits).search(verbose=0)
    with pytest.raises(RunDirError, match="RegularizedEvolutionOracle.*overwrite=True"):
        _tuner(tmp_path, ReinforceOracle(MAX, max_trials=4, seed=0), _digits, _digits,
               overwrite=False)


def test_float_without_step_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match=r"step.*one token.*Received: Float"):
        _tuner(tmp_path, ReinforceOracle(MAX, max_trials=2),
               lambda hp: 0, lambda hp: hp.Float("lr", 1e-4, 1e-2, sampling="log"))


def test_huge_int_range_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="more than 1000 values"):
        _tuner(tmp_path, ReinforceOracle(MAX, max_trials=2),
               lambda hp: 0, lambda hp: hp.Int("n", 0, 10 ** 6))


def test_paper_preset_updates_every_eight_trials(tmp_path):
    oracle = ReinforceOracle(MIN, max_trials=7, seed=0, preset="paper")
    assert oracle._config.children_per_update == 8
    assert oracle._config.reinforce.learning_rate == pytest.approx(6e-4)
    tuner = _tuner(tmp_path, oracle, _digits, _digits)
    tuner.search(verbose=0)
    fresh = ReinforceOracle(MIN, max_trials=7, seed=0, preset="paper")
    fresh.hyperparameters = oracle.hyperparameters.copy()
    fresh._sync()
    initial = [v.numpy() for v in fresh._algo.controller.weights]

    def unchanged():
        return all(np.array_equal(a, b.numpy())
                   for a, b in zip(initial, oracle._algo.controller.weights))

    assert oracle.counts["feedback"] == len(oracle._pending) == 7 and unchanged()
    oracle.max_trials = 9
    tuner.search(verbose=0)
    assert len(oracle._pending) == oracle.counts["feedback"] - 8 and not unchanged()


def test_real_keras_model_search(tmp_path):
    import keras

    def build(hp):
        model = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(hp.Choice("units", [2, 8]), activation="relu"),
            keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(hp.Choice("lr", [0.01, 0.05])),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    # The ready-made tuner, as keras_tuner.RandomSearch is made.
    tuner = ReinforceSearch(build, objective="val_accuracy", max_trials=2, seed=0,
                            directory=str(tmp_path), project_name="real")
    assert isinstance(tuner.oracle, ReinforceOracle)
    assert tuner.oracle.objective.direction == "max"  # inferred by KerasTuner
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=32, verbose=0)
    assert len(tuner.oracle.trials) == 2
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, keras.Model) and best.predict(x[:2], verbose=0).shape == (2, 2)
    assert tuner.get_best_hyperparameters(1)[0].values["units"] in (2, 8)
    tuner.results_summary(1)


def test_regularized_evolution_search_tunes_a_fake_model(tmp_path):
    tuner = RegularizedEvolutionSearch(Declares(_digits), objective=MAX, max_trials=12, seed=3,
                                       population_size=4, tournament_size=2,
                                       directory=str(tmp_path), project_name="evo")
    tuner.run_trial = lambda trial, *a, **k: {"score": float(_digits(trial.hyperparameters))}
    tuner.search(verbose=0)
    oracle = tuner.oracle
    assert len(oracle.trials) == 12 and len(oracle._algo.population) == 4
    # After the population filled up, each proposal is one mutation of a parent.
    seen = _values(oracle)
    for v in seen[5:]:
        assert any(sum(v[k] != p[k] for k in ("a", "b")) <= 1 for p in seen[:seen.index(v)])


def test_missing_keras_tuner_says_how_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "nas_tf.keras_tuner"
                 or m.startswith("nas_tf.keras_tuner.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "keras_tuner", None)  # "import keras_tuner" fails
    with pytest.raises(ImportError, match=r'pip install "nas_tf\[keras-tuner\]"') as e:
        importlib.import_module("nas_tf.keras_tuner")
    assert isinstance(e.value, MissingExtraError)
