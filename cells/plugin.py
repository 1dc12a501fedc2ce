"""The recurrent-cell space as a plug-in of nas_tf (see :mod:`nas_tf.plugins`).

Registered through the entry-point group ``nas_tf.spaces`` as ``rnn``
(``setup.py``). Importing it imports the ``cells`` package, which defines
(and so registers) its Keras layers; the rest is imported when used.
"""

from __future__ import annotations

from nas_tf.plugins import SpacePlugin


class RnnPlugin(SpacePlugin):
    """``--space=rnn``: recurrent cells of the paper's tree space (§3.4, §4.2),
    children are language models."""

    name = "rnn"
    summary = "recurrent cells (paper §3.4); children are language models"
    default_max_children = 10
    layer_modules = ("cells",)
    sharing_modes = ("enas",)  # cells.sharing: one shared language model

    def make(self, **settings):
        from cells.search import RnnSearchConfig, make_evaluator, make_space

        cfg = self.config_from_settings(RnnSearchConfig, settings)
        return make_space(cfg), make_evaluator(cfg)

    def check_data(self, space, evaluator):
        if evaluator.config.dataset != "synthetic":
            train, valid, _ = evaluator.data()  # load and check the corpus files now
            check_corpus_size(evaluator.config, train, valid)

    def space_from_config(self, config):
        from cells.tree_space import TreeSpace

        return TreeSpace(config.get("base", 8))

    def define_flags(self):
        import cells.cli  # noqa: F401 - defines the flags

    def settings_from_flags(self, flag_values):
        from cells.cli import settings_from_flags

        return settings_from_flags(flag_values)

    def exporter(self):
        from cells.export import RnnExporter

        return RnnExporter()


def check_corpus_size(config, train, valid) -> None:
    """Refuses a corpus too small for one window of training or validation
    (every child would fail the same way), before anything is written.

    Raises:
        DataError: the training or validation split has too few tokens.
    """
    from nas_tf.errors import DataError

    child = config.lm_config()
    for split, tokens, batch in (("training", train, child.batch_size),
                                 ("validation", valid, child.eval_batch_size)):
        need = batch * (child.bptt + 1)  # one window of bptt steps in each of the rows
        if len(tokens) < need:
            raise DataError(
                f"The {split} split of --dataset={config.dataset} has {len(tokens)} tokens, too "
                f"few for one window of --bptt={child.bptt} in {batch} rows (at least {need}): "
                "pass a larger corpus (--data_dir) or smaller --bptt / --child_batch_size. "
                f"Received: data_dir={config.data_dir!r}")


PLUGIN = RnnPlugin()
