"""Any TensorFlow Datasets text corpus as a language-model dataset of the rnn space.

Spelling of ``--dataset`` (``RnnSearchConfig.dataset``):

* ``tfds:NAME`` — word level: each example's text split on white space, then
  ``<eos>`` (``tfds:lm1b``, ``tfds:tiny_shakespeare``, ``tfds:wiki40b/en``);
* ``tfds_char:NAME`` — character level: each example's white-space runs become
  one space, every character is a symbol, then ``<eos>``.

``NAME`` is a TFDS name (``NAME[/CONFIG][:VERSION]``), optionally followed by
``#FEATURE`` to choose the text feature (``tfds:pg19#book_text``); without it
the feature called ``text`` is used, else the dataset's only ``Text`` feature.

Splits: ``train`` gives the training tokens and the vocabulary. The dataset's
own validation split (``validation``, ``valid``, ``val`` or ``dev``) gives the
reward; without one, every 10th training example (the 10th, 20th, ...) is held
out as validation instead. ``test`` is read only when asked (``load_test``,
the export's evaluation), never for a reward; the search does not read it.

Vocabulary (the ``<unk>`` rule): symbols of the training tokens used
(``train_tokens`` caps them) sorted by decreasing count, ties by the symbol;
the :data:`MAX_VOCAB` - 2 most frequent symbols seen at least
:data:`MIN_COUNT` times are kept, with ``<eos>`` and ``<unk>`` always in the
vocabulary; every other symbol, in every split, becomes ``<unk>`` (a literal
``<unk>`` in the text is the same symbol). 10,000 is the vocabulary of the
standard Penn Treebank (Mikolov et al.), the paper's §4.2 corpus.

Reading stops as soon as ``train_tokens`` / ``valid_tokens`` are reached, so a
large corpus (``lm1b``: 30M sentences) can be searched on a slice without
being read whole. Nothing is downloaded unless ``download=True``
(``--rnn_download``).
"""

from __future__ import annotations

import logging

import numpy as np

from cells.ptb import EOS, UNK, Corpus
from nas_tf.errors import ConfigError, DataError
from nas_tf.tfds_names import check_name, describe_features, open_builder, prepare
from nas_tf.tfds_names import validation_split as find_validation_split

WORD_PREFIX = "tfds:"
CHAR_PREFIX = "tfds_char:"
#: Largest vocabulary, ``<eos>`` and ``<unk>`` included (PTB's 10,000).
MAX_VOCAB = 10_000
#: Fewest training occurrences of a kept symbol.
MIN_COUNT = 1
#: Without a validation split, every HOLDOUT_EVERY-th training example validates.
HOLDOUT_EVERY = 10

_log = logging.getLogger(__name__)


def parse_dataset(dataset: str) -> tuple[str, str | None, bool] | None:
    """``(tfds name, text feature or None, char_level)`` of a ``tfds:`` / ``tfds_char:``
    dataset value; None for any other value.

    Raises:
        ConfigError: a ``tfds:`` value that is not spelled like a TFDS name.
    """
    if not isinstance(dataset, str):
        return None
    for prefix, char_level in ((CHAR_PREFIX, True), (WORD_PREFIX, False)):
        if dataset.startswith(prefix):
            name, _, feature = dataset[len(prefix):].partition("#")
            if "#" in dataset and not feature.isidentifier():
                raise ConfigError(
                    f"The text feature after # must be a feature name (tfds:pg19#book_text). "
                    f"Received: dataset={dataset!r}"
                )
            return check_name(name, dataset), feature or None, char_level
    return None


def _text_feature(builder, name: str, feature: str | None) -> str:
    import tensorflow_datasets as tfds

    features = builder.info.features
    texts = [k for k, v in features.items() if isinstance(v, tfds.features.Text)]
    if feature is not None:
        if feature not in texts:
            raise DataError(
                f"The TFDS dataset {name!r} has no Text feature {feature!r}; its features: "
                f"{describe_features(features)}. Received: feature={feature!r}"
            )
        return feature
    if "text" in texts:
        return "text"
    if len(texts) == 1:
        return texts[0]
    raise DataError(
        f"The rnn space needs a TFDS dataset with a Text feature; {name!r} has "
        f"{'several (choose one with tfds:NAME#FEATURE)' if texts else 'none'}. Its features: "
        f"{describe_features(features)}. Received: dataset={name!r}"
    )


def _tokens(text: bytes, char_level: bool) -> list[str]:
    words = text.decode("utf-8", "replace").split()
    if not words:
        return []
    if char_level:
        return [*" ".join(words), EOS]
    return [*words, EOS]


class _Encoder:
    """Symbol -> provisional id (first-seen order), and id arrays per split."""

    def __init__(self):
        self.ids: dict[str, int] = {EOS: 0, UNK: 1}

    def encode(self, tokens: list[str]) -> np.ndarray:
        ids = self.ids
        return np.fromiter((ids.setdefault(t, len(ids)) for t in tokens), np.int32, len(tokens))


