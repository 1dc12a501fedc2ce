r"""Which addresses a local Ray instance started by nas_tf listens on.

Starts Ray as ``RayExecutor`` does (``--executor=ray`` without
``--ray_address``), runs one task, and lists with ``ss -ltnp`` the listening
TCP sockets of this process and of every process it started. Prints one line
per socket and a count of those on all interfaces (0.0.0.0 / *).

  python experiments/ray_bind_check.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import psutil
import ray


def _pid() -> int:
    return os.getpid()


def main() -> None:
    local = {"_node_ip_address": "127.0.0.1"} if "--default" not in sys.argv else {}
    ray.init(include_dashboard=False, log_to_driver=False, num_cpus=1, **local)
    ray.get(ray.remote(_pid).remote())
    time.sleep(2)
    me = psutil.Process()
    # Ray's daemons are started by this process (and may re-parent); take the session's
    # processes by their command lines too.
    pids = {me.pid} | {c.pid for c in me.children(recursive=True)}
    session = ray.get_runtime_context().get_node_id()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if session in cmd or ("ray" in cmd and p.pid in pids):
            pids.add(p.pid)
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    mine = []
    for line in out.splitlines():
        found = {int(x) for x in re.findall(r"pid=(\d+)", line)}
        if found & pids:
            mine.append(line.split()[3] + "  " + re.sub(r",fd=\d+", "", line.split()[-1]))
    wild = [x for x in mine if x.startswith(("0.0.0.0:", "*:", "[::]:"))]
    mode = "default" if "--default" in sys.argv else "_node_ip_address=127.0.0.1"
    print(f"ray {ray.__version__}, {mode}: {len(mine)} listening sockets, {len(wild)} on all "
          "interfaces")
    for x in mine:
        print("  " + x)
    ray.shutdown()


if __name__ == "__main__":
    main()
