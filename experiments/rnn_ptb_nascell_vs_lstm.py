r"""Benchmark: 2-layer NASCell LM vs 2-layer LSTM LM on Penn Treebank, equal parameters and budget.

The paper's claim (Zoph & Le 2017, arXiv:1611.01578, §4.2, Table 2) is that
its NASCell beats an LSTM of the same size on PTB. Here, at CPU scale: both
models are trained with the same optimizer, the same number of truncated-BPTT
steps and the same seed; the LSTM's hidden size is raised until its parameter
count matches the NASCell model's. Validation and test perplexity are printed
as a table and written to ``experiments/results/rnn_ptb_nascell_vs_lstm.md``.

    python experiments/rnn_ptb_nascell_vs_lstm.py --data_dir ../shared/data/ptb \
        --units 200 --steps 300
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def lstm_units_matching(nas_units: int, vocab: int) -> int:
    """LSTM hidden size whose 2-layer LM has about as many parameters as the NASCell LM.

    NASCell (no bias, input size = units): 16 u^2 per layer; LSTM: 8 h^2 + 4 h.
    Embedding and softmax: 2 V u + V in both.
    """
    target = 2 * 16 * nas_units**2 + 2 * vocab * nas_units
    best = min(range(1, 4 * nas_units), key=lambda h: abs(2 * (8 * h * h + 4 * h)
                                                        + 2 * vocab * h - target))
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "ptb"))
    p.add_argument("--units", type=int, default=200)
    p.add_argument("--steps", type=int, default=300, help="training windows per model")
    p.add_argument("--batch_size", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--learning_rate", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results"
                                        / "rnn_ptb_nascell_vs_lstm.md"))
    args = p.parse_args()

    import keras

    from cells.lm import LMConfig, evaluate_perplexity, train_lm
    from cells.nas_cell import NASCell
    from cells.ptb import load_ptb

    corpus = load_ptb(args.data_dir, download=False)
    print(f"PTB tokens: {corpus.counts()}, vocab {corpus.vocab_size}", flush=True)
    h_lstm = lstm_units_matching(args.units, corpus.vocab_size)
    models = [
        ("NASCell", args.units, lambda: NASCell(args.units)),
        ("LSTM", h_lstm, lambda: keras.layers.LSTMCell(h_lstm)),
    ]
    rows = []
    for name, units, factory in models:
        cfg = LMConfig(units=units, num_layers=2, bptt=args.bptt, batch_size=args.batch_size,
                       eval_batch_size=10, epochs=1, steps_per_epoch=args.steps,
                       optimizer="adam", learning_rate=args.learning_rate, max_grad_norm=5.0,
                       dropout=0.0)
        t = time.time()
        res = train_lm(factory, corpus.train, corpus.valid, corpus.vocab_size, cfg,
                       seed=args.seed)
        t_train = time.time() - t
        t = time.time()
        test_ppl = evaluate_perplexity(res.model, corpus.test, bptt=args.bptt, batch_size=10)
        t_test = time.time() - t
        tok_s = res.steps * args.batch_size * args.bptt / max(res.history[0]["seconds"], 1e-9)
        row = dict(model=name, units=units, params=res.params, steps=res.steps,
                   train_ppl=res.train_perplexity, val_ppl=res.val_perplexity,
                   test_ppl=test_ppl, seconds=t_train + t_test, tok_s=tok_s)
        rows.append(row)
        print(f"{name}: {row}", flush=True)

    header = ("| model | hidden | params | train steps | train ppl (avg over steps) | "
              "valid ppl | test ppl | wall s | tokens/s (train steps, epoch incl. valid pass) |")
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['units']} | {r['params']:,} | {r['steps']} | "
            f"{r['train_ppl']:.1f} | {r['val_ppl']:.2f} | {r['test_ppl']:.2f} | "
            f"{r['seconds']:.0f} | {r['tok_s']:.0f} |"
        )
    winner = min(rows, key=lambda r: r["val_ppl"])
    other = max(rows, key=lambda r: r["val_ppl"])
    verdict = (f"Lower validation perplexity: **{winner['model']}** "
               f"({winner['val_ppl']:.2f} vs {other['val_ppl']:.2f}; test "
               f"{winner['test_ppl']:.2f} vs {other['test_ppl']:.2f}).")
    tokens = args.steps * args.batch_size * args.bptt
    setup = (
        f"Setup: PTB (Mikolov split, {corpus.counts()['train']:,} train tokens), 2 recurrent "
        f"layers, embedding size = hidden size, untied softmax, no dropout, Adam lr "
        f"{args.learning_rate}, global-norm clip 5, batch {args.batch_size}, BPTT "
        f"{args.bptt}, state carried across windows, {args.steps} steps = {tokens:,} tokens "
        f"(~{tokens / corpus.counts()['train']:.2f} epoch), seed {args.seed}. Valid/test "
        f"perplexity over the whole split (batch 10, windows of {args.bptt}). Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, shared with other jobs "
        f"(timings are only indicative)."
    )
    table = "\n".join(lines)
    print()
    print(table)
    print()
    print(verdict)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# NASCell vs LSTM on Penn Treebank (equal parameters, equal steps)\n\n"
        f"Command: `python experiments/rnn_ptb_nascell_vs_lstm.py --units {args.units} "
        f"--steps {args.steps}`\n\n{setup}\n\n{table}\n\n{verdict}\n\n"
        "Caveat: this budget is a small fraction of the paper's (§4.2: children trained "
        "for tens of epochs, the final NASCell model far longer, with dropout); the "
        "ranking after a fraction of an epoch says how fast each cell learns, not how good "
        "it is when converged.\n"
    )
    print(f"wrote {out}")
    return 0 if all(math.isfinite(r["val_ppl"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
