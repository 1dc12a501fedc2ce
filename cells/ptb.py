"""Language-model corpora for the recurrent-cell search (Zoph & Le 2017, arXiv:1611.01578, §4.2).

Three datasets, each turned into integer token streams (train / valid / test)
and a vocabulary:

* ``ptb`` — the Penn Treebank in Mikolov's standard split (files
  ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``): words split on
  white space, ``<eos>`` appended at the end of every line, vocabulary from
  the training file (10,000 words, ``<unk>`` included). On the standard
  files this gives 929,589 / 73,760 / 82,430 tokens.
* ``ptb_char`` — the character-level version derived from the same files
  (the paper's transfer experiment, §4.2): every word is spelled out
  character by character, ``_`` separates words, ``<eos>`` ends a line and
  ``<unk>`` stays one symbol.
* ``synthetic`` — a deterministic toy language generated from a seed, for
  runs without any data file (the quickstart): sentences over a small
  vocabulary drawn from a random bigram chain, with nested brackets that must
  be closed in order, so that a model needs both local statistics and a
  memory (a Dyck-language LM task, as used to probe recurrent memory).

Nothing here imports TensorFlow. Loaders return :class:`Corpus`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from nas_tf.errors import ConfigError, DataError

DATASETS = ("synthetic", "ptb", "ptb_char")
SPLITS = ("train", "valid", "test")
EOS = "<eos>"
UNK = "<unk>"
WORD_SEP = "_"

#: Mikolov's archive holding ``simple-examples/data/ptb.{train,valid,test}.txt``.
PTB_URL = "https://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
#: SHA-256 of the three files a download must give (those of the standard
#: preprocessed PTB; a download with other contents is refused, not used).
PTB_SHA256 = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
#: Token counts of the standard files (train, valid, test), for reference.
PTB_TOKEN_COUNTS = (929_589, 73_760, 82_430)

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
    """Integer token streams of a language-model dataset.

    Attributes:
        name: Dataset name (``ptb``, ``ptb_char``, ``synthetic``).
        vocab: The symbols; token ``i`` is ``vocab[i]``.
        train, valid, test: 1-D int32 arrays of token ids.
    """

    name: str
    vocab: tuple[str, ...]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def counts(self) -> dict[str, int]:
        """Number of tokens of each split."""
        return {s: int(getattr(self, s).shape[0]) for s in SPLITS}


def default_cache_dir() -> Path:
    """Where a downloaded PTB is kept: ``$NAS_TF_CACHE/ptb`` or ``~/.cache/nas_tf/ptb``."""
    root = os.environ.get("NAS_TF_CACHE") or os.path.join(Path.home(), ".cache", "nas_tf")
    return Path(root) / "ptb"


def _split_files(directory: Path) -> dict[str, Path]:
    return {s: directory / f"ptb.{s}.txt" for s in SPLITS}


def _have_all(directory: Path | None) -> bool:
    return directory is not None and all(p.is_file() for p in _split_files(directory).values())


def _download_ptb(cache_dir: Path, timeout: float) -> bool:
    """Tries to fetch Mikolov's archive (HTTPS) into ``cache_dir``; True on
    success. Every file is checked against :data:`PTB_SHA256` before it is
    put in place."""
    import hashlib

    try:
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "simple-examples.tgz"
            with urllib.request.urlopen(PTB_URL, timeout=timeout) as r, open(archive, "wb") as f:
                shutil.copyfileobj(r, f)
            with tarfile.open(archive) as tar:
                members = {
                    m.name.split("/")[-1]: m
                    for m in tar.getmembers()
                    if m.isfile() and m.name.endswith(tuple(f"ptb.{s}.txt" for s in SPLITS))
                    and "/data/" in m.name
                }
                cache_dir.mkdir(parents=True, exist_ok=True)
                for path in _split_files(cache_dir).values():
                    data = tar.extractfile(members[path.name]).read()
                    digest = hashlib.sha256(data).hexdigest()
                    if digest != PTB_SHA256[path.name]:
                        raise ValueError(f"{path.name} has SHA-256 {digest}, not the pinned "
                                         f"{PTB_SHA256[path.name]}")
                    tmp_path = path.with_name(path.name + ".part")
                    tmp_path.write_bytes(data)
                    os.replace(tmp_path, path)
        return True
    except Exception as e:  # noqa: BLE001 — any failure means "no network": fall back.
        _log.info("PTB download from %s failed: %s", PTB_URL, e)
        return False


def find_ptb_dir(
    data_dir: str | os.PathLike | None,
    *,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = 10.0,
) -> Path:
    """The directory holding the three PTB files.

    Looks in ``data_dir``, then in the cache; if neither has the files and
    ``download`` is true, tries (with a short ``timeout``) to download the
    standard archive into the cache.

    Raises:
        DataError: the files are nowhere and cannot be downloaded.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    given = Path(data_dir).expanduser() if data_dir else None
    if given is not None and given.exists() and not given.is_dir():
        raise DataError(
            f"--data_dir must be a directory holding ptb.train.txt, ptb.valid.txt and "
            f"ptb.test.txt. Received: data_dir={str(given)!r} (a file)"
        )
    if given is not None and not given.exists():
        raise DataError(
            f"--data_dir {str(given)!r} does not exist. Pass the directory holding "
            f"ptb.train.txt, ptb.valid.txt and ptb.test.txt. Received: data_dir={str(given)!r}")
    if _have_all(given):
        return given
    if given is not None and given.is_dir():
        present = [p.name for p in _split_files(given).values() if p.is_file()]
        if present:  # Some files but not all: a broken copy, not a reason to download.
            missing = [p.name for p in _split_files(given).values() if not p.is_file()]
            raise DataError(
                f"PTB directory {str(given)!r} lacks {', '.join(missing)}; put the three files "
                f"ptb.train.txt, ptb.valid.txt and ptb.test.txt there. Received: data_dir="
                f"{str(given)!r}"
            )
    if _have_all(cache):
        return cache
    if download and _download_ptb(cache, timeout):
        return cache
    where = str(given) if given is not None else "DATA_DIR"
    raise DataError(
        f"Penn Treebank files not found. Put ptb.train.txt, ptb.valid.txt and ptb.test.txt "
        f"(from {PTB_URL}, folder simple-examples/data) in {where!r} and pass "
        f"--data_dir={where}, or in the cache {str(cache)!r}. Received: data_dir="
        f"{str(given) if given is not None else None!r}"
    )


