"""Command-line flags of the recurrent-cell space (``--space=rnn``).

Imported by ``python -m nas_tf.run`` (through :mod:`cells.plugin`) before the
flags are parsed; nothing else imports it.
"""

from __future__ import annotations

from absl import flags

# --dataset for rnn: synthetic (default, no file), ptb, ptb_char, or a TFDS text corpus
# tfds:NAME (word level) / tfds_char:NAME (character level), see cells/tfds_text.py.
RNN_DOWNLOAD = flags.DEFINE_boolean(
    "rnn_download", False, "rnn, --dataset=tfds:NAME: download and prepare the TFDS corpus "
    "into --data_dir when it is not prepared (needs network).")
CELL_BASE = flags.DEFINE_integer("cell_base", None, "rnn: leaves of the cell tree, 2 or 8 "
                                 "(paper §4.2: 8). Default 8.")
CHILD_UNITS = flags.DEFINE_integer(
    "child_units", None, "rnn: hidden units of each child layer (default 32).")
CHILD_LAYERS = flags.DEFINE_integer("child_layers", None, "rnn: recurrent layers of a child (2).")
BPTT = flags.DEFINE_integer("bptt", None, "rnn: truncated-BPTT window (35).")
CHILD_OPTIMIZER = flags.DEFINE_enum("child_optimizer", None, ["adam", "sgd"],
                                    "rnn: child optimizer (default adam; the paper's: sgd).")
CHILD_LR = flags.DEFINE_float(
    "child_learning_rate", None, "rnn: child learning rate (default depends on --dataset: "
    "synthetic 2e-2, ptb/ptb_char 3e-3).")
CHILD_DROPOUT = flags.DEFINE_float("child_dropout", None, "rnn: child dropout (default 0).")
CHILD_GRAD_CLIP = flags.DEFINE_float("child_grad_clip", None, "rnn: child gradient-norm clip (5).")
TIE_EMBEDDINGS = flags.DEFINE_bool(
    "tie_embeddings", None, "rnn: tie embedding and softmax (default false).")
REWARD_C = flags.DEFINE_float(
    "reward_c", None, "rnn: c of the reward c / ppl^2 (default and paper: 80).")
TRAIN_TOKENS = flags.DEFINE_integer(
    "train_tokens", None, "rnn: train on the first N tokens (default: all).")
VALID_TOKENS = flags.DEFINE_integer(
    "valid_tokens", None, "rnn: validate on the first N tokens (default: all).")


def settings_from_flags(fv) -> dict:
    """The settings of :class:`cells.search.RnnSearchConfig` given on the
    command line (flags left unset keep the config's defaults)."""
    from cells.tfds_text import parse_dataset

    given = {
        "dataset": fv.dataset, "data_dir": fv.data_dir, "cell_base": fv.cell_base,
        "units": fv.child_units, "num_layers": fv.child_layers, "bptt": fv.bptt,
        "batch_size": fv.child_batch_size, "epochs": fv.child_epochs,
        "steps_per_epoch": fv.child_steps, "optimizer": fv.child_optimizer,
        "learning_rate": fv.child_learning_rate, "dropout": fv.child_dropout,
        "max_grad_norm": fv.child_grad_clip, "tie_embeddings": fv.tie_embeddings,
        "reward_c": fv.reward_c, "train_tokens": fv.train_tokens,
        "valid_tokens": fv.valid_tokens,
    }
    if parse_dataset(fv.dataset) is not None:
        # A TFDS corpus is downloaded only when asked (PTB keeps its own rule).
        given["download"] = fv.rnn_download
    return {k: v for k, v in given.items() if v is not None}
