"""One row per child (nas_tf.report_rows, ``report --format=csv|json``)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cnn_space.nb201 import Nb201Space
from nas_tf.config import SearchConfig
from nas_tf.errors import RunDirError
from nas_tf.evaluator import EvalResult, Evaluator
from nas_tf.loop import read_trials, run_search
from nas_tf.report import main
from nas_tf.report_rows import COLUMNS, child_rows, format_rows


class _Scored(Evaluator):
    """Reward: share of conv edges; truth: a made-up table value; 'none' first edge fails."""

    def evaluate(self, spec, context):
        if spec.ops[0] == "none":
            raise ValueError("first edge is none")
        convs = sum(op.startswith("nor_conv") for op in spec.ops)
        return EvalResult(reward=convs / 6, metrics={
            "val_accuracy": convs / 6, "params": 10 * convs, "train_seconds": 0.5,
            "table_test_accuracy": 80.0 + convs})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    run_search(Nb201Space(), _Scored(), run_dir=str(d),
               config=SearchConfig(algorithm="random", max_children=20, children_per_update=5,
                                   seed=3))
    return str(d)


def test_rows_match_the_store(run_dir):
    trials = {t.id: t for t in read_trials(run_dir)}
    rows = child_rows(run_dir)
    assert [r["id"] for r in rows] == sorted(trials)
    for r in rows:
        t = trials[r["id"]]
        assert json.loads(r["spec"]) == t.spec and r["status"] == t.status
        if t.status == "done":
            assert r["reward"] == t.reward
            assert r["metric"] == "valid accuracy" and r["metric_value"] == t.reward
            assert r["table_test_accuracy"] == 80.0 + 6 * t.reward
            assert r["seconds"] == 0.5 and r["error"] is None
        else:
            assert r["reward"] is None and r["error"].startswith("ValueError: first edge")
    assert any(r["status"] == "failed" for r in rows)


def test_csv_and_json_round_trip(run_dir):
    rows = child_rows(run_dir)
    parsed = list(csv.DictReader(io.StringIO(format_rows(rows, "csv"))))
    assert list(parsed[0]) == list(COLUMNS) and len(parsed) == len(rows)
    assert [int(p["id"]) for p in parsed] == [r["id"] for r in rows]
    assert json.loads(format_rows(rows, "json")) == rows


def test_cli_writes_rows_to_stdout_and_nothing_else(run_dir, capsys, tmp_path):
    assert main(["report", f"--run_dir={run_dir}", "--format=json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(child_rows(run_dir))
    with pytest.raises(RunDirError):
        child_rows(str(tmp_path / "missing"))
    assert main(["report", f"--run_dir={tmp_path / 'missing'}", "--format=csv"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
