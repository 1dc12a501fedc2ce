"""Tests of cells.ptb: PTB loading and counting, bad files, ptb_char, the synthetic corpus."""

from pathlib import Path

import numpy as np
import pytest

from cells import ptb
from nas_tf.errors import ConfigError, DataError

TRAIN = "the cat sat\n a dog ran \n the cat ran\n"
VALID = "the dog sat\n"
TEST = "a dog sat\n"


def write_ptb(d: Path, train=TRAIN, valid=VALID, test=TEST) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        if text is not None:
            (d / f"ptb.{name}.txt").write_text(text)
    return d


def load(d, **kw):
    # download=False and a private cache: tests never touch the network or ~/.cache.
    return ptb.load_ptb(d, download=False, cache_dir=d.parent / "cache", **kw)


def test_real_ptb_counts(shared_data):
    d = shared_data / "ptb"
    if not (d / "ptb.train.txt").is_file():
        pytest.skip(f"PTB files absent from {d}")
    corpus = ptb.load_ptb(d, download=False)
    assert corpus.counts() == dict(zip(ptb.SPLITS, ptb.PTB_TOKEN_COUNTS))
    assert (corpus.counts()["train"], corpus.counts()["valid"]) == (929_589, 73_760)
    assert corpus.vocab_size == 10_000
    assert ptb.EOS in corpus.vocab and ptb.UNK in corpus.vocab
    for split in ptb.SPLITS:
        ids = getattr(corpus, split)
        assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 10_000


def test_tiny_corpus_tokens_and_vocab(tmp_path):
    corpus = load(write_ptb(tmp_path / "ptb"))
    # Each line's words plus <eos>; the blank-padded line counts the same.
    assert corpus.counts() == {"train": 12, "valid": 4, "test": 4}
    # Most frequent first (<eos> 3, then the words seen twice, then once), ties by spelling.
    assert tuple(corpus.vocab[:7]) == (ptb.EOS, "cat", "ran", "the", "a", "dog", "sat")
    words = [corpus.vocab[i] for i in corpus.train]
    assert words[:4] == ["the", "cat", "sat", ptb.EOS]
    assert words[4:8] == ["a", "dog", "ran", ptb.EOS]
    assert set(corpus.vocab) == {"the", "cat", "sat", "a", "dog", "ran", ptb.EOS}


def test_out_of_vocabulary_maps_to_unk(tmp_path):
    d = write_ptb(tmp_path / "ptb", train="the <unk> sat\n", valid="the zebra sat\n",
                  test="the sat\n")
    corpus = load(d)
    unk = corpus.vocab.index(ptb.UNK)
    assert int(corpus.valid[1]) == unk


def test_out_of_vocabulary_without_unk_is_an_error(tmp_path):
    with pytest.raises(DataError, match="bird.*not in the training vocabulary"):
        load(write_ptb(tmp_path / "ptb", test="a bird sat\n"))


def test_char_level(tmp_path):
    d = write_ptb(tmp_path / "ptb", train="ab <unk> b\n", valid="ba\n", test="a\n")
    corpus = load(d, char_level=True)
    assert corpus.name == "ptb_char"
    chars = [corpus.vocab[i] for i in corpus.train]
    assert chars == ["a", "b", "_", ptb.UNK, "_", "b", ptb.EOS]
    assert corpus.counts() == {"train": 7, "valid": 3, "test": 2}


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing_dir", "does not exist.*ptb.train.txt"),
        ("empty_dir", "not found.*ptb.train.txt"),
        ("not_utf8", "not UTF-8"),
        ("all_unk", "no words but <unk>"),
        ("missing_one", "lacks ptb.valid.txt"),
        ("empty_file", "empty"),
        ("blank_lines", "empty"),
        ("dir_is_file", "must be a directory"),
    ],
)
def test_bad_inputs_raise_one_clear_error(tmp_path, case, match):
    d = tmp_path / "ptb"
    if case == "missing_one":
        write_ptb(d, valid=None)
    elif case == "empty_file":
        write_ptb(d, test="")
    elif case == "blank_lines":
        write_ptb(d, train="\n \n\n")
    elif case == "dir_is_file":
        d.write_text("x")
    elif case == "empty_dir":
        d.mkdir()
    elif case == "not_utf8":
        write_ptb(d)
        (d / "ptb.valid.txt").write_bytes(b"\xff\xfe\x00 binary")
    elif case == "all_unk":
        write_ptb(d, train="<unk> <unk>\n<unk>\n", valid="<unk>\n", test="<unk>\n")
    with pytest.raises(DataError, match=match) as info:
        load(d)
    assert "Received:" in str(info.value)


