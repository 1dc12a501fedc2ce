"""Where the TensorBoard runs of children go when there are thousands of them
(see :class:`nas_tf.logger.TensorBoardLogger`): ``children/<id>`` for the kept
ones, ``children_archive/<id>`` (event files renamed so that TensorBoard does
not read them) for the others, and the lists of kept children in
``children_archive/retained.json``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

_log = logging.getLogger("nas_tf.logger")


#: The run with every child's metrics at step = child id.
ALL_CHILDREN_RUN = "all_children"
#: Runs of the kept children (``children/<id>``), and where archived ones go.
CHILDREN_DIR = "children"
ARCHIVE_DIR = "children_archive"
RETAINED_FILE = "retained.json"
_LIVE, _ARCHIVED = "tfevents", "tfarchive"


def _read_retained(path: str) -> dict:
    """``retained.json`` as written by :meth:`TensorBoardLogger._retain`; a
    damaged one is moved aside (the children it listed keep their runs where
    they are) and the lists start empty."""
    if not os.path.exists(path):
        return {"best": [], "recent": []}
    try:
        with open(path) as f:
            state = json.load(f)
        best = [[float(r), int(i)] for r, i in state["best"]]
        recent = [int(i) for i in state["recent"]]
        return {"best": best, "recent": recent}
    except (OSError, ValueError, TypeError, KeyError) as e:
        aside = f"{path}.damaged-{int(time.time())}"
        try:
            os.replace(path, aside)
        except OSError:
            pass
        _log.warning("%s was damaged (%s: %s); moved it to %s and started the lists of kept "
                     "TensorBoard runs afresh.", path, type(e).__name__, str(e)[:80], aside)
        return {"best": [], "recent": []}


def _move_child(src: str, dst: str, old: str, new: str) -> bool:
    if not os.path.isdir(src):
        return False
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.replace(src, dst)
    for root, _, files in os.walk(dst):
        for name in files:
            if old in name:
                os.replace(os.path.join(root, name), os.path.join(root, name.replace(old, new)))
    return True


def _archive_child(log_dir: str, child_id: int) -> bool:
    return _move_child(os.path.join(log_dir, CHILDREN_DIR, str(child_id)),
                       os.path.join(log_dir, ARCHIVE_DIR, str(child_id)), _LIVE, _ARCHIVED)


def restore_child_runs(log_dir: str, child_ids) -> list[int]:
    """Brings archived children back into TensorBoard (``children/<id>``).

    Args:
        log_dir: The run directory.
        child_ids: The children to restore (ids from the store or the report).

    Returns:
        The ids that were restored (the others were not archived).

    Example:

    >>> restore_child_runs("runs/cnn", [17, 256])  # doctest: +SKIP
    [17, 256]
    """
    return [int(i) for i in child_ids if _move_child(
        os.path.join(log_dir, ARCHIVE_DIR, str(int(i))),
        os.path.join(log_dir, CHILDREN_DIR, str(int(i))), _ARCHIVED, _LIVE)]
