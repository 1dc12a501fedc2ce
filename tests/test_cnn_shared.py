"""Tests of cnn_space/shared.py and cnn_space/sharing.py (``--space=cnn --sharing=enas``)."""

import json
import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest

from cnn_space.config import CnnSearchConfig
from cnn_space.data import image_data
from cnn_space.space import CnnSpec
from nas_tf import plugins
from nas_tf.errors import ConfigError
from nas_tf.evaluator import ChildContext
from nas_tf.sharing import SharingConfig, read_scores


def _data(n=96, size=8, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8)
    y = (np.arange(n) % classes).astype(np.int64)
    k = n * 3 // 4
    return image_data(x[:k], y[:k], x[k:], y[k:], tuple("abcdefghij"[:classes]), "random")


def _cfg(preset="v1", layers=3, **kw):
    base = dict(dataset="imagefolder", data_dir="unused", preset=preset, num_layers=layers,
                width_multiplier=0.125, batch_size=16, eval_batch_size=12, augment="none")
    return CnnSearchConfig(**{**base, **kw})


def _model(preset="v1", layers=3, data=None, **kw):
    from cnn_space.shared import SharedCnn
    from cnn_space.train import make_space

    cfg = _cfg(preset, layers, **kw)
    return SharedCnn(make_space(cfg), data or _data(), cfg, seed=0), cfg


@pytest.fixture(scope="module")
def v3():
    return _model("v3", 3)[0]  # pools before layers 1 and 2


def test_every_sampled_child_runs_on_one_trace(v3):
    from cnn_space.shared import uniform_spec

    rng, scores = random.Random(0), []
    for k in range(30):  # uniform, skip-heavy and skip-free children
        spec = uniform_spec(v3.space, rng, skip_prob=(0.5, 1.0, 0.0)[k % 3])
        scores.append(v3.score(spec))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert v3._eval_step.experimental_get_tracing_count() == 1
    v3.train(lambda: uniform_spec(v3.space, rng, skip_prob=1.0), 5)
    v3.train(lambda: uniform_spec(v3.space, rng), 5)
    assert v3.traces == 1 and v3.steps == 10 and v3.skipped == 0


def _standalone_weights(net, spec, model, channels):
    """Copies the slices of ``spec`` out of the shared network into a stand-alone child."""
    body, width, mid = model.get_layer("convolutions"), net.width, 3
    for i, layer in enumerate(spec.layers):
        fh, fw, f = layer.filter_height, layer.filter_width, layer.filters
        rows = [r for j in layer.inputs
                for r in range(channels + j * width, channels + j * width + spec.layers[j].filters)]
        rows = rows or list(range(channels))  # no input: the image block
        kernel = np.asarray(net.kernels[i])[mid - fh // 2:mid + fh // 2 + 1,
                                            mid - fw // 2:mid + fw // 2 + 1][:, :, rows, :f]
        variables = body.layer_variables(i)
        variables[0].assign(kernel)
        variables[1].assign(np.asarray(net.gammas[i])[:f])
        variables[2].assign(np.asarray(net.betas[i])[:f])
    rows = [r for i in spec.unused_outputs() for r in range(i * width,
                                                            i * width + spec.layers[i].filters)]
    model.get_layer("classifier").set_weights([np.asarray(net.classifier_kernel)[rows],
                                              np.asarray(net.classifier_bias)])


@pytest.mark.parametrize("preset,layers", [("v1", 4), ("v3", 3)])
def test_a_child_on_the_shared_network_equals_the_stand_alone_child(preset, layers):
    import keras

    from cnn_space.builder import build_model
    from cnn_space.shared import uniform_spec

    # A curriculum space: the network has the full depth, a 2-layer child leaves the rest idle.
    model, _ = _model(preset, layers, curriculum=True, curriculum_start=2, curriculum_step=1)
    model.train(lambda: uniform_spec(model.space, random.Random(1), depth=layers), 2)
    x = np.random.default_rng(1).normal(size=(6, 8, 8, 3)).astype("float32")
    rng = random.Random(3)
    for depth in (layers, layers, 2):
        spec = uniform_spec(model.space, rng, depth=depth)
        model.set_architecture(spec)
        shared = keras.ops.softmax(model.net(x))
        child = build_model(spec, (8, 8, 3), 4, weight_decay=0.0)
        _standalone_weights(model.net, spec, child, 3)
        alone = child(x, training=True)  # batch statistics, as the shared network
        np.testing.assert_allclose(np.asarray(shared), np.asarray(alone), atol=1e-5)


def test_train_step_changes_shared_weights_and_skips_non_finite_steps():
    import tensorflow as tf

    model, _ = _model()
    spec = model.space.tokens_to_spec(model.space.spec_to_tokens(CnnSpec(
        layers=((3, 3, 8, 1, ()), (5, 1, 3, 1, (0,)), (7, 7, 6, 1, (0, 1))))))
    before = [np.asarray(v).copy() for v in model.variables]
    loss = model.train(lambda: spec, 1)
    after = [np.asarray(v) for v in model.variables]
    assert np.isfinite(loss)
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    x = tf.fill((model.batch_size, 8, 8, 3), np.float32("nan"))
    _, applied = model._train_step(x, tf.zeros((model.batch_size,), tf.int64))
    assert not bool(applied)
    assert all(np.array_equal(a, np.asarray(v)) for a, v in zip(after, model.variables))
    with pytest.raises(ConfigError, match="stride 1"):
        model.set_architecture(CnnSpec(layers=((3, 3, 8, 2, ()),)))


def test_save_restore_round_trip(tmp_path):
    from cnn_space.shared import uniform_spec

    model, cfg = _model()
    rng = random.Random(0)
    model.train(lambda: uniform_spec(model.space, rng), 3)
    spec = uniform_spec(model.space, rng)
    model.save(tmp_path / "w.npz")
    saved = [np.asarray(w).copy() for w in model.net.get_weights()]
    score = model.score(spec)
    model.train(lambda: spec, 3)
    other, _ = _model()
    other.restore(tmp_path / "w.npz")
    assert other.steps == 3 and other.score(spec) == pytest.approx(score)
    for a, b in zip(saved[:4], other.net.get_weights()[:4]):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="Delete it"):
        other.restore(tmp_path / "bad.npz")


