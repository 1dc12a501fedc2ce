"""The Python API of nas_tf: search, inspect, build and export in a few lines.

The shape follows KerasTuner: make a :class:`Search` for a space (by name,
or any :class:`nas_tf.space.SearchSpace` with an evaluator), call
:meth:`Search.search`, then ask for :meth:`Search.best`, the
:meth:`Search.trials` as plain records, or a Keras model of a spec with
:meth:`Search.build_model`. Everything lives in the run directory, so
:func:`open_run` gives the same object for a finished (or running) search.
The search is Zoph & Le 2017 (arXiv:1611.01578): a controller RNN trained
with REINFORCE (§3.2) proposes children that are trained and rewarded on
validation data; ``random`` and ``evolution`` are baselines.

Example (NAS-Bench-201, rewards looked up in a table):

>>> import nas_tf
>>> search = nas_tf.Search("nb201", table=TABLE, run_dir=RUN_DIR, algorithm="random",
...                        max_children=20, seed=0)
>>> summary = search.search()
>>> summary["children_trained"], summary["status"]
(20, 'finished')
>>> best = search.best(3)
>>> [r.rank for r in best]
[1, 2, 3]
>>> best[0].reward >= best[1].reward >= best[2].reward
True
>>> best[0].reward == summary["best_reward"]
True
>>> records = search.trials()
>>> len(records), records[0]["status"]
(20, 'done')
>>> sorted(records[0])[:4]
['attempts', 'created', 'duration', 'error']

The run directory can be opened again later, without the evaluator:

>>> again = nas_tf.open_run(RUN_DIR)
>>> again.best(1)[0].spec == best[0].spec
True
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from nas_tf.errors import ConfigError, InvalidArchitectureError, RunDirError
from nas_tf.validation import check_int


@dataclasses.dataclass(frozen=True)
class Result:
    """One ranked child.

    Attributes:
        rank: 1 for the best reward.
        child_id: The child's id in the run (``children/<id>`` holds its curves).
        reward: Its reward.
        spec: Its spec (the space's frozen dataclass).
        spec_json: The spec's JSON form.
        metrics: The numbers its evaluator returned.
    """

    rank: int
    child_id: int
    reward: float
    spec: Any
    spec_json: dict
    metrics: dict


def make_space(name: str, **settings):
    """A search space and its evaluator, by name (through the space's plug-in,
    see :mod:`nas_tf.plugins`).

    Args:
        name: A registered space: ``"nb201"`` (needs ``table=``, a
            NAS-Bench-201 CSV), ``"rnn"`` (settings of
            :class:`cells.search.RnnSearchConfig`), ``"cnn"`` (settings of
            :class:`cnn_space.train.CnnSearchConfig`), or any installed plug-in.
        **settings: The settings of the space and its children.

    Returns:
        ``(space, evaluator)``.

    Raises:
        ConfigError: an unknown space or setting.

    Example:

    >>> space, evaluator = make_space("rnn", cell_base=2, dataset="synthetic")
    >>> space.name, len(space.decisions())
    ('rnn', 10)
    """
    from nas_tf import plugins

    return plugins.get(name).make(**settings)


def search_config(algorithm: str = "reinforce", max_children: int = 100, seed: int = 0,
                  preset: str = "auto", run_dir: str | None = None, **overrides):
    """A :class:`nas_tf.config.SearchConfig` with a controller preset.

    ``preset="auto"`` keeps the preset of the search in ``run_dir`` when
    one is resumed, else takes ``small_budget`` up to 2,000 children and the
    paper's settings (§4.1) above — the CLI's rule
    (:func:`nas_tf.config.resolve_preset`); ``overrides`` replace
    top-level fields (e.g. ``children_per_update=8``). ``algorithm="tpe"``
    takes one child per update unless overridden.
    """
    from nas_tf import config as cfgmod
    from nas_tf.rundir import recorded_search

    recorded = recorded_search(run_dir)
    preset = cfgmod.resolve_preset(preset, max_children, recorded)
    controller, reinforce = cfgmod.preset_settings(preset, recorded)
    values = {
        "algorithm": algorithm, "max_children": max_children, "seed": seed,
        "children_per_update": cfgmod.default_children_per_update(preset, algorithm, recorded),
        "controller": controller,
        "reinforce": reinforce,
    }
    fields = {f.name for f in dataclasses.fields(cfgmod.SearchConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"Unknown search setting(s) {unknown}; use some of {sorted(fields)}. "
                          f"Received: {unknown}")
    values.update(overrides)
    return cfgmod.SearchConfig(**values)


class Search:
    """A search in a run directory (create, resume, or inspect).

    Args:
        space: A space name (``"nb201"``, ``"rnn"``, ``"cnn"``) — its
            evaluator is then made from ``settings`` — or a
            :class:`nas_tf.space.SearchSpace` instance with ``evaluator``.
        evaluator: The :class:`nas_tf.evaluator.Evaluator` (with a space
            instance); None with a space name.
        run_dir: The run directory (new, or a search to resume).
        algorithm: ``"reinforce"`` (paper §3.2), ``"random"``,
            ``"evolution"`` or ``"tpe"`` (Optuna's TPE sampler, an optional
            extra: ``pip install "nas_tf[optuna]"``; see :mod:`nas_tf.tpe`).
        max_children: Budget of unique children.
        seed: Seed of the search.
        config: A full :class:`nas_tf.config.SearchConfig` (then
            ``algorithm``, ``max_children`` and ``seed`` are ignored).
        executor: Where children train (default: in this process).
        logger: An extra :class:`nas_tf.logger.Logger` (TensorBoard is
            always written).
        proxy: ``proxy(spec) -> float`` for ``config.warmup`` (a zero-cost
            warm-up, :mod:`nas_tf.warmup`); with a space name it is made by the
            space's plug-in when None.
        **settings: Settings of the space's children (see :func:`make_space`).

    Raises:
        ConfigError: bad settings; RunDirError: a run dir of another search.
    """

    def __init__(self, space: Any, evaluator: Any = None, *, run_dir: str,
                 algorithm: str = "reinforce", max_children: int = 100, seed: int = 0,
                 config: Any = None, executor: Any = None, logger: Any = None,
                 proxy: Any = None, **settings):
        if not run_dir:
            raise ConfigError(f"run_dir is required. Received: run_dir={run_dir!r}")
        space_name = space
        if isinstance(space, str):
            if evaluator is not None:
                raise ConfigError("Give a space name with its settings, or a space instance with "
                                  "an evaluator, not a name and an evaluator.")
            space, evaluator = make_space(space, **settings)
        elif settings:
            raise ConfigError(f"Settings {sorted(settings)} need a space name; a space instance "
                              "comes with its evaluator.")
        self.space = space
        self.evaluator = evaluator
        self.run_dir = str(run_dir)
        self.config = config or search_config(algorithm, max_children, seed, run_dir=run_dir)
        if proxy is None and self.config.warmup.enabled and isinstance(space_name, str):
            from nas_tf import plugins

            proxy = plugins.get(space_name).make_proxy(self.config.warmup.proxy, **settings)
        self.proxy = proxy
        self.executor = executor
        self.logger = logger

    # ------------------------------------------------------------ searching
    def search(self) -> dict:
        """Runs (or resumes) the search until its budget; returns its summary.

        Raises:
            ConfigError: no evaluator (a run opened with :func:`open_run`), or
                ``tpe`` without Optuna installed.
        """
        from nas_tf.loop import run_search

        if self.evaluator is None:
            raise ConfigError(f"This Search has no evaluator (opened from {self.run_dir}); make "
                              "it with Search(space, ...) to run it.")
        if self.config.algorithm == "tpe":  # optional extra: fail before the run dir is made
            from nas_tf.tpe import require_optuna

            require_optuna()
        return run_search(self.space, self.evaluator, run_dir=self.run_dir, config=self.config,
                          executor=self.executor, logger=self.logger, proxy=self.proxy)

    # ----------------------------------------------------------- inspecting
    def _store(self):
        from nas_tf.rundir import open_store

        return open_store(self.run_dir)

    def best(self, k: int = 1) -> list[Result]:
        """The ``k`` best done children, best first (fewer if fewer are done)."""
        check_int("k", k)
        store = self._store()
        try:
            trials = store.best(k)
        finally:
            store.close()
        return [Result(rank=i, child_id=t.id, reward=t.reward,
                       spec=self.space.spec_from_json(t.spec), spec_json=t.spec,
                       metrics=dict(t.metrics)) for i, t in enumerate(trials, start=1)]

    def trials(self, status: str | None = None) -> list[dict]:
        """Every child as a plain dict (id, spec, tokens, status, reward,
        metrics, error, timings), in creation order; optionally one status
        (``pending``, ``running``, ``done``, ``failed``)."""
        from nas_tf.store import STATUSES

        if status is not None and status not in STATUSES:
            raise ConfigError(f"status must be one of {STATUSES}. Received: status={status!r}")
        store = self._store()
        try:
            return [t.to_json() for t in store.trials(status)]
        finally:
            store.close()

    def summary(self) -> dict:
        """``summary.json`` of the run ({} before the first update)."""
        from nas_tf.rundir import read_summary

        return read_summary(self.run_dir)

    def report(self, top_k: int = 10) -> str:
        """Writes the run's report files (see :mod:`nas_tf.report`); returns its text."""
        from nas_tf.report import format_report, write_report

        return format_report(write_report(self.run_dir, top_k))

    # ------------------------------------------------------------- building
    def _spec(self, spec: Any):
        if isinstance(spec, Result):
            return spec.spec
        if isinstance(spec, dict):
            return self.space.spec_from_json(spec)
        try:
            self.space.spec_to_tokens(spec)
        except (InvalidArchitectureError, ValueError, TypeError, AttributeError) as e:
            raise InvalidArchitectureError(
                f"Not a spec of space {self.space.name!r}: {e}. Received: {spec!r:.200}") from None
        return spec

    def build_model(self, spec: Any, **child_config):
        """A Keras model of a spec with fresh weights (as export writes it).

        Args:
            spec: A spec, its JSON dict, or a :class:`Result`.
            **child_config: Overrides of the run's child settings.

        Raises:
            ConfigError: the space has no model builder (nb201).
            InvalidArchitectureError: not a spec of this space.
        """
        from nas_tf.export import evaluator_record, get_exporter

        spec = self._spec(spec)
        exporter = get_exporter(self.space.name)
        recorded = evaluator_record(self.evaluator) if self.evaluator is not None else None
        if recorded is None:
            store = self._store()
            try:
                recorded = store.get_meta("evaluator")
            finally:
                store.close()
        cfg = exporter.child_config(recorded, child_config, None)
        return exporter.build(self.space, spec, cfg).model

    def export(self, out: str, rank: int = 1, **kwargs) -> dict:
        """Exports the rank-th child (see :func:`nas_tf.export.export_child`)."""
        from nas_tf.export import export_child

        return export_child(self.run_dir, out, rank=rank, **kwargs)


def open_run(run_dir: str) -> Search:
    """A :class:`Search` over an existing run directory (to inspect or export).

    Its ``search()`` needs an evaluator: make a :class:`Search` with the
    space's settings to resume a run.

    Raises:
        RunDirError: not a nas_tf run directory.
    """
    from nas_tf.export import space_from_config
    from nas_tf.rundir import open_store

    store = open_store(run_dir)
    try:
        space_cfg = store.get_meta("space")
    finally:
        store.close()
    space = space_from_config(space_cfg)
    s = Search.__new__(Search)
    s.space, s.evaluator, s.run_dir = space, None, str(run_dir)
    s.config, s.executor, s.logger, s.proxy = None, None, None, None
    return s


def register_layers() -> None:
    """Imports the modules that register the custom Keras layers of every
    registered space (e.g. ``TreeCell`` / ``NASCell`` of ``rnn``, ``CnnBody``
    of ``cnn``) so that ``keras.saving.load_model`` can rebuild saved models."""
    import importlib

    from nas_tf import plugins

    for name in plugins.names():
        for module in plugins.get(name).layer_modules:
            importlib.import_module(module)


def load_model(path: str, **kwargs):
    """``keras.saving.load_model`` with nas_tf's custom layers registered.

    Raises:
        RunDirError: no such file.
    """
    if not os.path.isfile(path):
        raise RunDirError(f"No saved model at {path}; pass the model.keras of an export.")
    register_layers()
    import keras

    return keras.saving.load_model(path, **kwargs)
