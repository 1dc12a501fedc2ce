"""The recurrent-cell search: its config, space and evaluator (arXiv:1611.01578, §3.4, §4.2).

``make_space(cfg)`` is the tree space of recurrent cells (``TreeSpace``,
``cell_base`` leaves); ``make_evaluator(cfg)`` trains a language-model child
(:mod:`cells.lm`) around each sampled cell and rewards it with
``c / (validation perplexity) ** 2`` (§4.2, with c = 80 in the paper). The
test split is never read by the evaluator.

Example:
    >>> cfg = RnnSearchConfig(dataset="synthetic", units=32, steps_per_epoch=50)
    >>> space, evaluator = make_space(cfg), make_evaluator(cfg)
    >>> from nas_tf.loop import run_search  # doctest: +SKIP
    >>> run_search(space, evaluator, run_dir="runs/rnn", config=SearchConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from cells.ptb import DATASETS
from cells.tfds_text import parse_dataset
from nas_tf.errors import ConfigError
from nas_tf.evaluator import ChildContext, EvalResult, Evaluator

CELL_BASES = (2, 8)
#: Child learning rate when none is given. On ``synthetic`` (49 symbols,
#: 85 steps of 20x35 tokens, 32 units) Adam 2e-2 takes an LSTM child to valid
#: ppl ~22 and the NASCell to ~26, while 3e-3 leaves every child at the
#: unigram level (~33), where cells cannot be told apart. 3e-3 is the rate of
#: the PTB benchmarks (vocabulary 10,000).
DEFAULT_LEARNING_RATES = {"synthetic": 2e-2, "ptb": 3e-3, "ptb_char": 3e-3}


@dataclasses.dataclass(frozen=True)
class RnnSearchConfig:
    """Settings of the recurrent-cell search and of its language-model children.

    The defaults are a short-budget CPU setting that runs without data files
    (``synthetic``); :meth:`paper` gives the paper's setting (§4.2: base 8,
    Penn Treebank, two-layer children sized like Zaremba et al.'s "medium"
    model, trained ~35 epochs with SGD, reward c / ppl^2 with c = 80).

    Attributes:
        dataset: ``synthetic`` (no file), ``ptb``, ``ptb_char``, or a TFDS text
            corpus ``tfds:NAME`` (words) / ``tfds_char:NAME`` (characters), see
            :mod:`cells.tfds_text`.
        data_dir: Directory of the PTB files (``ptb`` / ``ptb_char``), or the
            TFDS data directory (``tfds:``).
        download: Try to download PTB into the cache when the files are absent;
            download and prepare a TFDS corpus when it is not prepared.
        data_seed: Seed of the synthetic corpus (the same for every child).
        cell_base: Leaves of the cell tree: 2, or 8 (the paper's, §4.2).
        units: Hidden units of each recurrent layer (and the embedding size).
        num_layers: Recurrent layers of a child (§4.2: 2).
        bptt: Truncated-BPTT window (35 as Zaremba et al.).
        batch_size: Training rows (20 as Zaremba et al.).
        eval_batch_size: Validation rows.
        epochs: Training epochs of a child.
        steps_per_epoch: Cap on training windows per epoch (None: all).
        optimizer: ``adam`` (short budgets) or ``sgd`` (Zaremba et al., paper).
        learning_rate: Initial learning rate; None picks the measured
            short-budget default of the dataset (:data:`DEFAULT_LEARNING_RATES`:
            Adam 2e-2 on ``synthetic``, 3e-3 on ``ptb`` / ``ptb_char`` and TFDS corpora).
        lr_decay, decay_after: Multiply the rate by ``lr_decay`` each epoch
            after ``decay_after`` epochs.
        max_grad_norm: Global gradient-norm clip (5 as Zaremba et al.).
        dropout: Dropout on non-recurrent connections.
        tie_embeddings: Share embedding and softmax weights.
        unroll: Unroll the recurrent layers (faster on CPU for small cells,
            slower to trace).
        reward_c: c in the reward c / ppl^2 (§4.2: "usually set at 80").
        train_tokens: Train on the first ``train_tokens`` tokens only (None: all).
        valid_tokens: Validate on the first ``valid_tokens`` tokens only
            (None: all). The reward always comes from the validation split.
    """

    dataset: str = "synthetic"
    data_dir: str | None = None
    download: bool = True
    data_seed: int = 0
    cell_base: int = 8
    units: int = 32
    num_layers: int = 2
    bptt: int = 35
    batch_size: int = 20
    eval_batch_size: int = 10
    epochs: int = 1
    steps_per_epoch: int | None = 100
    optimizer: str = "adam"
    learning_rate: float | None = None
    lr_decay: float = 1.0
    decay_after: int = 0
    max_grad_norm: float = 5.0
    dropout: float = 0.0
    tie_embeddings: bool = False
    unroll: bool = False
    reward_c: float = 80.0
    train_tokens: int | None = None
    valid_tokens: int | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS and parse_dataset(self.dataset) is None:
            raise ConfigError(
                f"Unknown rnn dataset; use one of {', '.join(DATASETS)}, or a TFDS text corpus "
                f"tfds:NAME (words) / tfds_char:NAME (characters). "
                f"Received: dataset={self.dataset!r}"
            )
        if self.cell_base not in CELL_BASES:
            raise ConfigError(
                f"cell_base must be 2 or 8 (the paper's). Received: cell_base={self.cell_base!r}"
            )
        if not (isinstance(self.reward_c, (int, float)) and self.reward_c > 0
                and math.isfinite(self.reward_c)):
            raise ConfigError(f"reward_c must be a finite number > 0. Received: "
                              f"reward_c={self.reward_c}")
        for name in ("train_tokens", "valid_tokens"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"{name} must be > 0 (or unset). Received: {name}={v}")
        self.lm_config()  # validates the child's settings (units, bptt, ...)

    def lm_config(self):
        """The :class:`cells.lm.LMConfig` of the children.

        Raises:
            ConfigError: a child setting is invalid (e.g. units <= 0).
        """
        from cells.lm import LMConfig  # keeps TensorFlow out of config parsing

        return LMConfig(
            units=self.units, num_layers=self.num_layers, bptt=self.bptt,
            batch_size=self.batch_size, eval_batch_size=self.eval_batch_size,
            epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
            optimizer=self.optimizer, learning_rate=self.child_learning_rate(),
            lr_decay=self.lr_decay, decay_after=self.decay_after,
            max_grad_norm=self.max_grad_norm, dropout=self.dropout,
            tie_embeddings=self.tie_embeddings, unroll=self.unroll,
        )

    def child_learning_rate(self) -> float:
        """``learning_rate``, or the dataset's default when it is None."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES.get(self.dataset, DEFAULT_LEARNING_RATES["ptb"])

    @classmethod
    def paper(cls, data_dir: str | None = None) -> RnnSearchConfig:
        """The paper's child setting (§4.2) on Penn Treebank.

        Children are two-layer models of the "medium" size of Zaremba et al.
        (650 units, dropout 0.5, SGD with rate 1 decayed by 1/1.2 after 6
        epochs, clip 5) trained 35 epochs; reward 80 / ppl^2. Far beyond a
        CPU; given for reference and GPU runs.
        """
        return cls(dataset="ptb", data_dir=data_dir, cell_base=8, units=650, epochs=35,
                   steps_per_epoch=None, optimizer="sgd", learning_rate=1.0,
                   lr_decay=1 / 1.2, decay_after=6, dropout=0.5, reward_c=80.0)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def make_space(cfg: RnnSearchConfig):
    """The tree space of recurrent cells with ``cfg.cell_base`` leaves."""
    from cells.tree_space import TreeSpace

    return TreeSpace(cfg.cell_base)


def make_evaluator(cfg: RnnSearchConfig) -> RnnEvaluator:
    """A picklable evaluator training language-model children of ``cfg``."""
    return RnnEvaluator(cfg)


class RnnEvaluator(Evaluator):
    """Trains a language model around a cell spec; reward c / (validation ppl)^2.

    Holds only its config; the corpus is loaded on the first
    :meth:`evaluate` and kept (it is not pickled).

    Args:
        config: An :class:`RnnSearchConfig`.

    Raises (from evaluate):
        cells.lm.ChildTrainingError: the child's loss became non-finite.
        DataError: the dataset files are missing or malformed.
    """

    def __init__(self, config: RnnSearchConfig):
        if not isinstance(config, RnnSearchConfig):
            raise ConfigError(f"RnnEvaluator needs an RnnSearchConfig. Received: {config!r}")
        self.config = config
        self._data = None

    def __getstate__(self):
        return {"config": self.config, "_data": None}

    def data(self):
        """``(train, valid, vocab_size)`` after slicing; loads the corpus once."""
        if self._data is None:
            from cells.ptb import load_corpus

            cfg = self.config
            corpus = load_corpus(cfg.dataset, cfg.data_dir, seed=cfg.data_seed,
                                 download=cfg.download, train_tokens=cfg.train_tokens,
                                 valid_tokens=cfg.valid_tokens, load_test=False)
            train = corpus.train[: cfg.train_tokens] if cfg.train_tokens else corpus.train
            valid = corpus.valid[: cfg.valid_tokens] if cfg.valid_tokens else corpus.valid
            self._data = (train, valid, corpus.vocab_size)
        return self._data

    def reward(self, val_perplexity: float) -> float:
        """c / ppl^2 (§4.2); a huge perplexity gives a tiny (or zero) reward.

        Raises:
            ChildTrainingError: the perplexity is NaN, infinite or < 1.
        """
        from cells.lm import ChildTrainingError

        ppl = float(val_perplexity)
        if not (math.isfinite(ppl) and ppl >= 1.0):
            raise ChildTrainingError(
                f"Validation perplexity must be a finite number >= 1. Received: "
                f"val_perplexity={ppl}"
            )
        # In log space, so that ppl ** 2 cannot overflow (ppl can be ~1e307).
        return math.exp(math.log(self.config.reward_c) - 2.0 * math.log(ppl))

    def evaluate(self, spec: Any, context: ChildContext) -> EvalResult:

        from cells.lm import train_lm
        from cells.tree_cell import TreeCell

        cfg = self.config
        train, valid, vocab_size = self.data()
        units = cfg.units

        def cell_factory():
            return TreeCell(spec, units)

        # One device: pinned there; several: a MirroredStrategy (see train_lm).
        res = train_lm(cell_factory, train, valid, vocab_size, cfg.lm_config(),
                       seed=context.seed, log_dir=context.log_dir,
                       progress=context.report, devices=context.devices)
        ppl = res.val_perplexity
        metrics = {
            "val_perplexity": ppl,
            "best_val_perplexity": res.best_val_perplexity,
            "train_perplexity": res.train_perplexity,
            "params": res.params,
            "train_seconds": res.train_seconds,
            "steps": res.steps,
            "epochs": len(res.history),
        }
        if cfg.dataset == "ptb_char":  # bits per character, as the paper's Table 3
            metrics["val_bpc"] = math.log2(ppl)
            metrics["best_val_bpc"] = math.log2(res.best_val_perplexity)
        return EvalResult(reward=self.reward(ppl), metrics=metrics)