def read_lines(path: Path) -> list[list[str]]:
    """The words of each non-blank line of a text file.

    Raises:
        DataError: the file is missing, empty, or has no words.
    """
    if not path.is_file():
        raise DataError(f"Data file is missing; put it in place. Received: path={str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"Data file is not UTF-8 text (byte {e.start}); replace it with the real file. "
            f"Received: path={str(path)!r}") from None
    if not text.strip():
        raise DataError(
            f"Data file is empty (no lines with words); replace it with the real file. "
            f"Received: path={str(path)!r}, size={len(text)}"
        )
    lines = [line.split() for line in text.split("\n")]
    # The final newline leaves an empty last piece, which is no line. (Every
    # other line, blank or not, ends with <eos>, as in the standard counting.)
    if lines and not lines[-1]:
        lines.pop()
    return lines


def _word_tokens(lines: list[list[str]]) -> list[str]:
    out: list[str] = []
    for words in lines:
        out.extend(words)
        out.append(EOS)
    return out


def _char_tokens(lines: list[list[str]]) -> list[str]:
    out: list[str] = []
    for words in lines:
        for i, w in enumerate(words):
            if i:
                out.append(WORD_SEP)
            if w == UNK:
                out.append(UNK)
            else:
                out.extend(w)
        out.append(EOS)
    return out


def build_vocab(tokens: list[str]) -> tuple[str, ...]:
    """Symbols sorted by decreasing count, ties by the symbol."""
    counts = collections.Counter(tokens)
    return tuple(sorted(counts, key=lambda w: (-counts[w], w)))


def _to_ids(tokens: list[str], index: dict[str, int], split: str, path: Path) -> np.ndarray:
    unk = index.get(UNK)
    ids = np.empty(len(tokens), dtype=np.int32)
    for i, t in enumerate(tokens):
        j = index.get(t, unk)
        if j is None:
            raise DataError(
                f"Symbol {t!r} of the {split} split is not in the training vocabulary and the "
                f"vocabulary has no {UNK}; use the standard preprocessed PTB files. "
                f"Received: path={str(path)!r}"
            )
        ids[i] = j
    return ids


