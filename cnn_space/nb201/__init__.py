"""NAS-Bench-201 (Dong & Yang 2020, arXiv:2001.00326): a convolutional cell space
with a table of the true accuracy of every cell.

* :mod:`cnn_space.nb201.space` — the spec and the space's six decisions;
* :mod:`cnn_space.nb201.table` — the table and its look-up evaluator;
* :mod:`cnn_space.nb201.model` — the cell as a Keras model (the benchmark's skeleton);
* :mod:`cnn_space.nb201.proxies` — training-free scores (NASWOT, synflow);
* :mod:`cnn_space.nb201.estimators` — rewards on real images (train, naswot, sharing),
  with the table used only as truth;
* :mod:`cnn_space.nb201.plugin` — ``--space=nb201``.

Importing this package loads no TensorFlow (the table search stays fast).
"""

from cnn_space.nb201.space import EDGES, NUM_NODES, OPS, Nb201Space, Nb201Spec
from cnn_space.nb201.table import Nb201TableEvaluator, check_table_covers, load_table

__all__ = ["EDGES", "NUM_NODES", "OPS", "Nb201Space", "Nb201Spec", "Nb201TableEvaluator",
           "check_table_covers", "load_table"]
