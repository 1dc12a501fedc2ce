"""The run directory's files agree: the trial store is not behind its
checkpoint or its summary, the evaluator's own files can be resumed, and
``summary.json`` is never rewritten poorer than it was (see
:mod:`nas_tf.rundir` for the files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nas_tf.errors import RunDirError
from nas_tf.rundir import (
    STORE_FILE,
    SUMMARY_FILE,
    describe_os_error,
    read_summary,
    write_json_atomic,
)
from nas_tf.store import TrialStore


def stored_wall_time(store: TrialStore, run_dir: str | os.PathLike) -> tuple[float, str | None]:
    """The search's wall time so far (meta ``wall_time_s``), and a note when
    that value was damaged and was taken from ``summary.json`` instead."""
    value = store.get_meta("wall_time_s", 0.0)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 \
            and value != float("inf"):
        return float(value), None
    backup = read_summary(run_dir).get("wall_time_s")
    ok = isinstance(backup, (int, float)) and not isinstance(backup, bool) and 0 <= backup < 1e12
    fallback = float(backup) if ok else 0.0
    return fallback, (f"The stored wall time of the search ({str(value)[:40]!r}) was not a "
                      f"number; counting from {fallback:.0f} s "
                      f"({'summary.json' if ok else 'zero'}).")


def check_store_not_behind(store: TrialStore, run_dir: str | os.PathLike,
                           loop_state: dict | None, summary: dict) -> None:
    """Refuses a store older than the checkpoint or the summary of its run.

    Raises:
        RunDirError: rows the checkpoint or the summary counted are missing.
    """
    finished = store.num_finished()
    rows, max_id = store.row_stats()
    problems = []
    state = loop_state or {}
    want_max = int(state.get("max_trial_id", 0) or 0)
    if want_max:
        have = store.rows_up_to(want_max)
        if have < want_max:
            problems.append(
                f"the checkpoint counts children 1..{want_max} but {want_max - have} of them "
                f"are missing (the store holds {rows} rows, ids up to {max_id})")
    for source, key, value in (("checkpoint", "store_finished", state.get("store_finished")),
                               (SUMMARY_FILE, "children_trained", summary.get("children_trained"))):
        if isinstance(value, int) and value > finished:
            problems.append(f"{source} records {value} trained children but the store holds "
                            f"{finished} ({value - finished} missing)")
    if problems:
        raise RunDirError(
            f"{Path(run_dir) / STORE_FILE} is behind its run: {'; '.join(problems)}. It was "
            "truncated, restored from an older copy, or copied without trials.sqlite-wal. Put "
            "the complete trials.sqlite (with its -wal file) back, or use a new --run_dir; "
            "nothing was changed.")


def check_resume(store: TrialStore, run_dir: str | os.PathLike, loop_state: dict | None,
                 evaluator: Any = None) -> None:
    """Everything a resume checks before the first child: the store is not
    behind the checkpoint or the summary, and the evaluator's own state in the
    run directory (``check_run_files``: the shared weights of --sharing) can
    be used.

    Raises:
        RunDirError: what is damaged, with its fix.
    """
    check_store_not_behind(store, run_dir, loop_state, read_summary(run_dir))
    check_files = getattr(evaluator, "check_run_files", None)
    if callable(check_files):
        check_files(store.num_finished())


class SummaryWriter:
    """Writes ``summary.json``, never with fewer children or a worse best than before.

    Args:
        run_dir: The run directory.
        store: Its trial store, already checked not to be behind the summary
            (:func:`check_store_not_behind`): the summary's best reward then
            counts only as far as a stored child holds it (a summary edited by
            hand, or by hand-edited rewards, is corrected from the store).
    """

    def __init__(self, run_dir: str | os.PathLike, store: TrialStore | None = None):
        self.path = Path(run_dir) / SUMMARY_FILE
        old = read_summary(run_dir)
        self.floor_trained = old.get("children_trained") if isinstance(
            old.get("children_trained"), int) else 0
        best = old.get("best_reward")
        self.floor_best = best if isinstance(best, (int, float)) else None
        if store is not None and self.floor_best is not None:
            top = store.best(1)
            stored = top[0].reward if top else None
            self.floor_best = None if stored is None else min(self.floor_best, stored)

    def write(self, summary: dict, fsync: bool = True) -> dict:
        """Writes ``summary`` (write-then-rename; ``fsync``: on disk first,
        which costs a few ms on a busy disk: the loop asks for it only with
        a checkpoint and at the end, the file being derived from the store)."""
        trained, best = summary.get("children_trained", 0), summary.get("best_reward")
        if trained < self.floor_trained or (
                self.floor_best is not None and (best is None or best < self.floor_best)):
            raise RunDirError(
                f"Refusing to overwrite {self.path} (children trained {self.floor_trained}, best "
                f"{self.floor_best}) with a poorer one ({trained}, {best}): the trial store lost "
                "results. Put the complete trials.sqlite back, or use a new --run_dir.")
        try:
            write_json_atomic(self.path, summary, fsync=fsync)
        except OSError as e:
            raise RunDirError(describe_os_error(e, str(self.path))) from None
        self.floor_trained, self.floor_best = trained, best
        return summary