def test_missing_files_message_says_where_to_put_them(tmp_path):
    with pytest.raises(DataError) as info:
        load(tmp_path / "nowhere")
    msg = str(info.value)
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt", str(tmp_path / "nowhere")):
        assert name in msg


def test_cache_is_used_when_data_dir_absent(tmp_path):
    write_ptb(tmp_path / "cache")
    corpus = ptb.load_ptb(None, download=False, cache_dir=tmp_path / "cache")
    assert corpus.counts()["train"] == 12


def test_synthetic_is_deterministic_and_well_formed():
    a = ptb.make_synthetic(3, train_tokens=2000, valid_tokens=300, test_tokens=300)
    b = ptb.make_synthetic(3, train_tokens=2000, valid_tokens=300, test_tokens=300)
    c = ptb.make_synthetic(4, train_tokens=2000, valid_tokens=300, test_tokens=300)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.valid, b.valid)
    assert not np.array_equal(a.train[:300], c.train[:300])
    assert a.counts()["train"] >= 2000 and a.vocab_size == 1 + 40 + 4 + 4
    # Brackets are balanced and closed in order (a Dyck language) within each sentence.
    for split in (a.train, a.valid):
        stack = []
        for tok in split:
            sym = a.vocab[tok]
            if sym.startswith("("):
                stack.append(sym[1:])
            elif sym.startswith(")"):
                assert stack and stack.pop() == sym[1:]
            elif sym == ptb.EOS:
                assert not stack
        assert split[-1] == a.vocab.index(ptb.EOS)


def test_synthetic_is_learnable_beyond_unigrams():
    c = ptb.make_synthetic(0)
    v = c.vocab_size
    uni = np.bincount(c.train, minlength=v) + 1.0
    uni /= uni.sum()
    big = np.ones((v, v))
    np.add.at(big, (c.train[:-1], c.train[1:]), 1)
    big /= big.sum(1, keepdims=True)
    uni_ppl = np.exp(-np.mean(np.log(uni[c.valid])))
    big_ppl = np.exp(-np.mean(np.log(big[c.valid[:-1], c.valid[1:]])))
    assert big_ppl < 0.7 * uni_ppl  # context helps: a real LM task, not noise


@pytest.mark.parametrize("dataset", ["nope", "PTB"])
def test_load_corpus_unknown_dataset(dataset):
    with pytest.raises(ConfigError, match="Unknown rnn dataset.*Received: dataset="):
        ptb.load_corpus(dataset)


def test_synthetic_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="Received: num_words=0"):
        ptb.make_synthetic(0, num_words=0)


def test_nonexistent_data_dir_never_downloads(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(ptb, "_download_ptb", no_network)
    with pytest.raises(DataError, match="does not exist"):
        ptb.load_ptb(tmp_path / "typo", download=True, cache_dir=tmp_path / "cache")


def test_download_is_https_with_pinned_checksums(tmp_path, monkeypatch):
    """A download whose files differ from the pinned SHA-256 is refused, not used."""
    import io
    import tarfile

    assert ptb.PTB_URL.startswith("https://") and len(ptb.PTB_SHA256) == 3
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for s in ("train", "valid", "test"):
            data = b"not the real ptb\n"
            info = tarfile.TarInfo(f"simple-examples/data/ptb.{s}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(ptb.urllib.request, "urlopen",
                        lambda url, timeout: Response(buf.getvalue()))
    assert ptb._download_ptb(tmp_path / "cache", 1.0) is False
    assert not list((tmp_path / "cache").glob("ptb.*.txt"))
