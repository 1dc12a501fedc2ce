"""Plots the per-epoch validation curves written by ``experiments/ptb_replication.py``.

Reads the per-epoch rows of ``experiments/results/ptb_replication.md`` (the
last row of each run and epoch wins, as a resumed run appends) and draws
validation perplexity (word runs) or bits per character (character runs)
against the epoch, one line per run, into a PNG.

Usage:

    python experiments/plot_ptb_curves.py [--results=...md] [--out=...png]

Needs matplotlib (``pip install 'nas_tf[report]'``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_curves(text: str) -> dict[str, dict[int, float]]:
    """{run: {epoch: valid value}} from the rows ``| run | epoch | lr | train | valid | ...``."""
    curves: dict[str, dict[int, float]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or not cells[1].isdigit() or not cells[0].startswith("ptb"):
            continue
        try:
            curves.setdefault(cells[0], {})[int(cells[1])] = float(cells[4].replace(",", ""))
        except ValueError:
            continue
    return curves


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(ROOT / "experiments/results/ptb_replication.md"))
    p.add_argument("--out", default=str(ROOT / "experiments/results/ptb_replication_curves.png"))
    args = p.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: plotting needs matplotlib: pip install 'nas_tf[report]'", file=sys.stderr)
        return 2
    path = Path(args.results)
    if not path.is_file():
        print(f"error: no results file {path}; run experiments/ptb_replication.py first",
              file=sys.stderr)
        return 2
    curves = read_curves(path.read_text())
    word = {k: v for k, v in curves.items() if not k.startswith("ptb_char")}
    char = {k: v for k, v in curves.items() if k.startswith("ptb_char")}
    panels = [(word, "valid perplexity (log scale)", True), (char, "valid bits per character",
                                                                 False)]
    panels = [pn for pn in panels if pn[0]]
    if not panels:
        print(f"error: {path} has no per-epoch rows", file=sys.stderr)
        return 2
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (runs, label, log) in zip(axes[0], panels):
        for name, points in sorted(runs.items()):
            epochs = sorted(points)
            ax.plot(epochs, [points[e] for e in epochs], marker="o", ms=3, label=name)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("PTB, equal parameters (experiments/ptb_replication.py)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({', '.join(sorted(curves))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
