"""The trial store: one SQLite database per run directory.

One row per child (a unique spec): its JSON, hash, tokens, status
(pending / running / done / failed), reward, metrics, timings and error
text. Every write is a transaction, so a search killed at any moment leaves
a consistent file; re-opening it resumes (rows left ``running`` go back to
``pending`` and are trained again).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sqlite3
import time
from typing import Any, Iterable

from nas_tf.errors import RunDirError

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATUSES = (PENDING, RUNNING, DONE, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    tokens TEXT NOT NULL,
    status TEXT NOT NULL,
    reward REAL,
    metrics TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    round INTEGER,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    duration REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclasses.dataclass(frozen=True)
class Trial:
    """One child as stored (a plain record)."""

    id: int
    hash: str
    spec: dict
    tokens: tuple[int, ...]
    status: str
    reward: float | None
    metrics: dict
    error: str | None
    attempts: int
    round: int | None
    created: float
    started: float | None
    finished: float | None
    duration: float | None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class DamagedRow(ValueError):
    """A row whose values are not what the store writes."""


def _row_to_trial(row) -> Trial:
    try:
        spec, tokens = json.loads(row[2]), tuple(int(t) for t in json.loads(row[3]))
        metrics = json.loads(row[6]) if row[6] else {}
        if not isinstance(metrics, dict):
            raise ValueError("metrics are not a JSON object")
    except (TypeError, ValueError) as e:
        raise DamagedRow(f"child {row[0]} has unreadable values ({e})") from None
    reward = row[5]
    if reward is not None and (isinstance(reward, (str, bytes)) or not math.isfinite(reward)):
        raise DamagedRow(f"child {row[0]} has the reward {reward!r}, not a number")
    if row[4] == DONE and reward is None:
        raise DamagedRow(f"child {row[0]} is done but has no reward (NULL)")
    if row[4] not in STATUSES:
        raise DamagedRow(f"child {row[0]} has the unknown status {row[4]!r}")
    return Trial(
        id=row[0], hash=row[1], spec=spec, tokens=tokens,
        status=row[4], reward=reward, metrics=metrics,
        error=row[7], attempts=row[8], round=row[9], created=row[10], started=row[11],
        finished=row[12], duration=row[13],
    )


def _store_error(path: str, e: Exception) -> RunDirError:
    """One line for an error met while using the store."""
    text = str(e)
    if isinstance(e, DamagedRow):
        return RunDirError(f"{path} is damaged: {text}. It was edited or corrupted; put back a "
                           "good copy of trials.sqlite, or use a new --run_dir.")
    if "disk is full" in text or "readonly" in text or "unable to open" in text or \
            "disk I/O error" in text:
        from nas_tf.rundir import describe_os_error

        return RunDirError(describe_os_error(e, path))
    return RunDirError(f"{path} is damaged ({text}): put back a good copy of trials.sqlite "
                       "(with its -wal file), or use a new --run_dir.")


def _guarded(method):
    """Turns SQLite errors and damaged rows of a store method into one RunDirError."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, DamagedRow) as e:
            raise _store_error(self.path, e) from None

    return wrapper


_COLUMNS = ("id, hash, spec, tokens, status, reward, metrics, error, attempts, round, "
            "created, started, finished, duration")
_COLUMN_NAMES = tuple(c.strip() for c in _COLUMNS.split(","))


