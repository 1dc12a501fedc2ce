"""``--space=cnn --sharing=enas``: rewards from the shared network of the CNN space.

Each proposed child is scored on the first ``score_windows`` validation
batches with the weights of :class:`cnn_space.shared.SharedCnn`: its
``val_accuracy`` (reward ``val_accuracy ** reward_power``, cubed as in §4.1 of
Zoph & Le 2017, arXiv:1611.01578); then the shared weights train
``steps_per_child`` batches on it (see :mod:`nas_tf.sharing` for why in that
order). The shared network and the scores so far live in the run
directory's ``shared/`` folder, written after every child, so a search
killed at any moment resumes with its shared weights; at the end the
``top_k`` best-scoring children are scored again on the whole validation
split and ranked in ``shared/ranking.json``. The test split is never read.
The same shape as :mod:`cells.sharing` (the recurrent space).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from cnn_space.config import CnnSearchConfig
from cnn_space.train import CnnEvaluator, make_space
from nas_tf.evaluator import ChildContext, EvalResult
from nas_tf.sharing import SharedScoring, SharingConfig

MODEL_FILE = "shared_cnn.npz"


class SharedCnnEvaluator(SharedScoring, CnnEvaluator):
    """Scores CNN children with one shared network instead of training each.

    Args:
        config: A :class:`cnn_space.config.CnnSearchConfig` (data, space,
            learning rate, momentum, weight decay, batch sizes, augmentation).
        sharing: A :class:`nas_tf.sharing.SharingConfig` with mode ``enas``.
        data: Already loaded data of ``config`` (not pickled).

    Raises:
        ConfigError: ``sharing`` is not an enabled SharingConfig.
    """

    model_file = MODEL_FILE

    def __init__(self, config: CnnSearchConfig, sharing: SharingConfig, data=None):
        super().__init__(config, data)
        self._init_sharing(sharing)

    def __getstate__(self):
        return {"config": self.config, "sharing": self.sharing, "_folder": self._folder}

    def __setstate__(self, state):
        super().__setstate__(state)
        self.sharing, self._folder = state["sharing"], state["_folder"]
        self.__dict__.update(self._fresh_sharing_state())

    def model(self):
        """The :class:`cnn_space.shared.SharedCnn` (built, or restored from the
        run directory, on first use)."""
        return self.shared_model()

    def _build_shared(self):
        from cnn_space.shared import SharedCnn

        return SharedCnn(make_space(self.config), self.data(), self.config, seed=0)

    def evaluate(self, spec: Any, context: ChildContext) -> EvalResult:
        net = self.model()
        t0 = time.time()
        acc = net.score(spec, max_batches=self.sharing.score_windows)
        t1 = time.time()
        steps = self.sharing.train_steps(context.child_id)  # a fraction: on average
        loss = net.train(lambda: spec, steps) if steps else None
        t2 = time.time()
        metrics = {"val_accuracy": acc, "shared_steps": net.steps,
                   "shared_skipped_steps": net.skipped,
                   "score_seconds": t1 - t0, "shared_train_seconds": t2 - t1,
                   "train_seconds": t2 - t0}
        self._record(spec, acc, loss, metrics)
        context.report(step=net.steps, steps=None)
        reward = acc ** self.config.reward_power
        if not math.isfinite(reward):
            reward = 0.0
        return EvalResult(reward=reward, metrics=metrics)

    def rank(self, top_k: int | None = None) -> list[dict]:
        """Scores the ``top_k`` best-scoring children so far on the whole validation
        split; best first. Each row: ``spec``, ``search_accuracy``, ``val_accuracy``."""
        from cnn_space.spec import CnnSpec

        net = self.model()
        k = top_k or self.sharing.top_k
        best = sorted(self._scores.items(), key=lambda kv: -kv[1])[:k]
        rows = []
        for key, search_acc in best:
            spec = CnnSpec.from_json(json.loads(key))
            rows.append({"spec": spec.to_json(), "search_accuracy": search_acc,
                         "val_accuracy": net.score(spec)})
        rows.sort(key=lambda r: -r["val_accuracy"])
        return rows

    def close(self) -> None:
        """Writes ``ranking.json`` (the final ranking) when the search scored any child,
        then lets go of the network and the data."""
        self._write_ranking()
        self._shared = None
        super().close()
