"""Opening a TensorFlow Datasets (TFDS) dataset by name, with one-line errors.

Shared by the image datasets of the CNN space (:mod:`cnn_space.tfds_images`)
and the text corpora of the recurrent-cell space (:mod:`cells.tfds_text`).

Dataset names are spelled ``tfds:NAME`` in general (``NAME`` may carry a TFDS
config and version, ``tfds:wiki40b/en:1.3.0``); the CNN space also takes a bare
``NAME`` (``mnist``, ``cifar100``). Nothing is downloaded unless asked:
without the prepared data, :func:`prepare` raises a :class:`DataError`
naming the download flag and ``--data_dir``.

Example:
    >>> builder = open_builder("mnist", "~/tensorflow_datasets")  # doctest: +SKIP
    >>> prepare(builder, "~/tensorflow_datasets", download=False,
    ...         download_flag="--cnn_download")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re

from nas_tf.errors import ConfigError, DataError

PREFIX = "tfds:"
#: Split names taken as a dataset's own validation split, in this order.
VALIDATION_SPLITS = ("validation", "valid", "val", "dev")
# name[/config][:version] as TFDS spells it (see tfds.builder).
_NAME_RE = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_.\-]+)?(:[0-9.*]+)?")


def check_name(name: str, dataset: str) -> str:
    """Returns ``name`` when it is spelled like a TFDS name, else raises ConfigError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(
            "A TFDS dataset is spelled tfds:NAME (NAME[/CONFIG][:VERSION], letters, digits "
            f"and _), e.g. tfds:mnist. Received: dataset={dataset!r}"
        )
    return name


def close_names(name: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` registered TFDS dataset names close to ``name``."""
    import tensorflow_datasets as tfds

    try:
        names = tfds.list_builders(with_community_datasets=False)
    except Exception:  # noqa: BLE001 - suggestions are a courtesy only
        return []
    base = name.split("/")[0].split(":")[0].lower()
    return difflib.get_close_matches(base, names, n=limit, cutoff=0.6)


def open_builder(name: str, data_dir: str | None):
    """The TFDS builder of ``name`` in ``data_dir`` (its info is known; data may be absent).

    Args:
        name: TFDS name (``mnist``, ``wiki40b/en``).
        data_dir: TFDS data directory (None: the TFDS default,
            ``~/tensorflow_datasets``).

    Raises:
        ConfigError: ``name`` is not a TFDS dataset (close names suggested).
    """
    import tensorflow_datasets as tfds

    try:
        with _quiet_tfds():
            return tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - DatasetNotFoundError, bad config/version, ...
        if type(e).__name__ == "DatasetNotFoundError":
            close = close_names(name)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(
                f"No TFDS dataset is called {name!r}; {hint}`tfds.list_builders()` lists them "
                f"all. Received: dataset={name!r}"
            ) from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(
            f"Cannot open the TFDS dataset {name!r} ({type(e).__name__}: {first}). "
            f"Received: dataset={name!r}, data_dir={data_dir!r}"
        ) from e


@contextlib.contextmanager
def _quiet_tfds():
    """Hides TFDS's "Variant folder ... has no dataset_info.json" warnings for a
    data_dir without the dataset: :func:`prepare` says that as one clear error."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        absl_logger.setLevel(level)


def prepare(builder, data_dir: str | None, *, download: bool, download_flag: str) -> None:
    """Makes sure the builder's data is prepared; downloads it only when ``download``.

    Args:
        builder: From :func:`open_builder`.
        data_dir: The data directory given (for the message).
        download: Download and prepare the dataset when it is not prepared.
        download_flag: The command-line flag that sets ``download``, named in
            the error message.

    Raises:
        DataError: not prepared and ``download`` is false, or the download failed.
    """
    name = builder.name
    with _quiet_tfds():
        if builder.is_prepared():
            return
    if not download:
        raise DataError(
            f"The TFDS dataset {name!r} is not prepared in {builder.data_dir}. Pass "
            f"{download_flag} to download and prepare it there (needs network once), or "
            f"--data_dir=DIR for a TFDS data directory where it is prepared (e.g. by "
            f"`tfds build {name} --data_dir=DIR` on a machine with network). "
            f"Received: data_dir={data_dir!r}"
        )
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - any download failure is a data problem
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(
            f"Downloading the TFDS dataset {name!r} into {builder.data_dir} failed "
            f"({type(e).__name__}: {first}); check the network, or prepare it elsewhere and "
            f"pass --data_dir. Received: data_dir={data_dir!r}"
        ) from e


def describe_features(features) -> str:
    """``name (Type), ...`` of the top-level features of a TFDS FeaturesDict."""
    return ", ".join(f"{k} ({type(v).__name__})" for k, v in features.items())


def validation_split(builder) -> str | None:
    """The name of the builder's validation split, or None when it has none."""
    names = set(builder.info.splits.keys())
    return next((s for s in VALIDATION_SPLITS if s in names), None)
