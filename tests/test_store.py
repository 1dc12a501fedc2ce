"""The SQLite trial store of a run directory."""

from __future__ import annotations

import os
import sqlite3

import pytest

from nas_tf.errors import RunDirError
from nas_tf.store import DONE, FAILED, PENDING, RUNNING, TrialStore


@pytest.fixture
def store(tmp_path):
    s = TrialStore(str(tmp_path / "trials.sqlite"))
    yield s
    s.close()


def test_add_is_idempotent_by_hash(store):
    a = store.add("h1", {"x": 1}, (1, 2), round_=1)
    assert (a.status, a.spec, a.tokens, a.round, a.attempts) == (PENDING, {"x": 1}, (1, 2), 1, 0)
    again = store.add("h1", {"x": "ignored"}, (9,), round_=5)
    assert again == a
    b = store.add("h2", {"x": 2}, [3])
    assert b.id != a.id
    assert store.counts() == {PENDING: 2, RUNNING: 0, DONE: 0, FAILED: 0}
    assert store.get("nope") is None and store.get_id(999) is None
    assert store.get_id(b.id).hash == "h2"


def test_status_transitions_and_counts(store):
    ids = [store.add(f"h{i}", {"i": i}, (i,)).id for i in range(5)]
    for i in ids:
        store.mark_running(i)
    assert store.counts()[RUNNING] == 5
    store.mark_done(ids[0], 0.5, {"acc": 0.5, "params": 10}, duration=1.5)
    store.mark_done(ids[1], 0.9, {"acc": 0.9})
    store.mark_failed(ids[2], "RuntimeError: boom", reward=0.0, duration=0.1)
    store.mark_pending(ids[3])
    t0 = store.get_id(ids[0])
    assert (t0.status, t0.reward, t0.metrics, t0.duration, t0.attempts) == (
        DONE, 0.5, {"acc": 0.5, "params": 10}, 1.5, 1)
    assert t0.started is not None and t0.finished >= t0.started
    t2 = store.get_id(ids[2])
    assert (t2.status, t2.error, t2.reward) == (FAILED, "RuntimeError: boom", 0.0)
    assert store.counts() == {PENDING: 1, RUNNING: 1, DONE: 2, FAILED: 1}
    assert store.num_finished() == 3
    assert [t.id for t in store.trials(DONE)] == ids[:2]
    assert [t.id for t in store.trials()] == ids
    # A dead search's running rows go back to pending, and count another attempt when rerun.
    assert store.requeue_running() == 1
    assert store.counts() == {PENDING: 2, RUNNING: 0, DONE: 2, FAILED: 1}
    store.mark_running(ids[4])
    assert store.get_id(ids[4]).attempts == 2
    assert store.common_errors() == [("RuntimeError: boom", 1)]
    assert store.get_id(ids[0]).to_json()["metrics"] == {"acc": 0.5, "params": 10}


def test_best_orders_done_children_by_reward(store):
    rewards = [0.3, 0.9, 0.1, 0.9, 0.5]
    ids = []
    for i, r in enumerate(rewards):
        t = store.add(f"h{i}", {"i": i}, (i,))
        store.mark_done(t.id, r)
        ids.append(t.id)
    f = store.add("hf", {"i": -1}, (9,))
    store.mark_failed(f.id, "err", reward=5.0)  # failed: never "best", whatever its reward
    best = store.best(3)
    assert [t.reward for t in best] == [0.9, 0.9, 0.5]
    assert [t.id for t in best[:2]] == [ids[1], ids[3]]  # ties: the earlier child first
    assert store.best(1)[0].id == ids[1]


def test_meta_round_trip(store):
    assert store.get_meta("space") is None and store.get_meta("x", 3) == 3
    store.set_meta(space={"name": "toy", "n": [1, 2]}, duplicates=4)
    store.set_meta(duplicates=5)
    assert store.get_meta("space") == {"name": "toy", "n": [1, 2]}
    assert store.get_meta("duplicates") == 5


def test_reopen_keeps_everything_and_readonly(tmp_path):
    path = str(tmp_path / "t.sqlite")
    s = TrialStore(path)
    t = s.add("h", {"a": 1}, (0,))
    s.mark_done(t.id, 0.25)
    s.set_meta(k="v")
    s.close()
    ro = TrialStore(path, readonly=True)
    assert ro.get("h").reward == 0.25 and ro.get_meta("k") == "v"
    with pytest.raises(RunDirError, match="read-only"):  # one line, not "damaged"
        ro.add("h2", {}, ())
    ro.close()


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"\x00\xff" * 3000,
                                     b"SQLite format 3\x00" + b"\x01" * 4000])
def test_corrupt_file_is_a_run_dir_error(tmp_path, content):
    path = tmp_path / "trials.sqlite"
    path.write_bytes(content)
    with pytest.raises(RunDirError, match="not a readable nas_tf trial store"):
        TrialStore(str(path))
    assert path.read_bytes() == content  # nothing overwritten


@pytest.mark.parametrize("schema, words", [
    ("CREATE TABLE trials (foo TEXT)", "lacks the columns id, hash"),
    ("CREATE TABLE people (foo TEXT)", "another program, with tables people"),
])
def test_sqlite_file_of_another_program(tmp_path, schema, words):
    """A SQLite file of another schema is refused on open with one RunDirError
    (not a raw sqlite3 error on the first write) and left byte-for-byte as it was."""
    path = tmp_path / "trials.sqlite"
    db = sqlite3.connect(path)
    db.execute(schema)
    db.execute(f"INSERT INTO {schema.split()[2]} VALUES ('keep me')")
    db.commit()
    db.close()
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(RunDirError, match=words):
            TrialStore(str(path), readonly=readonly)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["trials.sqlite"]


def test_readonly_open_of_a_missing_file(tmp_path):
    with pytest.raises(RunDirError, match="not a readable nas_tf trial store"):
        TrialStore(str(tmp_path / "absent.sqlite"), readonly=True)
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_reader_without_write_access_sees_the_rows_in_the_wal(tmp_path, monkeypatch):
    """(Simulated: the tests may run as root, who can write anywhere.) SQLite cannot
    read the write-ahead log in place without its -shm file: the reader copies the
    store and its log instead of reading the main file alone (immutable=1)."""
    import nas_tf.store as store_mod

    path = str(tmp_path / "trials.sqlite")
    writer = TrialStore(path)
    for i in range(50):
        t = writer.add(f"h{i}", {"i": i}, [i])
        writer.mark_done(t.id, 0.5)
    writer.flush_wal()
    t = writer.add("h50", {"i": 50}, [50])
    writer.mark_done(t.id, 0.9)  # committed into the log only
    assert os.path.getsize(path + "-wal") > 0
    real_access = os.access
    monkeypatch.setattr(store_mod.os, "access",
                        lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    with TrialStore(path, readonly=True) as reader:
        assert reader.counts()[DONE] == 51 and reader.best(1)[0].reward == 0.9
        copy_dir = reader._copy_dir
    assert copy_dir and not os.path.exists(copy_dir)  # removed on close
    writer.flush_wal()
    writer.close()
    with TrialStore(path, readonly=True) as reader:  # no log left: the main file as it is
        assert reader.counts()[DONE] == 51 and reader._copy_dir is None
