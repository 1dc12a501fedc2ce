r"""NASCell in a sequence-to-sequence model (the paper's GNMT transfer, §4.2, at toy scale).

Zoph & Le dropped the NAS cell into Google's translation model (GNMT). Here
the same move at the scale of a laptop: a Keras encoder-decoder (embedding ->
recurrent encoder -> its final states start a recurrent decoder fed the
previous target symbol (teacher forcing) -> softmax) learns a generated
translation-like task, **English number words -> digits** (``"three thousand
forty two" -> "3042"``), for numbers 0..9999. The same model is built with
``keras.layers.LSTM`` and with :class:`cells.NASRNN`, their units chosen so
that the parameter counts match within 2 %, trained with the same optimizer,
batch, number of steps and seed; the metric is **sequence accuracy** (every
digit and the end symbol right, greedy decoding) on held-out numbers.

    python experiments/seq2seq_nascell.py --steps=1500

A table is printed and appended to experiments/results/seq2seq_nascell.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SRC_VOCAB = ("<pad>",) + tuple(_ONES) + tuple(_TENS[2:]) + ("hundred", "thousand")
#: Target symbols: 0-9, end, start (the decoder's first input).
TGT_END, TGT_START, TGT_VOCAB = 10, 11, 12
SRC_LEN, TGT_LEN = 8, 5  # longest source: "seven thousand seven hundred seventy seven"


def spell(n: int) -> list[str]:
    """English words of ``0 <= n <= 9999`` (no "and")."""
    if n < 20:
        return [_ONES[n]]
    words = []
    if n >= 1000:
        words += [_ONES[n // 1000], "thousand"]
        n %= 1000
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n:
        words.append(_ONES[n])
    return words


def encode(numbers) -> tuple[np.ndarray, np.ndarray]:
    """Source word ids (padded with 0) and target digit ids ending with ``TGT_END``."""
    index = {w: i for i, w in enumerate(SRC_VOCAB)}
    src = np.zeros((len(numbers), SRC_LEN), np.int32)
    tgt = np.full((len(numbers), TGT_LEN), TGT_END, np.int32)
    for i, n in enumerate(numbers):
        words = [index[w] for w in spell(int(n))]
        src[i, : len(words)] = words
        digits = [int(d) for d in str(int(n))]
        tgt[i, : len(digits)] = digits
    return src, tgt


def build(cell: str, units: int, emb: int = 32):
    """The teacher-forced training model ``[src, dec_in] -> logits``."""
    import keras

    from cells import NASRNN

    def rnn(**kw):
        if cell == "lstm":
            return keras.layers.LSTM(units, **kw)
        return NASRNN(units, **kw)

    src = keras.Input((SRC_LEN,), dtype="int32", name="src")
    dec_in = keras.Input((TGT_LEN,), dtype="int32", name="dec_in")
    x = keras.layers.Embedding(len(SRC_VOCAB), emb, mask_zero=True)(src)
    _, *states = rnn(return_state=True, name="encoder")(x)
    y = keras.layers.Embedding(TGT_VOCAB, emb)(dec_in)
    y = rnn(return_sequences=True, name="decoder")(y, initial_state=states)
    logits = keras.layers.Dense(TGT_VOCAB)(y)
    return keras.Model([src, dec_in], logits)


def count_params(cell: str, units: int) -> int:
    return int(build(cell, units).count_params())


def equal_param_units(cell: str, target: int) -> int:
    """Units of ``cell`` whose model's parameter count is closest to ``target``."""
    return min(range(4, 257), key=lambda u: abs(_formula(cell, u) - target))


def _formula(cell: str, u: int, emb: int = 32) -> int:
    rec = 4 * (emb * u + u * u + u) if cell == "lstm" else 8 * (emb * u + u * u)
    return len(SRC_VOCAB) * emb + TGT_VOCAB * emb + 2 * rec + u * TGT_VOCAB + TGT_VOCAB


def greedy(model, src: np.ndarray) -> np.ndarray:
    """Greedy decoding (the model is re-run on the growing prefix: targets are 5 symbols)."""
    dec = np.full((len(src), TGT_LEN), TGT_START, np.int32)
    out = np.zeros((len(src), TGT_LEN), np.int32)
    for t in range(TGT_LEN):
        logits = np.asarray(model([src, dec], training=False))
        out[:, t] = logits[:, t].argmax(-1)
        if t + 1 < TGT_LEN:
            dec[:, t + 1] = out[:, t]
    return out


def run(cell: str, units: int, *, steps: int, batch: int = 64, lr: float = 5e-3,
        seed: int = 0, n_test: int = 1000) -> dict:
    """Trains one model; returns params, seconds and held-out sequence accuracy."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    numbers = rng.permutation(10000)
    test, train = numbers[:n_test], numbers[n_test:]
    model = build(cell, units)
    opt = keras.optimizers.Adam(lr, clipnorm=5.0)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(src, dec_in, tgt):
        with tf.GradientTape() as tape:
            loss = loss_fn(tgt, model([src, dec_in], training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    t0 = time.time()
    loss = float("nan")
    for _ in range(steps):
        src, tgt = encode(rng.choice(train, batch))
        dec_in = np.concatenate([np.full((batch, 1), TGT_START, np.int32), tgt[:, :-1]], 1)
        loss = float(step(src, dec_in, tgt))
    seconds = time.time() - t0
    src, tgt = encode(test)
    pred = greedy(model, src)
    return {"cell": cell, "units": units, "params": int(model.count_params()),
            "steps": steps, "loss": loss, "seconds": seconds,
            "seq_accuracy": float((pred == tgt).all(axis=1).mean()),
            "symbol_accuracy": float((pred == tgt).mean())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lstm_units", type=int, default=64)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "seq2seq_nascell.md"))
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ref = count_params("lstm", args.lstm_units)
    nas_units = equal_param_units("nascell", ref)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load {load}",
             f"\n`python experiments/seq2seq_nascell.py {' '.join(sys.argv[1:])}`\n",
             "| cell | units | params | seed | steps | final loss | train s | symbol acc | "
             "sequence acc |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for cell, units in (("lstm", args.lstm_units), ("nascell", nas_units)):
            r = run(cell, units, steps=args.steps, batch=args.batch, lr=args.lr, seed=seed)
            line = (f"| {'LSTM' if cell == 'lstm' else 'NASRNN'} | {units} | {r['params']:,} | "
                    f"{seed} | {r['steps']} | {r['loss']:.4f} | {r['seconds']:.0f} | "
                    f"{r['symbol_accuracy']:.3f} | {r['seq_accuracy']:.3f} |")
            lines.append(line)
            print(line, flush=True)
    out = Path(args.out)
    if not out.exists():
        lines.insert(0, "# NASCell vs LSTM in a seq2seq model (number words -> digits)\n\n"
                        "Written by experiments/seq2seq_nascell.py; held-out 1,000 numbers; "
                        "greedy decoding; shared 2-core CPU (timings noisy).")
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
