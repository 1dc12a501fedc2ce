"""Tests of cnn_space.train: config, reward, child training, MirroredStrategy, evaluator."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnn_space.space import CnnSpace, CnnSpec
from cnn_space.train import (
    CnnEvaluator,
    CnnSearchConfig,
    compute_reward,
    make_evaluator,
    make_space,
    train_child,
)
from nas_tf.errors import ChildTrainingError, ConfigError
from nas_tf.evaluator import ChildContext

tf = pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parents[1]

# A small two-layer child with a skip connection, valid in the v1 space.
SPEC = CnnSpec(layers=((3, 3, 24, 1, ()), (1, 3, 24, 1, (0,))))


def _toy_folder(root: Path, per_class=20, size=8):
    """Three classes of noisy flat colours (learnable in one epoch)."""
    rng = np.random.default_rng(0)
    colours = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]
    for c, colour in enumerate(colours):
        for i in range(per_class):
            img = np.clip(rng.normal(colour, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            path = root / "train" / f"c{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tf.io.encode_png(img).numpy())
    return root


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return str(_toy_folder(tmp_path_factory.mktemp("toy")))


def _cfg(data_dir, **kw):
    base = {"dataset": "imagefolder", "data_dir": data_dir, "num_layers": 2, "epochs": 1,
            "batch_size": 16, "validation_fraction": 0.2}
    base.update(kw)
    return CnnSearchConfig(**base)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", -1),
        ("num_layers", 0),
        ("train_subset", 0),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("reward_last_k", 0),
        ("reward_power", -1.0),
        ("validation_fraction", 0.0),
        ("lr_schedule", "linear"),
        ("preset", "v9"),
        ("dataset", "mn ist"),
        ("width_multiplier", 0.0),
        ("steps_per_epoch", 0),
        ("epochs", 1.5),
    ],
)
def test_config_rejects_bad_values(field, value):
    kwargs = {"dataset": "imagefolder", "data_dir": "x", field: value}
    with pytest.raises(ConfigError, match="Received: "):
        CnnSearchConfig(**kwargs)


def test_config_defaults_are_the_papers():
    cfg = CnnSearchConfig()
    assert (cfg.learning_rate, cfg.momentum, cfg.weight_decay) == (0.1, 0.9, 1e-4)
    assert (cfg.reward_last_k, cfg.reward_power, cfg.epochs) == (5, 3.0, 50)
    assert cfg.validation_fraction == 0.1 and cfg.augment
    with pytest.raises(ConfigError, match="needs data_dir"):
        CnnSearchConfig(dataset="imagefolder")


def test_make_space_follows_config():
    space = make_space(CnnSearchConfig(preset="v2", num_layers=4))
    assert isinstance(space, CnnSpace) and space.num_layers == 4 and space.predict_strides
    grow = make_space(CnnSearchConfig(num_layers=10, curriculum=True, curriculum_every=5))
    # §4.1: "... every 1,600 samples, starting at 1 layer".
    assert grow.depth(0) == 1 and grow.depth(5) == 3 and grow.depth(100) == 10
    paper = make_space(CnnSearchConfig(curriculum=True))
    assert [paper.depth(n) for n in (0, 1599, 1600, 11_199, 11_200)] == [1, 1, 3, 13, 15]
    assert make_space(CnnSearchConfig(num_layers=10)).depth(0) == 10
    with pytest.raises(ConfigError):
        make_space(CnnSearchConfig(num_layers=4, curriculum=True, curriculum_start=6))


@pytest.mark.parametrize(
    "accs, k, power, reward, acc",
    [
        ([0.1, 0.9, 0.5, 0.6], 2, 3.0, 0.6**3, 0.6),
        ([0.1, 0.9, 0.5, 0.6], 5, 3.0, 0.9**3, 0.9),
        ([0.5], 5, 1.0, 0.5, 0.5),
    ],
)
def test_compute_reward(accs, k, power, reward, acc):
    r, a = compute_reward(accs, k, power)
    assert math.isclose(r, reward) and math.isclose(a, acc)


def test_compute_reward_rejects_nan():
    with pytest.raises(ValueError):
        compute_reward([0.5, float("nan")], 5, 3.0)


def test_evaluator_is_picklable_and_drops_loaded_data(toy_dir):
    ev = make_evaluator(_cfg(toy_dir))
    assert isinstance(ev, CnnEvaluator)
    ev.data()
    clone = pickle.loads(pickle.dumps(ev))
    assert clone.config == ev.config and clone._data is None
    assert len(pickle.dumps(ev)) < 10_000


def test_tiny_child_trains_logs_and_pinning_keeps_results(toy_dir, tmp_path):
    cfg = _cfg(toy_dir, epochs=2, reward_last_k=2)
    ev = make_evaluator(cfg)
    log_dir = tmp_path / "child"
    result = ev.evaluate(SPEC, ChildContext(child_id=1, log_dir=str(log_dir), seed=7))
    m = result.metrics
    assert math.isfinite(result.reward) and 0.0 <= result.reward <= 1.0
    assert math.isclose(result.reward, m["val_accuracy"] ** 3, rel_tol=1e-6)
    assert m["params"] > 0 and m["flops"] > 0 and m["train_seconds"] > 0
    assert m["steps_per_epoch"] == 3 and m["replicas"] == 1  # 48 images / 16
    json.dumps(m)  # metrics are JSON-able for the trial store
    assert list((log_dir / "train").glob("events.out.tfevents.*"))
    assert list((log_dir / "validation").glob("events.out.tfevents.*"))
    # Pinned to one device: still the default strategy, the same numbers.
    b = train_child(SPEC, ev.data(), cfg, seed=7, devices=("/cpu:0",))
    assert b["replicas"] == 1
    assert b["train_loss_last"] == pytest.approx(m["train_loss_last"], rel=1e-4)
    assert b["val_accuracy"] == pytest.approx(m["val_accuracy"], abs=1e-6)


def test_nan_loss_raises(toy_dir):
    cfg = _cfg(toy_dir, learning_rate=1e30, lr_schedule="constant", epochs=1)
    with pytest.raises(ChildTrainingError, match="loss became"):
        make_evaluator(cfg).evaluate(SPEC, ChildContext(child_id=1))


def test_mirrored_strategy_on_two_logical_cpus_trains_like_one_device(toy_dir):
    """Runs in a subprocess: logical devices must be set before TF starts.

    The batch rule (nas_tf.evaluator.make_strategy): batch_size is the global
    batch, split over the devices, with batch norm over the global batch and
    the loss scaled by Keras (>= 3.8) -- so after a few SGD steps the weights
    on two devices equal those on one. With gradients summed over replicas
    (Keras < 3.8) or per-replica batch-norm statistics they would not."""
    code = textwrap.dedent(f"""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from cnn_space.space import CnnSpec
        from cnn_space.train import CnnSearchConfig, make_evaluator, train_child
        from cnn_space.builder import build_model
        from nas_tf.errors import ConfigError
        from nas_tf.evaluator import seed_child
        cfg = CnnSearchConfig(dataset="imagefolder", data_dir={toy_dir!r}, num_layers=2,
                              epochs=2, batch_size=16, validation_fraction=0.2,
                              lr_schedule="constant", learning_rate=0.2, jit_compile=False)
        spec = CnnSpec(layers=((3, 3, 24, 1, ()), (1, 3, 24, 1, (0,))))
        data = make_evaluator(cfg).data()
        m1, one = train_child(spec, data, cfg, seed=3, devices=("/cpu:0",), return_model=True)
        m2, two = train_child(spec, data, cfg, seed=3, devices=("/cpu:0", "/cpu:1"),
                              return_model=True)
        # A second multi-device child in the same process (a worker trains many): a
        # fresh MirroredStrategy per child made its all-reduces clash with the first's.
        # Its validation split is odd (15 images): Keras failed on a batch split 8 / 7.
        other = CnnSpec(layers=((5, 5, 36, 1, ()), (3, 3, 48, 1, (0,))))
        odd = CnnSearchConfig(**{{**cfg.to_json(), "validation_fraction": 0.25}})
        odd_data = make_evaluator(odd).data()
        assert len(odd_data.y_val) % 2 == 1
        m3 = train_child(other, odd_data, odd, seed=4, devices=("/cpu:0", "/cpu:1"))
        seed_child(3)  # as train_child does before it builds the child
        w0 = build_model(spec, data.image_shape, data.num_classes).get_weights()
        diff = max(float(np.max(np.abs(a - b))) for a, b in
                   zip(one.get_weights(), two.get_weights()))
        moved = max(float(np.max(np.abs(a - b))) for a, b in zip(w0, one.get_weights()))
        try:
            train_child(spec, data, CnnSearchConfig(**{{**cfg.to_json(), "batch_size": 15,
                        "min_steps_per_epoch": None}}), devices=("/cpu:0", "/cpu:1"))
            error = None
        except ConfigError as e:
            error = str(e)
        print("RESULT", json.dumps({{"one": m1, "two": m2, "diff": diff, "moved": moved,
                                    "error": error, "second": m3}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd(), capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    r = json.loads(line[len("RESULT "):])
    one, two = r["one"], r["two"]
    assert one["replicas"] == 1 and two["replicas"] == 2
    assert two["global_batch_size"] == one["global_batch_size"] == 16
    assert two["steps_per_epoch"] == one["steps_per_epoch"] == 3
    assert r["moved"] > 1e-2, r  # six SGD steps changed the weights ...
    assert r["diff"] < 1e-4, r  # ... and the same way on two devices as on one
    assert two["train_loss_last"] == pytest.approx(one["train_loss_last"], rel=1e-4)
    assert "batch_size must be a multiple" in r["error"] and "batch_size=15" in r["error"]
    assert r["second"]["replicas"] == 2 and math.isfinite(r["second"]["train_loss_last"])


def test_curriculum_count_reaches_the_space():
    from cnn_space.train import make_space as make_cnn_space

    space = make_cnn_space(CnnSearchConfig(curriculum=True))
    assert space.curriculum_count == "samples"  # §4.1 counts samples
    assert space.config()["curriculum"]["count"] == "samples"
    space = make_cnn_space(CnnSearchConfig(curriculum=True, curriculum_count="children"))
    assert space.curriculum_count == "children"
    with pytest.raises(ConfigError, match="curriculum_count"):
        CnnSearchConfig(curriculum_count="epochs")
