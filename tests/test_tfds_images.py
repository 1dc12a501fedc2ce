"""Tests of cnn_space.tfds_images: any TFDS image dataset by name, offline.

The datasets are TFDS's own builders (mnist, oxford_flowers102, imdb_reviews)
with their real features; tests/tfds_fixtures.py writes the metadata of a
prepared copy and tfds.testing.mock_data generates the examples, so the real
loading path (builder, info, splits, features, as_dataset) runs without data
files or network.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tfds_fixtures as F

from cnn_space.data import load_image_data
from cnn_space.tfds_images import tfds_name
from nas_tf.errors import ConfigError, DataError

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    F.write_metadata(d, "mnist", {"train": 60000, "test": 10000})
    F.write_metadata(d, "oxford_flowers102", {"train": 40, "validation": 40, "test": 40})
    return d


@pytest.mark.parametrize("dataset, name", [("mnist", "mnist"), ("tfds:cifar100", "cifar100"),
                                           ("tfds:wiki40b/en:1.3.0", "wiki40b/en:1.3.0"),
                                           ("cifar10", None), ("imagefolder", None)])
def test_dataset_spelling(dataset, name):
    assert tfds_name(dataset) == name


@pytest.mark.parametrize("dataset", ["tfds:", "", "mn ist", "tfds:a/b/c"])
def test_malformed_names_are_config_errors(dataset):
    with pytest.raises(ConfigError, match="tfds:NAME"):
        tfds_name(dataset)


def test_mnist_grayscale_through_the_cnn_data_path(tfds_dir):
    with F.mock(tfds_dir, 200):
        data = load_image_data("mnist", str(tfds_dir), load_test=True, test_subset=30)
        small = load_image_data("tfds:mnist", str(tfds_dir), train_subset=100, image_size=8)
    # Shape and classes come from the dataset's info: one channel, 10 classes.
    assert data.image_shape == (28, 28, 1) and data.num_classes == 10
    assert data.class_names == tuple(str(i) for i in range(10))
    # No validation split in mnist: 10% of the training images are held out.
    assert (len(data.y_train), len(data.y_val)) == (180, 20)
    assert data.x_test.shape == (30, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.mean.shape == (1,) and data.std.shape == (1,)
    assert "tfds mnist" in data.source
    assert small.image_shape == (8, 8, 1) and (len(small.y_train), len(small.y_val)) == (90, 10)


def test_own_validation_split_and_variable_sizes(tfds_dir):
    with F.mock(tfds_dir, 12):
        # Random sizes per image: refused without a size, resized with one.
        with pytest.raises(DataError, match="different sizes.*--cnn_image_size"):
            load_image_data("oxford_flowers102", str(tfds_dir))
        data = load_image_data("oxford_flowers102", str(tfds_dir), image_size=16,
                               train_subset=10)
    assert data.image_shape == (16, 16, 3) and data.num_classes == 102
    # Its own validation split gives the reward: train keeps all 10, validation 1 (10%).
    assert (len(data.y_train), len(data.y_val)) == (10, 1)
    assert "validation: its validation split" in data.source


def _png(array):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_non_square_images_stay_non_square(tfds_dir):
    rng = np.random.default_rng(0)
    images = [_png(rng.integers(0, 255, (12, 20, 3), dtype=np.uint8)) for _ in range(20)]

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        return tf.data.Dataset.from_tensor_slices({
            "image": images, "label": np.arange(20) % 3, "file_name": [b"x"] * 20})

    with F.mock(tfds_dir, 20, as_dataset_fn=as_dataset):
        data = load_image_data("oxford_flowers102", str(tfds_dir))
    assert data.image_shape == (12, 20, 3)


@pytest.mark.parametrize("dataset, error, words", [
    ("mnsit", ConfigError, "did you mean mnist"),
    ("imdb_reviews", DataError, "Its features: text (Text), label (ClassLabel)"),
    ("mnist", DataError, "--cnn_download"),
])
def test_bad_names_and_missing_data_are_one_clear_error(tmp_path, dataset, error, words):
    with pytest.raises(error) as info:
        load_image_data(dataset, str(tmp_path / "empty"))
    msg = str(info.value)
    assert words in msg and "\n" not in msg and "Received:" in msg
    if dataset == "mnist":
        assert "--data_dir" in msg and "not prepared" in msg
    assert not (tmp_path / "empty").exists()  # nothing downloaded or created


def test_cli_mnist_search_on_mocked_data(tfds_dir, tmp_path):
    """The CLI search, `--dataset=mnist`, inside tfds.testing.mock_data."""
    run_dir = tmp_path / "run"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import tfds_fixtures
        from absl import app
        from nas_tf import run
        with tfds_fixtures.mock({str(tfds_dir)!r}, 200):
            app.run(run.main, argv=["run", "--space=cnn", "--dataset=mnist",
                    "--data_dir={tfds_dir}", "--run_dir={run_dir}", "--cnn_train_subset=100",
                    "--cnn_num_layers=2", "--cnn_width_multiplier=0.5", "--child_epochs=1",
                    "--child_batch_size=32", "--max_children=1", "--algorithm=random"])
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["children_trained"] == 1 and summary["children_failed"] == 0
    assert 0.0 <= summary["best_reward"] <= 1.0
