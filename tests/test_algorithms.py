"""Search algorithms: REINFORCE (arXiv:1611.01578 §3.2), random search and
aging evolution, through their common propose / feedback interface."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import ToySpace, target_reward, toy_decisions

from nas_tf import config as cfgmod
from nas_tf.algorithms import (
    ALGORITHM_CLASSES,
    AgingEvolution,
    RandomSearch,
    Reinforce,
    make_algorithm,
    mutate_tokens,
    random_tokens,
)
from nas_tf.config import EvolutionConfig, SearchConfig
from nas_tf.errors import ConfigError
from nas_tf.space import Anchor, Categorical, split_tokens, token_width

# ~8 categorical decisions x 5 values and three anchors (3 skip bits).
LEARN_SPACE = ToySpace(num_layers=3, num_values=5, extra_categorical=5)


def _small_budget(**kw) -> SearchConfig:
    return SearchConfig(
        algorithm="reinforce",
        max_children=300,
        children_per_update=cfgmod.children_per_update_preset("small_budget"),
        controller=cfgmod.controller_preset("small_budget"),
        reinforce=cfgmod.reinforce_preset("small_budget"),
        **kw,
    )


def _drive(alg, decisions, target, num, m):
    """Proposes and feeds back until ``num`` rewards; returns them in order."""
    rewards = []
    while len(rewards) < num:
        tokens = alg.propose(m)
        r = [target_reward(decisions, t, target) for t in tokens]
        alg.feedback(tokens, r)
        rewards.extend(r)
    return np.asarray(rewards[:num])


@pytest.fixture(scope="module")
def reinforce():
    return Reinforce(LEARN_SPACE, _small_budget(seed=0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reinforce_learns_a_hidden_target_much_faster_than_random(reinforce, seed):
    ds = LEARN_SPACE.decisions()
    target = random_tokens(ds, np.random.default_rng(1000 + seed))
    cfg = _small_budget(seed=seed)
    reinforce.reset(cfg)
    m = cfg.children_per_update
    rl = _drive(reinforce, ds, target, 300, m)
    rnd = _drive(RandomSearch(LEARN_SPACE, dataclasses.replace(cfg, algorithm="random")),
                 ds, target, 300, m)
    # Random search stays near the chance level (1/5 per categorical decision,
    # 1/2 per skip bit: ~0.28); REINFORCE concentrates on the target.
    assert rnd[-100:].mean() < 0.4
    assert rl[-100:].mean() > 0.65, rl.reshape(-1, 50).mean(axis=1)
    assert rl[-100:].mean() > rnd[-100:].mean() + 0.3
    # It moves early: already clearly ahead within the first 150 children.
    assert rl[50:150].mean() > rnd[50:150].mean() + 0.15


def test_reinforce_feedback_stats_and_baseline(reinforce):
    cfg = _small_budget(seed=4)
    reinforce.reset(cfg)
    tokens = reinforce.propose(5)
    assert reinforce.num_proposed == 5 and len(tokens) == 5
    assert np.isfinite(reinforce.last_entropy) and reinforce.last_entropy > 0
    stats = reinforce.feedback(tokens, [0.5] * 5)
    assert set(stats) >= {"loss", "baseline", "entropy", "advantage_abs"}
    # First batch: the baseline starts at the batch mean, so no advantage.
    assert stats["advantage_abs"] == pytest.approx(0.0, abs=1e-6)
    assert stats["baseline"] == pytest.approx(0.5)
    stats = reinforce.feedback(tokens, [1.0] * 5)
    d = cfg.reinforce.baseline_decay
    b = 0.5
    for _ in range(5):
        b = d * b + (1 - d) * 1.0
    assert stats["baseline"] == pytest.approx(b, rel=1e-5)


def test_reinforce_same_seed_same_proposals(reinforce):
    ds = LEARN_SPACE.decisions()
    target = random_tokens(ds, np.random.default_rng(7))

    def trace(seed):
        reinforce.reset(_small_budget(seed=seed))
        out = []
        for _ in range(4):
            t = reinforce.propose(5)
            reinforce.feedback(t, [target_reward(ds, x, target) for x in t])
            out.append(t)
        return out

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def test_reinforce_reset_refuses_other_settings(reinforce):
    other = dataclasses.replace(_small_budget(), children_per_update=7)
    with pytest.raises(ValueError, match="only the seed"):
        reinforce.reset(other)


@pytest.mark.parametrize("algorithm", ["random", "evolution"])
def test_random_and_evolution_are_deterministic_for_a_seed(algorithm):
    space = ToySpace(num_layers=3, num_values=4)
    ds = space.decisions()

    def trace(seed):
        cfg = SearchConfig(algorithm=algorithm, seed=seed,
                           evolution=EvolutionConfig(population_size=6, tournament_size=3))
        alg = make_algorithm(space, cfg)
        out = []
        for _ in range(6):
            t = alg.propose(4)
            for x in t:
                split_tokens(ds, x)  # valid tokens
            alg.feedback(t, [sum(x) / 10.0 for x in t])
            out.append(t)
        return out

    a = trace(1)
    assert a == trace(1)
    assert a != trace(2)


def test_make_algorithm_names():
    space = ToySpace(num_layers=1)
    # tpe (an optional extra) is made lazily by make_algorithm; see tests/test_tpe.py.
    assert set(ALGORITHM_CLASSES) | {"tpe"} == set(cfgmod.ALGORITHMS)
    assert isinstance(make_algorithm(space, SearchConfig(algorithm="random")), RandomSearch)
    assert isinstance(make_algorithm(space, SearchConfig(algorithm="evolution")), AgingEvolution)
    with pytest.raises(ConfigError, match="Unknown algorithm"):
        SearchConfig(algorithm="bayes")


def _changed_decisions(decisions, a, b):
    pairs = zip(split_tokens(decisions, a), split_tokens(decisions, b))
    return [i for i, (x, y) in enumerate(pairs) if x != y]


@pytest.mark.parametrize("seed", range(5))
def test_mutation_changes_exactly_one_decision(seed):
    ds = toy_decisions(4, num_values=3) + (Categorical("fixed", ("only",)),)
    rng = np.random.default_rng(seed)
    picked = set()
    for _ in range(200):
        parent = random_tokens(ds, rng)
        child = mutate_tokens(ds, parent, rng)
        changed = _changed_decisions(ds, parent, child)
        assert len(changed) == 1, (parent, child)
        d = ds[changed[0]]
        picked.add(d.name)
        assert d.name != "fixed"
        if isinstance(d, Anchor):  # exactly one skip bit flips
            p, c = split_tokens(ds, parent)[changed[0]], split_tokens(ds, child)[changed[0]]
            assert sum(x != y for x, y in zip(p, c)) == 1
    # Every mutable decision gets picked (a zero-input anchor never is).
    assert picked == {d.name for d in ds if d.name not in ("fixed", "layer_0/inputs")}


def test_mutation_of_a_space_with_nothing_to_mutate():
    ds = (Categorical("a", (1,)), Anchor("x", 0))
    assert mutate_tokens(ds, (0,), np.random.default_rng(0)) == (0,)


def test_evolution_population_ages_and_tournament_mutates_the_best():
    space = ToySpace(num_layers=3, num_values=4)
    ds = space.decisions()
    p = 5
    # Tournament over the whole population: the parent is always the best.
    cfg = SearchConfig(algorithm="evolution", seed=0,
                       evolution=EvolutionConfig(population_size=p, tournament_size=p))
    alg = AgingEvolution(space, cfg)
    rng = np.random.default_rng(0)
    first = alg.propose(p)  # random until the population is full
    assert len(set(first)) > 1
    best = random_tokens(ds, rng)
    history = [(best, 1.0)] + [(random_tokens(ds, rng), 0.1 * i) for i in range(1, p)]
    alg.feedback([t for t, _ in history], [r for _, r in history])
    assert len(alg.population) == p
    for child in alg.propose(20):
        assert len(_changed_decisions(ds, best, child)) == 1
    # Aging: p younger (worse) children push the best one out.
    young = [(random_tokens(ds, rng), 0.01 * i) for i in range(p)]
    alg.feedback([t for t, _ in young], [r for _, r in young])
    assert len(alg.population) == p
    assert all(t != best for t, _ in alg.population)
    assert [t for t, _ in alg.population] == [t for t, _ in young]
    oldest_best = max(young, key=lambda x: x[1])[0]
    for child in alg.propose(10):
        assert len(_changed_decisions(ds, oldest_best, child)) == 1
    # State round trip (what a checkpoint holds).
    again = AgingEvolution(space, cfg)
    again.set_state(alg.get_state())
    assert list(again.population) == list(alg.population)
    assert again.num_proposed == alg.num_proposed
    assert again.propose(3) == alg.propose(3)


def test_evolution_recover_and_growing_space():
    space = ToySpace(num_layers=3, num_values=4, grow_every=4, start_layers=1)
    cfg = SearchConfig(algorithm="evolution", seed=2,
                       evolution=EvolutionConfig(population_size=4, tournament_size=2))
    alg = AgingEvolution(space, cfg)
    short = alg.propose(4, num_children=0)
    assert all(len(t) == 1 for t in short)
    alg.recover([(t, float(i)) for i, t in enumerate(short)])
    assert len(alg.population) == 4
    # Stage 3 (3 layers): parents from stage 1 are extended, then mutated.
    long = alg.propose(6, num_children=8)
    assert all(len(t) == token_width(space.decisions(8)) == 6 for t in long)
    for t in long:
        space.tokens_to_spec(t)


def test_random_tokens_cover_all_values():
    ds = toy_decisions(3, num_values=4)
    rng = np.random.default_rng(0)
    seen = np.array([random_tokens(ds, rng) for _ in range(400)])
    pos = 0
    for d in ds:  # every value of every decision (an anchor's bits: 0 and 1)
        values = set(range(d.num_choices)) if isinstance(d, Categorical) else {0, 1}
        for c in range(pos, pos + d.width):
            assert set(seen[:, c]) == values, (d, c)
        pos += d.width
    assert pos == seen.shape[1]
