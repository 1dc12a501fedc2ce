"""Image data for the CNN children: loading, train/validation split, tf.data pipelines.

The CIFAR-10 experiments of Zoph & Le 2017 (arXiv:1611.01578, §4.1) hold out
5,000 of the 50,000 training images as the validation set that gives the
controller its reward, and train the children with the standard CIFAR
augmentation (pad 4 and random 32x32 crop, random horizontal flip) on images
normalised per channel. The test split is never used for a reward.

Two sources are supported, both through tensorflow-datasets:

* ``cifar10`` — the TFDS ``cifar10`` dataset in ``data_dir`` (prepared
  beforehand, or downloaded when ``download=True``; nothing is downloaded
  unless asked).
* ``imagefolder`` — any class-per-folder dataset ``DIR/train/<class>/*.jpg``
  (optional ``DIR/test/<class>/...``) read with ``tfds.ImageFolder``.
* any other TFDS image-classification dataset by name (``mnist``,
  ``cifar100``, ``tfds:NAME``): :mod:`cnn_space.tfds_images`.

Decoded images are held in memory as ``uint8`` arrays (a cache: the files are
read once per process), so a search decodes its data once and every child
trains from memory. ``train_subset`` keeps the first N images of a
deterministic shuffle for CPU-scale runs; the validation split is then
scaled proportionally (``validation_fraction``, 0.1 = 5,000 of 50,000) and is
stratified by class.

Example:

    data = load_image_data("imagefolder", "../shared/data/cifar10", train_subset=2000)
    train_ds = make_train_dataset(data, batch_size=64, seed=0)
    val_ds = make_eval_dataset(data, data.x_val, data.y_val, batch_size=256)
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from cnn_space.pipeline import (  # noqa: F401 - re-exported: the pipelines' old home
    AUGMENTATIONS,
    _plain,
    augment_batch,
    augmentation_mode,
    make_eval_dataset,
    make_train_dataset,
    steps_per_epoch,
)
from nas_tf.errors import ConfigError, DataError
from nas_tf.validation import check_positive

logger = logging.getLogger(__name__)

DATASETS = ("cifar10", "imagefolder")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass
class ImageData:
    """Decoded images in memory, split into train / validation (/ test).

    Attributes:
        x_train, y_train: Training images (uint8, N x H x W x C) and int labels.
        x_val, y_val: Validation images: the reward is computed on these.
        x_test, y_test: Test images, or None when not loaded (never used for
            the reward).
        class_names: Label names; label i is ``class_names[i]``.
        mean, std: Per-channel statistics of ``x_train`` in [0, 255] units.
        source: One line saying where the data came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    source: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_image_data(
    dataset: str,
    data_dir: str | None,
    *,
    download: bool = False,
    train_subset: int | None = None,
    validation_fraction: float = 0.1,
    image_size: int | None = None,
    load_test: bool = False,
    test_subset: int | None = None,
    split_seed: int = 0,
) -> ImageData:
    """Loads, decodes and splits an image classification dataset.

    Args:
        dataset: ``"cifar10"`` (TFDS; a data_dir holding train/<class>/ folders is read as
            an image folder), ``"imagefolder"`` (class-per-folder), or
            any TFDS image dataset by name (``"mnist"``, ``"tfds:NAME"``).
        data_dir: TFDS data directory for cifar10 / TFDS names (None: the TFDS default,
            ``~/tensorflow_datasets``), or the folder root for imagefolder.
        download: cifar10 / TFDS names: download and prepare when missing (needs
            network). False never touches the network.
        train_subset: Keep only the first N training images of a
            deterministic shuffle (None: all).
        validation_fraction: Fraction of the (subset of the) training images
            held out, stratified by class, as the validation set (paper §4.1:
            5,000 of 50,000 = 0.1).
        image_size: Resize every image to ``image_size`` x ``image_size``
            (None: keep the files' size, which must then be the same for all).
        load_test: Also load the test split (for a final evaluation; never
            for rewards).
        test_subset: Keep only the first N test images.
        split_seed: Seed of the stratified train/validation split.

    Returns:
        An :class:`ImageData`.

    Raises:
        ConfigError: Unknown dataset or invalid numbers.
        DataError: Missing or malformed data (with what to do about it).
    """
    check_positive("train_subset", train_subset)
    check_positive("test_subset", test_subset)
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(
            "validation_fraction must be in (0, 1). "
            f"Received: validation_fraction={validation_fraction}"
        )
    check_positive("image_size", image_size)
    if dataset not in DATASETS:  # any TFDS image dataset by name: cnn_space/tfds_images.py
        from cnn_space.tfds_images import load_tfds_images

        return load_tfds_images(
            dataset, data_dir, download=download, train_subset=train_subset,
            validation_fraction=validation_fraction, image_size=image_size,
            load_test=load_test, test_subset=test_subset, split_seed=split_seed)

    if dataset == "cifar10" and data_dir and os.path.isdir(
            os.path.join(os.path.expanduser(data_dir), "train")):
        dataset = "imagefolder"  # CIFAR-10 as class folders (e.g. ../shared/data/cifar10)
    if dataset == "imagefolder":
        builder, class_names, splits = _image_folder_builder(data_dir)
        source = f"imagefolder {os.path.abspath(data_dir)}"
    else:
        builder, class_names, splits = _cifar10_builder(data_dir, download)
        source = f"tfds cifar10 in {builder.data_dir}"

    x_all, y_all = _decode_split(builder, "train", train_subset, image_size)
    if train_subset is not None and len(x_all) < train_subset:
        raise ConfigError(
            f"train_subset is larger than the {len(x_all)} training images of {source}. "
            f"Received: train_subset={train_subset}"
        )
    x_train, y_train, x_val, y_val = _stratified_split(
        x_all, y_all, validation_fraction, split_seed
    )
    if len(np.unique(y_train)) < 2:
        raise DataError(
            f"The training images of {source} have fewer than 2 classes after the split; "
            "use more images (train_subset) or more classes."
        )
    x_test = y_test = None
    if load_test:
        x_test, y_test = _load_test(builder, splits, source, test_subset, image_size,
                                    x_train.shape[1:])
    return image_data(x_train, y_train, x_val, y_val, class_names, source, x_test, y_test)


