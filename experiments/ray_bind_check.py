r"""Which addresses a local Ray instance started by nas_tf listens on.

Starts Ray as ``RayExecutor`` does (``--executor=ray`` without
``--ray_address``: ``nas_tf.executors.ray_executor._init_local_ray``), runs
one child, and lists the listening TCP sockets of this process and of every
process it started (GCS, raylet, agents, workers). Prints one line per socket
and a count of those not on the loopback interface. ``--default`` starts Ray
with a plain ``ray.init(include_dashboard=False)`` instead, for comparison.

  python experiments/ray_bind_check.py [--default]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import psutil  # noqa: E402
import ray  # noqa: E402
from fake_evaluators import FakeEvaluator  # noqa: E402

from cnn_space.nb201 import Nb201Space  # noqa: E402
from nas_tf.evaluator import ChildContext  # noqa: E402
from nas_tf.executors import Job, RayExecutor  # noqa: E402


def _pid() -> int:
    import os

    return os.getpid()


def listening() -> list[tuple[str, int, str, int]]:
    me = psutil.Process()
    tree = {me.pid} | {c.pid for c in me.children(recursive=True)}
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in tree:
            try:
                name = psutil.Process(c.pid).name()
            except psutil.Error:
                name = "?"
            out.append((c.laddr.ip, c.laddr.port, name, c.pid))
    return sorted(out, key=lambda s: (s[2], s[1]))


def main() -> None:
    default = "--default" in sys.argv
    ex = None
    if default:
        ray.init(include_dashboard=False, log_to_driver=False, num_cpus=1)
        ray.get(ray.remote(_pid).remote())
    else:
        space = Nb201Space()
        ex = RayExecutor(num_workers=1, cpus_per_child=1)
        job = Job(1, space.tokens_to_spec((0,) * 6), ChildContext(child_id=1, seed=1))
        assert all(o.ok for o in ex.run(FakeEvaluator(), [job]))
    time.sleep(2)
    socks = listening()
    wide = [s for s in socks if not (s[0] == "::1" or s[0].startswith(("127.", "::ffff:127.")))]
    mode = "ray.init default" if default else "RayExecutor local instance"
    print(f"ray {ray.__version__}, {mode} (node address {ray.util.get_node_ip_address()}): "
          f"{len(socks)} listening sockets, {len(wide)} not on loopback")
    for ip, port, name, pid in socks:
        print(f"  {ip}:{port}  {name} (pid {pid})")
    if ex is not None:
        ex.close()
    else:
        ray.shutdown()


if __name__ == "__main__":
    main()
