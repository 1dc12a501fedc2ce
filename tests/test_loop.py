"""The search loop end to end with instant fake evaluators: budgets, dedup,
collapsed policies, summary.json, failures, run-directory checks, and resume
after the search process is killed."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TESTS_DIR, FakeEvaluator, ToySpace, run_events

from nas_tf import config as cfgmod
from nas_tf.algorithms import Algorithm, RandomSearch, Reinforce
from nas_tf.config import ControllerConfig, EvolutionConfig, SearchConfig
from nas_tf.errors import RunDirError
from nas_tf.loop import SUMMARY_FILE, read_trials, run_search
from nas_tf.store import DONE, FAILED

SUMMARY_KEYS = {"space", "algorithm", "seed", "children_trained", "children_failed",
                "best_reward", "best_spec", "wall_time_s", "status", "stop_reason",
                "proposals", "duplicates", "max_children"}


def growing_space() -> ToySpace:
    """2 layers (3 tokens) for the first 6 children, then 3 layers (6 tokens)."""
    return ToySpace(num_layers=3, num_values=4, grow_every=6, start_layers=2)


def reinforce_config(seed: int = 0, max_children: int = 14) -> SearchConfig:
    # A one-layer controller: the loop's behaviour does not depend on its depth,
    # and it traces ~30% faster (tests/test_controller.py covers two layers).
    return SearchConfig(algorithm="reinforce", max_children=max_children, children_per_update=4,
                        seed=seed, reinforce=cfgmod.reinforce_preset("small_budget"),
                        controller=ControllerConfig(num_layers=1))


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


class ConstantAlgorithm(Algorithm):
    """A collapsed policy: always proposes the same architecture."""

    name = "random"

    def __init__(self, space, config, tokens):
        super().__init__(space, config)
        self.tokens = tuple(tokens)

    def propose(self, n, num_children=0):
        self.num_proposed += n
        return [self.tokens] * n


class SpyRandom(RandomSearch):
    """Random search that records what the loop feeds back."""

    def __init__(self, space, config):
        super().__init__(space, config)
        self.fed: list[tuple[tuple, float]] = []

    def feedback(self, tokens, rewards):
        self.fed.extend(zip(map(tuple, tokens), rewards))
        return {}


class FlakyEvaluator(FakeEvaluator):
    """Fails (raises) on some call numbers and returns NaN on others."""

    def __init__(self, space, raise_calls=(), nan_calls=(), **kw):
        super().__init__(space, **kw)
        self.raise_calls, self.nan_calls = set(raise_calls), set(nan_calls)

    def evaluate(self, spec, context):
        n = len(self.calls) + 1
        if n in self.raise_calls:
            self.calls.append(tuple(spec.tokens))
            raise RuntimeError(f"synthetic failure at call {n}")
        if n in self.nan_calls:
            self.calls.append(tuple(spec.tokens))
            from nas_tf.evaluator import EvalResult
            return EvalResult(reward=float("nan"))
        return super().evaluate(spec, context)


class SummaryPeekEvaluator(FakeEvaluator):
    """Reads summary.json while training each child."""

    def __init__(self, space):
        super().__init__(space)
        self.seen = []

    def evaluate(self, spec, context):
        run_dir = Path(context.log_dir).parents[1]
        self.seen.append(json.loads((run_dir / SUMMARY_FILE).read_text())["children_trained"])
        return super().evaluate(spec, context)


@pytest.fixture(scope="module")
def reinforce():
    """One compiled REINFORCE algorithm for the growing space; tests reset() it."""
    return Reinforce(growing_space(), reinforce_config())


# ---------------------------------------------------------------------------
# End to end.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["random", "evolution", "reinforce"])
def test_end_to_end_smoke(tmp_path, algorithm, reinforce):
    space = growing_space()
    ev = FakeEvaluator(space)
    if algorithm == "reinforce":
        cfg = reinforce_config(seed=1, max_children=14)
        reinforce.reset(cfg)
        alg = reinforce
    else:
        cfg = SearchConfig(algorithm=algorithm, max_children=14, children_per_update=4, seed=1,
                           evolution=EvolutionConfig(population_size=4, tournament_size=2))
        alg = None
    summary = run_search(space, ev, run_dir=str(tmp_path / "run"), config=cfg, algorithm=alg)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["children_trained"] == 14 and summary["children_failed"] == 0
    assert summary["status"] == "finished" and "budget reached" in summary["stop_reason"]
    assert (summary["space"], summary["algorithm"], summary["seed"]) == ("toy", algorithm, 1)
    trials = read_trials(tmp_path / "run")
    assert len(trials) == 14 and all(t.status == DONE for t in trials)
    assert len(ev.calls) == 14 and len(set(ev.calls)) == 14
    # Rewards stored are what the evaluator returned; best is their max.
    for t in trials:
        assert t.reward == pytest.approx(ev.reward_of(t.tokens))
    best = max(trials, key=lambda t: t.reward)
    assert summary["best_reward"] == best.reward and summary["best_spec"] == best.spec
    # The curriculum: 3-token children first, then 6-token ones, never back.
    widths = [len(t.tokens) for t in trials]
    assert widths == sorted(widths) and set(widths) == {3, 6}
    assert widths.count(3) >= 6
    # Run dir contents.
    run = tmp_path / "run"
    assert (run / "trials.sqlite").is_file() and (run / SUMMARY_FILE).is_file()
    events = run_events(run)
    assert {"reward/mean", "reward/max", "reward/best_so_far", "search/proposals",
            "search/duplicates", "best/architecture", "search/summary"} <= set(events)
    steps = [step for step, _ in events["reward/mean"]]
    assert steps == sorted(steps) and steps[-1] == 14
    assert events["reward/best_so_far"][-1][1] == pytest.approx(summary["best_reward"])
    if algorithm == "reinforce":
        assert {"controller/loss", "controller/entropy", "controller/baseline",
                "controller/learning_rate"} <= set(events)
    assert list((run / "checkpoints").glob("ckpt-*.index"))
    assert [c.log_dir for c in ev.contexts] == [str(run / "children" / str(t.id)) for t in trials]
    assert len({c.seed for c in ev.contexts}) == 14


# ---------------------------------------------------------------------------
# Dedup and collapsed policies.
# ---------------------------------------------------------------------------
def test_duplicates_are_never_trained_twice_nor_counted(tmp_path):
    space = ToySpace(num_layers=2, num_values=2, anchors=False)  # only 4 architectures
    cfg = SearchConfig(algorithm="random", max_children=4, children_per_update=4, seed=0,
                       max_proposals=400)
    alg = SpyRandom(space, cfg)
    ev = FakeEvaluator(space)
    summary = run_search(space, ev, run_dir=str(tmp_path), config=cfg, algorithm=alg)
    assert summary["children_trained"] == 4 == len(ev.calls) == len(set(ev.calls))
    assert len(read_trials(tmp_path)) == 4
    assert summary["duplicates"] > 0
    assert summary["proposals"] >= 4 + summary["duplicates"]
    # Duplicates are fed back with the stored reward of their first training.
    assert len(alg.fed) == 4 + summary["duplicates"]
    for tokens, reward in alg.fed:
        assert reward == pytest.approx(ev.reward_of(tokens))


def test_resume_with_a_larger_budget_continues_the_count(tmp_path):
    space = ToySpace(num_layers=3, num_values=4)
    cfg = SearchConfig(algorithm="random", max_children=6, children_per_update=4, seed=3)
    ev1 = FakeEvaluator(space)
    s1 = run_search(space, ev1, run_dir=str(tmp_path), config=cfg)
    assert s1["children_trained"] == 6 and len(ev1.calls) == 6
    ev2 = FakeEvaluator(space)
    s2 = run_search(space, ev2, run_dir=str(tmp_path),
                    config=dataclasses.replace(cfg, max_children=10))
    assert s2["children_trained"] == 10
    assert len(ev2.calls) == 4 and not set(ev2.calls) & set(ev1.calls)
    assert [t.id for t in read_trials(tmp_path)] == list(range(1, 11))
    # Same budget again: nothing to do, nothing trained.
    ev3 = FakeEvaluator(space)
    s3 = run_search(space, ev3, run_dir=str(tmp_path),
                    config=dataclasses.replace(cfg, max_children=10))
    assert ev3.calls == [] and s3["children_trained"] == 10


@pytest.mark.parametrize("patience, words, proposals", [
    (1000, "proposal limit reached", 40),
    (3, "converged", 16),
])
def test_collapsed_policy_stops_and_says_so(tmp_path, patience, words, proposals):
    space = ToySpace(num_layers=2, num_values=3)
    cfg = SearchConfig(algorithm="random", max_children=5, children_per_update=4,
                       max_proposals=40, patience_rounds=patience)
    alg = ConstantAlgorithm(space, cfg, (1, 2, 0))
    ev = FakeEvaluator(space)
    summary = run_search(space, ev, run_dir=str(tmp_path), config=cfg, algorithm=alg)
    assert words in summary["stop_reason"]
    assert summary["proposals"] == proposals
    assert summary["children_trained"] == 1 and len(ev.calls) == 1
    assert summary["duplicates"] == proposals - 1
    on_disk = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert on_disk["stop_reason"] == summary["stop_reason"]


def test_collapsed_reinforce_terminates(tmp_path, reinforce):
    """The real controller with a budget beyond its proposal bound stops at the
    bound; every proposal is either a new child or a counted duplicate."""
    space = growing_space()
    cfg = dataclasses.replace(reinforce_config(seed=2, max_children=10_000), max_proposals=48)
    reinforce.reset(cfg)
    summary = run_search(space, FakeEvaluator(space), run_dir=str(tmp_path), config=cfg,
                         algorithm=reinforce)
    assert summary["proposals"] == 48
    assert "proposal limit" in summary["stop_reason"]
    assert summary["children_trained"] + summary["duplicates"] == 48


# ---------------------------------------------------------------------------
# summary.json
# ---------------------------------------------------------------------------
def test_summary_json_is_rewritten_after_every_update(tmp_path):
    space = ToySpace(num_layers=3, num_values=4)
    cfg = SearchConfig(algorithm="random", max_children=12, children_per_update=4, seed=5)
    ev = SummaryPeekEvaluator(space)
    summary = run_search(space, ev, run_dir=str(tmp_path), config=cfg)
    # While round r trains, summary.json reports the 4 * r children of earlier rounds.
    assert ev.seen == [4 * (k // 4) for k in range(12)]
    on_disk = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert SUMMARY_KEYS <= set(on_disk)
    assert on_disk["children_trained"] == 12 and on_disk["status"] == "finished"
    assert on_disk["best_spec"] == {"tokens": list(max(ev.calls, key=ev.reward_of))}
    assert on_disk["best_reward"] == pytest.approx(max(ev.reward_of(t) for t in ev.calls))
    assert on_disk["wall_time_s"] > 0
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("every, saves", [(None, "fewer"), (0.0, "all")])
def test_default_checkpoint_cadence_keeps_saving_cheap(tmp_path, monkeypatch, every, saves):
    """Default: a save waits 20x its own duration; 0: after every update. Either
    way the last state is saved at the end and the search resumes from it."""
    import time

    from nas_tf.checkpoint import Checkpointer

    real, updates = Checkpointer.save, []

    def slow_save(self, round_, state):  # a checkpoint costing 50 ms, children ~free
        time.sleep(0.05)
        updates.append(round_)
        real(self, round_, state)

    monkeypatch.setattr(Checkpointer, "save", slow_save)
    space = ToySpace(num_layers=3, num_values=4)
    cfg = SearchConfig(algorithm="random", max_children=40, children_per_update=1, seed=5)
    run_search(space, FakeEvaluator(space), run_dir=str(tmp_path), config=cfg,
               checkpoint_every_s=every)
    assert updates[-1] >= 40  # the final state is saved (m = 1; duplicates add updates)
    if saves == "all":
        assert updates == list(range(1, updates[-1] + 1))
    else:  # the first save after the first update, then one per >= 1 s of search
        assert updates[0] == 1 and len(updates) < updates[-1] / 2
    cfg = dataclasses.replace(cfg, max_children=44)
    ev = FakeEvaluator(space)
    summary = run_search(space, ev, run_dir=str(tmp_path), config=cfg, checkpoint_every_s=every)
    assert summary["children_trained"] == 44 and len(ev.calls) == 4


# ---------------------------------------------------------------------------
# Failed children.
# ---------------------------------------------------------------------------
def test_failed_children_are_recorded_and_the_search_goes_on(tmp_path):
    space = ToySpace(num_layers=3, num_values=4)
    cfg = SearchConfig(algorithm="random", max_children=12, children_per_update=4, seed=6,
                       failure_reward=-1.0)
    alg = SpyRandom(space, cfg)
    ev = FlakyEvaluator(space, raise_calls={2, 9}, nan_calls={5})
    summary = run_search(space, ev, run_dir=str(tmp_path), config=cfg, algorithm=alg)
    assert summary["children_trained"] == 12 and summary["children_failed"] == 3
    assert summary["status"] == "finished"
    trials = read_trials(tmp_path)
    failed = [t for t in trials if t.status == FAILED]
    assert [t.id for t in failed] == [2, 5, 9]
    assert "RuntimeError: synthetic failure at call 2" in failed[0].error
    assert "non-finite reward" in failed[1].error
    assert all(t.reward == -1.0 for t in failed)
    fed = dict(alg.fed)
    for t in failed:
        assert fed[t.tokens] == -1.0
    assert summary["best_reward"] == max(t.reward for t in trials if t.status == DONE)


# ---------------------------------------------------------------------------
# Run directories that must be refused.
# ---------------------------------------------------------------------------
def _small_run(run_dir, space=None, **kw):
    space = space or ToySpace(num_layers=2, num_values=3)
    cfg = SearchConfig(**{"algorithm": "random", "max_children": 4, "children_per_update": 2,
                          **kw})
    return run_search(space, FakeEvaluator(space), run_dir=str(run_dir), config=cfg)


@pytest.mark.parametrize("change, words", [
    (dict(space=ToySpace(num_layers=3, num_values=3)), "another space"),
    (dict(seed=9), "differs in: seed"),
    (dict(algorithm="evolution"), "differs in: algorithm"),
    (dict(children_per_update=3), "differs in: children_per_update"),
])
def test_run_dir_of_another_search_is_refused_and_kept(tmp_path, change, words):
    run = tmp_path / "run"
    _small_run(run)
    before = _snapshot(run)
    with pytest.raises(RunDirError, match=words):
        _small_run(run, **change)
    assert _snapshot(run) == before


def test_non_empty_directory_that_is_no_run_is_refused_and_kept(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("precious")
    (d / "sub").mkdir()
    (d / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _snapshot(d)
    with pytest.raises(RunDirError, match="not empty and holds no nas_tf search"):
        _small_run(d)
    assert _snapshot(d) == before and sorted(os.listdir(d)) == ["notes.txt", "sub"]


def test_run_dir_that_is_a_file_or_corrupt(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        _small_run(f)
    assert f.read_text() == "x"
    run = tmp_path / "run"
    run.mkdir()
    (run / "trials.sqlite").write_bytes(b"garbage" * 500)
    with pytest.raises(RunDirError, match="not a readable nas_tf trial store"):
        _small_run(run)
    assert (run / "trials.sqlite").read_bytes() == b"garbage" * 500


def test_empty_existing_directory_is_used(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    assert _small_run(d)["children_trained"] == 4


# ---------------------------------------------------------------------------
# Resume after the search process is killed.
# ---------------------------------------------------------------------------
_KILLED_SEARCH = """
import sys
sys.path.insert(0, {tests!r})
from conftest import FakeEvaluator
from test_loop import growing_space, reinforce_config
from nas_tf.loop import run_search
space = growing_space()
ev = FakeEvaluator(space, kill_at={kill_at}, calls_file={calls!r})
run_search(space, ev, run_dir={run_dir!r}, config=reinforce_config(seed={seed}))
print("NOT KILLED")
"""


def test_resume_after_sigkill_loses_nothing_and_repeats_the_run(tmp_path, reinforce):
    seed, kill_at = 4, 7  # children per update 4: killed in round 2 after 2 of its children
    run = tmp_path / "killed"
    calls_file = tmp_path / "calls.jsonl"
    code = _KILLED_SEARCH.format(tests=str(TESTS_DIR), kill_at=kill_at, calls=str(calls_file),
                                 run_dir=str(run), seed=seed)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env, cwd=os.getcwd())
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert "NOT KILLED" not in proc.stdout
    killed_calls = [tuple(json.loads(x)) for x in calls_file.read_text().splitlines()]
    assert len(killed_calls) == kill_at
    before = {t.id: t for t in read_trials(run)}
    done_before = {i: t for i, t in before.items() if t.status == DONE}
    assert len(done_before) == kill_at - 1
    assert [t.status for t in before.values()].count("running") == 1

    # Resume in this process. The module's compiled algorithm is reset to another
    # seed first, so only the run dir's checkpoint can make it continue the killed run.
    reinforce.reset(reinforce_config(seed + 100))
    ev = FakeEvaluator(growing_space())
    resumed = run_search(growing_space(), ev, run_dir=str(run), config=reinforce_config(seed),
                         algorithm=reinforce)
    after = read_trials(run)
    assert resumed["children_trained"] == 14 and len(after) == 14
    assert all(t.status == DONE for t in after)
    # No finished child lost or trained again; the one that was running is retrained once.
    for i, t in done_before.items():
        a = next(x for x in after if x.id == i)
        assert (a.tokens, a.reward, a.attempts, a.finished) == (
            t.tokens, t.reward, t.attempts, t.finished)
    assert not set(ev.calls) & {t.tokens for t in done_before.values()}
    assert ev.calls[0] == killed_calls[-1]
    assert len(ev.calls) == 14 - len(done_before)
    assert next(x for x in after if x.tokens == killed_calls[-1]).attempts == 2

    # The same seed without a kill gives the same children in the same order.
    reinforce.reset(reinforce_config(seed))
    straight = run_search(growing_space(), FakeEvaluator(growing_space()),
                          run_dir=str(tmp_path / "straight"), config=reinforce_config(seed),
                          algorithm=reinforce)
    ref = read_trials(tmp_path / "straight")
    assert [(t.id, t.tokens, t.reward) for t in after] == [(t.id, t.tokens, t.reward) for t in ref]
    for key in ("children_trained", "children_failed", "best_reward", "best_spec",
                "best_child_id", "proposals"):
        assert resumed[key] == straight[key], key


# ---------------------------------------------------------------------------
# m is never changed silently; children cannot make the controller retrace.
# ---------------------------------------------------------------------------
def test_max_in_flight_below_m_is_refused(tmp_path):
    """W = 2 < m = 4 used to give updates of 2 rewards (m silently lowered)."""
    from nas_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="Received: max_in_flight=2, children_per_update=4"):
        run_search(growing_space(), FakeEvaluator(growing_space()), run_dir=str(tmp_path / "r"),
                   config=reinforce_config(), max_in_flight=2, child_logs=False)
    assert not (tmp_path / "r").exists()  # refused before anything is written


class GlobalStateChild(FakeEvaluator):
    """A child that does to the process what careless training code does:
    sets the global seeds, clears the Keras session, switches the dtype policy."""

    def evaluate(self, spec, context):
        import keras

        keras.utils.set_random_seed(context.seed)
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("mixed_float16")
        keras.mixed_precision.set_global_policy("float32")
        return super().evaluate(spec, context)


def _tracing_counts(alg):
    fns = list(alg.controller._fns.values()) + list(alg._train_fns.values())
    return [f.experimental_get_tracing_count() for f in fns]


def test_children_changing_global_state_do_not_retrace_the_controller(tmp_path):
    space = ToySpace(num_layers=2, num_values=4)
    # Few children: each one clears the process's kernel cache, and the
    # controller's functions, though not traced again, are re-instantiated
    # (seconds each on a loaded machine). Our own children no longer do it
    # (test_lm_child_leaves_tensorflow_global_seed_alone).
    cfg = dataclasses.replace(reinforce_config(seed=3, max_children=6), children_per_update=3)
    alg = Reinforce(space, cfg)
    summary = run_search(space, GlobalStateChild(space), run_dir=str(tmp_path / "r"),
                         config=cfg, algorithm=alg, child_logs=False)
    assert summary["children_trained"] == 6 and summary["updates"] >= 2
    # One sample function and one log-prob function in the controller, one
    # training step: each traced exactly once over the whole search.
    assert _tracing_counts(alg) == [1, 1, 1]


def test_lm_child_leaves_tensorflow_global_seed_alone(monkeypatch):
    """A child that set TF's global seed would clear every compiled kernel of
    the process (the controller's included): the LM child must not."""
    import numpy as np
    import tensorflow as tf

    from cells.lm import LMConfig, train_lm

    def refuse(seed):
        raise AssertionError(f"a child called tf.random.set_seed({seed})")

    monkeypatch.setattr(tf.random, "set_seed", refuse)
    import keras

    data = np.arange(400) % 20
    cfg = LMConfig(units=8, num_layers=1, epochs=1, batch_size=4, bptt=5, steps_per_epoch=2)
    runs = [train_lm(lambda: keras.layers.SimpleRNNCell(8), data, data[:100], 20, cfg, seed=s)
            for s in (3, 3, 4)]
    # Still deterministic for a seed, and the seed still matters.
    assert runs[0].val_perplexity == runs[1].val_perplexity
    assert runs[0].val_perplexity != runs[2].val_perplexity


def test_a_table_search_makes_no_folder_per_child(tmp_path):
    """NAS-Bench-201 lookups (cheap children): no children/<id> log directory, no
    results/<id>.json, and HParams runs only for the children that were among the best."""
    from conftest import write_synthetic_nb201_table

    from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator

    table = tmp_path / "t.csv"
    write_synthetic_nb201_table(table)
    run = tmp_path / "run"
    summary = run_search(Nb201Space(), Nb201TableEvaluator(str(table)), run_dir=str(run),
                         config=SearchConfig(algorithm="random", max_children=150,
                                             children_per_update=8))
    assert summary["children_trained"] == 150
    folders = sum(len(dirs) for _, dirs, _ in os.walk(run))
    assert folders < 75, folders  # was one per child (150+)
    assert not list((run / "results").glob("*.json")) if (run / "results").exists() else True
    events = run_events(run / "all_children")
    assert len(events["child/reward"]) == 150
