"""Tests of cells.tfds_text: any TFDS text corpus as an rnn-space dataset, offline.

TFDS's own builders (tiny_shakespeare: train/validation/test; lm1b: train/test
only) with their real features; tests/tfds_fixtures.py writes the metadata of
a prepared copy and tfds.testing.mock_data (or a given example stream)
replaces the record files, so builder, info, splits and features are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tfds_fixtures as F

from cells import tfds_text
from cells.ptb import EOS, UNK, load_corpus
from cells.search import RnnSearchConfig, make_evaluator
from nas_tf.errors import ConfigError, DataError

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    F.write_metadata(d, "tiny_shakespeare", {"train": 1, "validation": 1, "test": 1})
    F.write_metadata(d, "lm1b", {"train": 30_000_000, "test": 300_000})
    return d


def _texts(by_split):
    """An as_dataset_fn yielding the given texts per split (the feature ``text``)."""

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        return tf.data.Dataset.from_tensor_slices({"text": by_split[str(split)]})

    return as_dataset


@pytest.mark.parametrize("dataset, parsed", [
    ("tfds:lm1b", ("lm1b", None, False)),
    ("tfds_char:tiny_shakespeare", ("tiny_shakespeare", None, True)),
    ("tfds:pg19#book_text", ("pg19", "book_text", False)),
    ("ptb", None), ("synthetic", None),
])
def test_parse_dataset(dataset, parsed):
    assert tfds_text.parse_dataset(dataset) == parsed


@pytest.mark.parametrize("dataset", ["tfds:", "tfds:lm1b#", "tfds_char:a b", "tfds:x#1a"])
def test_malformed_spellings_are_config_errors(dataset):
    with pytest.raises(ConfigError, match="Received: dataset="):
        RnnSearchConfig(dataset=dataset)


def test_word_level_vocab_unk_rule_and_splits(tfds_dir, monkeypatch):
    monkeypatch.setattr(tfds_text, "MAX_VOCAB", 5)  # <eos>, <unk> + the 3 most frequent
    texts = {"train": ["a b c a\n", "a b <unk>", "  ", "d c a b"],
             "validation": ["a z"], "test": ["b q q"]}
    with F.mock(tfds_dir, 1, as_dataset_fn=_texts(texts)):
        corpus = load_corpus("tfds:tiny_shakespeare", str(tfds_dir), download=False)
    # Counts in train: a 4, b 3, <eos> 3, c 2, d 1 (dropped), <unk> 1 (literal) -> <unk> 2;
    # sorted by count, ties by the symbol.
    assert corpus.vocab == ("a", "<eos>", "b", "<unk>", "c")
    words = [[corpus.vocab[i] for i in s] for s in (corpus.train, corpus.valid, corpus.test)]
    assert words[0] == ["a", "b", "c", "a", EOS, "a", "b", UNK, EOS, UNK, "c", "a", "b", EOS]
    assert words[1] == ["a", UNK, EOS] and words[2] == ["b", UNK, UNK, EOS]
    assert corpus.train.dtype == np.int32 and corpus.name == "tfds:tiny_shakespeare"


def test_char_level_and_held_out_validation(tfds_dir):
    # lm1b has no validation split: every 10th training example validates.
    train = [f"s{i}  x" for i in range(1, 31)]
    with F.mock(tfds_dir, 1, as_dataset_fn=_texts({"train": train, "test": ["x"]})):
        corpus = load_corpus("tfds_char:lm1b", str(tfds_dir), download=False)
        capped = load_corpus("tfds:lm1b", str(tfds_dir), download=False, train_tokens=7,
                             valid_tokens=3, load_test=False)
    text = "".join(corpus.vocab[i] if corpus.vocab[i] != EOS else "|" for i in corpus.valid)
    # White space runs became one space; "0" is never in a training example: <unk>.
    assert text == "s1<unk> x|s2<unk> x|s3<unk> x|"
    assert len(corpus.train) == sum(len(f"s{i} x") + 1 for i in range(1, 31) if i % 10)
    # Reading stops at the cap; the vocabulary comes from those 7 tokens only.
    assert len(capped.train) == 7 and capped.test.size == 0
    assert set(capped.vocab) == {"s1", "s2", "s3", "x", EOS, UNK}
    assert [capped.vocab[i] for i in capped.valid] == [UNK, "x", EOS]  # "s10 x", capped


def test_rnn_evaluator_trains_on_mocked_tiny_shakespeare(tfds_dir):
    """The rnn search path (RnnEvaluator.data -> load_corpus -> TFDS) on generated text."""
    from nas_tf.evaluator import ChildContext

    cfg = RnnSearchConfig(dataset="tfds:tiny_shakespeare", data_dir=str(tfds_dir),
                          download=False, cell_base=2, units=8, bptt=5, batch_size=2,
                          steps_per_epoch=3, eval_batch_size=2)
    evaluator = make_evaluator(cfg)
    with F.mock(tfds_dir, 40):
        train, valid, vocab_size = evaluator.data()
    assert train.size > 100 and valid.size > 100 and vocab_size > 10
    from cells.tree_space import TreeSpace

    space = TreeSpace(2)
    spec = space.tokens_to_spec([0] * len(space.decisions()))
    result = evaluator.evaluate(spec, ChildContext(child_id=1, seed=0))
    assert 0.0 < result.reward and result.metrics["val_perplexity"] >= 1.0


@pytest.mark.parametrize("dataset, error, words", [
    ("tfds:lm1bb", ConfigError, "did you mean lm1b"),
    ("tfds:mnist", DataError, "Its features: image (Image), label (ClassLabel)"),
    ("tfds:cnn_dailymail", DataError, "several (choose one with tfds:NAME#FEATURE)"),
    ("tfds:cnn_dailymail#summary", DataError, "no Text feature 'summary'"),
    ("tfds:tiny_shakespeare", DataError, "--rnn_download"),
])
def test_bad_names_and_missing_data_are_one_clear_error(tmp_path, dataset, error, words):
    with pytest.raises(error) as info:
        load_corpus(dataset, str(tmp_path / "empty"), download=False)
    msg = str(info.value)
    assert words in msg and "\n" not in msg and "Received:" in msg
    if error is DataError and "download" in words:
        assert "--data_dir" in msg and "not prepared" in msg


def test_cli_missing_tfds_corpus_is_one_error_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "nas_tf.run", "--space=rnn", "--dataset=tfds:tiny_shakespeare",
         f"--data_dir={tmp_path / 'tfds'}", f"--run_dir={tmp_path / 'run'}"],
        cwd=os.getcwd(), capture_output=True, text=True, timeout=180, env=env, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "--rnn_download" in errors[0] and "--data_dir" in errors[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
