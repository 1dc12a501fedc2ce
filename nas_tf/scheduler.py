"""The in-flight scheduler: which proposals train, wait or resolve, and when
the algorithm is updated.

Pure bookkeeping, with no TensorFlow and no SQLite: the search loop
(:mod:`nas_tf.loop`) asks it what to do and tells it what happened, and
hands it the few facts about the trial store it needs as plain values
(:class:`Known`) and callables. So it is tested alone with fakes
(``tests/test_scheduler.py``).

Up to ``max_in_flight`` (W) proposals are outstanding. A proposal is one of:

* a **job** — a new architecture (a new row) or a row of an earlier life to
  train again; it sits in :attr:`Scheduler.queue` until the executor has room;
* a **wait** — the architecture is training now for another proposal; its
  reward arrives with that child's;
* a **known** one — trained before: its reward arrives at once (a duplicate).

The algorithm is updated when m (``children_per_update``) rewards have
arrived, with the first m to arrive in proposal order
(:meth:`Scheduler.take_batch`); after each update the loop proposes enough
to have W outstanding again. With W = m (the default when one child trains
at a time) this is the synchronous loop of the paper: propose m, train them,
update. With W > m the samples of an update may come from a policy up to
ceil(W / m) - 1 updates older than the one updated; they are used as they are
(REINFORCE recomputes their log-probabilities under the current policy, with
no importance weights), as the paper's replicas did through their parameter
servers (§3.3); the loop logs the mean age as ``search/staleness``.

Budgets: ``max_children`` unique children, ``proposal_limit`` proposals,
``patience_rounds`` updates in a row without a new child. The children budget
counts the trial store's rows, not a checkpoint's counter: at most
``max_children`` rows are ever made, and :attr:`Scheduler.finished` starts a
resumed search from the rows the store holds finished (done or failed), so a
budget is exact after a kill at any moment and a resume with another W or
another order of results; rows an earlier life left pending are trained
(:meth:`Scheduler.adopt`) before the search ends.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Iterable

from nas_tf.errors import ConfigError

STATE_VERSION = 2


@dataclasses.dataclass
class Entry:
    """One proposal not yet fed back to the algorithm."""

    seq: int  # proposal order
    tokens: tuple
    hash: str
    trial_id: int
    version: int  # updates made before it was proposed (its policy's age)
    job: bool  # it trains the child; otherwise it waits for, or already has, a reward
    arrived: int | None = None  # arrival order of its reward

    def to_json(self) -> list:
        return [self.seq, list(self.tokens), self.hash, self.trial_id, self.version,
                int(self.job), self.arrived]

    @classmethod
    def from_json(cls, row) -> "Entry":
        return cls(int(row[0]), tuple(int(t) for t in row[1]), row[2], int(row[3]), int(row[4]),
                   bool(row[5]), None if row[6] is None else int(row[6]))


@dataclasses.dataclass(frozen=True)
class Known:
    """What the store knows of a proposed architecture."""

    id: int
    finished: bool  # trained (done or failed); else pending or running


def check_max_in_flight(max_in_flight: int | None, children_per_update: int) -> None:
    """Refuses a W the loop cannot honour (None: the default is chosen later).

    Raises:
        ConfigError: ``max_in_flight`` < 1, or < m (every update would
            silently get fewer than m rewards).
    """
    if max_in_flight is None:
        return
    if max_in_flight < 1:
        raise ConfigError("--max_in_flight must be >= 1. "
                          f"Received: max_in_flight={max_in_flight}")
    if max_in_flight < children_per_update:
        raise ConfigError(
            "--max_in_flight must be >= --children_per_update (m): an update needs m "
            "rewards, so at least m proposals must be outstanding. Lower m or raise W. "
            f"Received: max_in_flight={max_in_flight}, "
            f"children_per_update={children_per_update}")


class Scheduler:
    """Tracks the outstanding proposals of a search (see the module docstring).

    Args:
        max_children: Budget of unique children.
        children_per_update: m, rewards per update.
        proposal_limit: Stop proposing after this many proposals.
        patience_rounds: Stop after this many updates in a row without a new
            child.
        max_in_flight: W, proposals outstanding at once (the loop may raise
            it once the executor knows its capacity).
        max_search_s: Stop proposing once the search has run this many
            seconds (all its lives together; None: no limit). What is in
            flight then still finishes.
    """

    def __init__(self, *, max_children: int, children_per_update: int, proposal_limit: int,
                 patience_rounds: int, max_in_flight: int, max_search_s: float | None = None):
        self.max_children = max_children
        self.max_search_s = max_search_s
        self.children_per_update = children_per_update
        self.proposal_limit = proposal_limit
        self.patience_rounds = patience_rounds
        self.max_in_flight = max_in_flight
        self.out: dict[int, Entry] = {}  # seq -> proposal not yet fed back
        self.queue: collections.deque[int] = collections.deque()  # seqs of jobs to start
        self.waiting: dict[int, list[int]] = {}  # trial id -> seqs awaiting its reward
        self.seen: set[int] = set()  # rows this life queued as jobs
        self.post_rows: set[int] = set()  # rows made after the checkpoint (to replay)
        self.ckpt_max_id = 0
        self.rows = 0  # rows in the store (the budget counts them)
        self.seq = 0
        self.arrivals = 0
        self.updates = 0
        self.duplicates = 0
        self.stale = 0  # updates in a row without a new child
        self.finished = 0  # rows finished (done or failed) in the store
        self.finished_at_update = 0
        self.proposing = True
        self.end_reason = ""  # why proposing stopped (a budget), once it has
        self.dirty = False  # changed since the last checkpoint

    # ------------------------------------------------------------ proposing
    def allocated(self) -> int:
        """Rows in the store, of every status (the budget counts them: no row
        is made beyond ``max_children``)."""
        return self.rows

    def can_propose(self, num_proposed: int, elapsed_s: float = 0.0) -> bool:
        """Whether to propose more; the first budget reached ends proposing
        for good and sets :attr:`end_reason`. ``elapsed_s``: the search's wall
        time so far (for ``max_search_s``)."""
        if not self.proposing:
            return False
        reason = ""
        if self.max_search_s is not None and elapsed_s >= self.max_search_s:
            reason = (f"time budget reached: {elapsed_s:.0f} s of --max_search_s="
                      f"{self.max_search_s:g} ({self.finished} unique children)")
        elif self.finished >= self.max_children:
            reason = f"budget reached: {self.finished} unique children"
        elif num_proposed >= self.proposal_limit:
            reason = (f"proposal limit reached: {num_proposed} proposals gave "
                      f"{self.finished} unique children (the policy keeps proposing known "
                      "architectures); raise --max_proposals to go on")
        elif self.stale >= self.patience_rounds:
            reason = (f"converged: {self.stale} updates in a row proposed only known "
                      f"architectures ({self.finished} unique children); raise "
                      "--patience_rounds or the entropy bonus to keep exploring")
        if reason:
            self.proposing = False
            self.end_reason = reason
            return False
        # The whole budget is in flight: wait (unless rows of an earlier life
        # are still to be proposed again).
        return self.allocated() < self.max_children or bool(self.post_rows - self.seen)

    def room(self, num_proposed: int, elapsed_s: float = 0.0) -> int:
        """How many proposals to ask the algorithm for now."""
        if not self.can_propose(num_proposed, elapsed_s):
            return 0
        return max(0, self.max_in_flight - len(self.out))

    def offer(self, tokens: tuple, hash_: str, known: Known | None,
              create: Callable[[], int]) -> Entry | None:
        """Places one proposal: a job, a wait or a known reward.

        ``create()`` adds a row for a new architecture and returns its id; it
        is not called beyond the budget, where the proposal is dropped
        (neither trained nor fed back; None is returned).
        """
        e = Entry(self.seq, tuple(tokens), hash_, 0, self.updates, job=False)
        if known is not None and known.id in self.waiting:
            self.duplicates += 1  # training now: wait for it
            e.trial_id = known.id
            self.waiting[known.id].append(e.seq)
        elif known is not None and ((known.id in self.post_rows and known.id not in self.seen)
                                    or not known.finished):
            e.trial_id = known.id  # proposed again after a resume (or left pending)
            self._queue_job(e)
        elif known is not None:
            self.duplicates += 1  # trained before: its reward now
            e.trial_id = known.id
            e.arrived = self.arrivals
            self.arrivals += 1
        else:
            if self.allocated() >= self.max_children:
                self.seq += 1
                return None
            e.trial_id = create()
            self.rows += 1
            self._queue_job(e)
        self.out[e.seq] = e
        self.seq += 1
        return e

    def _queue_job(self, e: Entry) -> None:
        e.job = True
        self.seen.add(e.trial_id)
        self.waiting[e.trial_id] = [e.seq]
        self.queue.append(e.seq)

    def adopt(self, pending: Iterable[tuple[int, tuple, str]]) -> bool:
        """Queues rows ``(id, tokens, hash)`` left pending by an earlier life
        that no proposal of this one matched (possible when results arrived in
        another order); they are trained and fed back. Returns whether there
        were any."""
        if self.finished >= self.max_children:
            return False
        orphans = [p for p in pending if p[0] not in self.waiting]
        for trial_id, tokens, hash_ in orphans:
            e = Entry(self.seq, tuple(tokens), hash_, trial_id, self.updates, job=True)
            self.seq += 1
            self.seen.add(trial_id)
            self.out[e.seq] = e
            self.waiting[trial_id] = [e.seq]
            self.queue.append(e.seq)
        return bool(orphans)

    # --------------------------------------------------------------- jobs
    def next_job(self) -> Entry | None:
        """The next job to start (taken off the queue), or None."""
        return self.out[self.queue.popleft()] if self.queue else None

    def requeue(self, trial_id: int) -> None:
        """The executor gave a job back: it goes first in the queue."""
        seqs = self.waiting.get(trial_id, [])
        job_seq = next((s for s in seqs if self.out[s].job), None)
        if job_seq is not None:
            self.queue.appendleft(job_seq)

    def arrive(self, trial_id: int, new: bool = True) -> None:
        """A child finished: its reward arrives for every proposal waiting
        for it. ``new``: it finished now (False: a row an earlier life
        finished, already counted in :attr:`finished`)."""
        for seq in self.waiting.pop(trial_id, []):
            self.out[seq].arrived = self.arrivals
            self.arrivals += 1
        if new:
            self.finished += 1
        self.dirty = True

    # ------------------------------------------------------------- updates
    def update_due(self) -> bool:
        arrived = sum(1 for e in self.out.values() if e.arrived is not None)
        if arrived >= self.children_per_update:
            return True
        return arrived > 0 and arrived == len(self.out)  # nothing more is coming

    def take_batch(self) -> tuple[list[Entry], float]:
        """Takes the first m rewards that arrived, in proposal order, and
        counts the update; returns them and their mean staleness (updates
        between a proposal's policy and this one)."""
        arrived = sorted((e for e in self.out.values() if e.arrived is not None),
                         key=lambda e: e.arrived)[:self.children_per_update]
        batch = sorted(arrived, key=lambda e: e.seq)
        for e in batch:
            del self.out[e.seq]
        staleness = sum(self.updates - e.version for e in batch) / max(1, len(batch))
        self.updates += 1
        self.stale = self.stale + 1 if self.finished == self.finished_at_update else 0
        self.finished_at_update = self.finished
        self.dirty = True
        return batch, staleness

    # ---------------------------------------------------------------- state
    def to_state(self, store_finished: int) -> dict:
        """The JSON state a checkpoint keeps (``store_finished``: rows the
        store holds finished, checked on resume)."""
        return {
            "version": STATE_VERSION,
            "outstanding": [e.to_json() for e in self.out.values()],
            "seq": self.seq,
            "arrivals": self.arrivals,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "finished": self.finished,
            "finished_at_update": self.finished_at_update,
            "max_trial_id": max([self.ckpt_max_id, *self.seen]),
            "store_finished": store_finished,
        }

    def restore(self, state: dict, *, updates: int, trial_ids: Iterable[int],
                num_proposed: int, exists: Callable[[int], bool],
                recreate: Callable[[Entry], int], stored_finished: int | None = None) -> None:
        """Rebuilds the bookkeeping from a checkpoint's state.

        Rows created after the checkpoint (ids above its ``max_trial_id``)
        belong to proposals the restored algorithm is about to make again:
        the first time each is proposed again it takes its place in the queue
        as if it trained, and resolves from the store (or from its result
        file) without training. So a resumed search makes the same updates
        as one never interrupted, given the same order of results.

        Args:
            state: The loop state (``{"max_trial_id": 0, "finished": 0}``
                without a checkpoint).
            updates: The checkpoint's update count.
            trial_ids: The ids of every row in the store.
            num_proposed: The restored algorithm's proposal count.
            exists: Whether the store has a row of that id.
            recreate: Adds a row again for an outstanding proposal whose row
                was lost with the store's last commits; returns its id.
            stored_finished: Rows the store holds finished (done or failed):
                the count the budget starts from (None: the state's count).
        """
        ids = list(trial_ids)
        self.updates = updates
        self.ckpt_max_id = int(state["max_trial_id"])
        self.rows = len(ids)
        self.post_rows = {i for i in ids if i > self.ckpt_max_id}
        self.finished = int(state.get("finished", 0) if stored_finished is None
                            else stored_finished)
        self.finished_at_update = int(state.get("finished_at_update", self.finished))
        self.seq = int(state.get("seq", num_proposed))
        self.arrivals = int(state.get("arrivals", 0))
        self.duplicates = int(state.get("duplicates", 0))
        self.stale = int(state.get("stale", 0))
        for row in state.get("outstanding", []):
            e = Entry.from_json(row)
            if not exists(e.trial_id):
                e.trial_id = recreate(e)
                self.rows += 1
            self.out[e.seq] = e
            if e.arrived is None:
                self.waiting.setdefault(e.trial_id, []).append(e.seq)
                if e.job:
                    self.queue.append(e.seq)
