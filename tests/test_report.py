"""Reports on a run: top-k table, failures, reward curve PNG, TensorBoard image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnn_space.nb201 import Nb201Space
from nas_tf.config import SearchConfig
from nas_tf.errors import ConfigError, RunDirError
from nas_tf.evaluator import EvalResult, Evaluator
from nas_tf.loop import read_trials
from nas_tf.report import (
    CURVE_FILE,
    REPORT_FILE,
    REPORT_TB_DIR,
    format_report,
    main,
    make_report,
    write_report,
)
from nas_tf.store import TrialStore


class _FailsOnNone(Evaluator):
    """Reward: share of conv edges; a cell whose first edge is 'none' fails."""

    def evaluate(self, spec, context):
        if spec.ops[0] == "none":
            raise ValueError("first edge is none")
        convs = sum(op.startswith("nor_conv") for op in spec.ops)
        return EvalResult(reward=convs / 6 + 0.001 * context.child_id,
                          metrics={"val_accuracy": convs / 6, "params": 10 * convs})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from nas_tf.loop import run_search

    d = tmp_path_factory.mktemp("run")
    run_search(Nb201Space(), _FailsOnNone(), run_dir=str(d),
               config=SearchConfig(algorithm="random", max_children=24, children_per_update=6,
                                   seed=3))
    return d


def test_report_counts_errors_and_top_k(run_dir):
    trials = read_trials(run_dir)
    failed = [t for t in trials if t.status == "failed"]
    done = [t for t in trials if t.status == "done"]
    assert failed, "seed 3 must give some failed children (first edge 'none')"
    assert all(t.spec["ops"][0] == "none" for t in failed)

    report = make_report(run_dir, top_k=5)
    assert report.counts["done"] == len(done) and report.counts["failed"] == len(failed)
    ((line, count),) = report.errors
    assert line.startswith("ValueError: first edge is none") and count == len(failed)
    rewards = sorted((t.reward for t in done), reverse=True)[:5]
    assert [r.reward for r in report.top] == pytest.approx(rewards)
    assert [r.rank for r in report.top] == [1, 2, 3, 4, 5]
    best = report.top[0]
    assert best.metric == "val_accuracy" and best.params is not None
    assert len(report.order) == 24 and sum(r is None for r in report.order) == len(failed)

    text = format_report(report)
    assert f"done: {len(done)}  failed: {len(failed)}  pending: 0" in text
    assert f"{len(failed)} x ValueError: first edge is none" in text
    assert "val_accuracy=" in text


def test_write_report_files_and_tensorboard_image(run_dir):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator as ea

    report = write_report(run_dir, top_k=3)
    png = tf.io.decode_png((run_dir / CURVE_FILE).read_bytes()).numpy()
    assert png.shape[0] >= 300 and png.shape[1] >= 600  # matplotlib, 100 dpi
    assert len(np.unique(png.reshape(-1, png.shape[-1]), axis=0)) > 20  # not a blank canvas
    assert report.pictures == [str(run_dir / CURVE_FILE)]  # nb201 draws no architecture
    md = (run_dir / REPORT_FILE).read_text()
    assert md.count("\n| ") == 1 + len(report.top)  # header + rows
    acc = ea.EventAccumulator(str(run_dir / REPORT_TB_DIR), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    assert {"report/reward_curve", "report/top_children"} <= set(acc.Tags()["tensors"])
    (event,) = acc.Tensors("report/reward_curve")
    assert event.step == 24
    stored = tf.io.decode_png(event.tensor_proto.string_val[2]).numpy()
    assert stored.shape[:2] == png.shape[:2]  # the same figure, drawn for TensorBoard


def test_report_on_a_running_search(tmp_path):
    """The store of a search still writing (open, WAL) is read without writing it."""
    store = TrialStore(str(tmp_path / "trials.sqlite"))
    store.set_meta(space={"name": "nb201"})
    for i, ops in enumerate((["none"] * 6, ["skip_connect"] * 6, ["nor_conv_3x3"] * 6)):
        store.add(f"h{i}", {"ops": ops}, [0] * 6, 1)
    store.mark_running(1)
    store.mark_done(2, 0.7, {"val_accuracy": 0.7})
    # The database and its write-ahead log (readers may touch the -shm index).
    files = [tmp_path / "trials.sqlite", tmp_path / "trials.sqlite-wal"]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    report = make_report(tmp_path)
    assert report.counts == {"pending": 1, "running": 1, "done": 1, "failed": 0}
    assert [r.child_id for r in report.top] == [2]
    write_report(tmp_path, tensorboard=False)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert "pending: 2" in format_report(report)
    store.mark_done(1, 0.9)
    assert [r.child_id for r in make_report(tmp_path).top] == [1, 2]
    store.close()


def test_curves_mark_best_mean_and_failures():
    from nas_tf import plots

    fig = plots.search_curves({"run": [0.1, None, 0.5, 0.3, None, 0.9]},
                              {"run": [0.2, None, 0.6, 0.4, None, 0.95]},
                              metric_label="valid accuracy")
    top, bottom = fig.axes
    assert top.get_ylabel() == "reward" and bottom.get_ylabel() == "valid accuracy"
    assert "child" in bottom.get_xlabel()
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert sorted(labels) == ["best so far", "each child", "failed (2)", "mean of last 5"]
    best = [ln for ln in top.get_lines() if ln.get_label() == "best so far"][0]
    assert list(best.get_ydata()) == [0.1, 0.5, 0.5, 0.9]
    single = plots.search_curves({"run": []})  # no children yet: no error
    assert len(single.axes) == 1


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "is not a nas_tf run"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file"),
])
def test_bad_run_dir_is_one_error(tmp_path, make, match):
    with pytest.raises(RunDirError, match=match):
        make_report(make(tmp_path))


def test_corrupt_store_is_one_error(tmp_path):
    (tmp_path / "trials.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(RunDirError, match="not a readable nas_tf trial store"):
        make_report(tmp_path)


def test_bad_top_k(run_dir):
    with pytest.raises(ConfigError, match="top_k"):
        make_report(run_dir, top_k=0)


def test_cli(run_dir, tmp_path, capsys):
    assert main(["report", f"--run_dir={run_dir}", "--top_k=2", "--notensorboard"]) == 0
    out = capsys.readouterr().out
    assert "rank  child  reward" in out and "picture:" in out
    assert main(["report", f"--run_dir={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --run_dir") and "does not exist" in err[0]
    assert main(["report"]) == 2
    assert "--run_dir is required" in capsys.readouterr().err
    assert main(["report", f"--run_dir={run_dir}", "--top_k=x"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_summary_is_read(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert make_report(run_dir).summary["status"] == summary["status"] == "finished"


def _one_error(capsys, words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    return err[0]


@pytest.mark.parametrize("blocked", [REPORT_FILE, CURVE_FILE])
def test_a_directory_where_the_report_writes_a_file_is_one_error(run_dir, tmp_path, capsys,
                                                                  blocked):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / blocked).unlink()
    (run / blocked).mkdir()
    assert main(["report", f"--run_dir={run}", "--notensorboard"]) == 2
    _one_error(capsys, f"{run / blocked} is a directory where a file belongs")


def test_compare_out_into_a_missing_folder_or_a_directory_is_one_error(run_dir, tmp_path,
                                                                        capsys):
    from nas_tf import plots

    if not plots.available():
        pytest.skip("matplotlib is not installed (pip install 'nas_tf[report]')")
    runs = [str(run_dir), str(run_dir)]
    assert main(["report", "--compare", *runs, f"--out={tmp_path / 'missing' / 'c.png'}"]) == 2
    _one_error(capsys, "a folder on that path does not exist")
    assert main(["report", "--compare", *runs, f"--out={tmp_path}"]) == 2
    _one_error(capsys, "is a directory where a file belongs")
    assert main(["report", "--compare", *runs, f"--out={tmp_path / 'c.png'}"]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0 and not list(tmp_path.glob("*.tmp*"))