def test_config_records_sharing_and_refuses_strides():
    cfg = _cfg(sharing="enas")
    assert cfg.sharing == SharingConfig(mode="enas")
    assert CnnSearchConfig(**cfg.to_json()) == cfg  # as a run directory records it
    with pytest.raises(ConfigError, match="presets v1 and v3"):
        _cfg("v2", sharing="enas")
    plugins.check_sharing(plugins.get("cnn"), "enas")


def test_evaluator_persists_resumes_and_ranks(tmp_path):
    from cnn_space.shared import uniform_spec
    from cnn_space.sharing import SharedCnnEvaluator
    from cnn_space.train import make_evaluator, make_space

    cfg, data = _cfg(sharing={"mode": "enas", "steps_per_child": 2, "top_k": 2}), _data()
    space, rng = make_space(cfg), random.Random(0)
    specs = [uniform_spec(space, rng) for _ in range(3)]
    ev = SharedCnnEvaluator(cfg, cfg.sharing, data=data)
    assert isinstance(make_evaluator(cfg), SharedCnnEvaluator)
    ev.bind_run_dir(tmp_path / "shared")
    results = [ev.evaluate(s, ChildContext(child_id=i)) for i, s in enumerate(specs[:2])]
    assert results[1].metrics["shared_steps"] == 4
    acc = results[0].metrics["val_accuracy"]
    assert results[0].reward == pytest.approx(acc ** 3)
    assert len(read_scores(tmp_path / "shared")) == 2
    again = pickle.loads(pickle.dumps(ev))  # what a resumed process rebuilds
    again._data = data
    res = again.evaluate(specs[2], ChildContext(child_id=2))
    assert res.metrics["shared_steps"] == 6
    again.close()
    ranking = json.loads((tmp_path / "shared" / "ranking.json").read_text())
    assert len(ranking) == 2
    assert ranking[0]["val_accuracy"] >= ranking[1]["val_accuracy"]


def _cli(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "nas_tf.run", *args], cwd=os.getcwd(), env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cnn_search_with_sharing_from_the_cli_resumes_reports_exports(tmp_path):
    from cnn_space.synthetic import write_glyph_folder
    from nas_tf.api import Search, search_config
    from nas_tf.export import export_child
    from nas_tf.report import format_report, make_report

    data_dir = write_glyph_folder(str(tmp_path / "glyphs"), per_class=10, size=8,
                                  test_per_class=2)
    run_dir = tmp_path / "enas"
    out = _cli("--space=cnn", "--dataset=imagefolder", f"--data_dir={data_dir}",
               "--cnn_num_layers=2", "--cnn_width_multiplier=0.125", "--child_batch_size=16",
               "--cnn_augment=none", "--children_per_update=2", f"--run_dir={run_dir}",
               "--sharing=enas", "--shared_steps_per_child=2", "--shared_top_k=2",
               "--max_children=2")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["sharing"] == "enas" and summary["architectures_evaluated"] == 2
    assert "val_accuracy" in summary["best_metrics"]
    assert (run_dir / "shared" / "shared_cnn.npz").exists()
    assert 1 <= len(json.loads((run_dir / "shared" / "ranking.json").read_text())) <= 2
    # Resumed with a larger budget (in this process: the same loop and identity checks,
    # without a second TensorFlow start): the shared weights continue where they were.
    sharing = SharingConfig(mode="enas", steps_per_child=2, top_k=2)
    search = Search("cnn", run_dir=str(run_dir), dataset="imagefolder", data_dir=data_dir,
                    num_layers=2, width_multiplier=0.125, batch_size=16, augment="none",
                    sharing=sharing, config=search_config(
                        max_children=4, run_dir=str(run_dir), children_per_update=2))
    summary = search.search()
    assert summary["architectures_evaluated"] == 4
    assert len(read_scores(run_dir / "shared")) == 4
    steps = [t["metrics"]["shared_steps"] for t in search.trials() if t.get("metrics")]
    assert max(steps) == 8  # 4 children x 2 steps: the resumed run did not start afresh
    assert "val_accuracy" in format_report(make_report(run_dir))
    export_child(run_dir, tmp_path / "export", rank=1, retrain_epochs=1, test_limit=20)
    metrics = json.loads((tmp_path / "export" / "metrics.json").read_text())
    assert metrics["retrained"] is True
