r"""Replication: LSTM vs NASCell language models on Penn Treebank, trained to convergence.

The anchor is TensorFlow's own PTB tutorial (``tensorflow/models``,
``ptb_word_lm.py``, Zaremba et al. 2014 configurations). Its **small**
configuration — 2 layers x 200 units, 20 BPTT steps, batch 20, every weight
uniform in [-0.1, 0.1] (LSTM biases zero, forget bias 0), SGD with lr 1.0 on
the cross entropy *summed over the 20 time steps* and averaged over the
batch, lr x0.5 per epoch after epoch 4, 13 epochs, gradient-norm clip 5, no
dropout — reports valid 121.39 / test 115.91. Validation is on batch 20 x 20
steps, test on batch 1 (one continuous pass), both as the tutorial does.

Models, all through this project's LM code (:func:`cells.lm.train_lm`):

* ``lstm``: the anchor (``keras.layers.LSTMCell``).
* ``nascell``: :class:`cells.NASCell`, its units chosen so that the whole
  model's parameter count (embedding + cells + softmax) matches the LSTM
  model's within 2 % (``--units`` overrides).
* ``tree``: any :class:`cells.TreeCell` given as ``--spec`` (a CellSpec JSON,
  e.g. the best cell of a ``--space=rnn`` search), at equal parameters too.

``--dataset=ptb_char`` runs the character-level version (the paper's Table 3,
NASCell 1.214 bits per character at a far larger scale), reported in bits per
character (``mean nats / ln 2`` per character, :func:`cells.lm.bits_per_token`).
Its default recipe is ours, sized to train in tens of minutes on 2 CPU cores
(~5.0 M training characters per epoch): 2 layers x 128 units (LSTM; NASCell
at equal parameters), 50 BPTT steps, batch 64, uniform init +-0.1, Adam lr
2e-3 on the per-character mean loss, x0.5 after epoch 1, gradient-norm clip
5, no dropout, 2 epochs; valid on batch 64 x 50, test on batch 1 (one
continuous pass). Every flag overrides its recipe value::

    nohup nice -n 5 python experiments/ptb_replication.py --dataset=ptb_char --model=lstm \
        > /tmp/ptb_char_lstm.log 2>&1 &
    nohup nice -n 5 python experiments/ptb_replication.py --dataset=ptb_char --model=nascell \
        > /tmp/ptb_char_nas.log 2>&1 &

Every epoch appends a row to the results file (``--out``) and saves the
weights under ``--state_dir``; running the same command again resumes after
the last finished epoch. The test split is evaluated once, after the last
epoch. Run it in the background: an epoch of the small LSTM takes ~1.5 min
on an idle 2-core CPU::

    nohup nice -n 5 python experiments/ptb_replication.py --model=lstm > /tmp/ptb_lstm.log 2>&1 &
    nohup nice -n 5 python experiments/ptb_replication.py --model=nascell > /tmp/ptb_nas.log 2>&1 &
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: TensorFlow PTB tutorial, small config (valid, test) after 13 epochs.
ANCHOR_SMALL = (121.39, 115.91)
#: Zoph & Le 2017, Table 3: NASCell on character-level PTB, test bits per character.
ANCHOR_CHAR_BPC = 1.214
MODELS = ("lstm", "nascell", "tree")
#: Default recipes (every flag overrides its value): the tutorial's small
#: configuration for words, ours for characters (see the module docstring).
RECIPES = {
    "ptb": dict(ref_units=200, layers=2, epochs=13, bptt=20, batch_size=20, optimizer="sgd",
                learning_rate=1.0, decay_after=4, lr_decay=0.5, clip=5.0, init_scale=0.1,
                sum_over_time=1),
    "ptb_char": dict(ref_units=128, layers=2, epochs=2, bptt=50, batch_size=64,
                     optimizer="adam", learning_rate=2e-3, decay_after=1, lr_decay=0.5,
                     clip=5.0, init_scale=0.1, sum_over_time=0),
}


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=MODELS, default="lstm")
    p.add_argument("--spec", help="CellSpec JSON file (for --model=tree)")
    p.add_argument("--dataset", choices=("ptb", "ptb_char"), default="ptb")
    shared = os.environ.get("NAS_TF_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    p.add_argument("--data_dir", default=str(Path(shared) / "ptb"),
                   help="folder of ptb.{train,valid,test}.txt (default $NAS_TF_SHARED_DATA/ptb)")
    p.add_argument("--ref_units", type=int, help="LSTM units (the anchor)")
    p.add_argument("--units", type=int, default=None,
                   help="units of the model (default: ref_units for lstm, equal params else)")
    p.add_argument("--layers", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--bptt", type=int)
    p.add_argument("--batch_size", type=int)
    p.add_argument("--optimizer", choices=("sgd", "adam"))
    p.add_argument("--learning_rate", type=float)
    p.add_argument("--decay_after", type=int)
    p.add_argument("--lr_decay", type=float)
    p.add_argument("--clip", type=float)
    p.add_argument("--init_scale", type=float)
    p.add_argument("--sum_over_time", type=int, choices=(0, 1),
                   help="1: loss summed over the window's time steps (tutorial); 0: mean")
    p.add_argument("--steps_per_epoch", type=int, default=None, help="smoke tests only")
    p.add_argument("--max_valid_windows", type=int, default=None, help="smoke tests only")
    p.add_argument("--max_test_windows", type=int, default=None, help="smoke tests only")
    p.add_argument("--unroll", action="store_true", help="unroll the recurrence over bptt")
    p.add_argument("--skip_test", action="store_true",
                   help="no test pass (for short retrains that compare validation only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the run name")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "ptb_replication.md"))
    p.add_argument("--state_dir", default=str(Path(tempfile.gettempdir())
                                              / "nas_tf_ptb_replication"))
    args = p.parse_args(argv)
    for key, value in RECIPES[args.dataset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _cell_factory(model: str, units: int, init_scale: float, spec=None):
    import keras

    from cells import NASCell, TreeCell

    def init():
        return keras.initializers.RandomUniform(-init_scale, init_scale)

    if model == "lstm":
        return lambda: keras.layers.LSTMCell(units, kernel_initializer=init(),
                                             recurrent_initializer=init(),
                                             unit_forget_bias=False)
    if model == "nascell":
        return lambda: NASCell(units, kernel_initializer=init(), recurrent_initializer=init())
    return lambda: TreeCell(spec, units, kernel_initializer=init(),
                            recurrent_initializer=init())


def model_params(model: str, units: int, vocab: int, layers: int, spec=None) -> int:
    """Trainable parameters of the LM (embedding size = units, untied softmax with bias)."""
    cell = _cell_factory(model, units, 0.1, spec)()
    cell.build((None, units))
    per_layer = sum(int(math.prod(w.shape)) for w in cell.trainable_weights)
    return 2 * vocab * units + vocab + layers * per_layer


def equal_param_units(model: str, target: int, vocab: int, layers: int, spec=None) -> int:
    """Units of ``model`` whose LM has the parameter count closest to ``target``."""
    lo, hi = 1, 4096
    while lo < hi:  # smallest units with params >= target (params grow with units)
        mid = (lo + hi) // 2
        if model_params(model, mid, vocab, layers, spec) >= target:
            hi = mid
        else:
            lo = mid + 1
    return min((lo - 1, lo), key=lambda u: abs(model_params(model, u, vocab, layers, spec)
                                                - target) if u > 0 else math.inf)


def _append(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(text)


def _load(run_dir: Path):
    import numpy as np

    meta = run_dir / "state.json"
    if not meta.is_file():
        return 0, None, []
    state = json.loads(meta.read_text())
    with np.load(run_dir / "weights.npz") as z:
        weights = [z[f"w{i}"] for i in range(len(z.files))]
    return state["epochs_done"], weights, state["history"]


def _save(run_dir: Path, epochs_done: int, weights, history) -> None:
    import numpy as np

    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / "weights.tmp.npz", **{f"w{i}": w for i, w in enumerate(weights)})
    os.replace(run_dir / "weights.tmp.npz", run_dir / "weights.npz")
    tmp = run_dir / "state.tmp.json"
    tmp.write_text(json.dumps({"epochs_done": epochs_done, "history": history}))
    os.replace(tmp, run_dir / "state.json")


def _header(char: bool) -> str:
    if char:  # bits per character: log2 of the per-character perplexity
        return ("| run | epoch | lr | train bpc | valid bpc | epoch s | chars/s |\n"
                "|---|---:|---:|---:|---:|---:|---:|\n")
    return ("| run | epoch | lr | train ppl | valid ppl | valid bits/token | epoch s | tokens/s |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|\n")


def _row(name: str, row: dict, char: bool) -> str:
    train, valid = row["train_perplexity"], row["val_perplexity"]
    speed = f"{row['seconds']:.0f} | {row['tokens_per_s']:,.0f} |\n"
    if char:
        return (f"| {name} | {row['epoch']} | {row['learning_rate']:.4g} | "
                f"{math.log2(train):.4f} | {math.log2(valid):.4f} | " + speed)
    return (f"| {name} | {row['epoch']} | {row['learning_rate']:.4g} | {train:.2f} | "
            f"{valid:.2f} | {math.log2(valid):.4f} | " + speed)


def _summary(name: str, test_loss: float, history: list, test_s: float, char: bool) -> str:
    from cells.lm import bits_per_token, perplexity

    last = history[-1] if history else {"val_perplexity": math.nan}
    train_min = sum(r["seconds"] for r in history) / 60
    done = f"after {len(history)} epochs, {train_min:.1f} min of training in all; " \
           f"test pass {test_s:.0f} s"
    if char:
        return (f"\n**{name}: test {bits_per_token(test_loss):.4f} bits per character** "
                f"(valid {math.log2(last['val_perplexity']):.4f} bpc {done}); paper Table 3 "
                f"(NASCell, a much larger model trained far longer): {ANCHOR_CHAR_BPC}\n")
    return (f"\n**{name}: test ppl {perplexity(test_loss):.2f}, test bits/token "
            f"{bits_per_token(test_loss):.4f}** (valid ppl {last['val_perplexity']:.2f} {done}); "
            f"anchor (TF tutorial small): valid {ANCHOR_SMALL[0]} / test {ANCHOR_SMALL[1]}\n")


def main(argv=None):
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cells.ptb import load_ptb
    from cells.tree_space import CellSpec
    from nas_tf.errors import DataError

    spec = None
    if args.model == "tree":
        if not args.spec:
            print("error: --model=tree needs --spec=<CellSpec JSON file>", file=sys.stderr)
            return 2
        spec = CellSpec.from_json(Path(args.spec).read_text())
    char = args.dataset == "ptb_char"
    try:
        corpus = load_ptb(args.data_dir, char_level=char, download=False)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from cells.lm import LMConfig, evaluate_loss, train_lm

    vocab = corpus.vocab_size
    ref = model_params("lstm", args.ref_units, vocab, args.layers)
    units = args.units or (args.ref_units if args.model == "lstm"
                           else equal_param_units(args.model, ref, vocab, args.layers, spec))
    params = model_params(args.model, units, vocab, args.layers, spec)
    name = f"{args.dataset}-{args.model}-{units}{'-' + args.tag if args.tag else ''}"
    run_dir = Path(args.state_dir) / name
    done, weights, history = _load(run_dir)
    cfg = LMConfig(units=units, num_layers=args.layers, bptt=args.bptt,
                   batch_size=args.batch_size, eval_batch_size=args.batch_size,
                   epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                   learning_rate=args.learning_rate, lr_decay=args.lr_decay,
                   decay_after=args.decay_after, max_grad_norm=args.clip,
                   init_scale=args.init_scale, dropout=0.0,
                   sum_over_time=bool(args.sum_over_time), optimizer=args.optimizer,
                   unroll=args.unroll)
    out = Path(args.out)
    load = os.getloadavg()
    print(f"{name}: {params:,} params (LSTM-{args.ref_units} reference {ref:,}, "
          f"{100 * (params - ref) / ref:+.2f} %), resuming after epoch {done}", flush=True)
    _append(out, f"\n### {name} ({'resumed after epoch ' + str(done) if done else 'start'}, "
                 f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
                 f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})\n\n"
                 f"`python experiments/ptb_replication.py {' '.join(sys.argv[1:])}` — "
                 f"{params:,} parameters ({100 * (params - ref) / ref:+.2f} % vs LSTM-"
                 f"{args.ref_units}), units {units}\n\n" + _header(char))
    rows = len(corpus.train) // args.batch_size
    per_epoch = (rows - 1) // args.bptt
    if args.steps_per_epoch:
        per_epoch = min(per_epoch, args.steps_per_epoch)
    tokens = per_epoch * args.batch_size * args.bptt

    def on_epoch_end(row, model):
        row = dict(row, tokens_per_s=tokens / row["seconds"])
        history.append(row)
        _save(run_dir, row["epoch"], model.get_weights(), history)
        _append(out, _row(name, row, char))
        print(f"epoch {row['epoch']}: train {row['train_perplexity']:.2f} valid "
              f"{row['val_perplexity']:.2f} ppl ({math.log2(row['val_perplexity']):.4f} bits) "
              f"{row['seconds']:.0f} s", flush=True)

    if done < args.epochs:
        res = train_lm(_cell_factory(args.model, units, args.init_scale, spec), corpus.train,
                       corpus.valid, vocab, cfg, seed=args.seed,
                       max_valid_windows=args.max_valid_windows, initial_epoch=done,
                       initial_weights=weights, on_epoch_end=on_epoch_end)
        model = res.model
    else:
        import tensorflow as tf

        from cells.lm import LanguageModel

        model = LanguageModel(_cell_factory(args.model, units, args.init_scale, spec),
                              vocab, cfg)
        model(tf.zeros((1, 1), tf.int32), model.zero_states(1))
        model.set_weights(weights)
    if args.skip_test:
        return 0
    # The tutorial's test protocol: batch 1, one continuous pass (bptt only sets the chunking).
    t_test = time.time()
    test_loss = evaluate_loss(model, corpus.test, bptt=args.bptt, batch_size=1,
                              max_windows=args.max_test_windows)
    summary = _summary(name, test_loss, history, time.time() - t_test, char)
    _append(out, summary)
    print(summary.strip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
