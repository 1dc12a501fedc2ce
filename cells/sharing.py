"""``--space=rnn --sharing=enas``: rewards from the shared language model of the tree space.

Each proposed cell is scored on the first ``score_windows`` validation
windows with the weights of :class:`cells.shared_lm.SharedLM` (its reward is
the usual ``c / ppl^2``, §4.2 of Zoph & Le 2017, arXiv:1611.01578); then the
shared weights train ``steps_per_child`` windows on it (a fraction: on
average, see :meth:`nas_tf.sharing.SharingConfig.train_steps`; see
:mod:`nas_tf.sharing` for why in that order). The shared model and the scores
so far live in the run directory's ``shared/`` folder, written after every
architecture, so a search killed at any moment resumes with its shared
weights; at the end the ``top_k`` best-scoring cells are scored again on the
whole validation split and ranked in ``shared/ranking.json``. The test split
is never read.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from cells.search import RnnEvaluator, RnnSearchConfig
from nas_tf.errors import ChildTrainingError
from nas_tf.evaluator import ChildContext, EvalResult
from nas_tf.sharing import SharedScoring, SharingConfig

MODEL_FILE = "shared_lm.npz"
#: Rows of the whole-split scores of the final ranking: the same tokens as the
#: search's eval batch, ~2x faster than 10 rows on a 2-core CPU (34 s vs 65 s for
#: one cell, measured under load; perplexity within 0.1 %).
RANK_BATCH = 64


class SharedRnnEvaluator(SharedScoring, RnnEvaluator):
    """Scores cells with one shared language model instead of training each.

    Args:
        config: An :class:`cells.search.RnnSearchConfig` (data, reward, and
            the child LMConfig the shared model is built from).
        sharing: A :class:`nas_tf.sharing.SharingConfig` with mode ``enas``.

    Raises:
        ConfigError: ``sharing`` is not an enabled SharingConfig.
    """

    model_file = MODEL_FILE

    def __init__(self, config: RnnSearchConfig, sharing: SharingConfig):
        super().__init__(config)
        self._init_sharing(sharing)

    def __getstate__(self):
        return {**super().__getstate__(), "sharing": self.sharing, "_folder": self._folder,
                **self._fresh_sharing_state()}

    def _build_shared(self):
        from cells.shared_lm import SharedLM

        train, valid, vocab = self.data()
        return SharedLM(self.config.cell_base, vocab, train, valid, self.config.lm_config(),
                        seed=0)

    def evaluate(self, spec: Any, context: ChildContext) -> EvalResult:
        lm = self.shared_model()
        t0 = time.time()
        ppl = lm.score(spec, max_windows=self.sharing.score_windows)
        t1 = time.time()
        steps = self.sharing.train_steps(context.child_id)
        loss = None
        if steps and math.isfinite(ppl):  # a cell that blows up is not trained on
            loss = lm.train(lambda: spec, steps)
        t2 = time.time()
        metrics = {"val_perplexity": ppl, "shared_steps": lm.steps,
                   "score_seconds": t1 - t0, "shared_train_seconds": t2 - t1,
                   "train_seconds": t2 - t0}
        self._record(spec, ppl, loss, metrics)
        context.report(step=lm.steps, steps=None)
        if not math.isfinite(ppl):
            raise ChildTrainingError(
                "The cell's state blows up on the shared weights (validation perplexity "
                "is not finite).")
        return EvalResult(reward=self.reward(ppl), metrics=metrics)

    def rank(self, top_k: int | None = None) -> list[dict]:
        """Scores the ``top_k`` best-scoring cells so far on the whole validation
        split; best first. Each row: ``spec``, ``search_perplexity``, ``val_perplexity``."""
        from cells.tree_space import CellSpec

        lm = self.shared_model()
        k = top_k or self.sharing.top_k
        best = sorted(self._scores.items(), key=lambda kv: kv[1])[:k]
        rows = []
        for key, search_ppl in best:
            spec = CellSpec.from_json(json.loads(key))
            rows.append({"spec": spec.to_json(), "search_perplexity": search_ppl,
                         "val_perplexity": lm.score(spec, batch_size=RANK_BATCH)})
        rows.sort(key=lambda r: r["val_perplexity"])
        return rows

    def close(self) -> None:
        """Writes ``ranking.json`` (the final ranking) when the search scored any cell."""
        self._write_ranking()
