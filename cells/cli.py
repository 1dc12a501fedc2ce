"""Command-line flags of the recurrent-cell space (``--space=rnn``).

Imported by ``python -m nas_tf.run`` (through :mod:`cells.plugin`) before the
flags are parsed; nothing else imports it. ``--dataset`` for rnn:
``synthetic`` (default, no file), ``ptb`` (word level), ``ptb_char``.
"""

from __future__ import annotations

from absl import flags

CELL_BASE = flags.DEFINE_integer("cell_base", None, "rnn: leaves of the cell tree, 2 or 8 "
                                 "(paper §4.2: 8). Default 8.")
CHILD_UNITS = flags.DEFINE_integer("child_units", None, "rnn: hidden units of each child layer.")
CHILD_LAYERS = flags.DEFINE_integer("child_layers", None, "rnn: recurrent layers of a child (2).")
BPTT = flags.DEFINE_integer("bptt", None, "rnn: truncated-BPTT window (35).")
CHILD_OPTIMIZER = flags.DEFINE_enum("child_optimizer", None, ["adam", "sgd"],
                                    "rnn: child optimizer (default adam; the paper's: sgd).")
CHILD_LR = flags.DEFINE_float("child_learning_rate", None, "rnn: child learning rate.")
CHILD_DROPOUT = flags.DEFINE_float("child_dropout", None, "rnn: child dropout.")
CHILD_GRAD_CLIP = flags.DEFINE_float("child_grad_clip", None, "rnn: child gradient-norm clip (5).")
TIE_EMBEDDINGS = flags.DEFINE_bool("tie_embeddings", None, "rnn: tie embedding and softmax.")
REWARD_C = flags.DEFINE_float("reward_c", None, "rnn: c of the reward c / ppl^2 (paper: 80).")
TRAIN_TOKENS = flags.DEFINE_integer("train_tokens", None, "rnn: train on the first N tokens.")
VALID_TOKENS = flags.DEFINE_integer("valid_tokens", None, "rnn: validate on the first N tokens.")

def settings_from_flags(fv) -> dict:
    """The settings of :class:`cells.search.RnnSearchConfig` given on the
    command line (flags left unset keep the config's defaults)."""
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
    return {k: v for k, v in given.items() if v is not None}
