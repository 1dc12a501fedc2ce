r"""Export (and retrain) a child that a search found.

  python -m nas_tf.export --run_dir=runs/x --rank=1 --out=DIR [--retrain_epochs=N]

rebuilds the rank-k child (by reward) from its spec — or the spec in a JSON
file with ``--spec=FILE`` — optionally retrains it from scratch on the full
training set for N epochs, evaluates it on the test split, and writes into
``DIR``:

* ``model.keras`` — the Keras model (retrained weights, or fresh weights
  without ``--retrain_epochs``);
* for the CNN space the model is made of built-in Keras layers only (it
  loads without nas_tf), and ``saved_model/`` holds it as a TensorFlow
  SavedModel for serving;
* ``spec.json`` — the space, the spec and where it came from;
* ``metrics.json`` — the child's search metrics and, after retraining, the
  test metrics;
* for the recurrent space also ``cell.keras`` (the cell alone in a
  ``keras.layers.RNN``) and ``cell.json`` (``{"spec": ..., "units": ...}``
  for ``keras.layers.RNN(cells.TreeCell.from_spec(spec, units))``);
* ``README.md`` — how to load them.

Zoph & Le 2017 (arXiv:1611.01578) retrain the best architectures found by
the search with more epochs before reporting test results (§4.1, §4.2); the
search's rewards never touch the test split, and neither does anything here
except the final evaluation.

Saved models load in a fresh process with ``nas_tf.load_model(path)``, or
with ``keras.saving.load_model(path)`` after ``nas_tf.register_layers()``
(which imports the modules that register nas_tf's custom Keras layers).

Each space plugs in through an *exporter* (:class:`SpaceExporter`) that its
plug-in supplies (:mod:`nas_tf.plugins`), found by :func:`get_exporter`; this
module names no space. A table benchmark such as ``nb201`` has no model
builder: its export writes the spec and the metrics only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nas_tf.errors import ConfigError, InvalidArchitectureError, NasTfError, RunDirError
from nas_tf.export_choose import choose_trial, read_spec_file  # noqa: F401 - re-exported
from nas_tf.exporters import (  # noqa: F401 - the exporter protocol, re-exported
    CELL_FILE,
    CELL_SPEC_FILE,
    METRICS_FILE,
    MODEL_FILE,
    README_FILE,
    SAVED_MODEL_DIR,
    SPEC_FILE,
    NoModelBuilderError,
    Retrained,
    SpaceExporter,
    config_from,
    get_exporter,
    space_from_config,
)
from nas_tf.identity import evaluator_record  # noqa: F401 - re-exported (light: no TF)

_log = logging.getLogger(__name__)


_EXPORT_FILES = {MODEL_FILE, SPEC_FILE, METRICS_FILE, CELL_FILE, CELL_SPEC_FILE, README_FILE,
                 SAVED_MODEL_DIR}


# ----------------------------------------------------------------------------
# Export.
# ----------------------------------------------------------------------------


def _prepare_out(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory. Received: out={str(out)!r}")
    try:
        _check_writable_out(out)
    except OSError as e:
        from nas_tf.rundir import describe_os_error

        raise ConfigError(f"--out: {describe_os_error(e, str(out))} Received: "
                          f"out={str(out)!r}") from None
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in _EXPORT_FILES)
        if others:
            raise ConfigError(
                f"--out {out} holds other files ({', '.join(others[:3])}); pass a new or empty "
                f"directory (a previous export there is replaced). Received: out={str(out)!r}")
    return out


def _check_writable_out(out: Path) -> None:
    """Makes ``out`` (and its parents) and proves it writable with a probe
    file, so that a bad path fails here, before a model is built.

    Raises:
        OSError: a parent is a file, the file system is read-only or
            virtual (/proc), or the directory is not writable.
    """
    out.mkdir(parents=True, exist_ok=True)
    probe = out / f".nas_tf_probe_{os.getpid()}"
    with open(probe, "w") as f:
        f.write("")
    os.remove(probe)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(v):
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def _readme(has_model: bool, retrain_epochs: int = 0, message: str = "",
            space_lines: Sequence[str] = ()) -> str:
    lines = ["# nas_tf export", ""]
    if not has_model:
        lines += [message + " spec.json and metrics.json hold the architecture "
                  "and its search metrics.", ""]
        return "\n".join(lines)
    if retrain_epochs:
        epochs = f"{retrain_epochs} epoch{'s' if retrain_epochs != 1 else ''}"
        lines += [f"The model was retrained from scratch for {epochs}; its test metrics are "
                  f"in {METRICS_FILE}.", ""]
    else:
        lines += ["The model has fresh, untrained weights (a search keeps no child weights). "
                  "Export with --retrain_epochs=N to train it and evaluate it on test.", ""]
    lines += [
        "Load the model in a fresh process:",
        "",
        "```python",
        "import nas_tf",
        f"model = nas_tf.load_model('{MODEL_FILE}')",
        "# or: nas_tf.register_layers(); model = keras.saving.load_model(...)",
        "```",
        "",
    ]
    return "\n".join(lines + list(space_lines))


def export_child(run_dir: str | os.PathLike, out: str | os.PathLike, *, rank: int | None = 1,
                 spec: str | None = None, retrain_epochs: int | None = None,
                 child_config: dict | None = None, seed: int = 0,
                 test_limit: int | None = None) -> dict:
    """Exports one child of a run (see the module docstring).

    Args:
        run_dir: The run directory (opened read-only).
        out: Output directory (new, empty, or a previous export).
        rank: The child's rank by reward (1 = best); ignored with ``spec``.
        spec: A spec JSON file (or text) to export instead of a ranked child.
        retrain_epochs: Retrain from scratch for this many epochs on the
            full training set and evaluate on test (None/0: no training).
        child_config: Overrides of the recorded child settings (e.g.
            ``{"units": 64}`` or ``{"train_subset": 5000}``).
        seed: Seed of the retraining.
        test_limit: Evaluate on the first N test examples / tokens only.

    Returns:
        A dict: ``out``, ``files``, ``space``, ``spec``, ``metrics``,
        ``message`` (a line for the user) and ``keras_model`` (the saved
        model object, or None for nb201).

    Raises:
        RunDirError: not a run directory.
        ConfigError: a bad rank, out directory or setting; nb201 with
            ``retrain_epochs``.
        InvalidArchitectureError: a bad ``spec``.
    """
    if retrain_epochs is not None and (isinstance(retrain_epochs, bool) or retrain_epochs < 0):
        raise ConfigError(
            f"--retrain_epochs must be >= 0. Received: retrain_epochs={retrain_epochs}")
    if test_limit is not None and test_limit <= 0:
        raise ConfigError(f"--test_limit must be > 0. Received: test_limit={test_limit}")
    space, space_cfg, recorded, spec_obj, origin, search_metrics = _read_child(run_dir, rank, spec)
    exporter = get_exporter(space.name)
    cfg = exporter.child_config(recorded, dict(child_config or {}), retrain_epochs)
    note = ""
    if cfg is not None and recorded is None:
        note = (f" Note: the run records no child settings (evaluator config), so the defaults "
                f"of space {space.name} plus --child_config were used.")
        _log.warning(note.strip())
    out_dir = _prepare_out(out)
    for name in _EXPORT_FILES:  # a previous export is replaced, never mixed
        if (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)
        else:
            (out_dir / name).unlink(missing_ok=True)
    spec_json = space.spec_to_json(spec_obj)
    t0 = time.time()
    result, message = _make_model(exporter, space, spec_obj, cfg, retrain_epochs, seed,
                                  test_limit)
    message += note
    files = _save_models(out_dir, result)
    _write_json(out_dir / SPEC_FILE, {
        "space": space_cfg, "spec": spec_json, "origin": origin,
        "child_config": _config_json(cfg), "search_metrics": search_metrics,
    })
    metrics = {
        "search": search_metrics,
        "retrained": bool(retrain_epochs) and result is not None,
        "retrain_epochs": retrain_epochs or 0,
        "seed": seed,
        "test": result.metrics if (result is not None and retrain_epochs) else None,
        "export_seconds": round(time.time() - t0, 3),
        "model": MODEL_FILE if result is not None else None,
    }
    _write_json(out_dir / METRICS_FILE, metrics)
    retrained_epochs = retrain_epochs if result is not None else 0
    space_lines = (exporter.readme_lines(retrained_epochs)
                   if result is not None and hasattr(exporter, "readme_lines") else [])
    (out_dir / README_FILE).write_text(_readme(result is not None, retrained_epochs,
                                               getattr(exporter, "message", ""), space_lines))
    files += [SPEC_FILE, METRICS_FILE, README_FILE]
    return {"out": str(out_dir), "files": files, "space": space.name, "spec": spec_json,
            "metrics": metrics, "message": message,
            "keras_model": None if result is None else result.model}


def _read_child(run_dir, rank: int | None, spec: str | None):
    """The space of a run and the child to export: ``(space, space config,
    evaluator record, spec, origin, search metrics)``."""
    from nas_tf.rundir import open_store

    store = open_store(run_dir)
    try:
        space_cfg = store.get_meta("space")
        recorded = store.get_meta("evaluator")
        space = space_from_config(space_cfg)
        if spec is not None:
            spec_obj, wrapper = read_spec_file(spec, space)
            origin = {"source": "spec file" if not spec.lstrip().startswith("{") else "spec json",
                      "from": wrapper.get("origin")}
            return space, space_cfg, recorded, spec_obj, origin, wrapper.get("search_metrics", {})
        trial = choose_trial(store, rank if rank is not None else 1)
        try:
            spec_obj = space.spec_from_json(trial.spec)
        except InvalidArchitectureError as e:
            raise RunDirError(f"Child {trial.id} of {run_dir} has a spec this version cannot "
                              f"read: {e}") from None
        origin = {"source": "run", "run_dir": str(run_dir), "rank": rank, "child_id": trial.id}
        return space, space_cfg, recorded, spec_obj, origin, {"reward": trial.reward,
                                                              **trial.metrics}
    finally:
        store.close()


def _make_model(exporter, space, spec_obj, cfg, retrain_epochs, seed, test_limit):
    """The exporter's model (None for a space without one) and a line saying
    what it is."""
    if not getattr(exporter, "has_model", True):
        return None, exporter.message
    if retrain_epochs:
        result = exporter.retrain(space, spec_obj, cfg, seed=seed, test_limit=test_limit)
        return result, (f"retrained {retrain_epochs} epoch{'s' if retrain_epochs != 1 else ''} "
                        "and evaluated on test")
    return exporter.build(space, spec_obj, cfg), (
        "untrained model (fresh weights: a search keeps no child weights); pass "
        "--retrain_epochs=N to train it and evaluate on test")


def _save_models(out_dir: Path, result) -> list[str]:
    """Saves the model (``.keras`` and, if asked, a SavedModel) and the
    exporter's extra files; returns their names."""
    if result is None:
        return []
    files = []
    result.model.save(str(out_dir / MODEL_FILE))
    files.append(MODEL_FILE)
    if result.saved_model:
        result.model.export(str(out_dir / SAVED_MODEL_DIR), verbose=False)
        files.append(SAVED_MODEL_DIR)
    for name, obj in result.extras.items():
        obj.save(str(out_dir / name))
        files.append(name)
    for name, obj in result.extra_json.items():
        _write_json(out_dir / name, obj)
        files.append(name)
    return files


