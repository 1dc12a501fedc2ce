"""The tables of experiments/reliability_drill.py, as Markdown."""

from __future__ import annotations

import os
import time
from pathlib import Path


def write_results(d, conc, fault_table, fault_rc, t0, load0, noisy):
    bad_ok = sum(ok for _, ok, _ in d.bad)
    cor_ok = sum(ok for _, _, ok, _ in d.corrupt)
    tb = d.tracebacks
    refused = sum(r == 1 for _, r, _, _, _ in conc)
    twice = sum(t for _, _, t, _, _ in conc)
    lines = [
        "# Reliability drill of the run directory",
        "",
        f"Command: `nice -n 5 python experiments/reliability_drill.py` — "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.time() - t0:.0f} s; "
        f"load average at start {load0[0]:.2f}, at end {os.getloadavg()[0]:.2f} (2 shared CPU "
        "cores; several other jobs ran at the same time).",
        "",
        f"`yes*`: the one `error:` line came with TensorFlow's C++ log lines (`WARNING: All "
        f"log messages before absl::InitializeLog() ...`, oneDNN `I0000 ...`, `E0000 ...`). "
        f"{len(noisy)} rows are marked so.",
        "",
        "| drill | result |",
        "|---|---|",
        f"| bad inputs ending in one `error:` line, exit 2, nothing written | "
        f"**{bad_ok} / {len(d.bad)}** |",
        f"| corruption scenarios refused with one line or recovered, no silent loss | "
        f"**{cor_ok} / {len(d.corrupt)}** ({tb} tracebacks) |",
        *[f"| valid: {n} | {'yes' if ok else '**no**'}: {w} |" for n, ok, w in d.valid],
        f"| concurrent runs: second refused at once | {refused} / {len(conc)}; children "
        f"trained twice: {twice} |",
        f"| SIGKILLs (experiments/fault_drill.py, exit {fault_rc}) | see below |",
        f"| bad inputs / corruption with TensorFlow start-up lines before the error | "
        f"{len(noisy)} |",
        "",
        "## Bad inputs",
        "",
        "| input | one line | what the user sees |",
        "|---|---|---|",
    ]
    def mark(name, ok):
        return ("yes*" if name in noisy else "yes") if ok else "**no**"

    lines += [f"| {n} | {mark(n, ok)} | `{ln.replace('|', '/')}` |" for n, ok, ln in d.bad]
    lines += ["", "## Corruption", "", "| scenario | outcome | ok | line |", "|---|---|---|---|"]
    lines += [f"| {n} | {o} | {mark(n, ok)} | `{ln.replace('|', '/')}` |"
              for n, o, ok, ln in d.corrupt]
    lines += ["", "## Concurrent runs (two `nas_tf.run` started together, 300 children)", "",
              "| exit codes | refused | trained twice | rows | tracebacks |",
              "|---|---|---|---|---|"]
    lines += [f"| {c} | {r} | {t} | {n} | {b} |" for c, r, t, n, b in conc]
    lines += ["", "## SIGKILLs (`experiments/fault_drill.py --children=30 --kills=4 "
              "--sleep_s=0.1`)", ""] + fault_table + [""]
    out = Path(os.environ.get("RELIABILITY_OUT", d.tmp / "reliability_tables.md"))
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines) + f"\n\n(written to {out})")
