"""Offline TFDS datasets for tests: real metadata + ``tfds.testing.mock_data``.

:func:`write_metadata` writes the ``dataset_info.json`` a prepared dataset has
(features from the dataset's own TFDS code, the split names and sizes given),
so that ``tfds.builder(name, data_dir=...)`` sees a prepared dataset with real
info, features and splits; inside ``tfds.testing.mock_data(data_dir=...)``
its ``as_dataset`` then yields generated examples (random pixels, labels and
text) instead of reading record files. No network is touched.
"""

from __future__ import annotations

import os


def write_metadata(data_dir, name: str, splits: dict[str, int]) -> str:
    """Writes ``DATA_DIR/NAME/VERSION/dataset_info.json``; returns that folder."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir))
    infos = [
        tfds.core.SplitInfo(
            name=split, shard_lengths=[n], num_bytes=0,
            filename_template=tfds.core.ShardedFileTemplate(
                data_dir=builder.data_dir, dataset_name=builder.name, split=split,
                filetype_suffix="tfrecord"))
        for split, n in splits.items()
    ]
    builder.info.set_splits(tfds.core.SplitDict(infos))
    os.makedirs(builder.data_dir, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)
    return builder.data_dir


def mock(data_dir, num_examples: int, **kwargs):
    """``tfds.testing.mock_data`` reading the metadata written in ``data_dir``."""
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(num_examples=num_examples, data_dir=str(data_dir),
                                  policy=tfds.testing.MockPolicy.USE_FILES, **kwargs)
