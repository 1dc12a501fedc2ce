"""experiments/gpu_check.py: without a GPU it runs its tiny CPU version and says so."""

import os
import subprocess
import sys

from conftest import REPO


def test_gpu_check_runs_on_cpu_and_writes_its_report(tmp_path):
    """A subprocess: the script splits the CPU into two logical devices before TF starts."""
    out = tmp_path / "gpu.md"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "gpu_check.py"), "--tiny",
                           f"--out={out}"], capture_output=True, text=True, timeout=400, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "**This run had no GPU**" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert not [r for r in rows if "failed:" in r], text
    # One and two devices for the CNN (both precisions) and the LM child; both RNN layers.
    assert sum("CNN child" in r for r in rows) == 4 and sum("LM child" in r for r in rows) == 2
    assert sum("| 2 (" in r for r in rows) == 3
    for layer in ("keras.layers.LSTM", "cells.NASRNN"):
        assert {p for r in rows if r.startswith(f"| {layer} ") for p in
                ("float32", "mixed_float16") if p in r} == {"float32", "mixed_float16"}
