"""Search-space plug-ins: how a space joins the spine without the spine naming it.

The spine (this package: controller, algorithms, loop, store, CLI, API,
export) knows a search space only through a :class:`SpacePlugin` found in
the registry. A plug-in supplies everything that is specific to its space:

* ``make(**settings)`` — the :class:`nas_tf.space.SearchSpace` and its
  :class:`nas_tf.evaluator.Evaluator` (what ``nas_tf.Search(NAME, ...)``
  calls);
* ``define_flags()`` / ``settings_from_flags()`` — its command-line flags
  (defined in the plug-in's own CLI module) and their translation into
  settings (what ``python -m nas_tf.run --space=NAME`` calls);
* ``space_from_config(config)`` — the space again from the
  ``space.config()`` a run directory recorded (report, export, resume);
* ``exporter()`` — how a child is rebuilt, retrained and saved (an object
  with the :class:`nas_tf.export.SpaceExporter` methods), or None;
* ``layer_modules`` — modules whose import registers its custom Keras layers.

Plug-ins are registered through the Python entry-point group
``nas_tf.spaces`` (``name = module:attribute``, the attribute being a
plug-in instance or class), so a separately installed package adds a space
without touching nas_tf; :func:`register` adds one in-process. The three
spaces of this project register that way too (see ``setup.py``).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from nas_tf.errors import ConfigError

ENTRY_POINT_GROUP = "nas_tf.spaces"


class SpacePlugin:
    """Base class of a search-space plug-in (override what the space has).

    Attributes:
        name: The space's name (``--space=NAME``, ``nas_tf.Search(NAME)``);
            equal to ``space.name`` of the spaces it makes.
        summary: One line for ``--help``.
        default_max_children: ``--max_children`` when not given.
        layer_modules: Modules whose import registers the space's custom
            Keras layers (for loading saved models).
        trains_children: False for a table benchmark (the shared child
            flags ``--dataset``, ``--child_epochs``, ... then do nothing).
        sharing_modes: Weight-sharing modes the space supplies (e.g.
            ``("enas",)``; see :mod:`nas_tf.sharing`). With one of them,
            :meth:`make` receives ``sharing=`` a SharingConfig and returns an
            evaluator that scores architectures with the shared model.
    """

    name: str = ""
    summary: str = ""
    default_max_children: int = 10
    layer_modules: tuple[str, ...] = ()
    trains_children: bool = True
    sharing_modes: tuple[str, ...] = ()

    def make(self, **settings) -> tuple[Any, Any]:
        """Returns ``(space, evaluator)`` for these settings.

        Raises:
            ConfigError: an unknown or bad setting (name it and the value).
        """
        raise NotImplementedError(f"space plug-in {self.name!r} does not implement make()")

    def config_from_settings(self, cls, settings: dict):
        """``cls(**settings)`` for a config dataclass, naming unknown settings.

        Raises:
            ConfigError: a setting ``cls`` does not have.
        """
        fields = set(setting_names(cls))
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise ConfigError(f"Unknown {self.name} setting(s) {unknown}; use some of "
                              f"{sorted(fields)}. Received: {unknown}")
        return cls(**settings)

    def space_from_config(self, config: dict) -> Any:
        """The space described by ``config`` (its ``space.config()``)."""
        raise NotImplementedError(
            f"space plug-in {self.name!r} does not implement space_from_config()")

    def define_flags(self) -> None:
        """Defines the space's command-line flags (absl), CLI only. The
        shared flags (``--dataset``, ``--data_dir``, ``--child_epochs``,
        ``--child_steps``, ``--child_batch_size``) are the spine's."""

    def settings_from_flags(self, flag_values) -> dict:
        """The settings for :meth:`make` from parsed flags (CLI only)."""
        return {}

    def check_data(self, space, evaluator) -> None:
        """Checks the data now (before a run directory is written); raises
        :class:`nas_tf.errors.DataError` with what to do about it."""

    def exporter(self) -> Any | None:
        """The space's exporter (see :class:`nas_tf.export.SpaceExporter`),
        or None when it has no model to build."""
        return None

    #: Training-free proxies :meth:`make_proxy` offers (``--warmup=NAME``).
    proxies: tuple[str, ...] = ()

    def make_proxy(self, proxy: str, **settings) -> Any:
        """``score(spec) -> float``: the training-free proxy ``proxy`` for the
        zero-cost warm-up (:mod:`nas_tf.warmup`), made from the same settings
        as :meth:`make` (a space that builds Keras models can score them with
        :func:`cnn_space.nb201.proxies.naswot` on a batch of its training
        images). Higher is better; it is called in the searching process.

        Raises:
            ConfigError: the space offers no such proxy, or its settings cannot
                feed it (e.g. no images).
        """
        offered = ", ".join(self.proxies) or "none"
        raise ConfigError(f"--space={self.name} offers no training-free proxy {proxy!r} for "
                          f"--warmup (it offers: {offered}). Received: warmup={proxy!r}")


