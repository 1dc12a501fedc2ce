"""The run directory: one search's only record, as one concept.

Files (names are the constants below):

* ``trials.sqlite`` — the trial store (:mod:`nas_tf.store`); its main file
  is made self-sufficient (the WAL copied into it) at every controller
  update, so a copy of it alone is never older than ``summary.json``;
* ``checkpoints/`` — the algorithm's and the loop's state
  (:class:`nas_tf.checkpoint.Checkpointer`);
* ``summary.json`` — rewritten (write-then-rename) after every update, never
  with fewer children or a worse best reward than it held
  (:class:`nas_tf.runstate.SummaryWriter`); it keeps a copy of the run's
  identity;
* ``results/<id>.json`` — a child's result, written by its worker (not by
  the inline executor, whose outcomes are recorded as they return);
* ``run.lock`` — held (``flock``, as is the directory itself) by the one
  search writing the directory; it names that process. The kernel drops
  the lock when the process dies, even by SIGKILL, so a stale file never
  blocks the next run. Readers
  (``report``, ``export``, :func:`nas_tf.open_run`) never take it.

The identity of a search (meta keys ``space``, ``search``, ``child``,
``inputs``) covers everything that changes a reward: the space, the
algorithm's settings, every child-training setting and the data (path and a
fingerprint of its contents). Budgets, the executor and worker counts are
not part of it, so they may change on resume. :mod:`nas_tf.runstate` checks
that the files agree before a resume.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from nas_tf.errors import RunDirError
from nas_tf.identity import check_identity, evaluator_record  # noqa: F401 - re-exported
from nas_tf.store import Trial, TrialStore

STORE_FILE = "trials.sqlite"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
RESULTS_DIR = "results"
LOCK_FILE = "run.lock"


# ----------------------------------------------------------------------------
# Atomic writes and one-line environment errors.
# ----------------------------------------------------------------------------


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2,
                      default=str, fsync: bool = True) -> None:
    """Writes JSON through a temporary file of this process and a rename
    (``fsync``: on disk before the rename, so it survives the machine, not
    only the process)."""
    path = str(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent, sort_keys=True, default=default)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def describe_os_error(e: BaseException, where: str) -> str:
    """One line for an error of the machine (disk full, permissions), naming the fix.

    Such errors are never the fault of a file's content, so the line never
    tells the user to move a file away.
    """
    code = getattr(e, "errno", None)
    # TensorFlow's errors start with the op's internal name ("{{function_node
    # __wrapped__CreateSummaryFileWriter_device_/job:localhost/...}} "): drop it.
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", str(e))
    if code in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in text or "No space" in text:
        return (f"the disk holding {where} is full ({text.splitlines()[0][:160]}). Free space "
                "and run the same command again: nothing recorded is lost.")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "readonly database" in text \
            or "Read-only" in text or "Permission denied" in text:
        return (f"cannot write {where} ({text.splitlines()[0][:160]}): it is read-only or not "
                "yours. Fix its permissions, or pass a writable --run_dir.")
    if code == errno.ENOTDIR:
        return (f"cannot create {where}: a part of that path is a file, not a directory. Choose "
                "another path.")
    if code == errno.EISDIR:
        return (f"{where} is a directory where a file belongs: move it away, or choose another "
                "path.")
    if code == errno.ENOENT:
        return (f"cannot write {where}: a folder on that path does not exist (or the file "
                "system does not allow new files there). Create it, or choose another path.")
    return f"{where}: {type(e).__name__}: {text.splitlines()[0][:200] if text else ''}"


#: Error texts of a child that mean the machine failed, not the architecture.
_ENVIRONMENT_MARKERS = ("DataError:", "ModuleNotFoundError:", "ImportError:",
                        "FileNotFoundError:", "PermissionError:", "No space left on device",
                        "[Errno 28]", "Read-only file system", "database or disk is full")


def is_environment_error(error: str | None) -> bool:
    """Whether a child's error text is the environment's (missing data, a full
    disk, a broken install) rather than its architecture's."""
    return bool(error) and any(m in error for m in _ENVIRONMENT_MARKERS)


