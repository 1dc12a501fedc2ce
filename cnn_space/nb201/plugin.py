"""The NAS-Bench-201 space as a plug-in (see :mod:`nas_tf.plugins`).

NAS-Bench-201 is a table of published results: by default a child's reward is
looked up in a CSV (``--nb201_table``). With images (``--dataset``,
``--data_dir``) the cell is built in Keras and scored by a reward estimator
(``--nb201_reward``), and the table, when given, is the truth each child is
judged by. Registered through the entry-point group ``nas_tf.spaces`` like
every other space; importing it loads no TensorFlow.
"""

from __future__ import annotations

from cnn_space.nb201.table import check_table_covers, load_table
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
    """``--space=nb201``: the NAS-Bench-201 cell; rewards from its table, or
    from the cell built in Keras and scored on images (the table then truth)."""

    name = "nb201"
    summary = ("NAS-Bench-201 cell; rewards from --nb201_table, or scored on images "
               "(--nb201_reward=naswot|synflow|train) with the table as truth")
    default_max_children = 500
    trains_children = True  # with --nb201_reward other than table: --dataset, --child_*
    sharing_modes = ("enas",)  # --sharing=enas is --nb201_reward=sharing

    def make(self, **settings):
        from cnn_space.nb201.config import Nb201Config
        from cnn_space.nb201.estimators import make_evaluator
        from cnn_space.nb201.space import Nb201Space

        sharing = settings.pop("sharing", None)
        if sharing is not None and settings.get("reward") in (None, "sharing"):
            settings["reward"] = "sharing"
        elif sharing is not None:
            raise ConfigError("--sharing=enas scores cells with a supernet: it is "
                              "--nb201_reward=sharing. Received: "
                              f"nb201_reward={settings.get('reward')!r}")
        config = self.config_from_settings(Nb201Config, settings)
        if config.table:
            load_table(config.table)  # one clear error now if it is missing or malformed
        return Nb201Space(), make_evaluator(config, sharing)

    def check_data(self, space, evaluator):
        # Rows, duplicates, every cell of the space: one clear error before anything is written.
        path = getattr(evaluator, "table_path", None)
        if path:
            check_table_covers(load_table(path), path)
        if hasattr(evaluator, "data"):
            evaluator.data()  # loads and checks the images

    def space_from_config(self, config):
        from cnn_space.nb201.space import Nb201Space

        return Nb201Space()

    def define_flags(self):
        import cnn_space.nb201.cli  # noqa: F401 - defines the flags

    def settings_from_flags(self, flag_values):
        from cnn_space.nb201.cli import settings_from_flags

        return settings_from_flags(flag_values)

    proxies = ("naswot", "synflow")

    def make_proxy(self, proxy, **settings):
        """The proxy scored on the search's images (``--dataset`` beside the table)."""
        from cnn_space.nb201.config import Nb201Config
        from cnn_space.nb201.estimators import Nb201ProxyEvaluator
        from nas_tf.evaluator import ChildContext

        if proxy not in self.proxies:
            return super().make_proxy(proxy)
        settings = {k: v for k, v in settings.items() if k != "sharing"}
        if not (settings.get("dataset") or settings.get("data_dir")):
            raise ConfigError(f"--warmup={proxy} scores nb201 cells on images: give --dataset and "
                              "--data_dir beside the table (e.g. --dataset=cifar10 "
                              "--data_dir=../shared/data/cifar10). Received: dataset=None")
        settings.update(reward=proxy, table=None)
        evaluator = Nb201ProxyEvaluator(self.config_from_settings(Nb201Config, settings))
        evaluator.batch()  # loads and checks the images now, before anything is written
        return lambda spec: evaluator.evaluate(spec, ChildContext(child_id=0, seed=0)).reward

    def exporter(self):
        return Nb201Exporter()


PLUGIN = Nb201Plugin()

__all__ = ["PLUGIN", "Nb201Exporter", "Nb201Plugin", "NoModelBuilderError"]
