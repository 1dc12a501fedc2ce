"""The in-flight scheduler alone, with a fake store (no TensorFlow, no SQLite)."""

import json
import subprocess
import sys

import pytest

from nas_tf.errors import ConfigError
from nas_tf.scheduler import Entry, Known, Scheduler, check_max_in_flight


class FakeStore:
    """Rows by hash: what the loop hands the scheduler as Known and create()."""

    def __init__(self):
        self.rows = {}  # hash -> [id, finished]
        self.created = []

    def known(self, h):
        row = self.rows.get(h)
        return None if row is None else Known(row[0], row[1])

    def creator(self, h):
        def create():
            tid = len(self.rows) + 1
            self.rows[h] = [tid, False]
            self.created.append(h)
            return tid
        return create

    def finish(self, h):
        self.rows[h][1] = True


def make(m=2, w=None, max_children=10, proposal_limit=100, patience=3):
    return Scheduler(max_children=max_children, children_per_update=m,
                     proposal_limit=proposal_limit, patience_rounds=patience,
                     max_in_flight=w or m)


def offer(s, store, h):
    return s.offer((len(h),), h, store.known(h), store.creator(h))


def train(s, store, n):
    """Starts n queued jobs and finishes them in queue order; returns their ids."""
    ids = []
    for _ in range(n):
        e = s.next_job()
        store.rows[e.hash][1] = True
        s.arrive(e.trial_id)
        ids.append(e.trial_id)
    return ids


def test_synchronous_round_trains_m_then_updates_in_proposal_order():
    s, store = make(m=2), FakeStore()
    assert s.room(0) == 2
    a, b = offer(s, store, "a"), offer(s, store, "b")
    assert a.job and b.job and s.room(2) == 0
    assert not s.update_due()
    # b finishes first: the batch is still in proposal order.
    s.queue.rotate(-1)
    train(s, store, 2)
    assert s.update_due()
    batch, staleness = s.take_batch()
    assert [e.hash for e in batch] == ["a", "b"] and staleness == 0.0
    assert s.updates == 1 and s.finished == 2 and s.stale == 0 and not s.out
    assert s.room(2) == 2


def test_duplicate_of_a_training_child_waits_for_it():
    s, store = make(m=2), FakeStore()
    first = offer(s, store, "a")
    second = offer(s, store, "a")
    assert first.job and not second.job and second.trial_id == first.trial_id
    assert s.duplicates == 1 and list(s.queue) == [first.seq]
    train(s, store, 1)
    assert first.arrived == 0 and second.arrived == 1
    assert s.finished == 1  # one unique child for two proposals
    assert store.created == ["a"]


def test_known_architecture_resolves_at_once_and_is_not_trained():
    s, store = make(m=1), FakeStore()
    offer(s, store, "a")
    train(s, store, 1)
    s.take_batch()
    e = offer(s, store, "a")
    assert not e.job and e.arrived is not None and s.duplicates == 1 and not s.queue
    assert s.update_due()
    batch, _ = s.take_batch()
    assert batch == [e]
    # An update that added no child counts towards patience.
    assert s.stale == 1


def test_update_with_fewer_than_m_when_nothing_more_is_coming():
    s, store = make(m=4, max_children=2), FakeStore()
    for h in "abc":
        offer(s, store, h)
    assert store.created == ["a", "b"]  # the third is beyond the budget: dropped
    assert len(s.out) == 2 and s.seq == 3
    train(s, store, 2)
    assert s.update_due()
    batch, _ = s.take_batch()
    assert len(batch) == 2


def test_budgets_end_proposing_with_a_reason():
    s, store = make(m=1, max_children=1), FakeStore()
    offer(s, store, "a")
    assert s.room(1) == 0 and s.proposing  # whole budget in flight: wait
    train(s, store, 1)
    s.take_batch()
    assert s.room(1) == 0 and not s.proposing
    assert s.end_reason == "budget reached: 1 unique children"

    s = make(m=1, proposal_limit=3)
    assert s.room(3) == 0 and s.end_reason.startswith("proposal limit reached: 3 proposals")

    s, store = make(m=1, patience=2), FakeStore()
    offer(s, store, "a")
    train(s, store, 1)
    s.take_batch()
    for _ in range(2):
        assert s.room(1) == 1
        offer(s, store, "a")
        s.take_batch()
    assert s.room(3) == 0 and s.end_reason.startswith("converged: 2 updates in a row")
    assert s.room(0) == 0  # ended for good


def test_w_above_m_feeds_the_first_m_arrivals_and_measures_staleness():
    s, store = make(m=1, w=3), FakeStore()
    for h in "abc":
        offer(s, store, h)
    assert s.room(3) == 0
    c = s.out[2]
    s.queue.rotate(1)  # c finishes first
    train(s, store, 1)
    batch, staleness = s.take_batch()
    assert batch == [c] and staleness == 0.0
    d = offer(s, store, "d")
    assert d.version == 1
    train(s, store, 2)  # a and b, proposed before the update
    batch, staleness = s.take_batch()
    assert [e.hash for e in batch] == ["a"] and staleness == 1.0