# ----------------------------------------------------------------------------
# The lock.
# ----------------------------------------------------------------------------


class RunLock:
    """An exclusive ``flock`` on ``run_dir`` and ``run_dir/run.lock`` (released
    by close or death; the directory's lock holds when run.lock is deleted).

    Raises:
        RunDirError: another live process holds it (named in the message), or
            the directory is not writable.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd = self._dir_fd = None
        try:
            # The directory itself is locked too: deleting run.lock by hand
            # (a new file, a new lock) must not let a second search in.
            self._dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            self.close()
            raise RunDirError(describe_os_error(e, str(self.path))) from None
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._holder()
            self.close()
            raise RunDirError(
                f"--run_dir {run_dir} is in use by another search ({holder}). Wait for it to "
                "finish or stop it (kill -TERM <pid>), or use another --run_dir; report and "
                "export can read it meanwhile.") from None

    def write_note(self) -> None:
        """Names this process in the lock file (for the message of a second search)."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(me).encode(), 0)
        except OSError:
            pass  # the lock holds without its note

    def _holder(self) -> str:
        try:
            with open(self.path) as f:
                who = json.loads(f.read() or "{}")
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(who["since"])))
            return f"pid {int(who['pid'])} on host {who['host']}, since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that has not written its pid yet"

    def close(self) -> None:
        for name in ("_fd", "_dir_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)  # closing drops the flock
                setattr(self, name, None)


# ----------------------------------------------------------------------------
# Opening.
# ----------------------------------------------------------------------------


def check_path_text(path: str | os.PathLike, flag: str = "--run_dir") -> None:
    """Refuses a path that is not UTF-8 text (bytes the shell passed that
    SQLite, TensorBoard and the reports cannot write).

    Raises:
        RunDirError: it holds undecodable bytes.
    """
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        raise RunDirError(f"{flag} is not UTF-8 text: use a name of UTF-8 characters. "
                          f"Received: {flag.lstrip('-')}={os.fsdecode(path)!a}") from None


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / STORE_FILE).is_file()


def open_store(run_dir: str | os.PathLike) -> TrialStore:
    """Opens the trial store of a run directory read-only, without the lock
    (a running search, or a finished one in a read-only directory).

    Raises:
        RunDirError: the directory does not exist, or holds no nas_tf search.
    """
    check_path_text(run_dir)
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"--run_dir {run_dir} does not exist. Pass the directory of a search "
                          "(the --run_dir given to nas_tf.run).")
    if not run_dir.is_dir():
        raise RunDirError(f"--run_dir {run_dir} is a file, not a run directory. Pass the directory "
                          "of a search.")
    path = run_dir / STORE_FILE
    if not path.is_file():
        raise RunDirError(f"--run_dir {run_dir} is not a nas_tf run (no {STORE_FILE} in it). Pass "
                          "the directory of a search.")
    store = TrialStore(str(path), readonly=True)
    if store.get_meta("space") is None:
        store.close()
        raise RunDirError(f"{path} records no search space; it is not a nas_tf run. Pass the "
                          "directory of a search.")
    return store


def read_trials(run_dir: str | os.PathLike) -> list[Trial]:
    """Every child stored in a run directory, in id order (opened read-only)."""
    with TrialStore(str(Path(run_dir) / STORE_FILE), readonly=True) as store:
        return store.trials()


def recorded_search(run_dir: str | os.PathLike | None) -> dict | None:
    """The search identity a run directory recorded (meta ``search``), or None
    (no run there, or it cannot be read: the loop reports that later)."""
    if not run_dir or not is_run_dir(run_dir):
        return None
    try:
        with TrialStore(str(Path(run_dir) / STORE_FILE), readonly=True) as store:
            return store.get_meta("search")
    except Exception:  # noqa: BLE001 - a broken run dir is reported by the loop, in one line
        return None


