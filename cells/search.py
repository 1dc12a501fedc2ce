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
from nas_tf.sharing import SharingConfig, sharing_config
from nas_tf.validation import check_finite, check_positive

CELL_BASES = (2, 8)
#: Child learning rate when none is given. On ``synthetic`` (49 symbols,
#: 85 steps of 20x35 tokens, 32 units) Adam 2e-2 takes an LSTM child to valid
#: ppl ~22 and the NASCell to ~26, while 3e-3 leaves every child at the
#: unigram level (~33), where cells cannot be told apart. 3e-3 is the rate of
#: the PTB benchmarks (vocabulary 10,000).
DEFAULT_LEARNING_RATES = {"synthetic": 2e-2, "ptb": 3e-3, "ptb_char": 3e-3}


#: How a search's children differ from :class:`cells.lm.LMConfig`'s defaults:
#: a short CPU budget (32 units, 100 windows per epoch, Adam at a constant
#: rate). :meth:`RnnSearchConfig.paper` gives the paper's setting.
SEARCH_CHILD_DEFAULTS = {"units": 32, "steps_per_epoch": 100, "optimizer": "adam",
                         "lr_decay": 1.0, "decay_after": 0}


def search_child(**settings):
    """The :class:`cells.lm.LMConfig` of a search child: LMConfig's defaults,
    then :data:`SEARCH_CHILD_DEFAULTS`, then ``settings``.

    Raises:
        ConfigError: a setting is invalid (e.g. units <= 0).
    """
    from cells.lm import LMConfig  # keeps TensorFlow out of importing this module

    return LMConfig(**{**SEARCH_CHILD_DEFAULTS, **settings})


def _child_setting_names() -> tuple[str, ...]:
    """LMConfig's fields a search sets on its children (the learning rate is
    the search's own setting, with a default per dataset)."""
    from cells.lm import LMConfig

    return tuple(f.name for f in dataclasses.fields(LMConfig) if f.name != "learning_rate")


#: Units of the paper's base-8 children: two layers with about the parameters of
#: the "medium" 2 x LSTM-650 on PTB (19.76M vs 19.78M; see RnnSearchConfig.paper).
PAPER_UNITS = 533