def test_requeued_job_goes_first():
    s, store = make(m=2), FakeStore()
    a, b = offer(s, store, "a"), offer(s, store, "b")
    assert s.next_job() is a
    s.requeue(a.trial_id)
    assert list(s.queue) == [a.seq, b.seq]
    s.requeue(999)  # unknown: nothing happens
    assert list(s.queue) == [a.seq, b.seq]


def test_state_round_trip_rebuilds_waits_and_queue():
    s, store = make(m=3, w=3), FakeStore()
    offer(s, store, "a"), offer(s, store, "a"), offer(s, store, "b")
    s.next_job()  # a is running as the checkpoint is taken
    state = json.loads(json.dumps(s.to_state(store_finished=0)))
    assert state["version"] == 2 and state["max_trial_id"] == 2 and len(state["outstanding"]) == 3

    r = make(m=3, w=3)
    lost = []
    r.restore(state, updates=0, trial_ids=[1], num_proposed=3, exists=lambda i: i == 1,
              recreate=lambda e: lost.append(e.hash) or 7)
    assert lost == ["b"]  # the row of b was lost with the store's last commits
    assert r.waiting == {1: [0, 1], 7: [2]}
    assert list(r.queue) == [0, 2]  # both jobs train again
    assert r.seq == 3 and r.duplicates == 1 and r.allocated() == 2 and r.post_rows == set()


def test_rows_after_the_checkpoint_are_replayed_not_counted_twice():
    state = {"max_trial_id": 1, "finished": 1, "seq": 1, "arrivals": 1}
    s, store = make(m=1, max_children=2), FakeStore()
    store.rows = {"a": [1, True], "b": [2, True]}
    s.restore(state, updates=1, trial_ids=[1, 2], num_proposed=1, exists=lambda i: True,
              recreate=lambda e: pytest.fail("nothing is lost"), stored_finished=2)
    assert s.post_rows == {2} and s.allocated() == 2 and s.finished == 2
    e = offer(s, store, "b")  # proposed again after the resume: queued as its job
    assert e.job and s.duplicates == 0 and store.created == []
    e2 = offer(s, store, "b")  # now it is a wait, as in the first life
    assert not e2.job and s.duplicates == 1
    s.arrive(e.trial_id, new=False)  # it resolves from the store: counted once
    assert s.finished == 2 and not s.can_propose(2)
    assert s.end_reason == "budget reached: 2 unique children"


def test_budget_counts_the_stores_rows_not_the_checkpoints_counter():
    """Rows made and finished after the checkpoint that the resumed search
    does not propose again (another W, another order) still count."""
    state = {"max_trial_id": 1, "finished": 1, "seq": 1, "arrivals": 1}
    s, store = make(m=1, w=2, max_children=3), FakeStore()
    store.rows = {"a": [1, True], "b": [2, True], "c": [3, False]}
    s.restore(state, updates=1, trial_ids=[1, 2, 3], num_proposed=1, exists=lambda i: True,
              recreate=lambda e: pytest.fail("nothing is lost"), stored_finished=2)
    assert s.finished == 2 and s.allocated() == 3
    assert offer(s, store, "z") is None and store.created == []  # no row beyond the budget
    assert s.adopt([(3, (3,), "c")])  # the pending row trains
    s.arrive(3)
    assert s.finished == 3 and not s.can_propose(3)


def test_restore_without_optional_keys_uses_defaults():
    s = make()
    s.restore({"max_trial_id": 0, "finished": 0}, updates=0, trial_ids=[], num_proposed=5,
              exists=lambda i: True, recreate=lambda e: 0)
    assert (s.seq, s.arrivals, s.duplicates, s.stale, s.finished_at_update) == (5, 0, 0, 0, 0)


def test_adopt_orphans_queues_unmatched_pending_rows():
    s = make(m=2, max_children=3)
    s.waiting[1] = [0]
    assert s.adopt([(1, (3,), "x"), (2, (4,), "y")])
    assert list(s.queue) == [0] and s.out[0].trial_id == 2 and s.out[0].job
    assert not s.adopt([])
    s.finished = 3
    assert not s.adopt([(5, (1,), "z")])


def test_entry_json_round_trip():
    e = Entry(3, (1, 2), "h", 4, 1, True, None)
    assert Entry.from_json(json.loads(json.dumps(e.to_json()))) == e


@pytest.mark.parametrize("w,m,fragment", [
    (0, 1, "Received: max_in_flight=0"),
    (2, 4, "Received: max_in_flight=2, children_per_update=4"),
])
def test_check_max_in_flight_refuses(w, m, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_max_in_flight(w, m)
    check_max_in_flight(None, m)
    check_max_in_flight(m, m)


def test_scheduler_imports_no_tensorflow_and_no_sqlite():
    code = ("import sys, nas_tf.scheduler; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'sqlite3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
