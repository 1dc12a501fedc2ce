"""nas_tf: Neural Architecture Search with Reinforcement Learning (Zoph & Le, ICLR 2017,
arXiv:1611.01578) for TensorFlow 2 and Keras 3.

The public API (see :mod:`nas_tf.api`) is imported lazily, so ``import
nas_tf`` loads no TensorFlow:

* :class:`Search` — run, resume and inspect a search (``search()``,
  ``best(k)``, ``trials()``, ``build_model(spec)``, ``report()``, ``export()``);
* :func:`open_run` — a :class:`Search` over an existing run directory;
* :func:`make_space` — a space and its evaluator by name;
* :func:`search_config` — a :class:`SearchConfig` with a controller preset;
* :func:`load_model` — load an exported ``.keras`` model;
* :func:`export_child`, :func:`write_report` — what the ``nas_tf.export`` and
  ``nas_tf.report`` commands do.
"""

from nas_tf.errors import (
    ConfigError,
    DataError,
    InvalidArchitectureError,
    NasTfError,
    RunDirError,
)

_LAZY = {
    "Search": "nas_tf.api",
    "Result": "nas_tf.api",
    "open_run": "nas_tf.api",
    "make_space": "nas_tf.api",
    "search_config": "nas_tf.api",
    "load_model": "nas_tf.api",
    "register_layers": "nas_tf.api",
    "SearchConfig": "nas_tf.config",
    "export_child": "nas_tf.export",
    "write_report": "nas_tf.report",
    "run_search": "nas_tf.loop",
}

__all__ = [
    "ConfigError", "DataError", "InvalidArchitectureError", "NasTfError", "Result", "RunDirError",
    "Search", "SearchConfig", "export_child", "load_model", "make_space", "open_run",
    "register_layers", "run_search", "search_config", "write_report",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas_tf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
