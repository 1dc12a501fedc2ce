"""How TensorBoard copes with a search of thousands of children, before and after.

A NAS-Bench-201 search (random search, rewards looked up in the real table)
of ``--children`` children is run twice through the real search loop and
:class:`nas_tf.logger.TensorBoardLogger`:

* ``before``: every child keeps its own run ``children/<id>`` (``keep_best=None``,
  what the logger did before: thousands of runs);
* ``after``: the defaults: only the 20 best and the 20 most recent children
  keep their runs, the others are archived; every child's metrics are in the
  single ``all_children`` run.

The NB201 evaluator is a table look-up and writes no curves, so each child
here also writes a small training curve into its log directory, as the
language-model children do (``--points`` epochs of ``epoch_loss`` and
``epoch_accuracy``), which makes a child's run as costly to load as a real
one's. For each run directory the script measures:

* the number of TensorBoard runs (directories holding event files);
* the time for tensorboard's ``EventMultiplexer`` (the Python loader) to
  load the directory;
* a real ``tensorboard --logdir DIR --host 127.0.0.1 --port <free>``
  (default loader): the time until ``/data/runs`` lists every run, and the
  HTTP time of ``/data/runs``, ``/data/plugin/scalars/tags``, one scalars
  request and the HParams dashboard's experiment request. The server is
  killed afterwards.

Usage::

    python experiments/tensorboard_scale.py --table=../shared/data/nb201/cifar10.csv \
        --children=2000 --out=experiments/results/tensorboard_scale.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator
from nas_tf.evaluator import Evaluator


class CurveEvaluator(Evaluator):
    """NB201 look-up that also writes a small training curve into the child's log dir."""

    def __init__(self, table: str, points: int):
        self.inner = Nb201TableEvaluator(table)
        self.points = points

    def evaluate(self, spec, context):
        result = self.inner.evaluate(spec, context)
        if context.log_dir:
            import tensorflow as tf

            writer = tf.summary.create_file_writer(context.log_dir)
            with writer.as_default():
                for epoch in range(self.points):
                    frac = (epoch + 1) / self.points
                    tf.summary.scalar("epoch_loss", 2.3 * (1 - frac) + 0.1, step=epoch)
                    tf.summary.scalar("epoch_accuracy", result.reward * frac, step=epoch)
            writer.close()
        return result


def build_run(run_dir: str, table: str, children: int, points: int, keep_all: bool) -> float:
    from nas_tf.config import SearchConfig
    from nas_tf.logger import TensorBoardLogger
    from nas_tf.loop import run_search

    saved = TensorBoardLogger.KEEP_BEST
    TensorBoardLogger.KEEP_BEST = None if keep_all else saved
    try:
        start = time.perf_counter()
        run_search(Nb201Space(), CurveEvaluator(table, points), run_dir=run_dir,
                   config=SearchConfig(algorithm="random", max_children=children,
                                       children_per_update=8, seed=0,
                                       max_proposals=children * 20),
                   checkpoint_every_s=60.0)
        return time.perf_counter() - start
    finally:
        TensorBoardLogger.KEEP_BEST = saved


def count_runs(run_dir: str) -> int:
    return sum(1 for _, _, files in os.walk(run_dir) if any("tfevents" in f for f in files))


def multiplexer_load(run_dir: str) -> tuple[float, int]:
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem

    start = time.perf_counter()
    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(run_dir)
    mux.Reload()
    return time.perf_counter() - start, len(mux.Runs())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, body: dict | None = None, timeout: float = 300.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json", "X-XSRF-Protected": "1"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        payload = r.read()
    return time.perf_counter() - start, payload


