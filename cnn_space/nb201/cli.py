"""The ``nb201`` space's command-line flags (absl), defined on import (CLI only)."""

from __future__ import annotations

import dataclasses

from absl import flags

from cnn_space.nb201.config import REWARDS, Nb201Config

_D = {f.name: f.default for f in dataclasses.fields(Nb201Config)}  # the defaults

flags.DEFINE_string("nb201_table", None,
                    "nb201: CSV with columns arch,test_accuracy (the NAS-Bench-201 table, e.g. "
                    "../shared/data/nb201/cifar10.csv): the reward with --nb201_reward=table, "
                    "the truth each child is judged by with any other reward.")
flags.DEFINE_enum("nb201_reward", None, list(REWARDS),
                  "nb201: how a cell is scored: table (look-up; the default without --dataset), "
                  "naswot (training-free, Mellor et al. 2021, one batch of training images; the "
                  "default with --dataset), synflow (data-free), train (short training, reward "
                  "= accuracy on a validation part of the training split), sharing (one "
                  "supernet of all cells, as --sharing=enas).")
flags.DEFINE_integer("nb201_channels", _D["channels"],
                     "nb201: C, the channels of the first stage (NAS-Bench-201: 16).")
flags.DEFINE_integer("nb201_cells", _D["cells"],
                     "nb201: N, cells per stage (NAS-Bench-201: 5).")
flags.DEFINE_integer("nb201_proxy_batch", _D["proxy_batch"],
                     "nb201: training images in the batch a proxy scores (Mellor et al.: 64).")
flags.DEFINE_integer("nb201_train_subset", _D["train_subset"],
                     "nb201: training images loaded (validation is held out of them).")
flags.DEFINE_integer("nb201_shared_warmup_steps", _D["shared_warmup_steps"],
                     "nb201 sharing: batches the supernet trains on uniformly drawn cells "
                     "before its first score.")


def settings_from_flags(fv) -> dict:
    """The settings of :class:`cnn_space.nb201.config.Nb201Config` from the flags."""
    settings = dict(table=fv.nb201_table, reward=fv.nb201_reward, dataset=fv.dataset,
                    data_dir=fv.data_dir, channels=fv.nb201_channels, cells=fv.nb201_cells,
                    proxy_batch=fv.nb201_proxy_batch, train_subset=fv.nb201_train_subset,
                    shared_warmup_steps=fv.nb201_shared_warmup_steps)
    if fv.child_epochs is not None:
        settings["epochs"] = fv.child_epochs
    if fv.child_batch_size is not None:
        settings["batch_size"] = fv.child_batch_size
    return settings
