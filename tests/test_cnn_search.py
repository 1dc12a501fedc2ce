"""End-to-end CNN searches on a slice of CIFAR-10: the loop, failures, the CLI."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_space.train import CnnSearchConfig, make_evaluator, make_space
from nas_tf.config import SearchConfig
from nas_tf.evaluator import Evaluator

pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NAS_TF_SHARED_DATA", REPO.parent / "shared" / "data"))
CIFAR_DIR = SHARED / "cifar10"


def _need_cifar():
    if not (CIFAR_DIR / "train").is_dir():
        pytest.skip(f"CIFAR-10 image folders not found at {CIFAR_DIR} (set NAS_TF_SHARED_DATA)")


def _cfg(**kw):
    base = {"dataset": "imagefolder", "data_dir": str(CIFAR_DIR), "train_subset": 100,
            "num_layers": 2, "width_multiplier": 0.5, "epochs": 1, "batch_size": 32,
            "image_size": 8}
    base.update(kw)
    return CnnSearchConfig(**base)


class FirstChildDiverges(Evaluator):
    """Trains the first child with an absurd learning rate (its loss becomes NaN)."""

    def __init__(self, good, bad):
        self.good, self.bad, self.calls = good, bad, 0

    def evaluate(self, spec, context):
        self.calls += 1
        return (self.bad if self.calls == 1 else self.good).evaluate(spec, context)


def test_search_on_cifar10_slice_survives_a_nan_child(tmp_path):
    """One tiny search: child 1 diverges (NaN loss), is recorded failed,
    the search goes on and child 2 is trained and rewarded. (Random search: the
    controller's tracing would double the test's time; the REINFORCE path of the
    CNN space runs in experiments/cnn_cifar_search.py and the CLI quickstart.)"""
    _need_cifar()
    from nas_tf.loop import run_search
    from nas_tf.store import DONE, FAILED, TrialStore

    good = make_evaluator(_cfg())
    bad = make_evaluator(_cfg(learning_rate=1e30, lr_schedule="constant"))
    bad._data = good.data()  # same images; load once
    assert len(good.data().y_train) == 90 and good.data().num_classes == 10
    run_dir = tmp_path / "run"
    summary = run_search(make_space(_cfg()), FirstChildDiverges(good, bad), run_dir=str(run_dir),
                         config=SearchConfig(algorithm="random", max_children=2,
                                             children_per_update=1, seed=1))
    assert summary["children_failed"] == 1 and summary["children_done"] == 1
    assert 0.0 <= summary["best_reward"] <= 1.0
    store = TrialStore(str(run_dir / "trials.sqlite"))
    try:
        failed = store.trials(FAILED)
        assert len(failed) == 1 and "loss became" in failed[0].error
        done = store.trials(DONE)
        assert len(done) == 1
        for t in done:
            assert t.metrics["params"] > 0 and t.metrics["flops"] > 0
            assert math.isclose(t.reward, t.metrics["val_accuracy"] ** 3, rel_tol=1e-6)
    finally:
        store.close()
    # The trained child wrote its curves.
    assert list(run_dir.glob("children/*/train/events.out.tfevents.*"))


def _cli(args, tmp_path, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "nas_tf.run", "--space=cnn", *args],
                          cwd=os.getcwd(), capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def test_cli_cnn_search(tmp_path):
    _need_cifar()
    run_dir = tmp_path / "cli"
    proc = _cli([f"--run_dir={run_dir}", "--dataset=imagefolder", f"--data_dir={CIFAR_DIR}",
                 "--cnn_train_subset=100", "--cnn_num_layers=2", "--cnn_width_multiplier=0.5",
                 "--cnn_image_size=8", "--child_epochs=1", "--child_batch_size=32",
                 "--cnn_eval_batch_size=16", "--max_children=1", "--algorithm=random"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["space"] == "cnn" and summary["children_done"] == 1
    assert summary["space_config"]["num_layers"] == 2
    with sqlite3.connect(run_dir / "trials.sqlite") as db:
        row = db.execute("select value from meta where key='evaluator'").fetchone()
    record = json.loads(row[0])
    assert record["config"]["eval_batch_size"] == 16  # --cnn_eval_batch_size reached the child


@pytest.mark.parametrize(
    "args, words",
    [
        (["--dataset=mnsit"], "did you mean mnist"),
        (["--dataset=mnist", "--data_dir={tmp}/tfds"], "--cnn_download"),
        (["--dataset=imagefolder", "--data_dir=/nonexistent/imgs"], "not found"),
        (["--dataset=imagefolder", "--data_dir={cifar}", "--cnn_num_layers=0"], "num_layers"),
        (["--dataset=cifar10", "--data_dir={tmp}/tfds"], "not prepared"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, words):
    args = [a.format(cifar=CIFAR_DIR, tmp=tmp_path) for a in args]
    proc = _cli([f"--run_dir={tmp_path / 'run'}", *args], tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # nothing written before the data is checked


@pytest.mark.parametrize("bad, words", [("--cnn_num_layers=0", "num_layers must be"),
                                        ("--cnn_width_multiplier=-1", "width_multiplier")])
def test_demo_with_a_bad_value_prints_only_the_error_line(tmp_path, bad, words):
    """No --dataset (the demo): its note comes only once the settings are valid, so a
    bad value gives one line, not a demo warning first."""
    _need_cifar()
    proc = _cli([f"--run_dir={tmp_path / 'run'}", bad], tmp_path, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: ") and words in lines[0]
    assert not (tmp_path / "run").exists()
