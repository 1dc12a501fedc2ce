"""Recurrent-cell search of Zoph & Le 2017 (arXiv:1611.01578, §3.4, §4.2).

* :class:`TreeSpace`, :class:`CellSpec`, :func:`nas_cell_spec` — the tree
  space of cells (no TensorFlow), in :mod:`cells.tree_space`.
* :class:`TreeCell` — any cell of the space as a Keras 3 recurrent cell.
* :class:`NASCell` — the cell the paper found on Penn Treebank.

Importing this package defines (and so registers for ``.keras``
serialisation) the two Keras layers; it has no other side effect.
"""

from cells.nas_cell import NASCell
from cells.nas_rnn import NASRNN
from cells.tree_cell import TreeCell
from cells.tree_space import CellSpec, TreeSpace, nas_cell_spec

__all__ = ["CellSpec", "NASCell", "NASRNN", "TreeCell", "TreeSpace", "nas_cell_spec"]
