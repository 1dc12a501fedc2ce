"""NAS-Bench-201 cells scored on images (cnn_space.nb201.estimators, .config, the CLI):
every reward estimator on small generated images, the table read only as truth, and
one-line errors for bad inputs. Real CIFAR-10 images: skipped when ../shared is absent."""

import json
import os
import random
import subprocess
import sys

import pytest
from conftest import write_synthetic_nb201_table

from cnn_space.nb201 import OPS, Nb201Spec
from cnn_space.nb201.config import Nb201Config
from cnn_space.nb201.estimators import (
    Nb201ProxyEvaluator,
    Nb201TrainEvaluator,
    make_evaluator,
)
from cnn_space.nb201.table import Nb201TableEvaluator
from cnn_space.synthetic import write_glyph_folder
from nas_tf.errors import ConfigError
from nas_tf.evaluator import ChildContext

TINY = dict(channels=4, cells=1, proxy_batch=8, train_subset=60, batch_size=16)
CELLS = [Nb201Spec(("nor_conv_3x3",) * 6), Nb201Spec(("none",) * 6),
         Nb201Spec(("skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3",
                    "skip_connect"))]


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory):
    return write_glyph_folder(str(tmp_path_factory.mktemp("glyphs")), per_class=8, size=16)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "table.csv"
    return str(path), write_synthetic_nb201_table(path)


@pytest.fixture(scope="module")
def shuffled_table(tmp_path_factory, table):
    """The same cells with their accuracies permuted: a reward that read the
    table would change."""
    _, accs = table
    archs = list(accs)
    values = list(accs.values())
    random.Random(0).shuffle(values)
    path = tmp_path_factory.mktemp("shuffled") / "table.csv"
    path.write_text("arch,test_accuracy\n" + "".join(f"{a},{v}\n" for a, v in zip(archs, values)))
    return str(path), dict(zip(archs, values))


def _ctx(i=1, seed=0):
    return ChildContext(child_id=i, seed=seed)


@pytest.mark.parametrize("settings, words", [
    ({}, "needs the table"),
    ({"reward": "naswot"}, "scores cells on images"),
    ({"reward": "bogus", "table": "t.csv"}, "Unknown nb201 reward"),
    ({"table": "t.csv", "channels": 0}, "channels=0"),
    ({"dataset": "imagefolder", "data_dir": "d", "proxy_batch": 1}, "proxy_batch=1"),
])
def test_config_errors_name_the_setting(settings, words):
    with pytest.raises(ConfigError, match=words):
        Nb201Config(**settings)


def test_default_reward_is_the_table_without_images_and_naswot_with_them():
    assert Nb201Config(table="t.csv").reward == "table"
    assert Nb201Config(dataset="imagefolder", data_dir="d").reward == "naswot"
    assert isinstance(make_evaluator(Nb201Config(table="t.csv")), Nb201TableEvaluator)
    assert isinstance(make_evaluator(Nb201Config(data_dir="d", reward="train")),
                      Nb201TrainEvaluator)


@pytest.mark.parametrize("reward", ["naswot", "synflow"])
def test_proxy_rewards_never_read_the_table(glyphs, table, shuffled_table, reward):
    """The same cells, seeds and images scored beside the table and beside a
    shuffled copy: identical rewards; only the truth differs, and it is the
    table's own value."""
    results = {}
    for name, (path, accs) in (("table", table), ("shuffled", shuffled_table)):
        ev = Nb201ProxyEvaluator(Nb201Config(table=path, reward=reward,
                                             dataset="imagefolder", data_dir=glyphs, **TINY))
        results[name] = [ev.evaluate(spec, _ctx(i)) for i, spec in enumerate(CELLS)]
        for spec, res in zip(CELLS, results[name]):
            assert res.metrics["table_test_accuracy"] == accs[spec.to_arch_string()]
    assert [r.reward for r in results["table"]] == [r.reward for r in results["shuffled"]]
    assert [r.metrics["table_test_accuracy"] for r in results["table"]] != \
        [r.metrics["table_test_accuracy"] for r in results["shuffled"]]


def test_naswot_ranks_a_conv_cell_above_a_dead_cell_and_is_seeded(glyphs):
    ev = Nb201ProxyEvaluator(Nb201Config(reward="naswot", dataset="imagefolder",
                                         data_dir=glyphs, **TINY))
    conv, dead = ev.evaluate(CELLS[0], _ctx()), ev.evaluate(CELLS[1], _ctx())
    assert conv.reward > dead.reward
    assert "table_test_accuracy" not in conv.metrics  # no table: no truth claimed
    assert conv.metrics["params"] > dead.metrics["params"]
    assert ev.evaluate(CELLS[0], _ctx()).reward == conv.reward
    assert ev.batch().shape[:3] == (8, 16, 16)  # the folder loader decodes 3 channels


def test_train_reward_is_validation_accuracy_with_truth_beside(glyphs, table):
    path, accs = table
    ev = Nb201TrainEvaluator(Nb201Config(table=path, reward="train", dataset="imagefolder",
                                         data_dir=glyphs, epochs=1, **TINY))
    res = ev.evaluate(CELLS[2], _ctx())
    assert 0.0 <= res.reward <= 1.0
    assert res.reward == res.metrics["val_accuracy"]
    assert res.metrics["table_test_accuracy"] == accs[CELLS[2].to_arch_string()]
    assert "flops" not in res.metrics and res.metrics["params"] > 0


