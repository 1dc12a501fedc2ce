"""A picture of a recurrent cell of the tree space, like Figure 5 of Zoph & Le
2017 (arXiv:1611.01578): the leaves that read x_t and h_{t-1}, each node's
combination and activation, where c_{t-1} enters and where c_t and h_t leave.

Needs matplotlib (the ``report`` extra); imported only when a picture is drawn.
"""

from __future__ import annotations

from cells.tree_space import CellSpec, node_children, tree_levels

_SYMBOL = {"add": "+", "elem_mult": "×"}
_NODE = {"boxstyle": "round,pad=0.35", "fc": "#e8f0fe", "ec": "#3b6fb6", "lw": 1.2}
_IO = {"boxstyle": "round,pad=0.35", "fc": "#fff4d6", "ec": "#b8860b", "lw": 1.2}
_MEM = {"boxstyle": "round,pad=0.35", "fc": "#fde2e2", "ec": "#b03030", "lw": 1.2}


def _arrow(ax, a, b, color="#555555", text=None, rad=0.0):
    ax.annotate("", xy=b, xytext=a, arrowprops={
        "arrowstyle": "-|>", "color": color, "lw": 1.2, "shrinkA": 14, "shrinkB": 14,
        "connectionstyle": f"arc3,rad={rad}"})
    if text:
        ax.text(b[0], b[1] + 0.3, text, fontsize=7, color=color, ha="center", va="bottom")


def draw_cell(spec: CellSpec, title: str | None = None):
    """The cell as a ``matplotlib.figure.Figure`` (a tree, leaves at the bottom)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    levels = tree_levels(spec.base)
    children = node_children(spec.base)
    width = len(levels[0])
    pos = {}
    for y, level in enumerate(levels):
        for j, node in enumerate(level):
            pos[node] = ((j + 0.5) * width / len(level), float(y))
    top = len(levels) - 1
    # Compact (about 9 x 6 inches for 8 leaves), so that the labels stay readable when
    # TensorBoard shows the picture as a thumbnail.
    fig = Figure(figsize=(max(5.0, 0.9 * width + 1.8), 1.15 * (top + 3)), dpi=100,
                 layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(-1.6, width + 1.6)
    ax.set_ylim(-1.7, top + 1.1)
    ax.axis("off")
    inputs = (width / 2, -1.2)
    ax.add_patch(FancyBboxPatch((-0.2, inputs[1] - 0.15), width + 0.4, 0.3,
                                boxstyle="round,pad=0.02", fc=_IO["fc"], ec=_IO["ec"]))
    ax.text(*inputs, r"inputs $x_t$, $h_{t-1}$  (leaf $k$ combines $W_k x_t$ with "
            r"$U_k h_{t-1} + b_k$)", ha="center", va="center", fontsize=9)
    for k, (x, y) in pos.items():
        if k < spec.base:
            _arrow(ax, (x, inputs[1] + 0.1), (x, y), color="#b8860b")
        label = f"n{k}\n{_SYMBOL.get(spec.combinations[k], spec.combinations[k])}  " \
                f"{spec.activations[k]}"
        ax.text(x, y, label, ha="center", va="center", fontsize=9, bbox=_NODE)
    for node, (left, right) in children.items():
        for c in (left, right):
            _arrow(ax, pos[c], pos[node])
    root = pos[spec.root]
    ax.text(root[0], top + 0.85, r"$h_t$", ha="center", va="center", fontsize=10, bbox=_IO)
    _arrow(ax, root, (root[0], top + 0.85), color="#b8860b")
    # Memory: c_{t-1} enters the inject node; c_t leaves the cell node (before its activation).
    inj = pos[spec.inject_node]
    left_in = inj[0] <= width / 2
    c_in = (-1.1 if left_in else width + 1.1, inj[1] + 0.45)
    ax.text(*c_in, r"$c_{t-1}$", ha="center", va="center", fontsize=9, bbox=_MEM)
    _arrow(ax, c_in, inj, color="#b03030", rad=-0.15 if left_in else 0.15,
           text=f"{_SYMBOL.get(spec.inject_combination)} then {spec.inject_activation}")
    cell = pos[spec.cell_node]
    left_out = cell[0] <= width / 2
    c_out = (-1.1 if left_out else width + 1.1, cell[1] + 0.45)
    if left_out == left_in and abs(c_out[1] - c_in[1]) < 0.4:
        c_out = (c_out[0], c_out[1] + 0.5)
    ax.text(*c_out, r"$c_t$", ha="center", va="center", fontsize=9, bbox=_MEM)
    _arrow(ax, cell, c_out, color="#b03030", rad=-0.15 if left_out else 0.15)
    ax.set_title(title or f"recurrent cell (base {spec.base}): $c_{{t-1}}$ enters n"
                 f"{spec.inject_node}, $c_t$ leaves n{spec.cell_node} (before its activation)",
                 fontsize=10)
    ax.text(-1.5, -1.65, "+ add   × elem_mult   (then the activation)", fontsize=7,
            color="#555555")
    return fig