def serve_and_measure(run_dir: str, expected_runs: int, scalar_run: str, scalar_tag: str,
                      wait_s: float) -> dict:
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    cmd = [exe, "--logdir", run_dir, "--port", str(port), "--host", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    out: dict = {}
    try:
        start = time.perf_counter()
        runs = []
        while time.perf_counter() - start < wait_s:
            try:
                _, payload = http(base + "/data/runs", timeout=30)
                out.setdefault("first_response_s", time.perf_counter() - start)
                runs = json.loads(payload)
                if len(runs) >= expected_runs:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        out["all_runs_listed_s"] = time.perf_counter() - start
        out["runs_listed"] = len(runs)
        out["timed_out"] = len(runs) < expected_runs

        def timed(path, body=None, n=3):
            times = []
            size = 0
            for _ in range(n):
                t, payload = http(base + path, body)
                times.append(t)
                size = len(payload)
            return statistics.median(times), size

        out["runs_s"], out["runs_bytes"] = timed("/data/runs")
        out["tags_s"], out["tags_bytes"] = timed("/data/plugin/scalars/tags")
        q = urllib.parse.urlencode({"run": scalar_run, "tag": scalar_tag})
        out["scalars_s"], out["scalars_bytes"] = timed(f"/data/plugin/scalars/scalars?{q}")
        try:
            out["hparams_s"], out["hparams_bytes"] = timed(
                "/data/plugin/hparams/experiment", {"experimentName": ""}, n=1)
        except OSError as e:
            out["hparams_s"], out["hparams_bytes"] = float("nan"), f"error: {e}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="NAS-Bench-201 CSV (arch,test_accuracy)")
    ap.add_argument("--children", type=int, default=2000)
    ap.add_argument("--points", type=int, default=10, help="curve points per child")
    ap.add_argument("--wait_s", type=float, default=900.0,
                    help="longest wait for tensorboard to list every run")
    ap.add_argument("--work_dir", default=None, help="where to write the run dirs (temp)")
    ap.add_argument("--modes", nargs="+", default=["before", "after"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    work = args.work_dir or tempfile.mkdtemp(prefix="tb_scale_")
    rows = {}
    # Warm-up (imports, TensorFlow start-up) so that neither mode pays for it.
    build_run(os.path.join(work, "warmup"), args.table, 10, args.points, keep_all=False)
    for mode in args.modes:
        run_dir = os.path.join(work, mode)
        shutil.rmtree(run_dir, ignore_errors=True)
        build_s = build_run(run_dir, args.table, args.children, args.points,
                            keep_all=(mode == "before"))
        runs = count_runs(run_dir)
        mux_s, mux_runs = multiplexer_load(run_dir)
        if mode == "before":
            scalar_run, scalar_tag = f"children/{args.children // 2}", "epoch_accuracy"
        else:
            scalar_run, scalar_tag = "all_children", "child/reward"
        served = serve_and_measure(run_dir, runs, scalar_run, scalar_tag, args.wait_s)
        rows[mode] = {"search_s": build_s, "runs": runs, "mux_s": mux_s, "mux_runs": mux_runs,
                      "scalar_request": f"{scalar_run} / {scalar_tag}", **served}
        print(mode, json.dumps(rows[mode]), flush=True)

    keys = [("search_s", "search incl. logging (s)"), ("runs", "TensorBoard runs"),
            ("mux_s", "EventMultiplexer load (s)"),
            ("first_response_s", "tensorboard: start until /data/runs answers (s)"),
            ("all_runs_listed_s", "tensorboard: start until /data/runs lists every run (s)"),
            ("runs_s", "GET /data/runs (s)"), ("runs_bytes", "  bytes"),
            ("tags_s", "GET /data/plugin/scalars/tags (s)"), ("tags_bytes", "  bytes"),
            ("scalars_s", "GET scalars of one run and tag (s)"),
            ("scalar_request", "  run / tag"),
            ("hparams_s", "POST /data/plugin/hparams/experiment (s)"),
            ("hparams_bytes", "  bytes")]
    lines = ["| | " + " | ".join(args.modes) + " |", "|---|" + "---:|" * len(args.modes)]
    for key, label in keys:
        cells = []
        for mode in args.modes:
            v = rows[mode].get(key)
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    footer = (f"\nCommand: `python experiments/tensorboard_scale.py --children={args.children} "
              f"--points={args.points}`; {now} UTC, {os.cpu_count()} CPUs, load average after "
              "the run "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (a shared machine: timings are noisy).")
    table = "\n".join(lines) + "\n" + footer
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
