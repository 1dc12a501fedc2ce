"""``--space=nb201 --nb201_reward=sharing``: rewards from one supernet of all cells.

Each proposed cell is scored on the first ``score_windows`` validation
batches (held out of the training split) with the weights of
:class:`cnn_space.nb201.supernet.Nb201Supernet` (its reward: that validation
accuracy); then the supernet trains ``steps_per_child`` batches on it (see
:mod:`nas_tf.sharing` for the order). Before the first score the supernet
trains ``shared_warmup_steps`` batches on uniformly drawn cells, as
random-sampling weight sharing (RSPS, Li & Talwalkar 2019) does. The supernet
and every score live in ``RUN_DIR/shared/``, so a killed search resumes with
its weights; at the end the ``top_k`` best-scoring cells are scored again on
the whole validation part (``shared/ranking.json``). The table, when given,
is truth only (``table_test_accuracy``), as for every image reward.
"""

from __future__ import annotations

import json
import math
import random
import time

from cnn_space.nb201.config import Nb201Config
from cnn_space.nb201.estimators import _Truth
from cnn_space.nb201.space import OPS, Nb201Spec
from nas_tf.evaluator import ChildContext
from nas_tf.sharing import SharedScoring, SharingConfig

MODEL_FILE = "nb201_supernet.npz"


def uniform_cell(rng: random.Random) -> Nb201Spec:
    """A cell with every edge's operation drawn uniformly."""
    return Nb201Spec(tuple(rng.choice(OPS) for _ in range(6)))


class SharedNb201Evaluator(SharedScoring, _Truth):
    """Scores NAS-Bench-201 cells with one shared supernet instead of training each.

    Args:
        config: An :class:`Nb201Config` with ``reward="sharing"``.
        sharing: A :class:`nas_tf.sharing.SharingConfig` with mode ``enas``.
    """

    model_file = MODEL_FILE

    def __init__(self, config: Nb201Config, sharing: SharingConfig):
        _Truth.__init__(self, config)
        self._init_sharing(sharing)

    def __getstate__(self):
        return {"config": self.config, "sharing": self.sharing, "_folder": self._folder}

    def __setstate__(self, state):
        _Truth.__init__(self, state["config"])
        self.sharing, self._folder = state["sharing"], state["_folder"]
        self.__dict__.update(self._fresh_sharing_state())

    def _build_shared(self):
        from cnn_space.nb201.supernet import Nb201Supernet

        c = self.config
        return Nb201Supernet(self.data(), channels=c.channels, cells=c.cells,
                             batch_size=c.batch_size, eval_batch_size=c.eval_batch_size,
                             learning_rate=c.shared_learning_rate, seed=0)

    def shared_model(self):
        fresh = self._shared is None
        net = super().shared_model()
        if fresh and net.steps < self.config.shared_warmup_steps:
            rng = random.Random(net.steps)
            net.train(lambda: uniform_cell(rng), self.config.shared_warmup_steps - net.steps)
        return net

    def score(self, spec: Nb201Spec, context: ChildContext):
        net = self.shared_model()
        t0 = time.time()
        acc = net.score(spec, max_batches=self.sharing.score_windows)
        t1 = time.time()
        steps = self.sharing.train_steps(context.child_id)
        loss = net.train(lambda: spec, steps) if steps else None
        metrics = {"val_accuracy": acc, "shared_steps": net.steps,
                   "shared_skipped_steps": net.skipped, "score_seconds": t1 - t0,
                   "shared_train_seconds": time.time() - t1}
        self._record(spec, acc, loss, metrics)
        context.report(step=net.steps, steps=None)
        return (acc if math.isfinite(acc) else 0.0), metrics

    def rank(self, top_k: int | None = None) -> list[dict]:
        """The ``top_k`` best-scoring cells so far, scored again on the whole
        validation part; best first (rows: ``spec``, ``search_accuracy``,
        ``val_accuracy``, and ``table_test_accuracy`` when a table is given)."""
        net = self.shared_model()
        best = sorted(self._scores.items(), key=lambda kv: -kv[1])[:top_k or self.sharing.top_k]
        rows = []
        for key, search_acc in best:
            spec = Nb201Spec.from_json(json.loads(key))
            rows.append({"spec": spec.to_json(), "search_accuracy": search_acc,
                         "val_accuracy": net.score(spec), **self.truth(spec)})
        rows.sort(key=lambda r: -r["val_accuracy"])
        return rows

    def close(self) -> None:
        self._write_ranking()
        self._shared = None