def read_summary(run_dir: str | os.PathLike) -> dict:
    """``summary.json`` ({} when absent, unreadable or not a JSON object)."""
    try:
        with open(Path(run_dir) / SUMMARY_FILE, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


#: Folders a search keeps in its run directory.
_FOLDERS = (CHECKPOINT_DIR, RESULTS_DIR, "children", "children_archive", "all_children",
            "report", "shared")


def _check_leftovers(run_dir: Path, store_path: Path) -> None:
    """Refuses a directory whose store is gone or empty but whose checkpoints
    or summary say a search ran there (a truncated or lost trial store)."""
    empty = not store_path.exists() or store_path.stat().st_size == 0
    ckpts = run_dir / CHECKPOINT_DIR
    traces = [n for n, ok in ((CHECKPOINT_DIR, ckpts.is_dir() and any(ckpts.iterdir())),
                              (SUMMARY_FILE, (run_dir / SUMMARY_FILE).exists())) if ok]
    if empty and traces:
        state = "is empty (0 bytes)" if store_path.exists() else "is missing"
        raise RunDirError(
            f"{store_path} {state} but {' and '.join(traces)} of a search are in {run_dir}: the "
            "trial store was lost or truncated. Put the complete trials.sqlite (with its "
            "trials.sqlite-wal, if any) back from a backup, or use a new --run_dir.")


def open_run_dir(run_dir: str | os.PathLike, space, config, evaluator: Any = None,
                 lock: bool = True, devices_per_child: int | None = None) -> TrialStore:
    """Opens (or creates) a run directory for this space, config and evaluator.

    Takes the lock first, then checks the identity; nothing is written into an
    existing directory until both pass. ``devices_per_child`` (the
    executor's) joins the identity of a search whose evaluator records its
    child settings.

    Returns:
        The writable store; it holds the lock (``store.lock``) until closed.

    Raises:
        RunDirError: the directory holds other files, a search of another
            identity (every differing setting is named), a damaged store, is
            in use, or cannot be written.
    """
    check_path_text(run_dir)
    run_dir = Path(run_dir)
    store_path = run_dir / STORE_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run_dir {run_dir} is a file, not a directory. Choose another path.")
    if run_dir.is_dir() and not store_path.exists():
        others = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE)
        if others and not ({CHECKPOINT_DIR, SUMMARY_FILE} & set(others)):
            raise RunDirError(
                f"--run_dir {run_dir} is not empty and holds no nas_tf search "
                f"(found {', '.join(others[:3])}). Choose a new or empty directory.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(describe_os_error(e, str(run_dir))) from None
    held = RunLock(run_dir) if lock else None
    try:
        _check_leftovers(run_dir, store_path)
        for name in _FOLDERS:
            if (run_dir / name).exists() and not (run_dir / name).is_dir():
                raise RunDirError(f"{run_dir / name} is a file where the search keeps a folder: "
                                  "move it away (or put the run's folder back) and run again.")
        if (run_dir / SUMMARY_FILE).exists() and not (run_dir / SUMMARY_FILE).is_file():
            raise RunDirError(f"{run_dir / SUMMARY_FILE} is not a file; move it away (the summary "
                              "is rebuilt from the trial store).")
        store = TrialStore(str(store_path))
        try:
            check_identity(store, run_dir, space, config, evaluator, devices_per_child)
        except BaseException:
            store.close()
            raise
        if held is not None:
            held.write_note()  # only once accepted: a refused search changes no file
        store.lock = held
    except BaseException:
        if held is not None:
            held.close()
        raise
    return store



_RUNSTATE = ("SummaryWriter", "check_resume", "check_store_not_behind", "stored_wall_time")


def __getattr__(name: str):
    """The checks that the files agree live in :mod:`nas_tf.runstate` (which
    imports this module); they are still found here."""
    if name in _RUNSTATE:
        from nas_tf import runstate

        return getattr(runstate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