@dataclasses.dataclass(frozen=True, init=False)
class RnnSearchConfig:
    """Settings of the recurrent-cell search: its data, space and reward, and
    the :class:`cells.lm.LMConfig` of its language-model children (``child``).

    Composed, not copied: every child setting is LMConfig's, with the
    search's defaults :data:`SEARCH_CHILD_DEFAULTS` (a short-budget CPU
    setting that runs without data files, ``synthetic``). :meth:`paper` gives
    the paper's setting (§4.2: base 8, Penn Treebank, two-layer children sized
    like Zaremba et al.'s "medium" model, trained ~35 epochs with SGD, reward
    c / ppl^2 with c = 80).

    Built from one flat set of keyword settings, the search's and the
    child's (``RnnSearchConfig(dataset="ptb", units=64, epochs=2)``), or with
    ``child=`` an LMConfig (then the flat child settings override it);
    :meth:`to_json` is flat too (as a run directory records it).

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
        reward_c: c in the reward c / ppl^2 (§4.2: "usually set at 80").
        train_tokens: Train on the first ``train_tokens`` tokens only (None: all).
        valid_tokens: Validate on the first ``valid_tokens`` tokens only
            (None: all). The reward always comes from the validation split.
        sharing: Weight sharing (:class:`nas_tf.sharing.SharingConfig`, or its
            mode ``"enas"``, or its JSON form): ``none`` trains every child
            from scratch (the paper); ``enas`` scores cells with one shared
            language model (:mod:`cells.sharing`).
        learning_rate: The children's initial learning rate; None picks the
            measured short-budget default of the dataset
            (:data:`DEFAULT_LEARNING_RATES`: Adam 2e-2 on ``synthetic``, 3e-3
            on ``ptb`` / ``ptb_char`` and TFDS corpora). It sets
            ``child.learning_rate``.
        child: The children's :class:`cells.lm.LMConfig` (units, layers,
            bptt, batch sizes, epochs, steps, optimizer, decay, clip, dropout,
            ...), its learning rate resolved as above.
    """

    dataset: str = "synthetic"
    data_dir: str | None = None
    download: bool = True
    data_seed: int = 0
    cell_base: int = 8
    reward_c: float = 80.0
    train_tokens: int | None = None
    valid_tokens: int | None = None
    learning_rate: float | None = None
    sharing: SharingConfig = SharingConfig()
    child: Any = None  # cells.lm.LMConfig, set by __init__

    def __init__(self, child=None, **settings):
        # A hand-written __init__: the child's settings are taken flat, by
        # LMConfig's names, so that they are declared once (in LMConfig).
        unknown = sorted(set(settings) - set(self.setting_names()))
        if unknown:
            raise ConfigError(f"Unknown rnn setting(s) {unknown}; use some of "
                              f"{sorted(self.setting_names())}. Received: {unknown}")
        for f in dataclasses.fields(self):
            if f.name != "child":
                object.__setattr__(self, f.name, settings.get(f.name, f.default))
        object.__setattr__(self, "sharing", sharing_config(self.sharing))
        self._check()
        given = {k: v for k, v in settings.items() if k in _child_setting_names()}
        lr = {"learning_rate": self.child_learning_rate()}
        child = (search_child(**given, **lr) if child is None
                 else dataclasses.replace(child, **given, **lr))
        object.__setattr__(self, "child", child)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Every keyword setting: the search's fields and LMConfig's."""
        own = tuple(f.name for f in dataclasses.fields(cls) if f.name != "child")
        return own + _child_setting_names()

    def _check(self) -> None:
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
        check_finite("reward_c", self.reward_c)
        check_positive("reward_c", self.reward_c)
        check_positive("train_tokens", self.train_tokens)
        check_positive("valid_tokens", self.valid_tokens)

    def lm_config(self):
        """The :class:`cells.lm.LMConfig` of the children (``child``)."""
        return self.child

    def child_learning_rate(self) -> float:
        """``learning_rate``, or the dataset's default when it is None."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES.get(self.dataset, DEFAULT_LEARNING_RATES["ptb"])

    @classmethod
    def paper(cls, data_dir: str | None = None) -> RnnSearchConfig:
        """The paper's child setting (§4.2) on Penn Treebank.

        Children are two-layer models sized like the "medium" model of
        Zaremba et al. (dropout 0.5, SGD with rate 1 decayed by 1/1.2 after 6
        epochs, clip 5) trained 35 epochs; reward 80 / ppl^2. Far beyond a
        CPU; given for reference and GPU runs.

        Units: :data:`PAPER_UNITS` (533), not the medium LSTM's 650. §4.2
        adjusts the children's hidden units so that their parameters
        approximately match the medium baseline: a base-8 cell has 8 blocks
        of weights where an LSTM has 4, so at 650 units the cells hold twice
        the LSTM's recurrent weights (13.52M against 6.77M; 26.53M
        parameters in all against 19.78M). 533 units give 19.76M in all
        (``experiments/rnn_paper_units.py``; the cells' weights alone would
        match at 460).
        """
        return cls(dataset="ptb", data_dir=data_dir, cell_base=8, units=PAPER_UNITS, epochs=35,
                   steps_per_epoch=None, optimizer="sgd", learning_rate=1.0,
                   lr_decay=1 / 1.2, decay_after=6, dropout=0.5, reward_c=80.0)

    def to_json(self) -> dict:
        """Flat: the search's settings (``learning_rate`` as given, None for
        the dataset's default) and the child's other settings."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "child"}
        own["sharing"] = self.sharing.to_json()
        child = dataclasses.asdict(self.child)
        child.pop("learning_rate")
        return {**own, **child}


def make_space(cfg: RnnSearchConfig):
    """The tree space of recurrent cells with ``cfg.cell_base`` leaves."""
    from cells.tree_space import TreeSpace

    return TreeSpace(cfg.cell_base)


def make_evaluator(cfg: RnnSearchConfig) -> RnnEvaluator:
    """A picklable evaluator training language-model children of ``cfg`` (with
    ``cfg.sharing`` enabled: scoring cells with one shared model instead)."""
    if cfg.sharing.enabled:
        from cells.sharing import SharedRnnEvaluator

        return SharedRnnEvaluator(cfg, cfg.sharing)
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
        units = cfg.child.units

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

