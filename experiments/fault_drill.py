r"""Fault drill: SIGKILL the search at random moments and a worker mid-child.

A search of the NAS-Bench-201 space with cheap fake children
(tests/fake_evaluators.py: each sleeps ``--sleep_s``; reward a hash of the
spec) runs on the ``local`` executor with 2 workers and W = m (so its result
does not depend on which worker finishes first). The driver process is
SIGKILLed ``--kills`` times at random moments, and once one of its workers is
SIGKILLed while training a child; each time the same command is run again.
Then the run is compared with the same search run without interruption.

Reported: children lost (in the uninterrupted run, not in the drilled one),
children trained twice (an evaluation that *returned* twice for one child),
children restarted because they were in flight at a kill, and whether the
final best and the whole sequence of children are equal.

  flock /tmp/nas_bench.lock python experiments/fault_drill.py
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import psutil  # noqa: E402

from nas_tf.loop import read_trials  # noqa: E402


def rows(run_dir: Path):
    try:
        return read_trials(run_dir)
    except Exception:  # noqa: BLE001 - not created yet
        return []


def n_finished(run_dir: Path) -> int:
    try:
        return sum(t.status in ("done", "failed") for t in rows(run_dir))
    except Exception:  # noqa: BLE001 - being written
        return -1


def command(a, run_dir: Path, calls: Path, done: Path) -> list[str]:
    return [sys.executable, str(REPO / "tests" / "fake_evaluators.py"), f"--run_dir={run_dir}",
            f"--max_children={a.children}", f"--children_per_update={a.m}",
            f"--max_in_flight={a.m}", f"--algorithm={a.algorithm}", f"--seed={a.seed}",
            "--executor=local", f"--num_workers={a.workers}", f"--sleep_s={a.sleep_s}",
            f"--calls_file={calls}", f"--done_file={done}"]


def env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}


def read_ids(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [tuple(int(x) for x in line.split()) for line in path.read_text().splitlines()
            if line.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--children", type=int, default=60)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--algorithm", default="reinforce")
    p.add_argument("--m", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sleep_s", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--drill_seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.drill_seed)
    tmp = Path(tempfile.mkdtemp(prefix="nas_fault_drill_"))
    run, calls, done = tmp / "drill", tmp / "calls", tmp / "done"
    cmd = command(a, run, calls, done)
    t0 = time.time()
    events = []
    worker_kill_at = rng.randrange(a.kills)
    for k in range(a.kills + 1):
        proc = subprocess.Popen(cmd, env=env(), cwd=str(REPO), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if k == a.kills:  # the last life runs to the end
            _, err = proc.communicate(timeout=1800)
            assert proc.returncode == 0, err[-3000:]
            events.append(f"life {k + 1}: ran to the end")
            break
        start = max(0, n_finished(run))
        goal = start + rng.randint(2, max(3, a.children // (a.kills + 2)))
        while proc.poll() is None and n_finished(run) < goal:
            time.sleep(0.05)
        if k == worker_kill_at and proc.poll() is None:  # a worker, mid-child
            # Poll until some worker is mid-child (between updates none may be).
            victim, deadline = None, time.time() + 30
            while victim is None and proc.poll() is None and time.time() < deadline:
                workers = {c.pid for c in psutil.Process(proc.pid).children()}
                returned = set(read_ids(done))  # (child, pid) evaluations that returned
                victim = next(((cid, pid) for cid, pid in reversed(read_ids(calls))
                               if (cid, pid) not in returned and pid in workers), None)
                if victim is None:
                    time.sleep(0.01)
            if victim is not None:
                cid, pid = victim
                os.kill(pid, signal.SIGKILL)
                events.append(f"life {k + 1}: killed worker pid {pid} training child {cid}")
            else:
                events.append(f"life {k + 1}: found no worker training a child in 30 s")
            goal = n_finished(run) + 2
            while proc.poll() is None and n_finished(run) < goal:
                time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2 * a.sleep_s))
        if proc.poll() is not None:
            raise SystemExit(f"the search ended before kill {k + 1}; use more --children")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        events.append(f"life {k + 1}: driver SIGKILLed after {n_finished(run)} children")
    drill_s = time.time() - t0

    ref = tmp / "straight"
    t1 = time.time()
    subprocess.run(command(a, ref, tmp / "ref_calls", tmp / "ref_done"), env=env(),
                   cwd=str(REPO), check=True, stdout=subprocess.DEVNULL)
    straight_s = time.time() - t1

    got, want = rows(run), rows(ref)
    got_ids = {t.hash for t in got if t.status in ("done", "failed")}
    lost = [t.id for t in want if t.hash not in got_ids]
    returned = collections.Counter(cid for cid, _ in read_ids(done))
    started = collections.Counter(cid for cid, _ in read_ids(calls))
    twice = sorted(c for c, n in returned.items() if n > 1)
    restarted = sorted(c for c, n in started.items() if n > 1)
    same_seq = [(t.id, t.hash, t.reward) for t in got] == [(t.id, t.hash, t.reward) for t in want]
    best_got = max((t.reward for t in got if t.status == "done"), default=None)
    best_want = max((t.reward for t in want if t.status == "done"), default=None)
    killed = [int(e.split("child ")[1]) for e in events if "killed worker" in e]
    events += [f"worker-killed child {c}: started {started[c]} times, returned "
               f"{returned[c]} time(s), status {next(t.status for t in got if t.id == c)}"
               for c in killed]
    print("\n".join(events))
    print(f"\n{a.algorithm}, {a.children} children, m = W = {a.m}, {a.workers} local workers, "
          f"children sleep {a.sleep_s:g} s; load average {os.getloadavg()[0]:.2f}\n")
    print("| driver SIGKILLs | workers killed | children (drill / straight) | lost "
          "| trained twice | restarted (in flight at a kill) | same best | same sequence "
          "| wall drill / straight (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    n_driver = sum("driver SIGKILLed" in e for e in events)
    n_worker = sum("killed worker pid" in e for e in events)
    print(f"| {n_driver} | {n_worker} "
          f"| {len(got)} / {len(want)} | {len(lost)} | {len(twice)} | {len(restarted)} "
          f"| {best_got == best_want} ({best_got}) | {same_seq} "
          f"| {drill_s:.0f} / {straight_s:.0f} |")
    print(f"\nrun dirs: {tmp}")


if __name__ == "__main__":
    main()
