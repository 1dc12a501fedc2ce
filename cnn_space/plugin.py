"""The CNN space as a plug-in of nas_tf (see :mod:`nas_tf.plugins`).

Registered through the entry-point group ``nas_tf.spaces`` as ``cnn``
(``setup.py``). Everything here is imported lazily, so finding the plug-in
loads no TensorFlow.
"""

from __future__ import annotations

import sys

from nas_tf.plugins import SpacePlugin


class CnnPlugin(SpacePlugin):
    """``--space=cnn``: the paper's convolutional space (§3.1–3.3, §4.1);
    children are image classifiers."""

    name = "cnn"
    summary = "convolutional networks (paper §3.1-3.3); children are image classifiers"
    default_max_children = 10
    layer_modules = ("cnn_space.builder",)
    sharing_modes = ("enas",)  # cnn_space.sharing: one shared network (presets v1, v3)

    def make(self, **settings):
        from cnn_space.train import CnnSearchConfig, make_evaluator, make_space

        cfg = self.config_from_settings(CnnSearchConfig, settings)
        made = make_space(cfg), make_evaluator(cfg)
        cli = sys.modules.get("cnn_space.cli")  # (the command line's demo note, once valid)
        if cli is not None and cli.DEMO_NOTE:
            from absl import logging as absl_logging

            absl_logging.warning("%s", cli.DEMO_NOTE.pop())
        return made

    def check_data(self, space, evaluator):
        evaluator.data()  # loads and checks the images

    def space_from_config(self, config):
        from cnn_space.space import CnnSpace

        return CnnSpace.from_config(config)  # any recorded version

    def define_flags(self):
        import cnn_space.cli  # noqa: F401 - defines the flags

    def settings_from_flags(self, flag_values):
        from cnn_space.cli import settings_from_flags

        return settings_from_flags(flag_values)

    def exporter(self):
        from cnn_space.export import CnnExporter

        return CnnExporter()


PLUGIN = CnnPlugin()
