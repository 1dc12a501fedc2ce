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
            evaluator.data()  # load and check the corpus files now

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


PLUGIN = RnnPlugin()
