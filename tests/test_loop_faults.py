"""Faults during a search: failing children, dying workers, a killed or
stopped search process (nas_tf.loop with nas_tf.executors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_evaluators import FakeEvaluator, fake_search_config, read_calls

from cnn_space.nb201 import Nb201Space
from nas_tf.executors import LocalExecutor
from nas_tf.loop import read_trials, run_search

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
SPACE = Nb201Space()


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(REPO)])}


def _wait_for(pred, timeout, proc=None, what=""):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the search exited ({proc.returncode}) before {what}: {out[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _n_done(run_dir) -> int:
    try:
        return sum(t.status in ("done", "failed") for t in read_trials(run_dir))
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of an already dead process counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_failing_children_and_dying_workers_do_not_stop_the_search(tmp_path):
    cfg = fake_search_config("evolution", max_children=12, seed=1)
    cfg = type(cfg)(**{**cfg.__dict__, "failure_reward": -0.5})
    ev = FakeEvaluator(fail_ids={2}, nan_ids={3}, oom_ids={4}, hang_ids={5}, hang_s=60,
                       die_once_ids={6}, die_always_ids={7}, marker_dir=str(tmp_path),
                       calls_file=str(tmp_path / "calls"))
    ex = LocalExecutor(num_workers=2, cpus_per_child=1, child_timeout=3.0, max_retries=1)
    summary = run_search(SPACE, ev, run_dir=str(tmp_path / "run"), config=cfg, executor=ex,
                         child_logs=False)
    rows = {t.id: t for t in read_trials(tmp_path / "run")}
    assert summary["status"] == "finished"
    assert summary["children_trained"] == 12 and summary["children_failed"] == 5
    errors = {i: rows[i].error for i in (2, 3, 4, 5, 7)}
    assert "RuntimeError: synthetic failure of child 2" in errors[2]
    assert "non-finite reward: nan" in errors[3]
    assert "MemoryError" in errors[4]
    assert "ChildTimeout" in errors[5] and "--child_timeout=3s" in errors[5]
    assert "WorkerDied" in errors[7] and "gave up after 2 attempts" in errors[7]
    assert all(rows[i].status == "failed" and rows[i].reward == -0.5 for i in errors)
    assert rows[6].status == "done"  # its worker died once; trained again
    calls = read_calls(str(tmp_path / "calls"))
    assert calls.count(6) == 2 and calls.count(7) == 2
    assert all(calls.count(i) == 1 for i in rows if i not in (6, 7))


def test_sigkill_of_the_search_with_workers_in_flight_then_resume(tmp_path):
    """The driver is killed while its two workers train children; the same
    command resumes: nothing lost, nothing trained twice but the children that
    were in flight, and the same children as a search never killed."""
    run, calls = tmp_path / "run", str(tmp_path / "calls")
    args = [sys.executable, str(TESTS_DIR / "fake_evaluators.py"), f"--run_dir={run}",
            "--max_children=14", "--executor=local", "--num_workers=2", "--max_in_flight=2",
            "--sleep_s=0.3", f"--calls_file={calls}", "--seed=5"]
    proc = subprocess.Popen(args, env=_env(), cwd=os.getcwd(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: _n_done(run) >= 5, 240, proc, "5 children finished")

        def mid_child():  # a child whose evaluation has started and not finished
            finished = {t.id for t in read_trials(run) if t.status in ("done", "failed")}
            started = [i for i in read_calls(calls) if i not in finished]
            return started[-1] if started else None

        _wait_for(lambda: mid_child() is not None, 60, proc, "a child in flight")
        victim = mid_child()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    before = {t.id: t for t in read_trials(run)}
    done_before = {i: t for i, t in before.items() if t.status in ("done", "failed")}
    assert 5 <= len(done_before) < 14
    pids = {int(line.split()[1]) for line in Path(calls).read_text().splitlines()}
    _wait_for(lambda: not any(_alive(p) for p in pids), 15, what="workers to die with the search")
    n_calls_before = len(read_calls(calls))
    # A worker may finish its child in the instant after the kill and leave its
    # result file: the resume then takes the result instead of training it again.
    victim_saved = (run / "results" / f"{victim}.json").exists()

    # Resume, as the same command would (in this process: cheaper).
    ev = FakeEvaluator(sleep_s=0.05, calls_file=calls)
    resumed = run_search(SPACE, ev, run_dir=str(run), config=fake_search_config(
        "evolution", 14, 2, 5), executor=LocalExecutor(num_workers=2, cpus_per_child=1),
        max_in_flight=2, child_logs=False, handle_signals=True)
    after = {t.id: t for t in read_trials(run)}
    assert resumed["status"] == "finished" and len(after) == 14
    assert all(t.status == "done" for t in after.values())
    for i, t in done_before.items():  # kept as they were
        assert (after[i].reward, after[i].finished, after[i].attempts) == (
            t.reward, t.finished, t.attempts)
    all_calls = read_calls(calls)
    again = [i for i in all_calls[n_calls_before:] if i in done_before]
    assert again == []  # no finished child trained again
    assert sorted(set(all_calls)) == sorted(after)  # none lost
    if victim not in done_before:  # (it did not finish in the instant before the kill)
        # In flight at the kill: trained again, unless its worker saved the result.
        assert all_calls.count(victim) == (1 if victim_saved else 2)
    assert all(all_calls.count(i) <= 2 for i in after)  # in flight at the kill: twice at most

    # The same seed, never killed, in this process with one worker: the same children.
    straight = run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path / "straight"),
                          config=fake_search_config("evolution", 14, 2, 5), child_logs=False)
    ref = read_trials(tmp_path / "straight")
    assert [(t.id, t.hash, t.reward) for t in ref] == [
        (t.id, t.hash, t.reward) for t in after.values()]
    assert straight["best_reward"] == resumed["best_reward"]


def test_sigterm_stops_the_cli_cleanly_and_it_resumes(tmp_path, nb201_table):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas_tf.run", "--space=nb201", f"--nb201_table={nb201_table}",
           "--algorithm=random", "--controller_preset=small_budget", "--executor=local",
           "--num_workers=2", "--max_in_flight=4", f"--run_dir={run}"]
    proc = subprocess.Popen(cmd + ["--max_children=5000"], env=_env(), cwd=os.getcwd(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def trained():
            try:
                return json.loads((run / "summary.json").read_text())["children_trained"] >= 3
            except (OSError, ValueError, KeyError):
                return False

        _wait_for(trained, 240, proc, "3 children trained")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "SIGTERM received; run the same command again to resume from" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped"
    rows = read_trials(run)
    assert not [t for t in rows if t.status == "running"]  # cancelled children re-queued
    n = summary["children_trained"]

    # Resume with a budget of two more children: it trains at least those two, and
    # at most what the stopped search had already allocated (its pending rows are part
    # of its trajectory and are finished rather than dropped), then stops.
    out = subprocess.run(cmd + [f"--max_children={n + 2}"], env=_env(), cwd=os.getcwd(),
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Resumed {run}: {n} children kept" in out.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert n + 2 <= summary["children_trained"] <= max(n + 2, len(rows))
    assert not [t for t in read_trials(run) if t.status in ("running", "pending")]