def _config_json(cfg) -> dict | None:
    """A child config as JSON: its own ``to_json()`` (flat for composed
    configs), else its dataclass fields."""
    if cfg is None:
        return None
    return cfg.to_json() if hasattr(cfg, "to_json") else dataclasses.asdict(cfg)


# ----------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------


_USAGE = """Exports a child of a search as a Keras model (fresh weights, or retrained).

  python -m nas_tf.export --run_dir=runs/rnn --rank=1 --out=exported/rnn [--retrain_epochs=N]

Writes model.keras, spec.json, metrics.json and a README.md saying how to load
them into --out. Without --retrain_epochs the model has fresh, untrained
weights (a search keeps no child weights).
"""


def _flag_values():
    """The flags of ``python -m nas_tf.export`` (their own FlagValues)."""
    from absl import flags

    fv = flags.FlagValues()
    flags.DEFINE_string("run_dir", None, "Run directory of a search.", flag_values=fv)
    flags.DEFINE_integer("rank", 1, "Rank of the child by reward (1 = best).", flag_values=fv)
    flags.DEFINE_string("spec", None, "Export this spec (JSON file or text) instead of --rank.",
                        flag_values=fv)
    flags.DEFINE_string("out", None, "Output directory.", flag_values=fv)
    flags.DEFINE_integer("retrain_epochs", None,
                         "Retrain from scratch for N epochs on the full training set and "
                         "evaluate on test (default: no training).", flag_values=fv)
    flags.DEFINE_string("child_config", None,
                        'JSON overrides of the recorded child settings, e.g. \'{"units": 64}\'.',
                        flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the retraining.", flag_values=fv)
    flags.DEFINE_integer("test_limit", None, "Evaluate on the first N test examples/tokens.",
                         flag_values=fv)
    return fv


def _overrides(text: str | None) -> dict:
    """``--child_config``: a JSON object, or one error naming it."""
    if not text:
        return {}
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--child_config is not valid JSON ({e}). "
                          f"Received: child_config={text!r}") from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"--child_config must be a JSON object. Received: child_config={text!r}")
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    from absl import flags

    fv = _flag_values()
    from nas_tf import cli

    argv = list(sys.argv if argv is None else argv)
    which = cli.wants_help(argv)
    if which:
        sys.stdout.write(cli.help_text(_USAGE, fv, full=which == "full"))
        return 0
    try:
        rest = fv(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(rest) > 1:
        print(f"error: unexpected arguments {rest[1:]}; all options are --flags.", file=sys.stderr)
        return 2
    cli.quiet_tensorflow()
    try:
        if not fv.run_dir:
            raise ConfigError("--run_dir is required (the directory of a search). "
                              "Received: run_dir=None")
        if not fv.out:
            raise ConfigError("--out is required (a new directory for the export). "
                              "Received: out=None")
        res = export_child(fv.run_dir, fv.out, rank=fv.rank, spec=fv.spec, seed=fv.seed,
                           retrain_epochs=fv.retrain_epochs, test_limit=fv.test_limit,
                           child_config=_overrides(fv.child_config))
    except NasTfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    test = res["metrics"]["test"] or {}
    shown = {k: v for k, v in test.items() if isinstance(v, (int, float)) and not
             (isinstance(v, float) and math.isnan(v))}
    print(f"exported {res['space']} child to {res['out']}: {', '.join(res['files'])}")
    print(res["message"])
    if shown:
        print("test: " + ", ".join(f"{k}={v:.6g}" for k, v in sorted(shown.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