_registered: dict[str, SpacePlugin] = {}
_loaded: dict[str, SpacePlugin] | None = None


def setting_names(cls) -> tuple[str, ...]:
    """The keyword settings of a config class: its ``setting_names()`` when it
    has one (a composed config taking its parts' settings flat), else its
    dataclass fields."""
    if hasattr(cls, "setting_names"):
        return tuple(cls.setting_names())
    import dataclasses

    return tuple(f.name for f in dataclasses.fields(cls))


def _instance(obj: Any, where: str) -> SpacePlugin:
    plugin = obj() if isinstance(obj, type) else obj
    if not isinstance(plugin, SpacePlugin) or not plugin.name:
        raise ConfigError(f"The space plug-in {where} is not a named nas_tf.plugins.SpacePlugin. "
                          f"Received: {obj!r:.200}")
    return plugin


def _load_entry_points() -> dict[str, SpacePlugin]:
    global _loaded
    if _loaded is None:
        found: dict[str, SpacePlugin] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in found:
                continue  # the first distribution on sys.path wins, as for imports
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001 - one line naming the broken plug-in
                raise ConfigError(
                    f"The space plug-in {ep.name!r} ({ep.value}) cannot be imported: "
                    f"{type(e).__name__}: {e}. Reinstall the package that provides it, or "
                    "uninstall it.") from None
            plugin = _instance(obj, f"{ep.name} = {ep.value}")
            if plugin.name != ep.name:
                raise ConfigError(f"The space plug-in registered as {ep.name!r} is named "
                                  f"{plugin.name!r}; the two must agree. Received: {ep.value}")
            found[ep.name] = plugin
        _loaded = found
    return _loaded


def register(plugin: SpacePlugin | type) -> SpacePlugin:
    """Registers a space plug-in in this process (it overrides an entry point
    of the same name). Returns the instance.

    Example:

    >>> class Mine(SpacePlugin):
    ...     name = "mine_doc"
    >>> register(Mine).name in names()
    True
    >>> unregister("mine_doc")
    """
    p = _instance(plugin, repr(plugin))
    _registered[p.name] = p
    return p


def unregister(name: str) -> None:
    """Removes a plug-in registered with :func:`register`."""
    _registered.pop(name, None)


def names() -> list[str]:
    """The names of every registered space, sorted."""
    return sorted(set(_load_entry_points()) | set(_registered))


def get(name: str) -> SpacePlugin:
    """The plug-in of a space.

    Raises:
        ConfigError: no space of that name is registered.
    """
    if name in _registered:
        return _registered[name]
    found = _load_entry_points()
    if name in found:
        return found[name]
    known = names()
    if not known:
        raise ConfigError(
            f"No search space is registered (entry-point group {ENTRY_POINT_GROUP!r}): install "
            f"nas_tf with `pip install -e .` so its spaces register. Received: space={name!r}")
    raise ConfigError(f"Unknown search space; use one of {', '.join(known)} (or register a "
                      f"plug-in, see README 'Add your own search space'). Received: space={name!r}")


def check_sharing(plugin: SpacePlugin, mode: str) -> None:
    """Raises ConfigError unless ``plugin``'s space supplies sharing ``mode``."""
    if mode != "none" and mode not in plugin.sharing_modes:
        have = [p for p in names() if mode in get(p).sharing_modes]
        raise ConfigError(f"--sharing={mode} is not available for --space={plugin.name}; "
                          f"spaces with it: {', '.join(have) or 'none'}. "
                          f"Received: sharing={mode!r}")


def space_from_config(config: dict | None) -> Any:
    """Rebuilds the space a run directory recorded (``space.config()``).

    Raises:
        RunDirError: the run records a space no installed plug-in provides.
    """
    from nas_tf.errors import RunDirError

    name = (config or {}).get("name")
    try:
        plugin = get(name)
    except ConfigError as e:
        raise RunDirError(f"The run records the search space {name!r}, which no installed "
                          f"plug-in provides ({e}). Install the package that provides it. "
                          f"Received: space={config!r:.200}") from None
    return plugin.space_from_config(config)