def image_data(x_train, y_train, x_val, y_val, class_names, source: str, x_test=None,
               y_test=None) -> ImageData:
    """An :class:`ImageData` of decoded splits, with the per-channel statistics
    of the training images (never validation / test); logs what was loaded."""
    pixels = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64)
    mean = pixels.mean(axis=0).astype(np.float32)
    std = np.maximum(pixels.std(axis=0), 1.0).astype(np.float32)
    logger.info("Loaded %s: %d train, %d validation%s images of shape %s, %d classes.", source,
                len(x_train), len(x_val), f", {len(x_test)} test" if x_test is not None else "",
                x_train.shape[1:], len(class_names))
    return ImageData(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                     class_names=tuple(class_names), mean=mean, std=std, source=source,
                     x_test=x_test, y_test=y_test)


def _load_test(builder, splits, source: str, test_subset, image_size, train_shape):
    """The decoded test split, which must exist and match the training images' shape."""
    if "test" not in splits:
        raise DataError(
            f"No test split in {source}; add a test/<class>/ folder tree next to train/."
        )
    x_test, y_test = _decode_split(builder, "test", test_subset, image_size)
    if x_test.shape[1:] != train_shape:
        raise DataError(
            f"Test images are {x_test.shape[1:]} but training images are "
            f"{train_shape}; give image_size to resize both. Received: {source}"
        )
    return x_test, y_test


def _image_folder_builder(data_dir):
    """Checks the folder layout, then returns (tfds.ImageFolder, class names, splits)."""
    if not data_dir:
        raise DataError(
            "dataset=imagefolder needs data_dir, a folder with train/<class>/*.jpg. "
            "Received: data_dir=None"
        )
    root = os.path.expanduser(data_dir)
    train = os.path.join(root, "train")
    if not os.path.isdir(root):
        raise DataError(
            "Image folder not found; point data_dir at a folder with train/<class>/*.jpg "
            f"(optional test/<class>/). Received: data_dir={data_dir!r}"
        )
    if not os.path.isdir(train):
        raise DataError(
            f"No train/ folder in the image folder; put the images in {train}/<class>/*.jpg. "
            f"Received: data_dir={data_dir!r}"
        )
    classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    empty = [d for d in classes if not _has_images(os.path.join(train, d))]
    if empty:
        raise DataError(
            f"Every class folder of {train} needs at least one .jpg/.jpeg/.png image; add images "
            f"or remove the empty folders. Received: empty={empty}"
        )
    if len(classes) < 2:
        raise DataError(
            f"{train} needs at least 2 class folders holding .jpg/.jpeg/.png images; a "
            f"classifier cannot be trained on {len(classes)}. Received: classes={classes}"
        )
    test = os.path.join(root, "test")
    if os.path.isdir(test):
        extra = sorted(
            d
            for d in os.listdir(test)
            if os.path.isdir(os.path.join(test, d)) and d not in classes
        )
        if extra:
            raise DataError(
                f"{test} has class folders that train/ lacks; use the same class names in "
                f"both. Received: {extra}"
            )
    import tensorflow_datasets as tfds

    builder = tfds.ImageFolder(root)
    names = list(builder.info.features["label"].names)
    if names != classes:  # cannot happen after the checks above; kept as a guard
        raise DataError(f"Class folders changed while reading {root}. Received: {names}")
    return builder, names, set(builder.info.splits.keys())


