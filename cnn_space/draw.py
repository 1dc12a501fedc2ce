"""A picture of a CNN of the space: its layers (filter size, filters, stride),
the skip connections the controller's anchors chose (Zoph & Le 2017,
arXiv:1611.01578, §3.3) and the classifier's inputs.

Needs matplotlib (the ``report`` extra); imported only when a picture is drawn.
"""

from __future__ import annotations

from cnn_space.space import POOL_SIZE, CnnSpec

_LAYER = {"boxstyle": "round,pad=0.3", "fc": "#e8f0fe", "ec": "#3b6fb6", "lw": 1.2}
_IO = {"boxstyle": "round,pad=0.3", "fc": "#fff4d6", "ec": "#b8860b", "lw": 1.2}
_POOL = {"boxstyle": "round,pad=0.3", "fc": "#eeeeee", "ec": "#777777", "lw": 1.0}


def draw_cnn(spec: CnnSpec, title: str | None = None):
    """The network as a ``matplotlib.figure.Figure``: image at the bottom,
    one box per layer, skip connections as arcs on the right."""
    from matplotlib.figure import Figure

    n = len(spec.layers)
    pools = set(spec.pool_positions)
    ys, y = {}, 0.0
    rows = []  # (y, text, style)
    rows.append((y, "image", _IO))
    image_y = y
    for i, layer in enumerate(spec.layers):
        if i in pools:
            y += 1
            rows.append((y, f"max pool {POOL_SIZE}x{POOL_SIZE}, stride {POOL_SIZE}", _POOL))
        y += 1
        ys[i] = y
        stride = f", stride {layer.stride}" if layer.stride != 1 else ""
        rows.append((y, f"{i}: conv {layer.filter_height}x{layer.filter_width}, "
                        f"{layer.filters} filters{stride}", _LAYER))
    y += 1.3
    classifier_y = y
    rows.append((y, "global avg pool → dense softmax", _IO))
    fig = Figure(figsize=(6.5, max(4.0, 0.42 * (y + 2))), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(-2.6, 2.9)
    ax.set_ylim(-0.8, y + 0.8)
    ax.axis("off")
    for yy, text, style in rows:
        ax.text(0, yy, text, ha="center", va="center", fontsize=8, bbox=style)
    arrow = {"arrowstyle": "-|>", "color": "#555555", "lw": 1.0, "shrinkA": 9, "shrinkB": 9}
    for i, layer in enumerate(spec.layers):
        srcs = list(layer.inputs) or [None]
        for j in srcs:
            src_y = image_y if j is None else ys[j]
            if j is None and i > 0 and not layer.inputs:
                style = dict(arrow, connectionstyle="arc3,rad=0.5", color="#b8860b")
                ax.annotate("", xy=(-1.0, ys[i]), xytext=(-0.3, src_y), arrowprops=style)
            elif j is not None and j == i - 1:
                ax.annotate("", xy=(0, ys[i]), xytext=(0, src_y), arrowprops=arrow)
            elif j is None:
                ax.annotate("", xy=(0, ys[i]), xytext=(0, src_y), arrowprops=arrow)
            else:  # a skip connection: an arc on the right
                rad = -0.35 - 0.03 * min(10, i - j)
                style = dict(arrow, connectionstyle=f"arc3,rad={rad}", color="#b03030")
                ax.annotate("", xy=(1.0, ys[i]), xytext=(1.0, src_y), arrowprops=style)
    for j in spec.unused_outputs():
        if j == n - 1:
            ax.annotate("", xy=(0, classifier_y), xytext=(0, ys[j]), arrowprops=arrow)
            continue
        style = dict(arrow, connectionstyle="arc3,rad=-0.2", color="#2e7d32")
        ax.annotate("", xy=(1.6, classifier_y), xytext=(1.4, ys[j]), arrowprops=style)
    ax.text(-2.55, -0.6, "black: previous layer   red: skip connection   green: to the "
            "classifier   gold: from the image", fontsize=6.5, color="#444444")
    ax.set_title(title or f"CNN, {n} layers ({len(spec.unused_outputs())} feed the classifier)",
                 fontsize=10)
    return fig
