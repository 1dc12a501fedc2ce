"""Parameter parity of the paper's RNN children with the "medium" LSTM (issue 28, item 6).

Zoph & Le 2017 §4.2 size the search's two-layer children so that their parameters
approximately match the "medium" baselines (Zaremba et al. 2014: 2 x LSTM-650 on PTB's
10,000 words, untied). This script counts, with the project's own layers, the
parameters of the language model with a base-8 cell (the NAS cell; every base-8 tree
cell has the same weights) at a range of units, against 2 x LSTM-650, and prints the
units of parity for the whole model and for the recurrent weights alone.

Usage: python experiments/rnn_paper_units.py [--vocab=10000]
"""

from __future__ import annotations

import argparse


def count(cell_factory, units: int, vocab: int, num_layers: int = 2) -> tuple[int, int]:
    """(all parameters, recurrent-cell parameters) of a built language model."""
    import tensorflow as tf

    from cells.lm import LanguageModel, LMConfig

    cfg = LMConfig(units=units, num_layers=num_layers)
    model = LanguageModel(cell_factory, vocab, cfg)
    model(tf.zeros((1, 1), tf.int32), model.zero_states(1))
    total = sum(int(tf.size(w)) for w in model.weights)
    cells = sum(int(tf.size(w)) for rnn in model.rnns for w in rnn.weights)
    return total, cells


def nas_total(u: int, vocab: int) -> int:
    """All parameters of the 2-layer LM with a base-8 cell at ``u`` units: embedding,
    softmax kernel and bias, and per layer kernel + recurrent kernel (2u x 8u)."""
    return 2 * vocab * u + vocab + 2 * (2 * u * 8 * u)


def parity(vocab: int = 10_000, lstm_units: int = 650) -> dict:
    import keras

    from cells import NASCell

    lstm_total, lstm_cells = count(lambda: keras.layers.LSTMCell(lstm_units), lstm_units, vocab)
    rows = {u: count(lambda u=u: NASCell(u), u, vocab) for u in (460, 533, 650)}
    for u, (total, _) in rows.items():  # the closed form agrees with the built models
        assert total == nas_total(u, vocab), (u, total, nas_total(u, vocab))
    units = range(100, 2001)
    best_total = min(units, key=lambda u: abs(nas_total(u, vocab) - lstm_total))
    best_cells = min(units, key=lambda u: abs(2 * 16 * u * u - lstm_cells))
    return {"lstm": (lstm_total, lstm_cells), **{f"nas_{u}": r for u, r in rows.items()},
            "parity_total": best_total, "parity_total_count": nas_total(best_total, vocab),
            "parity_cells": best_cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=10_000)
    args = parser.parse_args()
    r = parity(args.vocab)
    print(f"2 x LSTM-650: {r['lstm'][0]:,} parameters, {r['lstm'][1]:,} in the cells")
    for u in (650, 533, 460):
        t, c = r[f"nas_{u}"]
        print(f"2 x NAS cell (base 8) at {u}: {t:,} parameters, {c:,} in the cells")
    print(f"parity of all parameters: {r['parity_total']} units "
          f"({r['parity_total_count']:,}); of the cells' alone: {r['parity_cells']} units")


if __name__ == "__main__":
    main()
