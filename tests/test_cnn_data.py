"""Tests of cnn_space.data: image folders, splits, augmentation, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cnn_space import data as D
from nas_tf.errors import ConfigError, DataError, NasTfError

tf = pytest.importorskip("tensorflow")

SHARED = Path(os.environ.get("NAS_TF_SHARED_DATA",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CIFAR_DIR = SHARED / "cifar10"

# Class c of the toy folders is a flat image of colour COLOURS[c] (PNG: lossless).
COLOURS = {"cat": (200, 10, 10), "dog": (10, 200, 10), "emu": (10, 10, 200)}


def _write(path: Path, image: np.ndarray, fmt: str = "png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    path.write_bytes(enc(tf.constant(image, tf.uint8)).numpy())


def make_folder(root: Path, per_class=10, size=8, classes=COLOURS, test=0, fmt="png"):
    for split, n in (("train", per_class), ("test", test)):
        for name in list(classes)[: len(classes)] if n else []:
            for i in range(n):
                img = np.broadcast_to(np.array(classes[name], np.uint8), (size, size, 3)).copy()
                img[0, 0, 0] = i  # makes every file distinct
                _write(root / split / name / f"{i:03d}.{fmt}", img, fmt)
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "imgs", per_class=10, test=2)


def test_loads_folder_with_stratified_split_and_labels(folder):
    data = D.load_image_data("imagefolder", str(folder), load_test=True)
    assert data.class_names == ("cat", "dog", "emu")
    assert data.image_shape == (8, 8, 3)
    assert len(data.y_train) == 27 and len(data.y_val) == 3
    # Stratified: one validation image per class.
    assert sorted(data.y_val.tolist()) == [0, 1, 2]
    assert data.x_test.shape == (6, 8, 8, 3)
    # Labels match the images' colours.
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val),
                 (data.x_test, data.y_test)):
        for img, label in zip(x, y):
            assert tuple(img[4, 4]) == COLOURS[data.class_names[label]]
    # Per-channel statistics of the training images.
    np.testing.assert_allclose(data.mean, data.x_train.reshape(-1, 3).mean(0), rtol=1e-5)


def test_train_subset_is_deterministic_and_disjoint(folder):
    a = D.load_image_data("imagefolder", str(folder), train_subset=20)
    b = D.load_image_data("imagefolder", str(folder), train_subset=20)
    assert len(a.y_train) + len(a.y_val) == 20 and len(a.y_val) == 2
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    train_ids = {(int(x[0, 0, 0]), int(y)) for x, y in zip(a.x_train, a.y_train)}
    val_ids = {(int(x[0, 0, 0]), int(y)) for x, y in zip(a.x_val, a.y_val)}
    assert not train_ids & val_ids


def test_image_size_resizes(folder):
    data = D.load_image_data("imagefolder", str(folder), image_size=5)
    assert data.image_shape == (5, 5, 3)


def test_jpeg_and_uppercase_extension(tmp_path):
    root = make_folder(tmp_path / "j", per_class=3, fmt="jpg")
    os.rename(root / "train" / "cat" / "000.jpg", root / "train" / "cat" / "000.JPG")
    data = D.load_image_data("imagefolder", str(root), validation_fraction=0.34)
    assert len(data.y_train) + len(data.y_val) == 9


@pytest.mark.parametrize(
    "case, error, words",
    [
        ("unknown_dataset", ConfigError, "did you mean mnist"),
        ("no_data_dir", DataError, "needs data_dir"),
        ("missing_dir", DataError, "not found"),
        ("no_train", DataError, "No train/ folder"),
        ("one_class", DataError, "at least 2 class folders"),
        ("unreadable", DataError, "Cannot decode"),
        ("sizes_differ", DataError, "different sizes"),
        ("test_extra_class", DataError, "train/ lacks"),
        ("empty_class", DataError, "needs at least one"),
        ("subset_too_big", ConfigError, "train_subset"),
        ("bad_subset", ConfigError, "train_subset must be > 0"),
        ("bad_fraction", ConfigError, "validation_fraction"),
        ("test_missing", DataError, "No test split"),
    ],
)
def test_bad_input_raises_one_clear_error(tmp_path, case, error, words):
    root = tmp_path / "d"
    kwargs = {}
    dataset = "imagefolder"
    if case == "unknown_dataset":
        dataset = "mnsit"  # any other name is a TFDS name (cnn_space/tfds_images.py)
    elif case == "no_data_dir":
        root = None
    elif case == "missing_dir":
        pass
    elif case == "no_train":
        (root / "valid" / "cat").mkdir(parents=True)
    elif case == "one_class":
        make_folder(root, per_class=3, classes={"cat": COLOURS["cat"]})
    elif case == "unreadable":
        make_folder(root, per_class=3)
        (root / "train" / "dog" / "bad.png").write_bytes(b"this is not an image")
    elif case == "sizes_differ":
        make_folder(root, per_class=3)
        _write(root / "train" / "emu" / "big.png", np.zeros((9, 8, 3), np.uint8))
    elif case == "test_extra_class":
        make_folder(root, per_class=3)
        _write(root / "test" / "yak" / "a.png", np.zeros((8, 8, 3), np.uint8))
    elif case == "empty_class":
        make_folder(root, per_class=3)
        (root / "train" / "zzz").mkdir()
    elif case == "subset_too_big":
        make_folder(root, per_class=3)
        kwargs["train_subset"] = 100
    elif case == "bad_subset":
        kwargs["train_subset"] = 0
    elif case == "bad_fraction":
        kwargs["validation_fraction"] = 1.0
    elif case == "test_missing":
        make_folder(root, per_class=3)
        kwargs["load_test"] = True
    with pytest.raises(error) as info:
        D.load_image_data(dataset, None if root is None else str(root), **kwargs)
    assert isinstance(info.value, NasTfError)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_image_is_named(tmp_path):
    root = make_folder(tmp_path / "d", per_class=3)
    (root / "train" / "dog" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.png"):
        D.load_image_data("imagefolder", str(root))


def test_cifar10_without_local_copy_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as info:
        D.load_image_data("cifar10", str(tmp_path / "tfds"), download=False)
    msg = str(info.value)
    assert "not prepared" in msg and str(tmp_path / "tfds") in msg and "imagefolder" in msg


def test_augment_batch_is_a_random_crop_and_flip():
    images = tf.random.uniform([16, 6, 7, 2], seed=1)
    out = D.augment_batch(images, tf.constant([3, 4], tf.int64), pad=2).numpy()
    assert out.shape == (16, 6, 7, 2)
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets = set()
    for b in range(16):
        found = False
        for oy in range(5):
            for ox in range(5):
                crop = padded[b, oy:oy + 6, ox:ox + 7]
                for flip in (False, True):
                    cand = crop[:, ::-1] if flip else crop
                    if np.array_equal(cand, out[b]):
                        found = True
                        offsets.add((oy, ox, flip))
        assert found, f"image {b} is not a crop (or flipped crop) of its padded input"
    assert len(offsets) > 3  # per-image randomness, not one offset for the batch
    again = D.augment_batch(images, tf.constant([3, 4], tf.int64), pad=2).numpy()
    np.testing.assert_array_equal(out, again)


def test_train_pipeline_normalises_and_is_reproducible(folder):
    data = D.load_image_data("imagefolder", str(folder))
    a = list(D.make_train_dataset(data, 9, seed=5, augment=False).take(3).as_numpy_iterator())
    b = list(D.make_train_dataset(data, 9, seed=5, augment=False).take(3).as_numpy_iterator())
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    x = np.concatenate([x for x, _ in a])
    assert x.shape == (27, 8, 8, 3) and x.dtype == np.float32
    # One full pass, normalised with the training statistics.
    np.testing.assert_allclose(x.reshape(-1, 3).mean(0), 0.0, atol=1e-4)
    ev = list(D.make_eval_dataset(data, data.x_val, data.y_val, 2).as_numpy_iterator())
    assert sum(len(y) for _, y in ev) == 3


def test_shared_cifar10_slice():
    if not (CIFAR_DIR / "train").is_dir():
        pytest.skip(f"CIFAR-10 image folders not found at {CIFAR_DIR} (set NAS_TF_SHARED_DATA)")
    data = D.load_image_data("imagefolder", str(CIFAR_DIR), train_subset=300, load_test=True,
                             test_subset=50)
    assert data.num_classes == 10 and data.image_shape == (32, 32, 3)
    assert len(data.y_train) == 270 and len(data.y_val) == 30
    assert data.x_test.shape == (50, 32, 32, 3)
    assert len(np.unique(data.y_train)) == 10
    assert 80 < float(data.mean.mean()) < 160 and 40 < float(data.std.mean()) < 90
