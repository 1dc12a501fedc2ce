"""TensorBoard output of a search, read back with tensorboard's own event reader."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import metadata as hp_metadata
from tensorboard.util import tensor_util

from cnn_space.nb201 import Nb201Space
from nas_tf.config import SearchConfig
from nas_tf.console import ConsoleLogger
from nas_tf.evaluator import EvalResult, Evaluator
from nas_tf.logger import (
    DURATION_TAG,
    FAILED_TAG,
    REWARD_TAG,
    Logger,
    MultiLogger,
    TensorBoardLogger,
    child_hparams,
    child_metrics,
    restore_child_runs,
)
from nas_tf.store import Trial


def _acc(path):
    acc = ea.EventAccumulator(str(path), size_guidance={ea.TENSORS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc


def _values(acc, tag):
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]


def _trial(tid, ops, status="done", reward=0.5, metrics=None, error=None):
    return Trial(id=tid, hash=f"h{tid}", spec={"ops": list(ops)}, tokens=(0,) * 6, status=status,
                 reward=reward, metrics=metrics or {}, error=error, attempts=1, round=1,
                 created=1000.0, started=1001.0, finished=1003.0, duration=2.0)


OPS_A = ("nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")
OPS_B = ("none", "none", "none", "none", "none", "none")


def test_scalars_text_image_hparams_read_back(tmp_path):
    space = Nb201Space()
    tb = TensorBoardLogger(str(tmp_path))
    tb.scalars(3, {"reward/mean": 0.25, "controller/entropy": 1.5, "skipped": None})
    tb.scalars(6, {"reward/mean": 0.75})
    tb.text(6, "best/architecture", "child 2, reward 0.75")
    tb.image(6, "curve", np.full((8, 10, 3), 200, np.uint8))
    done = _trial(2, OPS_A, metrics={"val_accuracy": 0.91, "params": 1234, "train_seconds": 1.5})
    failed = _trial(3, OPS_B, status="failed", reward=0.0, error="boom")
    tb.child(done, space)
    tb.child(failed, space)
    tb.close()

    root = _acc(tmp_path)
    assert [(s, float(v)) for s, v in _values(root, "reward/mean")] == [(3, 0.25), (6, 0.75)]
    assert [float(v) for _, v in _values(root, "controller/entropy")] == [1.5]
    assert "skipped" not in root.Tags()["tensors"]
    (text,) = _values(root, "best/architecture")
    assert text[1].item().decode() == "child 2, reward 0.75"
    assert "curve" in root.Tags()["tensors"]

    # The experiment config: every decision as an hparam with its values, and the metrics.
    content = root.SummaryMetadata(hp_metadata.EXPERIMENT_TAG).plugin_data.content
    exp = hp_metadata.parse_experiment_plugin_data(content)
    infos = {h.name: h for h in exp.hparam_infos}
    assert set(infos) == {d.name for d in space.decisions()}
    assert sorted(v.string_value for v in infos["edge_1_0"].domain_discrete.values) == sorted(
        ("avg_pool_3x3", "none", "nor_conv_1x1", "nor_conv_3x3", "skip_connect"))
    metric_tags = {m.name.tag for m in exp.metric_infos}
    assert {REWARD_TAG, DURATION_TAG, FAILED_TAG, "child/val_accuracy", "child/params"} <= (
        metric_tags)

    # One session per child in children/<id>, with its decisions and metrics.
    for trial, expected in ((done, {REWARD_TAG: 0.5, FAILED_TAG: 0.0, "child/val_accuracy": 0.91,
                                    "child/params": 1234.0, DURATION_TAG: 2.0}),
                            (failed, {REWARD_TAG: 0.0, FAILED_TAG: 1.0})):
        acc = _acc(tmp_path / "children" / str(trial.id))
        meta = acc.SummaryMetadata(hp_metadata.SESSION_START_INFO_TAG).plugin_data.content
        info = hp_metadata.parse_session_start_info_plugin_data(meta)
        got = {k: v.string_value for k, v in info.hparams.items()}
        assert got == space.hparams(space.spec_from_json(trial.spec))
        assert info.group_name  # the session has a name
        for tag, value in expected.items():
            (step, v), = _values(acc, tag)
            assert step == trial.id and float(v) == pytest.approx(value)


def test_integer_decisions_show_as_integers_in_the_hparams_table(tmp_path):
    """The HParams dashboard prints numbers with toPrecision(5): a filter size
    written as the number 3 reads "3.0000". Integers are written as strings."""
    from cnn_space.space import CnnSpace, CnnSpec

    space = CnnSpace("v1", num_layers=2)
    spec = CnnSpec(layers=((3, 5, 24, 1, ()), (1, 7, 64, 1, (0,))))
    trial = Trial(id=1, hash="h1", spec=spec.to_json(), tokens=space.spec_to_tokens(spec),
                  status="done", reward=0.5, metrics={}, error=None, attempts=1, round=1,
                  created=1000.0, started=1001.0, finished=1003.0, duration=2.0)
    tb = TensorBoardLogger(str(tmp_path))
    tb.child(trial, space)
    tb.close()
    acc = _acc(tmp_path / "children" / "1")
    meta = acc.SummaryMetadata(hp_metadata.SESSION_START_INFO_TAG).plugin_data.content
    values = hp_metadata.parse_session_start_info_plugin_data(meta).hparams
    decided = space.hparams(spec)
    int_names = [k for k, v in decided.items() if type(v) is int]
    assert len(int_names) >= 4  # filter heights, widths, counts of both layers
    for name in int_names:
        assert values[name].WhichOneof("kind") == "string_value", name
        assert values[name].string_value == str(decided[name])  # "3", not 3.0000
    assert values["depth"].string_value == "2"
    exp = hp_metadata.parse_experiment_plugin_data(
        _acc(tmp_path).SummaryMetadata(hp_metadata.EXPERIMENT_TAG).plugin_data.content)
    infos = {h.name: h for h in exp.hparam_infos}
    name = next(k for k in int_names if "filters" in k or "num_filters" in k)
    assert [v.string_value for v in infos[name].domain_discrete.values] == ["24", "36", "48",
                                                                           "64"]


def test_child_hparams_include_space_settings_and_depth():
    class DeepSpec:
        num_layers = 4

    class Space(Nb201Space):
        def spec_from_json(self, obj):
            return DeepSpec()

        def hparams(self, spec):
            return {"layer_0/filters": np.int64(24), "layer_1/inputs": "0"}

        def config(self):
            return {"name": "fake", "preset": "v1", "num_layers": 4, "filters": [24, 36]}

    hp = child_hparams(_trial(1, OPS_A), Space())
    assert hp == {"layer_0/filters": 24, "layer_1/inputs": "0", "space/preset": "v1",
                  "space/num_layers": 4, "depth": 4}
    assert type(hp["layer_0/filters"]) is int


@pytest.mark.parametrize("metrics, expected", [
    ({"val_perplexity": 80.0, "note": "x", "flag": True}, {"child/val_perplexity": 80.0}),
    ({"val_accuracy": float("nan")}, {}),
])
def test_child_metrics_keep_finite_numbers(metrics, expected):
    got = child_metrics(_trial(1, OPS_A, reward=0.25, metrics=metrics))
    assert got == {REWARD_TAG: 0.25, FAILED_TAG: 0.0, DURATION_TAG: 2.0, **expected}


def test_bad_spec_in_a_row_does_not_stop_logging(tmp_path, caplog):
    tb = TensorBoardLogger(str(tmp_path))
    tb.child(_trial(1, ("bogus",) * 6), Nb201Space())
    tb.child(_trial(2, OPS_A, reward=0.5), Nb201Space())  # logging goes on
    tb.close()
    assert "No HParams session for child 1" in caplog.text
    assert not (tmp_path / "children" / "1").exists()
    assert list((tmp_path / "children" / "2").glob("events.out.tfevents.*"))


def test_multilogger_forwards_and_skips_missing_methods():
    calls = []

    class Recorder(Logger):
        def image(self, step, tag, image):
            calls.append(("image", step, tag))

    class Old:  # a logger written before image() existed
        def scalars(self, step, values):
            calls.append(("scalars", step))

    multi = MultiLogger([Recorder(), Old(), None])
    multi.image(1, "t", None)
    multi.scalars(2, {})
    multi.text(3, "t", "x")
    assert calls == [("image", 1, "t"), ("scalars", 2)]


def test_console_logger_progress_line():
    stream = io.StringIO()
    ConsoleLogger(stream).progress(10, 10, 0.5)
    # Without a child's metric the bar shows the reward.
    assert "10/10 children" in stream.getvalue() and "best reward 0.5" in stream.getvalue()


class _ConvCount(Evaluator):
    def evaluate(self, spec, context):
        convs = sum(op.startswith("nor_conv") for op in spec.ops)
        return EvalResult(reward=convs / 6, metrics={"val_accuracy": convs / 6})


def test_search_writes_one_session_per_child(tmp_path):
    from nas_tf.loop import run_search

    run_search(Nb201Space(), _ConvCount(), run_dir=str(tmp_path),
               config=SearchConfig(algorithm="random", max_children=6, children_per_update=3))
    children = sorted(int(p) for p in os.listdir(tmp_path / "children"))
    assert children == [1, 2, 3, 4, 5, 6]
    root = _acc(tmp_path)
    assert hp_metadata.EXPERIMENT_TAG in root.Tags()["tensors"]
    assert "reward/mean" in root.Tags()["tensors"]
    for cid in children:
        acc = _acc(tmp_path / "children" / str(cid))
        assert hp_metadata.SESSION_START_INFO_TAG in acc.Tags()["tensors"]
        assert "child/val_accuracy" in acc.Tags()["tensors"]


def _event_files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if "tfevents" in p.name)


def test_only_the_best_and_recent_children_keep_their_runs(tmp_path):
    """At scale (thousands of children) each child's own TensorBoard run is kept only for
    the best and the most recent ones; the others move to children_archive/ with event
    files TensorBoard does not read; every child stays in the all_children run."""
    space = Nb201Space()
    rewards = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.2, 5: 0.3, 6: 0.95, 7: 0.05, 8: 0.4}
    tb = TensorBoardLogger(str(tmp_path), keep_best=2, keep_recent=2)
    for tid in range(1, 6):
        curves = tmp_path / "children" / str(tid) / "train"  # what an evaluator writes
        curves.mkdir(parents=True)
        (curves / f"events.out.tfevents.{tid}.host.v2").write_bytes(b"")
        status = "failed" if tid == 3 else "done"
        tb.child(_trial(tid, OPS_A, status=status, reward=rewards[tid]), space)
    tb.close()
    # best: 1 (0.9), 4 (0.2) -- 3 failed does not count; recent: 4, 5.
    assert sorted(int(p.name) for p in (tmp_path / "children").iterdir() if p.is_dir()) == [
        1, 4, 5]
    archive = tmp_path / "children_archive"
    assert sorted(int(p.name) for p in archive.iterdir() if p.is_dir()) == [2, 3]
    assert not _event_files(archive)  # invisible to TensorBoard, nothing deleted:
    assert (archive / "2" / "train" / "events.out.tfarchive.2.host.v2").exists()
    assert list((archive / "2").glob("events.out.tfarchive.*"))  # its HParams session

    # A resumed search (a new logger) continues from children_archive/retained.json.
    tb = TensorBoardLogger(str(tmp_path), keep_best=2, keep_recent=2)
    for tid in (6, 7, 8):
        tb.child(_trial(tid, OPS_A, reward=rewards[tid]), space)
    tb.close()
    assert sorted(int(p.name) for p in (tmp_path / "children").iterdir() if p.is_dir()) == [
        1, 6, 7, 8]
    assert sorted(int(p.name) for p in archive.iterdir() if p.is_dir()) == [2, 3, 4, 5]
    # Every child's reward is in one run, at step = child id.
    all_children = _acc(tmp_path / "all_children")
    got = {s: float(v) for s, v in _values(all_children, REWARD_TAG)}
    assert got == pytest.approx({k: v for k, v in rewards.items()})
    assert {s: float(v) for s, v in _values(all_children, FAILED_TAG)}[3] == 1.0
    # Archived children come back on request.
    assert restore_child_runs(str(tmp_path), [2, 99]) == [2]
    assert (tmp_path / "children" / "2" / "train" / "events.out.tfevents.2.host.v2").exists()
    acc = _acc(tmp_path / "children" / "2")
    assert hp_metadata.SESSION_START_INFO_TAG in acc.Tags()["tensors"]


def test_keep_best_none_keeps_every_child_and_bad_limits(tmp_path):
    tb = TensorBoardLogger(str(tmp_path), keep_best=None)
    for tid in range(1, 4):
        tb.child(_trial(tid, OPS_A, reward=0.1 * tid), Nb201Space())
    tb.close()
    assert sorted(p.name for p in (tmp_path / "children").iterdir()) == ["1", "2", "3"]
    assert not (tmp_path / "children_archive").exists()
    assert _event_files(tmp_path / "all_children")
    with pytest.raises(ValueError, match="keep_recent"):
        TensorBoardLogger(str(tmp_path), keep_recent=-1)


def test_keep_recent_zero_writes_runs_only_for_the_best(tmp_path):
    """Cheap children (a table lookup): a child not among the best gets no folder at all
    (neither children/<id> nor children_archive/<id>); all_children has every child."""
    space = Nb201Space()
    rewards = [0.5, 0.1, 0.7, 0.2, 0.3, 0.05, 0.9, 0.01]
    tb = TensorBoardLogger(str(tmp_path), keep_best=2, keep_recent=0)
    for tid, r in enumerate(rewards, start=1):
        tb.child(_trial(tid, OPS_A, reward=r), space)
    tb.close()
    assert sorted(int(p.name) for p in (tmp_path / "children").iterdir()) == [3, 7]
    # Entered the best and dropped out later: archived as before (1, 2); never among
    # the best (4, 5, 6, 8): no folder.
    archive = tmp_path / "children_archive"
    assert sorted(int(p.name) for p in archive.iterdir() if p.is_dir()) == [1, 2]
    retained = json.loads((archive / "retained.json").read_text())
    assert retained == {"best": [[0.9, 7], [0.7, 3]], "recent": []}
    got = {s: float(v) for s, v in _values(_acc(tmp_path / "all_children"), REWARD_TAG)}
    assert got == pytest.approx(dict(enumerate(rewards, start=1)))
