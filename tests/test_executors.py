"""Tests of nas_tf.executors: inline and local (process pool) executors.

Children are cheap fakes (tests/fake_evaluators.py, importable by spawned
workers); the space is NAS-Bench-201's, which needs no data to make specs.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import threading
import time

import pytest
from conftest import run_events
from fake_evaluators import FakeEvaluator, read_calls, spec_reward

from cnn_space.nb201 import Nb201Space
from nas_tf.config import EvolutionConfig, SearchConfig
from nas_tf.errors import ConfigError
from nas_tf.evaluator import ChildContext
from nas_tf.executors import (
    InlineExecutor,
    Job,
    LocalExecutor,
    evaluate_job,
    make_executor,
    read_result_file,
)
from nas_tf.loop import read_trials, run_search

SPACE = Nb201Space()


def jobs(n: int, start: int = 1, result_dir=None) -> list[Job]:
    out = []
    for i in range(start, start + n):
        tokens = tuple((i * 7 + k) % 5 for k in range(6))
        rf = None if result_dir is None else str(result_dir / "results" / f"{i}.json")
        out.append(Job(i, SPACE.tokens_to_spec(tokens), ChildContext(child_id=i, seed=i),
                       result_file=rf))
    return out


def by_id(outcomes):
    return {o.job.trial_id: o for o in outcomes}


# ---------------------------------------------------------------------------
# Settings.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs,words", [
    ("threads", {}, "Unknown executor; use one of inline, local, ray. Received: executor="),
    ("local", {"num_workers": 0}, "--num_workers must be > 0. Received: num_workers=0"),
    ("inline", {"child_timeout": -1.0}, "Received: child_timeout=-1.0"),
    ("local", {"max_retries": -1}, "--max_retries must be >= 0"),
    ("local", {"gpus_per_child": 1}, "Use --gpus_per_child=0 for CPU children"),
])
def test_bad_settings_give_one_clear_error(monkeypatch, name, kwargs, words):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match=None) as e:
        make_executor(name, **kwargs)
    assert words in str(e.value)


def test_local_workers_default_to_cpu_slots_without_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    ex = make_executor("local", cpus_per_child=1)
    assert ex.capacity == max(1, os.cpu_count() or 1)
    env, devices = ex._env_and_devices(0)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and devices is None
    assert env["TF_NUM_INTRAOP_THREADS"] == "1"


def test_gpu_sets_are_split_between_workers(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    ex = make_executor("local", gpus_per_child=2)
    assert ex.capacity == 2
    assert [ex._env_and_devices(i)[0]["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["0,1", "2,3"]
    assert ex._env_and_devices(1)[1] == ("/gpu:0", "/gpu:1")
    with pytest.raises(ConfigError, match="need 6 GPUs; 4 are visible"):
        make_executor("local", gpus_per_child=2, num_workers=3)


def test_unpicklable_evaluator_is_refused_with_the_fix():
    ev = FakeEvaluator()
    ev.lock = threading.Lock()
    ex = LocalExecutor(num_workers=1)
    with pytest.raises(ConfigError, match="cannot be sent to worker processes"):
        ex.start(ev)


# ---------------------------------------------------------------------------
# One job.
# ---------------------------------------------------------------------------
def test_evaluate_job_turns_errors_and_nan_into_failures(tmp_path):
    (tmp_path / "results").mkdir()
    ok, bad, nan, oom = jobs(4, result_dir=tmp_path)
    ev = FakeEvaluator(fail_ids={2}, nan_ids={3}, oom_ids={4})
    o = evaluate_job(ev, ok)
    assert o.ok and o.result.reward == spec_reward(ok.spec)
    o = evaluate_job(ev, bad)
    assert not o.ok and o.error.startswith("RuntimeError: synthetic failure of child 2")
    o = evaluate_job(ev, nan)
    assert not o.ok and o.error == "non-finite reward: nan"
    o = evaluate_job(ev, oom)
    assert "MemoryError" in o.error
    # Each outcome was written (write-then-rename) where a resumed search finds it.
    back = read_result_file(ok)
    assert back.ok and back.result.reward == spec_reward(ok.spec)
    assert read_result_file(bad).error.startswith("RuntimeError")
    assert not list((tmp_path / "results").glob("*.tmp*"))


def test_inline_timeout_stops_a_python_child():
    ex = InlineExecutor(child_timeout=0.3)
    t0 = time.time()
    out = by_id(ex.run(FakeEvaluator(hang_ids={2}, hang_s=30), jobs(3)))
    assert time.time() - t0 < 10
    assert out[1].ok and out[3].ok
    assert "ChildTimeout" in out[2].error and "--child_timeout=0.3s" in out[2].error


# ---------------------------------------------------------------------------
# The local pool.
# ---------------------------------------------------------------------------
def test_local_pool_trains_children_on_two_workers(tmp_path):
    calls = str(tmp_path / "calls")
    ex = LocalExecutor(num_workers=2, cpus_per_child=1)
    try:
        out = by_id(ex.run(FakeEvaluator(sleep_s=0.2, calls_file=calls), jobs(6)))
    finally:
        ex.close()
    assert sorted(out) == [1, 2, 3, 4, 5, 6]
    for o in out.values():
        assert o.ok and o.result.reward == spec_reward(o.job.spec) and o.attempts == 1
    assert len({o.result.metrics["pid"] for o in out.values()}) == 2
    assert sorted(read_calls(calls)) == [1, 2, 3, 4, 5, 6]  # each trained once


def test_local_workers_send_their_childrens_progress_to_the_search():
    seen = []
    listener = lambda child_id, info: seen.append((child_id, info))  # noqa: E731
    work = [dataclasses.replace(j, context=dataclasses.replace(j.context, on_progress=listener))
            for j in jobs(2)]
    ex = LocalExecutor(num_workers=2, cpus_per_child=1)
    try:
        out = by_id(ex.run(FakeEvaluator(sleep_s=3.0, report_steps=6), work))
    finally:
        ex.close()
    assert all(o.ok for o in out.values())
    for cid in (1, 2):  # reports 0.5 s apart reach the listener, in order, each child's own
        steps = [info["step"] for c, info in seen if c == cid]
        assert len(steps) >= 3 and steps == sorted(steps), seen
        assert all(info["steps"] == 6 for c, info in seen if c == cid)


def test_a_child_reporting_progress_still_times_out():
    ev = FakeEvaluator(sleep_s=30.0, report_steps=300)  # a report every 0.1 s for 30 s
    ex = LocalExecutor(num_workers=1, cpus_per_child=1, child_timeout=2.0)
    try:
        start = time.time()
        out = by_id(ex.run(ev, jobs(1)))
    finally:
        ex.close()
    assert "ChildTimeout" in out[1].error and time.time() - start < 20


def test_local_pool_failures_timeout_oom_and_recycling(tmp_path):
    ev = FakeEvaluator(fail_ids={2}, nan_ids={3}, oom_ids={4}, hang_ids={5}, hang_s=60)
    ex = LocalExecutor(num_workers=2, cpus_per_child=1, child_timeout=2.0, recycle_after=3)
    try:
        t0 = time.time()
        out = by_id(ex.run(ev, jobs(9)))
        took = time.time() - t0
    finally:
        ex.close()
    assert took < 30
    assert "RuntimeError: synthetic failure" in out[2].error
    assert out[3].error == "non-finite reward: nan"
    assert "MemoryError" in out[4].error
    assert "ChildTimeout" in out[5].error and "worker was killed" in out[5].error
    assert all(out[i].ok for i in (1, 6, 7, 8, 9))
    # Replaced: the OOM worker, the timed-out one, and each after 3 children.
    assert ex.workers_started >= 4
    assert max(sum(1 for o in out.values() if o.ok and o.result.metrics["pid"] == p)
               for p in {o.result.metrics["pid"] for o in out.values() if o.ok}) <= 3


def test_worker_that_dies_mid_child_gets_its_child_retried(tmp_path):
    calls = str(tmp_path / "calls")
    ev = FakeEvaluator(die_once_ids={2}, die_always_ids={4}, marker_dir=str(tmp_path),
                       calls_file=calls)
    ex = LocalExecutor(num_workers=2, cpus_per_child=1, max_retries=1)
    try:
        out = by_id(ex.run(ev, jobs(5)))
    finally:
        ex.close()
    assert out[2].ok and out[2].attempts == 2
    assert not out[4].ok and "WorkerDied" in out[4].error
    assert "gave up after 2 attempts (--max_retries)" in out[4].error
    assert all(out[i].ok and out[i].attempts == 1 for i in (1, 3, 5))
    assert ex.workers_died == 3
    assert sorted(read_calls(calls)) == [1, 2, 2, 3, 4, 4, 5]


def test_worker_killed_from_outside_mid_child(tmp_path):
    ex = LocalExecutor(num_workers=2, cpus_per_child=1)
    calls = str(tmp_path / "calls")
    ev = FakeEvaluator(sleep_s=1.5, calls_file=calls)
    ex.start(ev)
    try:
        for j in jobs(3):
            ex.submit(j)
        # Wait until a child's evaluation has really started (not just been sent).
        deadline = time.time() + 120
        while not read_calls(calls) and time.time() < deadline:
            time.sleep(0.02)
        victim_child = read_calls(calls)[0]
        victim_pid = next(p for p, c in ex.busy_workers().items() if c == victim_child)
        os.kill(victim_pid, signal.SIGKILL)
        outs = []
        while ex.num_in_flight():
            outs += ex.poll(None)
    finally:
        ex.close()
    out = by_id(outs)
    assert sorted(out) == [1, 2, 3] and all(o.ok for o in out.values())
    assert out[victim_child].attempts == 2
    assert out[victim_child].result.metrics["pid"] != victim_pid


def test_cancel_stops_children_in_flight(tmp_path):
    ex = LocalExecutor(num_workers=2, cpus_per_child=1)
    calls = str(tmp_path / "calls")
    ex.start(FakeEvaluator(sleep_s=30, calls_file=calls))
    try:
        for j in jobs(3):
            ex.submit(j)
        deadline = time.time() + 120  # until both workers are inside a child
        while len(read_calls(calls)) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert len(read_calls(calls)) == 2
        pids = list(ex.busy_workers())
        t0 = time.time()
        cancelled = ex.cancel()
        assert time.time() - t0 < 10
        assert sorted(j.trial_id for j in cancelled) == [1, 2, 3]
        assert ex.num_in_flight() == 0
    finally:
        ex.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# ---------------------------------------------------------------------------
# Asynchronous updates in the search loop.
#
# Aging evolution (population 4) is used: its proposals depend on the rewards
# fed back and on their order, like REINFORCE's, and it needs no XLA compile
# (the REINFORCE update compiles once per batch size, tens of seconds on a
# loaded 2-core machine). experiments/fault_drill.py runs the same checks
# with REINFORCE.
# ---------------------------------------------------------------------------
def evolution_config(max_children: int = 12) -> SearchConfig:
    return SearchConfig(algorithm="evolution", max_children=max_children,
                        children_per_update=2, seed=3,
                        evolution=EvolutionConfig(population_size=4, tournament_size=2))


def _rows(run_dir):
    return [(t.id, t.hash, t.status, t.reward) for t in read_trials(run_dir)]


def test_one_worker_with_w_equal_m_repeats_the_synchronous_loop(tmp_path):
    cfg = evolution_config()
    sync = run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path / "sync"), config=cfg,
                      child_logs=False)
    ex = LocalExecutor(num_workers=1, cpus_per_child=1)
    pooled = run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path / "pool"), config=cfg,
                        executor=ex, max_in_flight=2, child_logs=False)
    assert pooled["executor"] == "local" and pooled["max_in_flight"] == 2
    assert _rows(tmp_path / "sync") == _rows(tmp_path / "pool")
    assert len(_rows(tmp_path / "pool")) == 12
    # Another seed gives other children: the comparison is not vacuous.
    other = run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path / "other"),
                       config=dataclasses.replace(cfg, seed=4), child_logs=False)
    assert _rows(tmp_path / "other") != _rows(tmp_path / "sync")
    assert other["children_trained"] == 12
    for key in ("best_reward", "best_spec", "updates", "proposals"):
        assert sync[key] == pooled[key], key


def test_async_search_with_more_in_flight_than_m(tmp_path):
    cfg = evolution_config(max_children=10)
    calls = str(tmp_path / "calls")
    ex = LocalExecutor(num_workers=2, cpus_per_child=1)
    summary = run_search(SPACE, FakeEvaluator(sleep_s=0.05, calls_file=calls),
                         run_dir=str(tmp_path / "run"), config=cfg, executor=ex,
                         max_in_flight=4, child_logs=False)
    rows = _rows(tmp_path / "run")
    assert summary["children_trained"] == 10 and summary["status"] == "finished"
    assert len(rows) == 10 and all(r[2] == "done" for r in rows)
    assert sorted(read_calls(calls)) == [r[0] for r in rows]  # none trained twice
    assert summary["updates"] >= 5 and summary["max_in_flight"] == 4
    # With W = 4 > m = 2, some updates fed back samples of an older policy.
    staleness = [v for _, v in run_events(tmp_path / "run")["search/staleness"]]
    assert max(staleness) > 0, staleness
    assert not list((tmp_path / "run" / "results").glob("*"))  # result files removed once stored


def test_max_in_flight_below_one_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="Received: max_in_flight=0"):
        run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path), config=evolution_config(),
                   max_in_flight=0)


def test_evaluator_pickles_for_workers():
    ev = FakeEvaluator(fail_ids={1})
    assert pickle.loads(pickle.dumps(ev)).fail_ids == {1}
