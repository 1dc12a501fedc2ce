"""Any TensorFlow Datasets image-classification dataset for the CNN space, by name.

``--dataset=mnist``, ``--dataset=cifar100``, ``--dataset=svhn_cropped`` (a bare
TFDS name), or in general ``--dataset=tfds:NAME`` (``NAME[/CONFIG][:VERSION]``).
``cifar10`` and ``imagefolder`` keep their own loaders in :mod:`cnn_space.data`;
``tfds:cifar10`` reads CIFAR-10 through this generic path.

What is read from the dataset's ``tfds.builder(name, data_dir=...).info``:

* the image: the ``Image`` feature of the dataset's supervised keys, else the
  feature called ``image``, else its only ``Image`` feature;
* the label: the ``ClassLabel`` of the supervised keys, else ``label``, else its
  only ``ClassLabel`` feature; its ``num_classes`` and names are the classes;
* the channels: grayscale datasets (``Image(shape=(28, 28, 1))``) stay one
  channel, everything else is read as RGB (an alpha channel is dropped);
* the size: images keep their height and width (non-square images stay
  non-square) unless ``image_size`` resizes them all to a square;
* the splits: ``train`` is required. When the dataset has its own validation
  split (``validation``, ``valid``, ``val`` or ``dev``) the reward is computed on
  it (``train_subset=N`` then reads the first round(validation_fraction * N) of
  it); otherwise ``validation_fraction`` of the training images are held out,
  stratified by class, exactly as for cifar10. ``test`` is read only with
  ``load_test`` (export evaluation) and never gives a reward.

Nothing is downloaded unless ``download=True`` (``--cnn_download``).

Example:
    data = load_tfds_images("mnist", "~/tensorflow_datasets", train_subset=5000)
"""

from __future__ import annotations

import logging

import numpy as np

from cnn_space.data import ImageData, _plain, _stratified_split, image_data
from nas_tf.errors import ConfigError, DataError
from nas_tf.tfds_names import (
    PREFIX,
    check_name,
    describe_features,
    open_builder,
    prepare,
    validation_split,
)

logger = logging.getLogger(__name__)

#: Values of ``dataset`` that have their own loaders in :mod:`cnn_space.data`.
OWN_LOADERS = ("cifar10", "imagefolder")


def tfds_name(dataset: str) -> str | None:
    """The TFDS name a CNN ``dataset`` value stands for; None for cifar10 / imagefolder.

    Raises:
        ConfigError: ``dataset`` is not spelled like a TFDS name.
    """
    if dataset in OWN_LOADERS:
        return None
    if isinstance(dataset, str) and dataset.startswith(PREFIX):
        return check_name(dataset[len(PREFIX):], dataset)
    return check_name(dataset, dataset)


def select_features(builder, name: str) -> tuple[str, str]:
    """``(image feature, label feature)`` of a TFDS builder (see the module doc).

    Raises:
        DataError: no image feature or no class label, naming the features it has.
    """
    import tensorflow_datasets as tfds

    features = builder.info.features
    images = [k for k, v in features.items() if isinstance(v, tfds.features.Image)]
    labels = [k for k, v in features.items() if isinstance(v, tfds.features.ClassLabel)]
    keys = builder.info.supervised_keys
    if (isinstance(keys, tuple) and len(keys) == 2 and keys[0] in images
            and keys[1] in labels):
        return keys[0], keys[1]

    def pick(found, preferred):
        if preferred in found:
            return preferred
        return found[0] if len(found) == 1 else None

    image, label = pick(images, "image"), pick(labels, "label")
    if image is None or label is None:
        missing = "an Image feature" if image is None else "a ClassLabel feature"
        raise DataError(
            f"The cnn space needs a TFDS dataset with one Image feature and one ClassLabel "
            f"(class label) feature; {name!r} lacks {missing}"
            f"{' (or has several)' if (images if image is None else labels) else ''}. "
            f"Its features: {describe_features(features)}. Received: dataset={name!r}"
        )
    return image, label


def _train_and_validation(decode, val_name, x_all, y_all, train_subset, validation_fraction,
                          split_seed):
    """The dataset's own validation split (``val_name``; as many images as
    the fraction of ``train_subset``), else a stratified part of train."""
    if val_name is None:
        return _stratified_split(x_all, y_all, validation_fraction, split_seed)
    limit = None if train_subset is None else max(1, round(validation_fraction * train_subset))
    return (x_all, y_all, *decode(val_name, limit))