def _has_images(folder: str) -> bool:
    return any(f.lower().endswith(_IMAGE_EXTENSIONS) for f in os.listdir(folder))


def _cifar10_builder(data_dir, download):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder("cifar10", data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - any TFDS failure is a data problem here
        raise DataError(
            f"Cannot open the TFDS cifar10 builder: {e}. Received: data_dir={data_dir!r}"
        ) from e
    if not builder.is_prepared():
        if not download:
            raise DataError(
                f"CIFAR-10 is not prepared in {builder.data_dir}. Either prepare it there with "
                "tensorflow-datasets (`tfds build cifar10 --data_dir=DIR`, needs network once) "
                "and pass data_dir=DIR, set download=True (--cnn_download) on a machine with "
                "network, or use dataset=imagefolder with data_dir pointing at "
                "train/<class>/*.jpg folders. "
                f"Received: data_dir={data_dir!r}"
            )
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise DataError(
                f"Downloading CIFAR-10 into {builder.data_dir} failed ({type(e).__name__}: {e}); "
                "check the network, or prepare the data elsewhere and pass data_dir. "
                f"Received: data_dir={data_dir!r}"
            ) from e
    names = list(builder.info.features["label"].names)
    return builder, names, set(builder.info.splits.keys())


def _decode_split(builder, split, limit, image_size):
    """Decodes (the first ``limit`` images of) a split into uint8 arrays.

    Raises DataError naming the first file that cannot be decoded, or the first
    image whose size differs from the first image's (when no image_size).
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    is_folder = isinstance(builder, tfds.ImageFolder)
    skip = {"image": tfds.decode.SkipDecoding()}
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders=skip)
    if limit is not None:
        ds = ds.take(limit)

    def decode(example):
        image = tf.io.decode_image(example["image"], channels=3, expand_animations=False)
        if image_size is not None:
            image = tf.image.resize(image, (image_size, image_size), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        name = example["image/filename"] if is_folder else tf.constant("")
        return image, example["label"], name

    # Plain TF ops only (no Python control flow): no AutoGraph conversion needed.
    ds = ds.map(_plain(decode), num_parallel_calls=tf.data.AUTOTUNE)
    try:
        first = next(iter(ds.take(1)), None)
        if first is None:
            raise DataError(f"The {split} split has no images.")
        expected = tf.constant(first[0].shape, tf.int32)

        def check(image, label, name):
            ok = tf.reduce_all(tf.equal(tf.shape(image), expected))
            fixed = tf.cond(ok, lambda: image, lambda: tf.zeros(expected, tf.uint8))
            return fixed, ok, tf.shape(image), label, name

        images, labels = [], []
        batches = ds.map(_plain(check), num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
        for x, ok, shapes, y, names in batches.as_numpy_iterator():
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise DataError(
                    f"Images of different sizes in the {split} split: {_name(names[i])} is "
                    f"{tuple(shapes[i])}, the first image is {tuple(first[0].shape)}; resize "
                    "them, or set image_size (--image_size) to resize on load."
                )
            images.append(x)
            labels.append(y)
    except tf.errors.OpError as e:
        bad = _find_undecodable(builder, split, is_folder)
        raise DataError(
            f"Cannot decode an image of the {split} split ({bad}); remove or replace it. "
            f"TensorFlow said: {e.message.splitlines()[0] if e.message else type(e).__name__}"
        ) from e
    x = np.concatenate(images)
    y = np.concatenate(labels).astype(np.int32)
    return x, y


def _name(name) -> str:
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return str(name) or "an image"


def _find_undecodable(builder, split, is_folder) -> str:
    """Finds the first file of a split that does not decode (slow; error path only)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(
        split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
    )
    for example in ds:
        try:
            tf.io.decode_image(example["image"], channels=3, expand_animations=False)
        except tf.errors.OpError:
            if is_folder:
                return _name(example["image/filename"].numpy())
            return "an example"
    return "file unknown"


def _stratified_split(x, y, fraction, seed):
    """Holds out ``round(fraction * n)`` images as validation, stratified by class.

    Each class gives its proportional share (largest remainders get the
    rounding), chosen by a seeded shuffle within the class.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    total = round(fraction * len(y))
    exact = fraction * counts
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: total - quota.sum()]] += 1
    if total == 0:
        raise DataError(
            f"{len(y)} training images leave no validation images at "
            f"validation_fraction={fraction}; use more images."
        )
    val_idx = []
    for c, q in zip(classes, quota):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val_idx.append(idx[:q])
    val_idx = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(y), bool)
    mask[val_idx] = False
    return x[mask], y[mask], x[val_idx], y[val_idx]
