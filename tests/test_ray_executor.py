"""Tests of the Ray executor on a real local Ray instance (2 CPUs).

Ray is an optional extra (``nas_tf[ray]``): without it these tests are
skipped, and the executor's error says how to install it.
"""

from __future__ import annotations

import pytest
from fake_evaluators import FakeEvaluator, fake_search_config, read_calls, spec_reward

from cnn_space.nb201 import Nb201Space
from nas_tf.evaluator import ChildContext
from nas_tf.executors import Job, RayExecutor
from nas_tf.loop import read_trials, run_search

ray = pytest.importorskip("ray", reason="Ray (the optional extra nas_tf[ray]) is not installed")

SPACE = Nb201Space()


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the module (starting one takes ~10 s)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def jobs(n: int) -> list[Job]:
    out = []
    for i in range(1, n + 1):
        tokens = tuple((i * 3 + k) % 5 for k in range(6))
        out.append(Job(i, SPACE.tokens_to_spec(tokens), ChildContext(child_id=i, seed=i)))
    return out


def by_id(outcomes):
    return {o.job.trial_id: o for o in outcomes}


def test_children_run_as_ray_tasks(ray_cluster, tmp_path):
    ex = RayExecutor(cpus_per_child=1)
    out = by_id(ex.run(FakeEvaluator(sleep_s=0.3), jobs(4)))
    ex.close()
    assert ray_cluster.is_initialized()  # a cluster it joined is left running
    assert ex.capacity == 2  # 2 CPUs / 1 CPU per child
    assert sorted(out) == [1, 2, 3, 4]
    for o in out.values():
        assert o.ok and o.result.reward == spec_reward(o.job.spec)
        assert o.worker.startswith("ray(pid ")


def test_ray_children_send_their_progress_to_the_search(ray_cluster):
    import dataclasses

    seen = []
    listener = lambda child_id, info: seen.append((child_id, info))  # noqa: E731
    work = [dataclasses.replace(j, context=dataclasses.replace(j.context, on_progress=listener))
            for j in jobs(2)]
    ex = RayExecutor(cpus_per_child=1)
    try:
        out = by_id(ex.run(FakeEvaluator(sleep_s=4.0, report_steps=8), work))
    finally:
        ex.close()
    assert all(o.ok for o in out.values())
    for cid in (1, 2):  # the latest report of each child, taken while it trains
        steps = [info["step"] for c, info in seen if c == cid]
        assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] <= 8, seen


def test_ray_failures_timeout_and_dead_workers(ray_cluster, tmp_path):
    calls = str(tmp_path / "calls")
    ev = FakeEvaluator(fail_ids={1}, nan_ids={2}, hang_ids={3}, hang_s=300, die_once_ids={4},
                       die_always_ids={5}, marker_dir=str(tmp_path), calls_file=calls)
    # 45 s: the timeout counts a new Ray worker's start-up, over 20 s on a loaded
    # machine (and the suite runs two test files at once).
    ex = RayExecutor(cpus_per_child=1, child_timeout=45.0, max_retries=1)
    out = by_id(ex.run(ev, jobs(6)))
    ex.close()
    assert "RuntimeError: synthetic failure of child 1" in out[1].error
    assert out[2].error == "non-finite reward: nan"
    assert "ChildTimeout" in out[3].error and "Ray task was cancelled" in out[3].error
    assert out[4].ok and out[4].attempts == 2
    assert "WorkerDied" in out[5].error and "gave up after 2 attempts" in out[5].error
    assert out[6].ok
    assert ex.workers_died == 3
    calls_made = read_calls(calls)
    assert calls_made.count(4) == 2 and calls_made.count(5) == 2


def test_search_on_ray_matches_the_synchronous_loop(ray_cluster, tmp_path):
    cfg = fake_search_config("evolution", max_children=10, children_per_update=2, seed=2)
    on_ray = run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path / "ray"), config=cfg,
                        executor=RayExecutor(cpus_per_child=1), max_in_flight=2,
                        child_logs=False)
    inline = run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path / "inline"), config=cfg,
                        child_logs=False)

    def rows(d):
        return [(t.id, t.hash, t.status, t.reward) for t in read_trials(tmp_path / d)]

    assert on_ray["executor"] == "ray" and on_ray["children_trained"] == 10
    assert rows("ray") == rows("inline")
    assert on_ray["best_reward"] == inline["best_reward"]


def test_in_flight_defaults_to_the_ray_capacity(ray_cluster, tmp_path):
    cfg = fake_search_config("random", max_children=6, children_per_update=1, seed=1)
    summary = run_search(SPACE, FakeEvaluator(), run_dir=str(tmp_path / "run"), config=cfg,
                         executor=RayExecutor(cpus_per_child=1), child_logs=False)
    assert summary["max_in_flight"] == 2  # 2 CPUs, known only once Ray started
    assert summary["children_trained"] == 6 and summary["status"] == "finished"


_LISTENERS = r"""
import json, sys
import psutil
import ray  # imported first, as a user's program may: the executor must still bind loopback
from fake_evaluators import FakeEvaluator
from nas_tf.executors import RayExecutor
from test_ray_executor import jobs

ex = RayExecutor(num_workers=1, cpus_per_child=1)
out = list(ex.run(FakeEvaluator(), jobs(2)))
tree = {psutil.Process().pid} | {p.pid for p in psutil.Process().children(recursive=True)}
names = {}
for pid in tree:
    try:
        names[pid] = psutil.Process(pid).name()
    except psutil.Error:
        pass
socks = [(c.laddr.ip, c.laddr.port, names.get(c.pid, "?"))
         for c in psutil.net_connections(kind="inet")
         if c.status == psutil.CONN_LISTEN and c.pid in tree]
print(json.dumps({"ok": [o.ok for o in out], "sockets": socks, "processes": sorted(names.values()),
                  "node_ip": ray.util.get_node_ip_address()}))
ex.close()
"""


def _loopback(ip: str) -> bool:
    return ip == "::1" or ip.startswith(("127.", "::ffff:127."))


def test_a_local_instance_listens_on_loopback_only(tmp_path):
    """Every listening socket of the local Ray instance (driver, GCS, raylet, object
    manager, dashboard / runtime-env agents, workers) is on 127.0.0.1: none on all
    interfaces (0.0.0.0, ::) or on the machine's own address."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("psutil")
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)]),
           "RAY_ADDRESS": ""}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    p = subprocess.run([sys.executable, "-c", _LISTENERS], capture_output=True, text=True,
                       env=env, cwd=str(tmp_path), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["ok"] == [True, True]
    assert got["node_ip"] == "127.0.0.1"
    names = " ".join(got["processes"])
    assert "gcs_server" in names and "raylet" in names, got["processes"]
    assert len(got["sockets"]) >= 4, got  # GCS, raylet (2), driver, worker at least
    assert [s for s in got["sockets"] if not _loopback(s[0])] == [], got["sockets"]
