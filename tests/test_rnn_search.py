"""Tests of cells.search: config validation, reward c/ppl^2, robustness, end-to-end rnn searches."""

import json
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_events

from cells.lm import ChildTrainingError, perplexity
from cells.search import RnnEvaluator, RnnSearchConfig, make_evaluator, make_space
from nas_tf.config import SearchConfig
from nas_tf.errors import ConfigError
from nas_tf.evaluator import EvalResult
from nas_tf.loop import run_search

REPO = Path(__file__).resolve().parents[1]

#: Tiny children: 8 units, 3 windows of 5 x 10 tokens on a slice of the synthetic corpus.
TINY = dict(units=8, bptt=10, batch_size=5, eval_batch_size=5, steps_per_epoch=3,
            train_tokens=2_000, valid_tokens=600, cell_base=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cell_base": 4}, "Received: cell_base=4"),
        ({"units": 0}, "Received: units=0"),
        ({"units": -3}, "Received: units=-3"),
        ({"dataset": "wikitext"}, "Received: dataset='wikitext'"),
        ({"reward_c": 0.0}, "Received: reward_c=0.0"),
        ({"train_tokens": 0}, "Received: train_tokens=0"),
        ({"bptt": 0}, "Received: bptt=0"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RnnSearchConfig(**kwargs)


def test_space_and_defaults():
    assert make_space(RnnSearchConfig(cell_base=2)).config()["base"] == 2
    space = make_space(RnnSearchConfig())
    assert space.name == "rnn" and space.config()["base"] == 8
    assert RnnSearchConfig().lm_config().learning_rate == 2e-2
    assert RnnSearchConfig(dataset="ptb").lm_config().learning_rate == 3e-3
    assert RnnSearchConfig(learning_rate=0.5).lm_config().learning_rate == 0.5
    paper = RnnSearchConfig.paper()
    assert (paper.cell_base, paper.reward_c, paper.child.optimizer) == (8, 80.0, "sgd")
    # §4.2: parameters matched to the medium LSTM (19.78M), not its 650 units.
    assert paper.child.units == 533
    json.dumps(RnnSearchConfig().to_json())


def test_evaluator_is_picklable_without_its_data():
    ev = make_evaluator(RnnSearchConfig(**TINY))
    ev.data()
    clone = pickle.loads(pickle.dumps(ev))
    assert clone.config == ev.config and clone._data is None
    with pytest.raises(ConfigError, match="RnnSearchConfig"):
        RnnEvaluator({"units": 8})


@pytest.mark.parametrize("ppl", [1.0, 7.5, 250.0])
def test_reward_is_c_over_perplexity_squared(ppl):
    ev = RnnEvaluator(RnnSearchConfig(reward_c=80.0))
    assert ev.reward(ppl) == pytest.approx(80.0 / ppl**2, rel=1e-12)


def test_huge_perplexity_gives_tiny_reward_without_overflow():
    ev = RnnEvaluator(RnnSearchConfig())
    r = ev.reward(8e307)  # ppl ** 2 would overflow a double
    assert 0.0 <= r < 1e-300


@pytest.mark.parametrize("ppl", [float("nan"), float("inf"), 0.5])
def test_invalid_perplexity_fails_the_child(ppl):
    with pytest.raises(ChildTrainingError, match="Received: val_perplexity="):
        RnnEvaluator(RnnSearchConfig()).reward(ppl)


class HugePerplexityEvaluator(RnnEvaluator):
    """No training: every child gets the perplexity of a diverged (huge, finite) loss."""

    def evaluate(self, spec, context):
        ppl = perplexity(1e6)
        return EvalResult(reward=self.reward(ppl), metrics={"val_perplexity": ppl})


def test_search_survives_huge_perplexities(tmp_path):
    cfg = RnnSearchConfig(cell_base=2)
    summary = run_search(make_space(cfg), HugePerplexityEvaluator(cfg), run_dir=str(tmp_path),
                         config=SearchConfig(algorithm="random", max_children=2))
    assert summary["children_trained"] == 2 and summary["children_failed"] == 0
    assert 0.0 <= summary["best_reward"] < 1e-70


def _trials(run_dir):
    con = sqlite3.connect(os.path.join(run_dir, "trials.sqlite"))
    try:
        return con.execute("SELECT status, reward, metrics FROM trials").fetchall()
    finally:
        con.close()


def test_run_search_end_to_end_with_real_children(tmp_path):
    cfg = RnnSearchConfig(reward_c=50.0, **TINY)
    evaluator = make_evaluator(cfg)
    summary = run_search(make_space(cfg), evaluator, run_dir=str(tmp_path / "run"),
                         config=SearchConfig(max_children=2, children_per_update=2, seed=3))
    assert summary["space"] == "rnn"
    assert summary["children_trained"] == 2 and summary["children_failed"] == 0
    rows = _trials(tmp_path / "run")
    assert [r[0] for r in rows] == ["done", "done"]
    for _, reward, metrics in rows:
        m = json.loads(metrics)
        # The reward is c / ppl^2 of the VALIDATION perplexity (§4.2).
        assert reward == pytest.approx(50.0 / m["val_perplexity"] ** 2, rel=1e-9)
        assert 1.0 < m["val_perplexity"] < 100.0 and m["steps"] == 3 and m["params"] > 0
        assert "test_perplexity" not in m
    # Each child wrote its train / valid curves to its own log dir.
    for child in ("1", "2"):
        curves = run_events(tmp_path / "run" / "children" / child)
        assert curves["train/perplexity"] and curves["valid/perplexity"]


def test_cli_rnn_search_in_subprocess(tmp_path):
    run_dir = tmp_path / "cli"
    args = [sys.executable, "-m", "nas_tf.run", "--space=rnn", f"--run_dir={run_dir}",
            "--max_children=1", "--cell_base=2", "--child_units=8", "--bptt=10",
            "--child_batch_size=5", "--child_steps=3", "--train_tokens=2000",
            "--valid_tokens=600", "--reward_c=80"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["space"] == "rnn" and summary["children_trained"] == 1
    ppl = summary["best_metrics"]["val_perplexity"]
    assert summary["best_reward"] == pytest.approx(80.0 / ppl ** 2, rel=1e-9)


def _tiny_ptb(folder: Path, words: str) -> Path:
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"ptb.{split}.txt").write_text(words + "\n")
    return folder


def test_a_corpus_too_small_for_one_window_is_refused_before_the_search(tmp_path):
    """A 3-word corpus: one error line, no run directory (not a failed child, exit 0)."""
    from nas_tf import plugins
    from nas_tf.errors import DataError

    data = _tiny_ptb(tmp_path / "ptb", "a b c")
    plugin = plugins.get("rnn")
    space, ev = plugin.make(dataset="ptb", data_dir=str(data))
    with pytest.raises(DataError, match=r"training split of --dataset=ptb has 4 tokens, too "
                                        r"few for one window of --bptt=35 in 20 rows"):
        plugin.check_data(space, ev)
    space, ev = plugin.make(dataset="ptb", data_dir=str(data), bptt=1, batch_size=2,
                            eval_batch_size=2)
    plugin.check_data(space, ev)  # 4 tokens: one window of 1 step in 2 rows
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "nas_tf.run", "--space=rnn", "--dataset=ptb",
                          f"--data_dir={data}", f"--run_dir={run_dir}", "--max_children=1"],
                         cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                         capture_output=True, text=True, timeout=300)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and lines[-1].startswith("error: The training split"), out.stderr
    assert not run_dir.exists()
