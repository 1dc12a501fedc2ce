r"""TPE's cost per proposal as its history grows (nas_tf/tpe.py).

For each space and history size N, a TPE search is given N completed trials
(random architectures, random rewards) through ``recover`` and then makes
``--repeats`` proposals, each followed by its feedback. Prints the median
wall and CPU milliseconds of one propose + feedback. No child is trained.

  python experiments/tpe_cost.py --sizes=100,250,500,1000 --repeats=10
"""

from __future__ import annotations

import statistics
import sys
import time

from absl import app, flags

SIZES = flags.DEFINE_list("sizes", ["100", "250", "500", "1000"], "History sizes N.")
REPEATS = flags.DEFINE_integer("repeats", 10, "Proposals timed per size.")
SPACES = flags.DEFINE_list("spaces", ["nb201", "rnn", "cnn"], "Spaces (cnn: v1, 15 layers).")


def _space(name):
    if name == "nb201":
        from cnn_space.nb201 import Nb201Space

        return Nb201Space()
    if name == "rnn":
        from cells.tree_space import TreeSpace

        return TreeSpace(8)
    from cnn_space.space import CnnSpace

    return CnnSpace("v1")


def main(argv):
    del argv
    import numpy as np

    from nas_tf.algorithms import random_tokens
    from nas_tf.config import SearchConfig
    from nas_tf.tpe import TpeSearch, parameters

    print(f"{'space':<6} {'params':>6} {'N':>6} {'wall ms':>9} {'cpu ms':>8}")
    for name in SPACES.value:
        space = _space(name)
        decisions = space.decisions()
        n_params = sum(1 for _, k in parameters(decisions) if k > 1)
        for n in (int(s) for s in SIZES.value):
            rng = np.random.default_rng(n)
            algo = TpeSearch(space, SearchConfig(algorithm="tpe", seed=0))
            algo.recover([(random_tokens(decisions, rng), float(rng.random()))
                          for _ in range(n)])
            wall, cpu = [], []
            for _ in range(REPEATS.value):
                w, c = time.perf_counter(), time.process_time()
                tokens = algo.propose(1)
                algo.feedback(tokens, [float(rng.random())])
                wall.append(1000 * (time.perf_counter() - w))
                cpu.append(1000 * (time.process_time() - c))
            print(f"{name:<6} {n_params:>6} {n:>6} {statistics.median(wall):>9.1f} "
                  f"{statistics.median(cpu):>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