def _read(builder, split, feature, char_level, encoder, cap, holdout=False, holdout_cap=None):
    """Token ids of a split, stopping at ``cap`` tokens (None: all).

    With ``holdout``, every HOLDOUT_EVERY-th example goes to a second stream
    instead (capped at ``holdout_cap`` tokens). Reading stops once every
    stream is full. Returns ``(ids, held_out_ids or None, examples read)``.
    """
    import tensorflow as tf

    ds = builder.as_dataset(split=split, shuffle_files=False)
    ds = ds.map(tf.autograph.experimental.do_not_convert(lambda ex: ex[feature]))
    kept, held, n_kept, n_held, count = [], [], 0, 0, 0

    def full(n, limit):
        return limit is not None and n >= limit

    for count, text in enumerate(ds.as_numpy_iterator(), start=1):
        to_held = holdout and count % HOLDOUT_EVERY == 0
        if (full(n_held, holdout_cap) if to_held else full(n_kept, cap)):
            if full(n_kept, cap) and (not holdout or full(n_held, holdout_cap)):
                break
            continue
        ids = encoder.encode(_tokens(text, char_level))
        if to_held:
            held.append(ids)
            n_held += len(ids)
        else:
            kept.append(ids)
            n_kept += len(ids)

    def join(parts, limit):
        out = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        return out[:limit] if limit is not None else out

    return join(kept, cap), (join(held, holdout_cap) if holdout else None), count


def load_tfds_corpus(
    dataset: str,
    data_dir: str | None = None,
    *,
    download: bool = False,
    train_tokens: int | None = None,
    valid_tokens: int | None = None,
    load_test: bool = True,
) -> Corpus:
    """Loads a TFDS text dataset as a word- or character-level :class:`Corpus`.

    Args:
        dataset: ``tfds:NAME[#FEATURE]`` or ``tfds_char:NAME[#FEATURE]``.
        data_dir: TFDS data directory (None: ``~/tensorflow_datasets``).
        download: Download and prepare the dataset when it is not prepared.
        train_tokens: Read (and build the vocabulary from) only the first N
            training tokens (None: all).
        valid_tokens: Read only the first N validation tokens (None: all).
        load_test: Read the test split (else ``Corpus.test`` is empty).

    Raises:
        ConfigError: malformed spelling, unknown TFDS name (close names suggested).
        DataError: not prepared without download, no Text feature, no train
            split, too few examples to hold out a validation set.
    """
    parsed = parse_dataset(dataset)
    if parsed is None:
        raise ConfigError(f"A TFDS text dataset is spelled tfds:NAME or tfds_char:NAME. "
                          f"Received: dataset={dataset!r}")
    name, feature, char_level = parsed
    builder = open_builder(name, data_dir)
    feature = _text_feature(builder, name, feature)  # known without the data
    prepare(builder, data_dir, download=download, download_flag="--rnn_download")
    splits = list(builder.info.splits.keys())
    if "train" not in splits:
        raise DataError(f"The TFDS dataset {name!r} has no train split; its splits: "
                        f"{', '.join(splits) or 'none'}. Received: dataset={dataset!r}")
    encoder = _Encoder()
    val_split = find_validation_split(builder)
    if val_split is not None:
        train, _, _ = _read(builder, "train", feature, char_level, encoder, train_tokens)
        valid, _, _ = _read(builder, val_split, feature, char_level, encoder, valid_tokens)
    else:
        train, valid, n = _read(builder, "train", feature, char_level, encoder, train_tokens,
                                holdout=True, holdout_cap=valid_tokens)
        if valid.size == 0:
            raise DataError(
                f"The TFDS dataset {name!r} has no validation split, and its train split gave "
                f"{n} example(s): too few to hold out every {HOLDOUT_EVERY}th one for "
                f"validation. Received: dataset={dataset!r}"
            )
    if train.size == 0:
        raise DataError(f"The train split of {name!r} has no text in feature {feature!r}. "
                        f"Received: dataset={dataset!r}")
    test = np.zeros(0, np.int32)
    if load_test:
        if "test" not in splits:
            raise DataError(f"The TFDS dataset {name!r} has no test split; its splits: "
                            f"{', '.join(splits)}. Received: dataset={dataset!r}")
        test, _, _ = _read(builder, "test", feature, char_level, encoder, None)
    symbols = list(encoder.ids)  # provisional id -> symbol
    counts = np.bincount(train, minlength=len(symbols))
    vocab, remap = _vocabulary(symbols, counts)
    _log.info("Loaded %s (%s level) from %s: %d train, %d valid, %d test tokens, vocab %d.",
              name, "char" if char_level else "word", builder.data_dir, train.size, valid.size,
              test.size, len(vocab))
    return Corpus(dataset, vocab, remap[train], remap[valid], remap[test])


def _vocabulary(symbols: list[str], counts: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """The vocabulary (see the module doc) and the map provisional id -> final id."""
    unk = symbols.index(UNK)
    order = sorted((i for i in range(len(symbols)) if counts[i] > 0 and i != unk),
                   key=lambda i: (-counts[i], symbols[i]))
    kept = [i for i in order if counts[i] >= MIN_COUNT and symbols[i] != EOS][: MAX_VOCAB - 2]
    dropped = int(counts.sum() - counts[kept].sum() - counts[symbols.index(EOS)])
    keep = [symbols.index(EOS), unk, *kept]
    weight = {i: int(counts[i]) for i in keep}
    weight[unk] = dropped  # rare symbols and literal <unk>s
    keep.sort(key=lambda i: (-weight[i], symbols[i]))
    remap = np.full(len(symbols), -1, np.int32)
    for new, old in enumerate(keep):
        remap[old] = new
    remap[remap < 0] = keep.index(unk)
    return tuple(symbols[i] for i in keep), remap