class TrialStore:
    """SQLite trial store.

    Args:
        path: The database file (created if absent).
        readonly: Open without writing (reports on a running search).

    Raises:
        RunDirError: the file is not a nas_tf trial store.
    """

    def __init__(self, path: str, readonly: bool = False):
        self.path = str(path)
        self._db = None
        self._copy_dir: str | None = None  # a copy read instead (see _connect_readonly)
        if readonly and not os.path.isfile(self.path):
            raise RunDirError(f"{self.path} is not a readable nas_tf trial store (no such file). "
                              "Pass the directory of a search.")
        try:
            if readonly:
                self._db = self._connect_readonly()
            else:
                self._db = sqlite3.connect(self.path, timeout=30)
            self._check_schema()  # before any write: another program's file is left untouched
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._db.commit()
            self._db.execute("SELECT count(*) FROM trials").fetchone()
        except sqlite3.Error as e:
            if self._db is not None:
                self._db.close()
            if isinstance(e, sqlite3.OperationalError) and not (
                    "malformed" in str(e) or "not a database" in str(e)):
                raise _store_error(self.path, e) from None  # disk full, permissions
            raise RunDirError(
                f"{self.path} is not a readable nas_tf trial store ({e}). Use a new --run_dir, "
                "or move the damaged file away to start over."
            ) from None

    def _connect_readonly(self) -> sqlite3.Connection:
        """A read-only connection that sees every committed row.

        In a directory this process cannot write (a run on a read-only mount,
        or another user's) SQLite cannot make its -shm file, so it cannot
        read the write-ahead log in place: the main file is read as it is
        (``immutable=1``) when there is no log to read, else the file and its
        log are copied to a temporary directory and read there (the log holds
        the rows committed since the last update).
        """
        folder = os.path.dirname(os.path.abspath(self.path))
        if os.access(folder, os.W_OK):
            return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        wal = self.path + "-wal"
        if not (os.path.isfile(wal) and os.path.getsize(wal) > 0):
            return sqlite3.connect(f"file:{self.path}?immutable=1", uri=True, timeout=30)
        import shutil
        import tempfile

        self._copy_dir = tempfile.mkdtemp(prefix="nas_tf_store_")
        copy = os.path.join(self._copy_dir, os.path.basename(self.path))
        try:
            shutil.copyfile(self.path, copy)
            shutil.copyfile(wal, copy + "-wal")
        except OSError as e:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            raise RunDirError(f"cannot read {wal} ({e.strerror or e}) to see the newest rows "
                              f"of {self.path}: fix its permissions.") from None
        return sqlite3.connect(f"file:{copy}?mode=ro", uri=True, timeout=30)

    def _check_schema(self) -> None:
        """Raises sqlite3.DatabaseError unless the file is empty or has our trials table."""
        tables = {r[0] for r in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return
        if "trials" not in tables:
            raise sqlite3.DatabaseError(
                f"a SQLite database of another program, with tables {', '.join(sorted(tables))}")
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(trials)")}
        missing = [c for c in _COLUMN_NAMES if c not in columns]
        if missing:
            raise sqlite3.DatabaseError(
                f"its trials table lacks the columns {', '.join(missing)}")

    def close(self) -> None:
        """Closes the database, then releases the run directory's lock if it holds one."""
        try:
            self._db.close()
        finally:
            copy_dir, self._copy_dir = getattr(self, "_copy_dir", None), None
            if copy_dir:
                import shutil

                shutil.rmtree(copy_dir, ignore_errors=True)
            lock, self.lock = getattr(self, "lock", None), None
            if lock is not None:
                lock.close()

    def __enter__(self) -> "TrialStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    @_guarded
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if not row:
            return default
        try:
            return json.loads(row[0])
        except (TypeError, ValueError):
            raise DamagedRow(f"the meta value {key!r} is not JSON ({str(row[0])[:60]!r})") from None

    @_guarded
    def set_meta(self, **items: Any) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [(k, json.dumps(v, sort_keys=True)) for k, v in items.items()],
            )

    # ---------------------------------------------------------------- trials
    @_guarded
    def get(self, hash_: str) -> Trial | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM trials WHERE hash=?", (hash_,)).fetchone()
        return _row_to_trial(row) if row else None

    @_guarded
    def get_id(self, trial_id: int) -> Trial | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM trials WHERE id=?", (trial_id,)).fetchone()
        return _row_to_trial(row) if row else None

    @_guarded
    def add(self, hash_: str, spec_json: dict, tokens: Iterable[int],
            round_: int | None = None) -> Trial:
        """Adds a pending child, or returns the existing row with that hash."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO trials(hash, spec, tokens, status, round, created) "
                "VALUES(?, ?, ?, ?, ?, ?)",
                (hash_, json.dumps(spec_json, sort_keys=True),
                 json.dumps([int(t) for t in tokens]), PENDING, round_, time.time()),
            )
        return self.get(hash_)

    @_guarded
    def mark_running(self, trial_id: int) -> None:
        with self._db:
            self._db.execute(
                "UPDATE trials SET status=?, started=?, attempts=attempts+1 WHERE id=?",
                (RUNNING, time.time(), trial_id),
            )

    @_guarded
    def mark_done(self, trial_id: int, reward: float, metrics: dict | None = None,
                  duration: float | None = None) -> None:
        with self._db:
            self._db.execute(
                "UPDATE trials SET status=?, reward=?, metrics=?, error=NULL, finished=?, "
                "duration=? WHERE id=?",
                (DONE, float(reward), json.dumps(metrics or {}, sort_keys=True, default=float),
                 time.time(), duration, trial_id),
            )

    @_guarded
    def mark_failed(self, trial_id: int, error: str, reward: float | None = None,
                    duration: float | None = None) -> None:
        with self._db:
            self._db.execute(
                "UPDATE trials SET status=?, reward=?, error=?, finished=?, duration=? WHERE id=?",
                (FAILED, reward, error, time.time(), duration, trial_id),
            )

    @_guarded
    def mark_pending(self, trial_id: int) -> None:
        with self._db:
            self._db.execute("UPDATE trials SET status=? WHERE id=?", (PENDING, trial_id))

    @_guarded
    def requeue_running(self) -> int:
        """Sets rows left ``running`` by a dead search back to ``pending``."""
        with self._db:
            cur = self._db.execute("UPDATE trials SET status=? WHERE status=?", (PENDING, RUNNING))
        return cur.rowcount

    # --------------------------------------------------------------- queries
    @_guarded
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for status, n in self._db.execute("SELECT status, count(*) FROM trials GROUP BY status"):
            out[status] = n
        return out

    @_guarded
    def row_stats(self) -> tuple[int, int]:
        """(number of rows, largest id)."""
        n, m = self._db.execute("SELECT count(*), coalesce(max(id), 0) FROM trials").fetchone()
        return int(n), int(m)

    @_guarded
    def rows_up_to(self, trial_id: int) -> int:
        """Number of rows with an id <= ``trial_id``."""
        return int(self._db.execute("SELECT count(*) FROM trials WHERE id<=?",
                                    (int(trial_id),)).fetchone()[0])

    @_guarded
    def flush_wal(self) -> None:
        """Copies the write-ahead log into the main file (PASSIVE: never waits
        for readers), so the main file alone holds every committed row."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def num_finished(self) -> int:
        """Children trained (done or failed): the budget counts these."""
        c = self.counts()
        return c[DONE] + c[FAILED]

    @_guarded
    def trials(self, status: str | None = None) -> list[Trial]:
        if status:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM trials WHERE status=? ORDER BY id", (status,))
        else:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM trials ORDER BY id")
        return [_row_to_trial(r) for r in rows]

    @_guarded
    def best(self, k: int = 1) -> list[Trial]:
        rows = self._db.execute(
            # A done row without a reward (damaged) sorts first, so it is reported
            # (DamagedRow), never passed over for the next best.
            f"SELECT {_COLUMNS} FROM trials WHERE status=? "
            "ORDER BY reward IS NULL DESC, reward DESC, id ASC LIMIT ?",
            (DONE, int(k)),
        )
        return [_row_to_trial(r) for r in rows]

    @_guarded
    def common_errors(self, k: int = 5) -> list[tuple[str, int]]:
        rows = self._db.execute(
            "SELECT error, count(*) AS n FROM trials WHERE status=? GROUP BY error "
            "ORDER BY n DESC LIMIT ?", (FAILED, int(k)))
        return [(e or "", n) for e, n in rows]
