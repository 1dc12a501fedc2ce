"""Command-line start-up: --help and bad flags answer without importing
TensorFlow wherever the code allows it.

``nas_tf.report`` and ``nas_tf.export`` never need it for that. ``nas_tf.run``
defines every installed space's flags, and the ``rnn`` plug-in's package
(``cells``) registers its Keras layers when imported (documented: ``import
cells`` before ``keras.saving.load_model``), so with it installed ``--help``
imports TensorFlow; the spine and the other plug-ins do not.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Runs a CLI module as ``python -m`` would, then says whether TensorFlow (or
# Keras) was imported. ``hide`` drops entry points by name (a machine without
# that plug-in installed).
PROBE = """
import importlib.metadata as md, runpy, sys
hide = set(sys.argv[2].split(",")) - {""}
real = md.entry_points
md.entry_points = lambda **kw: [e for e in real(**kw) if e.name not in hide]
sys.argv = [sys.argv[1]] + sys.argv[3:]
code = 0
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("exit", code, "heavy", ",".join(heavy) or "-", file=sys.stderr)
"""


def _probe(module: str, *args: str, hide: str = "") -> tuple[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, module, hide, *args], env=env,
                          capture_output=True, text=True, timeout=300)
    last = proc.stderr.strip().splitlines()[-1]
    return last, proc.stdout + proc.stderr


@pytest.mark.parametrize("module,args,status", [
    ("nas_tf.report", ["--help"], 0),
    ("nas_tf.export", ["--help"], 0),
    ("nas_tf.report", ["--top_k=x"], 2),
    ("nas_tf.export", ["--rank=x"], 2),
])
def test_report_and_export_start_without_tensorflow(module, args, status):
    last, out = _probe(module, *args)
    assert last == f"exit {status} heavy -", out


def test_run_help_imports_tensorflow_only_for_a_plugin_that_needs_it():
    last, out = _probe("nas_tf.run", "--help", hide="rnn")
    assert last == "exit 0 heavy -", out
    assert "--cnn_preset" in out and "--nb201_table" in out and "--max_children" in out
    last, out = _probe("nas_tf.run", "--space=nb201", "--max_children=x", hide="rnn")
    assert last == "exit 2 heavy -", out
    assert "error: " in out
    # With the rnn plug-in (cells registers its Keras layers on import): TensorFlow,
    # and none of its start-up lines on the way.
    last, out = _probe("nas_tf.run", "--help", hide="")
    assert last.startswith("exit 0 heavy ") and "tensorflow" in last, out
    assert "--child_units" in out and "oneDNN" not in out and "cpu_feature_guard" not in out


def test_per_child_retracing_warning_is_dropped_and_other_warnings_kept():
    import logging

    from nas_tf.cli import quiet_tensorflow

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    quiet_tensorflow()
    quiet_tensorflow()  # idempotent: one filter
    tf_logger = logging.getLogger("tensorflow")
    handler = Keep()
    tf_logger.addHandler(handler)
    try:
        tf_logger.warning("5 out of the last 5 calls to <function make_eval_step.<locals>."
                          "eval_step> triggered tf.function retracing. Tracing is expensive")
        tf_logger.warning("a checkpoint could not be restored")
    finally:
        tf_logger.removeHandler(handler)
    assert seen == ["a checkpoint could not be restored"]
    assert sum(type(f).__name__ == "_PerChildRetracing" for f in tf_logger.filters) == 1