def load_ptb(
    data_dir: str | os.PathLike | None,
    *,
    char_level: bool = False,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Corpus:
    """Loads the Penn Treebank (word or character level).

    Args:
        data_dir: Directory with ``ptb.{train,valid,test}.txt``, or None to
            use the cache (and possibly download).
        char_level: If True, the character-level corpus (``ptb_char``).
        download: Whether to try downloading the standard archive when the
            files are nowhere to be found.
        cache_dir: Download cache (default :func:`default_cache_dir`).

    Returns:
        A :class:`Corpus`.

    Raises:
        DataError: missing, empty or malformed files.

    Example:
        >>> corpus = load_ptb("../shared/data/ptb")  # doctest: +SKIP
        >>> corpus.counts()  # doctest: +SKIP
        {'train': 929589, 'valid': 73760, 'test': 82430}
    """
    directory = find_ptb_dir(data_dir, download=download, cache_dir=cache_dir)
    files = _split_files(directory)
    tokenize = _char_tokens if char_level else _word_tokens
    streams = {s: tokenize(read_lines(files[s])) for s in SPLITS}
    vocab = build_vocab(streams["train"])
    if len(set(vocab) - {UNK, EOS, WORD_SEP}) == 0:
        raise DataError(
            f"{files['train']} has no words but {UNK} (and line ends): it is not the PTB "
            f"training text; replace it with the real file. Received: path="
            f"{str(files['train'])!r}")
    index = {w: i for i, w in enumerate(vocab)}
    arrays = {s: _to_ids(streams[s], index, s, files[s]) for s in SPLITS}
    return Corpus("ptb_char" if char_level else "ptb", vocab, **arrays)


def make_synthetic(
    seed: int = 0,
    *,
    num_words: int = 40,
    num_brackets: int = 4,
    max_depth: int = 4,
    train_tokens: int = 60_000,
    valid_tokens: int = 6_000,
    test_tokens: int = 6_000,
) -> Corpus:
    """A deterministic toy language for runs without data files.

    Sentences are made of words from a random bigram chain (sharp,
    seed-dependent transition probabilities) interleaved with nested brackets
    of ``num_brackets`` kinds; a closing bracket always matches the latest
    open one (a Dyck language), so predicting it needs memory of the stack.
    Every sentence ends with ``<eos>`` once all brackets are closed.

    Args:
        seed: Everything is drawn from ``numpy.random.default_rng(seed)``.
        num_words: Number of plain words.
        num_brackets: Number of bracket kinds.
        max_depth: Deepest nesting.
        train_tokens, valid_tokens, test_tokens: Approximate split sizes
            (each split ends at a sentence end).

    Returns:
        A :class:`Corpus` named ``synthetic``.

    Raises:
        ConfigError: a size is not positive.
    """
    for name, v in (("num_words", num_words), ("num_brackets", num_brackets),
                    ("max_depth", max_depth), ("train_tokens", train_tokens),
                    ("valid_tokens", valid_tokens), ("test_tokens", test_tokens)):
        if v <= 0:
            raise ConfigError(f"Synthetic corpus needs {name} > 0. Received: {name}={v}")
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(num_words)]
    opens = [f"({k}" for k in range(num_brackets)]
    closes = [f"){k}" for k in range(num_brackets)]
    vocab = (EOS, *words, *opens, *closes)
    index = {w: i for i, w in enumerate(vocab)}
    # Sparse, peaked bigram chain over words (each word has ~4 likely successors).
    logits = rng.normal(size=(num_words + 1, num_words)) * 3.0
    trans = np.exp(logits - logits.max(axis=1, keepdims=True))
    trans /= trans.sum(axis=1, keepdims=True)
    cum = np.cumsum(trans, axis=1)

    def sentence() -> list[int]:
        out, stack, prev = [], [], num_words  # row num_words = sentence start
        length = int(rng.integers(6, 25))
        while len(out) < length or stack:
            r = rng.random()
            if stack and (r < 0.25 or len(out) >= length):
                out.append(index[closes[stack.pop()]])
            elif len(stack) < max_depth and r < 0.4:
                k = int(rng.integers(num_brackets))
                stack.append(k)
                out.append(index[opens[k]])
            else:
                w = min(int(np.searchsorted(cum[prev], rng.random(), side="right")),
                        num_words - 1)
                out.append(index[words[w]])
                prev = w
        out.append(index[EOS])
        return out

    def split(n: int) -> np.ndarray:
        ids: list[int] = []
        while len(ids) < n:
            ids.extend(sentence())
        return np.asarray(ids, dtype=np.int32)

    return Corpus("synthetic", vocab, split(train_tokens), split(valid_tokens), split(test_tokens))


def load_corpus(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    download: bool = True,
    train_tokens: int | None = None,
    valid_tokens: int | None = None,
    load_test: bool = True,
) -> Corpus:
    """Loads a dataset by name (``synthetic``, ``ptb``, ``ptb_char``, or a TFDS text
    corpus ``tfds:NAME`` / ``tfds_char:NAME``, see :mod:`cells.tfds_text`).

    ``train_tokens``, ``valid_tokens`` and ``load_test`` bound what a TFDS
    corpus reads (its vocabulary comes from the training tokens read); the
    other datasets are read whole.

    Raises:
        ConfigError: unknown dataset name.
        DataError: missing or malformed data files.
    """
    if dataset == "synthetic":
        return make_synthetic(seed)
    if dataset in ("ptb", "ptb_char"):
        return load_ptb(data_dir, char_level=dataset == "ptb_char", download=download)
    from cells.tfds_text import load_tfds_corpus, parse_dataset

    if parse_dataset(dataset) is not None:
        return load_tfds_corpus(dataset, None if data_dir is None else str(data_dir),
                                download=download, train_tokens=train_tokens,
                                valid_tokens=valid_tokens, load_test=load_test)
    raise ConfigError(
        f"Unknown rnn dataset; use one of {', '.join(DATASETS)}, or a TFDS text corpus "
        f"tfds:NAME (words) / tfds_char:NAME (characters). Received: dataset={dataset!r}"
    )
