"""The children budget is exact after a kill at any moment and a resume with
another --max_in_flight (nas_tf.loop with nas_tf.scheduler): the store ends
with exactly --max_children rows, all finished, none pending.

Property style: many kill points, algorithms, executors and W changes drawn
from a fixed random stream, the search stopped in this process without a
checkpoint (an exception raised as a child is logged: what a SIGKILL leaves,
the result files and all), and a few real SIGKILLs of a search process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_evaluators import FakeEvaluator, fake_search_config

from cnn_space.nb201 import Nb201Space
from nas_tf.executors import InlineExecutor, LocalExecutor
from nas_tf.logger import Logger
from nas_tf.loop import read_trials, run_search

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
SPACE = Nb201Space()


class Crash(BaseException):
    """Stands for a SIGKILL: nothing after it runs (no checkpoint, no summary)."""


class CrashAfter(Logger):
    """Raises :class:`Crash` as the ``k``-th child of this life is logged
    (after its row is committed)."""

    def __init__(self, k: int):
        self.k, self.n = k, 0

    def child(self, trial, space):
        self.n += 1
        if self.n >= self.k:
            raise Crash(f"crash after {self.k} children")


def _statuses(run_dir) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in read_trials(run_dir):
        out[t.status] = out.get(t.status, 0) + 1
    return out


def _life(run_dir, algorithm, budget, m, w, executor, crash_at, ckpt_every, seed=0):
    ex = InlineExecutor() if executor == "inline" else LocalExecutor(num_workers=2,
                                                                      cpus_per_child=1)
    config = fake_search_config(algorithm, budget, m, seed)
    try:
        return run_search(SPACE, FakeEvaluator(fail_ids={3, 11}), run_dir=str(run_dir),
                          config=config, executor=ex, max_in_flight=w, child_logs=False,
                          logger=CrashAfter(crash_at) if crash_at else None,
                          checkpoint_every_s=ckpt_every)
    except Crash:
        return None


def _cases(n: int, executors: tuple[str, ...], seed: int):
    rng = random.Random(seed)
    for i in range(n):
        algorithm = ("random", "reinforce", "evolution")[i % 3]
        m = rng.choice([2, 3, 4])
        budget = rng.randint(12, 30)
        lives = rng.choice([1, 1, 2])  # kills before the last life
        yield pytest.param(
            algorithm, rng.choice(executors), budget, m,
            [rng.randint(1, budget - 1) for _ in range(lives)],
            [m + rng.randint(0, 4) for _ in range(lives + 1)],
            rng.choice([None, 0.0, 1000.0]), id=f"{algorithm}-{i}")


@pytest.mark.parametrize("algorithm,executor,budget,m,kills,ws,ckpt_every",
                         [*_cases(15, ("inline",), 28), *_cases(3, ("local",), 2028)])
def test_budget_is_exact_after_kills_and_changed_max_in_flight(
        tmp_path, algorithm, executor, budget, m, kills, ws, ckpt_every):
    run = tmp_path / "run"
    for life, (crash_at, w) in enumerate(zip(kills, ws)):
        ended = _life(run, algorithm, budget, m, w, executor, crash_at, ckpt_every)
        assert ended is None or life > 0  # a later life may finish before its kill point
    summary = _life(run, algorithm, budget, m, ws[-1], executor, None, ckpt_every)
    counts = _statuses(run)
    assert counts.get("done", 0) + counts.get("failed", 0) == budget, counts
    assert counts.get("pending", 0) == counts.get("running", 0) == 0, counts
    assert summary["children_trained"] == budget and summary["children_pending"] == 0
    assert summary["stop_reason"] == f"budget reached: {budget} unique children"


def test_a_larger_budget_on_resume_is_exact_too(tmp_path):
    run = tmp_path / "run"
    assert _life(run, "random", 10, 2, 4, "inline", 7, 1000.0) is None
    _life(run, "random", 10, 2, 6, "inline", None, 1000.0)
    summary = _life(run, "random", 17, 2, 3, "inline", None, 1000.0)
    assert summary["children_trained"] == 17 and _statuses(run) == {"done": 15, "failed": 2}


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(REPO)])}


def _n_finished(run) -> int:
    try:
        return sum(t.status in ("done", "failed") for t in read_trials(run))
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _search(run, algorithm, w, extra=()):
    return [sys.executable, str(TESTS_DIR / "fake_evaluators.py"), f"--run_dir={run}",
            f"--algorithm={algorithm}", "--max_children=40", "--children_per_update=2",
            f"--max_in_flight={w}", "--checkpoint_every_s=1000", *extra]


@pytest.mark.parametrize("algorithm,w1,w2,executor", [
    ("random", 6, 8, "inline"), ("reinforce", 3, 2, "local")])
def test_sigkill_then_resume_with_another_max_in_flight(tmp_path, algorithm, w1, w2, executor):
    """A real SIGKILL of the search process at about half the budget; the
    resume (another W) ends with exactly the budget, nothing pending."""
    run = tmp_path / "run"
    extra = ["--sleep_s=0.05", f"--executor={executor}", "--num_workers=2"]
    proc = subprocess.Popen(_search(run, algorithm, w1, extra), env=_env(), cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.time() + 240
        while _n_finished(run) < 20 and proc.poll() is None and time.time() < end:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert 20 <= _n_finished(run) < 40
    out = subprocess.run(_search(run, algorithm, w2, ["--executor=inline"]), env=_env(),
                         cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "budget reached: 40 unique children" in out.stdout
    assert _statuses(run) == {"done": 40}
