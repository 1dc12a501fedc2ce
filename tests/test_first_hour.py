"""What a new user sees in the first hour: the design card's command in an
empty folder, --help of every CLI, results on stdout and progress on stderr,
no TensorFlow start-up noise, readable progress and pictures of the search."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from nas_tf.console import ConsoleLogger
from nas_tf.evaluator import ChildContext
from nas_tf.findings import error_kind, failure_kinds, failure_line
from nas_tf.store import Trial

_NOISE = ("I0000", "E0000", "W0000", "oneDNN", "absl::InitializeLog", "cpu_feature_guard",
          "shuffle=True")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _png(path):
    import tensorflow as tf

    img = tf.io.decode_png(open(path, "rb").read()).numpy()
    assert img.shape[0] > 200 and img.shape[1] > 300, img.shape
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20  # not a blank canvas
    return img


def test_design_card_command_in_an_empty_folder(tmp_path):
    """`python -m nas_tf.run --space=rnn` with no --run_dir (tiny children)."""
    cmd = [sys.executable, "-m", "nas_tf.run", "--space=rnn", "--max_children=2",
           "--cell_base=2", "--child_units=8", "--child_layers=1", "--bptt=5",
           "--child_steps=3", "--train_tokens=800", "--valid_tokens=200"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "rnn"
    assert (run / "summary.json").is_file()
    # Results on stdout, in natural units, with the architecture and next commands.
    out = proc.stdout
    assert "children: 2 trained, 0 failed" in out, out
    assert "best child: #" in out and "valid perplexity" in out, out
    assert "c_t = " in out and "h_t = " in out  # the cell's equations, not a JSON line
    for cmd_word in ("tensorboard --logdir runs/rnn", "nas_tf.report --run_dir=runs/rnn",
                     "nas_tf.export --run_dir=runs/rnn"):
        assert cmd_word in out, out
    # Progress on stderr: where the run lives, the bar; none of TF's start-up lines.
    err = proc.stderr
    assert f"run directory: {run}" in err and "2/2 children" in err, err
    assert "children:" not in err
    noisy = [ln for ln in err.splitlines() if any(n in ln for n in _NOISE)]
    assert not noisy, noisy
    # Pictures: the curves and the best cell, in the run directory.
    _png(run / "reward_curve.png")
    _png(run / "best_architecture.png")
    assert f"picture: {run.relative_to(tmp_path)}" in out or "picture: runs" in out


@pytest.mark.parametrize("module", ["nas_tf.run", "nas_tf.report", "nas_tf.export"])
@pytest.mark.parametrize("flag", ["--help", "-h", "--helpfull"])
def test_help_exits_0_and_lists_flags_with_defaults(module, flag):
    proc = subprocess.run([sys.executable, "-m", module, flag], env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "--run_dir" in out and "(default:" in out, out
    assert "Unknown command line flag" not in out + proc.stderr
    assert "owned by" not in out and "only module that reads flags" not in out
    if flag == "--helpfull" and module == "nas_tf.run":
        assert "--verbosity" in out  # absl's flags too
    if module == "nas_tf.run":
        assert "else by --space: nb201 500, rnn 10, cnn 10" in " ".join(out.split())
        assert "synthetic (default, built in), ptb, ptb_char" in " ".join(out.split())
        assert "Default: runs/<space>" in out


def test_help_defaults_match_the_configs():
    from absl import flags

    from cells.search import RnnSearchConfig
    from cnn_space.train import CnnSearchConfig
    from nas_tf import run  # noqa: F401 - importing it defines the flags

    rnn, cnn = RnnSearchConfig(), CnnSearchConfig()

    def help_of(name):
        return " ".join(flags.FLAGS[name].help.split())

    assert f"rnn {rnn.child.epochs}, cnn {cnn.epochs}" in help_of("child_epochs")
    assert f"rnn {rnn.child.batch_size}, cnn {cnn.batch_size}" in help_of("child_batch_size")
    assert f"rnn {rnn.child.steps_per_epoch}," in help_of("child_steps")
    assert f"default {rnn.child.units}" in help_of("child_units")
    from nas_tf import plugins

    assert {n: plugins.get(n).default_max_children for n in ("nb201", "rnn", "cnn")} == {
        "nb201": 500, "rnn": 10, "cnn": 10}
    assert "nb201 500, rnn 10, cnn 10" in help_of("max_children")


def test_quiet_tensorflow_drops_start_up_lines_and_respects_the_user():
    code = ("import warnings, sys; from nas_tf import cli; cli.quiet_tensorflow(); "
            "import tensorflow as tf; tf.constant(1) + 1; "
            "warnings.warn('`shuffle=True` was passed, but will be ignored since x'); "
            "print('ok')")
    quiet = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ok", quiet.stderr
    assert not [ln for ln in quiet.stderr.splitlines() if ln.strip()], quiet.stderr
    # A user who set the level gets what they set (TF prints its notices again).
    loud = subprocess.run([sys.executable, "-c", code], env=_env(TF_CPP_MIN_LOG_LEVEL="0"),
                          capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0 and "0000" in loud.stderr


def test_failures_are_grouped_by_kind():
    errors = ["ChildTrainingError: Child training diverged: loss=nan at step 3 (epoch 0).",
              "ChildTrainingError: Child training diverged: loss=nan at step 17 (epoch 1).",
              "FloatingPointError: The child's training loss became nan at epoch 2",
              "ChildTimeout: child 4 ran past --child_timeout=10s",
              "ValueError: bad thing 12 (at x.py:3)", "ValueError: bad thing 40 (at x.py:9)"]
    kinds = failure_kinds(errors)
    assert kinds == [("diverged (NaN loss)", 3), ("ValueError: bad thing N", 2),
                     ("timed out", 1)]
    assert failure_line(kinds[:1], 10) == "3 of 10 children failed: 3 diverged (NaN loss)"
    assert failure_line([], 10) is None
    assert error_kind("") == "unknown error"


def test_the_closing_lines_count_failures_once():
    """children_trained counts the failed children: 11 of 40, not of 51."""
    from nas_tf.findings import closing_lines

    summary = {"status": "finished", "stop_reason": "budget reached: 40 unique children",
               "children_trained": 40, "children_failed": 11}
    lines = closing_lines(summary, None, None, ["ValueError: x"] * 11, "runs/x")
    assert "children: 40 trained, 11 failed" in lines
    assert "11 of 40 children failed: 11 ValueError: x" in lines


def _trial(i, reward, metrics):
    return Trial(id=i, hash=str(i), spec={}, tokens=[], status="done", reward=reward,
                 metrics=metrics, error=None, attempts=1, round=0, created=0.0, started=0.0,
                 finished=0.0, duration=1.0)


def test_console_progress_moves_while_a_child_trains_and_shows_the_metric():
    stream = io.StringIO()
    console = ConsoleLogger(stream, total=4, interval_s=0.0)
    console.child_progress(1, {"epoch": 1, "epochs": 2, "step": 5, "steps": 40})
    console.child(_trial(1, 0.05, {"best_val_perplexity": 40.0, "params": 3000}), None)
    console.progress(1, 4, 0.05)
    console.child(_trial(2, 0.02, {"best_val_perplexity": 63.0}), None)  # worse: not shown
    console.progress(2, 4, 0.05)
    lines = stream.getvalue().splitlines()
    assert "0/4 children" in lines[0] and "child 1 epoch 1/2 step 5/40" in lines[0]
    assert "1/4 children" in lines[1] and "best valid perplexity 40" in lines[1]
    assert "best valid perplexity 40" in lines[2] and "63" not in lines[2]
    acc = ConsoleLogger(io.StringIO(), total=1)
    acc.child(_trial(1, 0.7, {"val_accuracy": 0.9123}), None)
    acc.progress(1, 1, 0.7)
    assert "best valid accuracy 91.23%" in acc.stream.getvalue()


def test_child_context_reports_progress_and_pickles_without_its_listener():
    seen = []
    ctx = ChildContext(child_id=3, seed=1, on_progress=lambda cid, info: seen.append((cid, info)))
    ctx.report(epoch=1, epochs=2)
    assert seen == [(3, {"epoch": 1, "epochs": 2})]
    copy = pickle.loads(pickle.dumps(ctx))  # what a worker process receives
    assert copy == ctx and copy.on_progress is None
    copy.report(epoch=2)  # nobody listens: nothing happens

    def broken(cid, info):
        raise RuntimeError("display failed")

    ChildContext(child_id=1, on_progress=broken).report(step=1)  # never stops the child


def test_architecture_pictures_of_each_space(tmp_path):
    from cells.tree_space import TreeSpace, nas_cell_spec
    from cnn_space.nb201 import Nb201Space
    from cnn_space.space import CnnSpace
    from nas_tf.plots import save_png

    _png(save_png(TreeSpace().draw(nas_cell_spec()), tmp_path / "cell.png"))
    space = CnnSpace(preset="v1", num_layers=4)
    tokens = [0] * len(space.spec_to_tokens(space.tokens_to_spec(
        [0] * sum(d.width for d in space.decisions()))))
    spec = space.tokens_to_spec(tokens)
    _png(save_png(space.draw(spec), tmp_path / "cnn.png"))
    assert Nb201Space().draw(Nb201Space().tokens_to_spec([0] * 6)) is None  # no picture


def test_report_compare_overlays_runs(tmp_path, capsys):
    from cnn_space.nb201 import Nb201Space
    from nas_tf.config import SearchConfig
    from nas_tf.evaluator import EvalResult, Evaluator
    from nas_tf.loop import run_search
    from nas_tf.report import main

    class Convs(Evaluator):
        def evaluate(self, spec, context):
            acc = sum(op.startswith("nor_conv") for op in spec.ops) / 6
            return EvalResult(reward=acc, metrics={"test_accuracy": acc})

    for algo in ("random", "evolution"):
        run_search(Nb201Space(), Convs(), run_dir=str(tmp_path / algo),
                   config=SearchConfig(algorithm=algo, max_children=12, children_per_update=4))
    out = tmp_path / "cmp.png"
    assert main(["report", "--compare", str(tmp_path / "random"), str(tmp_path / "evolution"),
                 f"--out={out}"]) == 0
    assert str(out) in capsys.readouterr().out
    _png(out)
    assert main(["report", "--compare", str(tmp_path / "random")]) == 2
    assert "two or more" in capsys.readouterr().err


def test_console_script_shows_the_same_help(tmp_path):
    import shutil

    script = shutil.which("nas_tf")
    if script is None:
        pytest.skip("the nas_tf console script is not installed (pip install -e .)")
    proc = subprocess.run([script, "--help"], env=_env(), capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Runs (or resumes) a neural architecture search" in proc.stdout
    assert "--max_children" in proc.stdout and "--space" in proc.stdout
