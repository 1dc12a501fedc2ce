"""The NAS-Bench-201 space as a plug-in (see :mod:`nas_tf.plugins`).

NAS-Bench-201 is a table of published results: a child's reward is looked up
in a CSV (``--nb201_table``), so there is no model to build or retrain. It is
the spine's benchmark space and registers through the same entry-point group
as every other space.
"""

from __future__ import annotations

from nas_tf.errors import ConfigError
from nas_tf.exporters import NoModelBuilderError
from nas_tf.plugins import SpacePlugin


class Nb201Exporter:
    """NAS-Bench-201 is a table of results: there is no model to build."""

    space_name = "nb201"
    has_model = False
    message = ("nb201 is a table benchmark (NAS-Bench-201 results looked up by cell): it has no "
               "model builder, so no Keras model can be built or retrained.")

    def child_config(self, recorded, overrides, retrain_epochs):
        if retrain_epochs:
            raise NoModelBuilderError(
                "nb201 has no model builder (its rewards come from a table), so it cannot be "
                f"retrained; leave out --retrain_epochs. Received: retrain_epochs={retrain_epochs}")

    def build(self, space, spec, child_config):
        raise NoModelBuilderError(self.message)

    def retrain(self, space, spec, child_config, *, seed, test_limit):
        raise NoModelBuilderError(self.message)


class Nb201Plugin(SpacePlugin):
    """``--space=nb201``: the NAS-Bench-201 cell, rewards from its table."""

    name = "nb201"
    summary = "NAS-Bench-201 cell; rewards looked up in --nb201_table (no training)"
    default_max_children = 500
    trains_children = False

    def make(self, table=None, **unknown):
        from nas_tf.nb201 import Nb201Space, Nb201TableEvaluator, load_table

        if unknown:
            raise ConfigError(f"nb201 takes only table=PATH. Received: {sorted(unknown)}")
        load_table(table)  # one clear error now if it is missing or malformed
        return Nb201Space(), Nb201TableEvaluator(table)

    def check_data(self, space, evaluator):
        from nas_tf.nb201 import check_table_covers

        # Rows, duplicates, every cell of the space: one clear error before anything is written.
        check_table_covers(evaluator.table, evaluator.table_path)

    def space_from_config(self, config):
        from nas_tf.nb201 import Nb201Space

        return Nb201Space()

    def define_flags(self):
        from absl import flags

        if "nb201_table" not in flags.FLAGS:
            flags.DEFINE_string("nb201_table", None,
                                "nb201: CSV with columns arch,test_accuracy (the NAS-Bench-201 "
                                "table, e.g. ../shared/data/nb201/cifar10.csv).")

    def settings_from_flags(self, flag_values):
        return {"table": flag_values.nb201_table}

    def exporter(self):
        return Nb201Exporter()


PLUGIN = Nb201Plugin()

__all__ = ["PLUGIN", "Nb201Exporter", "Nb201Plugin", "NoModelBuilderError"]