def _cli(*args, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "nas_tf.run", *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=cwd)


def test_cli_naswot_search_reports_the_truth_of_its_best(glyphs, table, tmp_path):
    path, accs = table
    run = tmp_path / "run"
    proc = _cli("--space=nb201", "--nb201_reward=naswot", "--dataset=imagefolder",
                f"--data_dir={glyphs}", f"--nb201_table={path}", "--nb201_channels=4",
                "--nb201_cells=1", "--nb201_proxy_batch=8", "--nb201_train_subset=60",
                "--algorithm=random", "--max_children=6", f"--run_dir={run}", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best_metrics"]
    spec = Nb201Spec(tuple(summary["best_spec"]["ops"]))
    assert best["table_test_accuracy"] == accs[spec.to_arch_string()]
    assert summary["best_reward"] == best["naswot"]
    assert "truth: table test accuracy" in proc.stdout
    rows = subprocess.run([sys.executable, "-m", "nas_tf.report", f"--run_dir={run}",
                           "--format=csv"], capture_output=True, text=True, cwd=str(tmp_path),
                          timeout=300)
    assert rows.returncode == 0, rows.stderr
    lines = rows.stdout.splitlines()
    assert lines[0].startswith("id,spec,status,reward,")
    assert len(lines) == 1 + summary["children_trained"]
    assert all(line.count(",") >= 9 for line in lines[1:])


@pytest.mark.parametrize("args, words", [
    (["--nb201_reward=naswot"], "scores cells on images"),
    (["--nb201_reward=train", "--dataset=imagefolder", "--data_dir=/nonexistent/images"],
     "/nonexistent/images"),
])
def test_cli_bad_inputs_are_one_error_line_and_write_nothing(tmp_path, args, words):
    run = tmp_path / "run"
    proc = _cli("--space=nb201", *args, f"--run_dir={run}", cwd=str(tmp_path))
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert not run.exists()


def test_every_op_builds_in_a_cell(glyphs):
    ev = Nb201ProxyEvaluator(Nb201Config(reward="synflow", dataset="imagefolder",
                                         data_dir=glyphs, **TINY))
    for op in OPS:
        assert ev.evaluate(Nb201Spec((op,) * 6), _ctx()).metrics["params"] > 0


def test_real_cifar10_naswot_batch(shared_data):
    folder = shared_data / "cifar10"
    if not (folder / "train").is_dir():
        pytest.skip(f"{folder}/train is absent")
    ev = Nb201ProxyEvaluator(Nb201Config(reward="naswot", dataset="cifar10",
                                         data_dir=str(folder), channels=4, cells=1,
                                         proxy_batch=16, train_subset=200))
    batch = ev.batch()
    assert batch.shape == (16, 32, 32, 3)
    assert len(set(ev.data().y_train[:16].tolist())) > 1  # not one class


def test_supernet_sharing_scores_trains_resumes_and_never_reads_the_table(glyphs, table,
                                                                           shuffled_table,
                                                                           tmp_path):
    from cnn_space.nb201.sharing import SharedNb201Evaluator
    from nas_tf.sharing import SharingConfig

    sharing = SharingConfig("enas", steps_per_child=1, score_windows=1, top_k=2)
    rewards = {}
    for name, (path, accs) in (("table", table), ("shuffled", shuffled_table)):
        cfg = Nb201Config(table=path, reward="sharing", dataset="imagefolder", data_dir=glyphs,
                          eval_batch_size=8, shared_warmup_steps=3, **TINY)
        ev = make_evaluator(cfg, sharing)
        assert isinstance(ev, SharedNb201Evaluator)
        ev.bind_run_dir(tmp_path / name / "shared")
        results = [ev.evaluate(spec, _ctx(i)) for i, spec in enumerate(CELLS)]
        rewards[name] = [r.reward for r in results]
        net = ev.shared_model()
        assert net.steps == 3 + len(CELLS) and net.traces == 1  # one graph for every cell
        for spec, r in zip(CELLS, results):
            assert 0.0 <= r.reward <= 1.0 and r.reward == r.metrics["val_accuracy"]
            assert r.metrics["table_test_accuracy"] == accs[spec.to_arch_string()]
        ev.close()
        ranking = json.loads((tmp_path / name / "shared" / "ranking.json").read_text())
        assert len(ranking) == 2 and "table_test_accuracy" in ranking[0]
    assert rewards["table"] == rewards["shuffled"]
    # A new evaluator on the same folder resumes the supernet (no second warm-up).
    again = make_evaluator(Nb201Config(table=table[0], reward="sharing", dataset="imagefolder",
                                       data_dir=glyphs, eval_batch_size=8,
                                       shared_warmup_steps=3, **TINY), sharing)
    again.bind_run_dir(tmp_path / "table" / "shared")
    assert again.shared_model().steps == 3 + len(CELLS)