def load_tfds_images(dataset: str, data_dir: str | None, *, download: bool = False,
                     train_subset: int | None = None, validation_fraction: float = 0.1,
                     image_size: int | None = None, load_test: bool = False,
                     test_subset: int | None = None, split_seed: int = 0) -> ImageData:
    """Loads a TFDS image-classification dataset into an :class:`ImageData`.

    Arguments as :func:`cnn_space.data.load_image_data` (which checks the
    numbers and calls this for every dataset that is not cifar10 / imagefolder).

    Raises:
        ConfigError: unknown TFDS name (close names suggested), train_subset
            larger than the train split.
        DataError: not prepared and no download, no image / label feature, no
            train split, images of different sizes without ``image_size``.
    """
    name = tfds_name(dataset)
    if name is None:
        raise ConfigError(f"{dataset!r} has its own loader (cnn_space.data.load_image_data). "
                          f"Received: dataset={dataset!r}")
    builder = open_builder(name, data_dir)
    image_key, label_key = select_features(builder, name)  # known without the data
    prepare(builder, data_dir, download=download, download_flag="--cnn_download")
    features = builder.info.features
    class_names = tuple(features[label_key].names)
    channels = 1 if features[image_key].shape[-1] == 1 else 3
    splits = list(builder.info.splits.keys())
    source = f"tfds {name} in {builder.data_dir}"
    if "train" not in splits:
        raise DataError(f"The TFDS dataset {name!r} has no train split; its splits: "
                        f"{', '.join(splits) or 'none'}. Received: dataset={dataset!r}")

    def decode(split, limit):
        return _decode_split(builder, split, limit, image_key, label_key, channels, image_size)

    x_all, y_all = decode("train", train_subset)
    if train_subset is not None and len(x_all) < train_subset:
        raise ConfigError(
            f"train_subset is larger than the {len(x_all)} training images of {source}. "
            f"Received: train_subset={train_subset}"
        )
    val_name = validation_split(builder)
    x_train, y_train, x_val, y_val = _train_and_validation(
        decode, val_name, x_all, y_all, train_subset, validation_fraction, split_seed)
    if val_name is not None:
        source += f" (validation: its {val_name} split)"
    if len(np.unique(y_train)) < 2:
        raise DataError(
            f"The training images of {source} have fewer than 2 classes; use more images "
            f"(train_subset). Received: train_subset={train_subset}"
        )
    x_test = y_test = None
    if load_test:
        if "test" not in splits:
            raise DataError(f"The TFDS dataset {name!r} has no test split; its splits: "
                            f"{', '.join(splits)}. Received: dataset={dataset!r}")
        x_test, y_test = decode("test", test_subset)
    for x, split in ((x_val, val_name or "validation"), (x_test, "test")):
        if x is not None and x.shape[1:] != x_train.shape[1:]:
            raise DataError(
                f"The {split} images are {x.shape[1:]} but the training images are "
                f"{x_train.shape[1:]}; set image_size (--cnn_image_size) to resize all. "
                f"Received: dataset={dataset!r}"
            )
    return image_data(x_train, y_train, x_val, y_val, class_names, source, x_test, y_test)


def _decode_split(builder, split, limit, image_key, label_key, channels, image_size):
    """(The first ``limit`` examples of) a split as uint8 (N, H, W, channels) and int32 labels."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={image_key: tfds.decode.SkipDecoding()})
    if limit is not None:
        ds = ds.take(limit)

    def prepare(example):
        image = tf.io.decode_image(example[image_key], channels=channels,
                                   expand_animations=False)
        if image_size is not None:
            image = tf.image.resize(image, (image_size, image_size), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return image, tf.cast(example[label_key], tf.int32)

    ds = ds.map(_plain(prepare), num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
    images, labels = [], []
    try:
        for x, y in ds.as_numpy_iterator():
            if images and x.shape[1:] != images[0].shape[1:]:
                raise tf.errors.InvalidArgumentError(None, None, "sizes differ")
            images.append(x)
            labels.append(y)
    except tf.errors.InvalidArgumentError as e:
        message = e.message or ""
        if "Cannot add tensor to the batch" in message or "sizes differ" in message:
            shapes = message.partition("Shapes are: ")[2].partition(" [Op")[0]
            raise DataError(
                f"Images of different sizes in the {split} split of {builder.name}"
                f"{f' ({shapes})' if shapes else ''}; set image_size (--cnn_image_size) to "
                "resize them on load."
            ) from None
        raise DataError(f"Cannot decode an image of the {split} split of {builder.name}: "
                        f"{(e.message or type(e).__name__).splitlines()[0]}") from e
    except tf.errors.OpError as e:
        raise DataError(f"Cannot read the {split} split of {builder.name}: "
                        f"{(e.message or type(e).__name__).splitlines()[0]}") from e
    if not images:
        raise DataError(f"The {split} split of {builder.name} has no images.")
    return np.concatenate(images), np.concatenate(labels)
