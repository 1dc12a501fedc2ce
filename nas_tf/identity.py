"""The identity of a search: everything that changes a reward.

A run directory records it (meta keys ``space``, ``search``, ``child``,
``inputs``, ``devices``) when it is created; a search resumed with any other value is
refused with each differing setting named. ``search`` is the search config
without its budgets; ``child`` every child-training setting of the
evaluator; ``inputs`` the data read (NAS-Bench-201 table, ``data_dir``) as a
resolved path and a fingerprint of its contents; ``devices`` the number of
devices each child trains on (its batch is split over them). Run directories
written before ``child``, ``inputs`` or ``devices`` existed are accepted, and
the values of the resuming search are recorded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from nas_tf.errors import RunDirError
from nas_tf.space import canonical_json

FORMAT_VERSION = 1

#: SearchConfig fields that may change when a search is resumed (budgets).
RESUMABLE_FIELDS = ("max_children", "max_proposals", "patience_rounds", "max_search_s")
#: Child settings that do not change a reward.
FREE_CHILD_FIELDS = ("download",)
#: Data directories up to this size and file count are fingerprinted by their
#: contents (SHA-256 of every file); larger ones by their file list and sizes.
CONTENT_HASH_LIMIT = 64 << 20
CONTENT_HASH_FILES = 1000
#: Identity keys added after the first format: a run without one resumes.
_LATER_KEYS = ("child", "inputs", "devices")




def evaluator_record(evaluator: Any) -> dict | None:
    """A JSON record of how an evaluator trains children, or None.

    The record is ``{"type": "module.Class", "config": {...}}`` where the
    config is ``evaluator.config.to_json()`` (or ``dataclasses.asdict``).
    A run directory keeps it (meta key ``evaluator``) so that an export can
    retrain a child with the search's settings. Never raises.

    Example:

    >>> evaluator_record(object()) is None
    True
    """
    try:
        cfg = getattr(evaluator, "config", None)
        if cfg is None:
            return None
        if hasattr(cfg, "to_json"):
            obj = cfg.to_json()
        elif dataclasses.is_dataclass(cfg):
            obj = dataclasses.asdict(cfg)
        else:
            return None
        json.dumps(obj)
        cls = type(evaluator)
        return {"type": f"{cls.__module__}.{cls.__qualname__}", "config": obj}
    except Exception:  # noqa: BLE001 - a record is optional
        return None


def search_identity(config) -> dict:
    d = config.to_json()
    for k in RESUMABLE_FIELDS:
        d.pop(k, None)
    return d


def child_identity(evaluator: Any) -> dict | None:
    """Every child-training setting of an evaluator (None when it records none)."""
    record = evaluator_record(evaluator)
    if record is None:
        return None
    cfg = {k: v for k, v in record["config"].items() if k not in FREE_CHILD_FIELDS}
    return {"type": record["type"], **cfg}


def _sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: str | os.PathLike) -> dict:
    """Path and content fingerprint of a data file or directory.

    A file, or a directory of at most :data:`CONTENT_HASH_FILES` files and
    :data:`CONTENT_HASH_LIMIT` bytes (PTB), is hashed by content (SHA-256); a
    larger directory (image folders) by its sorted list of relative names and
    sizes: cheap, but an edit that keeps every size is missed.
    """
    import hashlib

    p = Path(path).expanduser().resolve()
    if p.is_file():
        return {"path": str(p), "method": "sha256 of contents", "sha256": _sha256_file(p)}
    if not p.is_dir():
        return {"path": str(p), "method": "missing"}
    files = []
    for root, _, names in os.walk(p):  # os.walk: ~5x faster than Path.rglob on 60k images
        for n in names:
            full = os.path.join(root, n)
            if os.path.isfile(full):
                files.append((os.path.relpath(full, p), os.stat(full).st_size))
    files.sort()
    total = sum(s for _, s in files)
    by_content = total <= CONTENT_HASH_LIMIT and len(files) <= CONTENT_HASH_FILES
    h = hashlib.sha256()
    for name, size in files:
        h.update(f"{name}\0{size}\0".encode())
        if by_content:
            h.update(_sha256_file(p / name).encode())
    return {"path": str(p), "method": "sha256 of contents" if by_content else
            "file names + sizes", "files": len(files), "bytes": total, "sha256": h.hexdigest()}


def input_identity(evaluator: Any) -> dict:
    """Fingerprints of the data an evaluator reads: the files its
    ``input_files()`` names (``{key: path}``, e.g. a results table) and the
    ``data_dir`` of its config."""
    out = {}
    named = getattr(evaluator, "input_files", None)
    for key, path in (named() if callable(named) else {}).items():
        if path:
            out[key] = fingerprint(path)
    record = evaluator_record(evaluator)
    data_dir = (record or {}).get("config", {}).get("data_dir")
    if data_dir:
        out["data_dir"] = fingerprint(data_dir)
    return out


def _differences(recorded: Any, current: Any, prefix: str) -> list[str]:
    if isinstance(recorded, dict) and isinstance(current, dict):
        out = []
        for k in sorted(set(recorded) | set(current)):
            if k == "method" and "sha256" in recorded and "sha256" in current:
                continue
            if k not in recorded:
                continue  # a setting added since the run was made: unknown to it, accepted
            out += _differences(recorded.get(k), current.get(k), f"{prefix}.{k}")
        return out
    if canonical_json(recorded) == canonical_json(current):
        return []
    return [f"{prefix.lstrip('.')} (run: {json.dumps(recorded)}, now: {json.dumps(current)})"]



#: Meta keys of a run's identity (``summary.json`` keeps a copy under ``identity``).
IDENTITY_KEYS = ("version", "created", "space", "search", "child", "inputs", "devices")


def recorded_identity(store) -> dict:
    """The identity meta keys a store holds (absent keys left out)."""
    return {k: v for k in IDENTITY_KEYS if (v := store.get_meta(k)) is not None}


def _identity_from_summary(store, run_dir: Path) -> dict | None:
    """The identity ``summary.json`` kept, for a store whose meta table lost
    it (None: a new run). A store with rows and no copy to restore from is
    refused."""
    rows = store.row_stats()[0]
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    saved = summary.get("identity") if isinstance(summary, dict) else None
    if isinstance(saved, dict) and isinstance(saved.get("space"), dict):
        return saved
    if rows:
        raise RunDirError(
            f"{Path(run_dir) / 'trials.sqlite'} holds {rows} children but no record of the "
            "search's settings (its meta table was emptied), and summary.json has no copy: "
            "put back a good copy of trials.sqlite, or use a new --run_dir.")
    return None


def check_identity(store, run_dir: Path, space, config, evaluator,
                   devices_per_child: int | None = None) -> None:
    """Records the identity of a new run, or checks a resumed one against
    it; a meta table emptied by hand is checked against, and restored from,
    the copy in ``summary.json``.

    Raises:
        RunDirError: another identity (each difference named), or a store
            with children and no identity anywhere.
    """
    now = {"space": space.config(), "search": search_identity(config)}
    if evaluator is not None:
        now["child"] = child_identity(evaluator)
        now["inputs"] = input_identity(evaluator)
        if devices_per_child is not None and now["child"] is not None:
            # A child's batch is split over its devices (nas_tf.evaluator.make_strategy).
            now["devices"] = {"per_child": int(devices_per_child)}
    restored = None
    if store.get_meta("space") is None:
        restored = _identity_from_summary(store, run_dir)
        if restored is None:
            store.set_meta(version=FORMAT_VERSION, created=time.time(), **now)
            return
    recorded = {k: store.get_meta(k) if restored is None else restored.get(k) for k in now}
    if space.as_recorded(recorded["space"]) is None:  # an older format of it resumes
        raise RunDirError(
            f"--run_dir {run_dir} holds a search of another space "
            f"({canonical_json(recorded['space'])}; this one is {canonical_json(now['space'])}). "
            "Use a new --run_dir, or the flags that run was started with.")
    diffs = []
    for key in now:
        if recorded[key] is None and key in _LATER_KEYS:
            continue  # written by an earlier version: unknown, accepted and recorded below
        diffs += _differences(recorded[key], now[key], "" if key == "search" else key)
    if diffs:
        raise RunDirError(
            f"--run_dir {run_dir} holds a search with other settings, so their rewards would "
            f"mix (differs in: {'; '.join(diffs)}). Use a new --run_dir, or the settings that "
            "run was started with.")
    unknown = {k: now[k] for k in _LATER_KEYS if k in now and recorded[k] is None}
    if restored is not None:  # the checked copy goes back into the meta table
        store.set_meta(**{k: v for k, v in restored.items() if k in IDENTITY_KEYS})
    if unknown:
        store.set_meta(**unknown)
