"""The search loop: propose -> evaluate -> feed back -> log -> checkpoint.

The loop only coordinates; it is handed its parts (a space, an evaluator, an
executor, a logger), as in acme's ``EnvironmentLoop``. Children train
asynchronously on the executor (see :class:`SearchLoop` for how rewards are
fed back and how stale samples are handled). Everything it knows lives in the
run directory:

* ``trials.sqlite`` — the trial store (:mod:`nas_tf.store`), every write a
  transaction;
* ``checkpoints/`` — the algorithm's state (controller weights, Adam slots,
  sampler state, baseline, update counter) and the loop's (proposals not yet
  fed back) through ``tf.train.CheckpointManager``;
* ``summary.json`` — rewritten (write-then-rename) after every update;
* ``results/<id>.json`` — a child's result, written by its worker
  (write-then-rename) before it is sent back, removed once stored;
* TensorBoard event files: the search's curves, ``all_children`` (every
  child's metrics at step = child id) and ``children/<id>/`` (a child's
  curves and HParams session; kept for the best and the most recent
  children, the others moved to ``children_archive/``, see
  :class:`nas_tf.logger.TensorBoardLogger`).

Running it again on the same directory resumes, also after a SIGKILL at any
moment: finished children are kept (none is trained twice), children that
were running are trained again, the algorithm continues from its last
checkpoint and replays the proposals it made after it, each already stored
child resolving from the store.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

from nas_tf.algorithms import make_algorithm
from nas_tf.checkpoint import Checkpointer
from nas_tf.config import SearchConfig
from nas_tf.errors import ConfigError, DataError
from nas_tf.evaluator import ChildContext, Evaluator
from nas_tf.executors import Executor, InlineExecutor, Job, Outcome, read_result_file
from nas_tf.logger import Logger, MultiLogger, TensorBoardLogger
from nas_tf.rundir import (  # noqa: F401
    CHECKPOINT_DIR,
    RESULTS_DIR,
    STORE_FILE,
    SUMMARY_FILE,
    SummaryWriter,
    check_store_not_behind,
    evaluator_record,
    is_environment_error,
    is_run_dir,
    open_run_dir,
    read_summary,
    read_trials,
    write_json_atomic,
)
from nas_tf.space import SearchSpace
from nas_tf.store import DONE, FAILED, PENDING, RUNNING

__all__ = ["SearchLoop", "run_search", "open_run_dir", "read_trials", "is_run_dir",
           "write_json_atomic", "STORE_FILE", "SUMMARY_FILE", "CHECKPOINT_DIR", "RESULTS_DIR"]


@dataclasses.dataclass
class _Entry:
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
    def from_json(cls, row) -> "_Entry":
        return cls(int(row[0]), tuple(int(t) for t in row[1]), row[2], int(row[3]), int(row[4]),
                   bool(row[5]), None if row[6] is None else int(row[6]))


class SearchLoop:
    """Runs one search in a run directory.

    Proposals are made, trained and fed back asynchronously: up to
    ``max_in_flight`` (W) proposals are outstanding, and the algorithm is
    updated each time ``config.children_per_update`` (m) rewards have
    arrived, with those m in proposal order; after each update it proposes
    enough to have W outstanding again. A proposal of an architecture already
    trained gets its stored reward at once; one of an architecture training
    now waits for that child. With W = m (the default when one child trains
    at a time) this is the synchronous loop of the paper: propose m, train
    them, update. With W > m the samples of an update may come from a policy
    up to ceil(W / m) - 1 updates older than the one updated; they are used as
    they are (REINFORCE recomputes their log-probabilities under the current
    policy, with no importance weights), as the paper's replicas did through
    their parameter servers (§3.3). The mean age is logged as
    ``search/staleness``.

    Args:
        space: The search space.
        evaluator: Trains (or looks up) children.
        run_dir: The run directory (created, or resumed).
        config: The search configuration.
        executor: Where children train (default: in this process).
        logger: Extra logger (e.g. the CLI's console); TensorBoard is always on.
        algorithm: An :class:`nas_tf.algorithms.Algorithm` to use instead of
            making one from ``config`` (it must match ``config``).
        child_logs: Give each child ``run_dir/children/<id>`` for its curves.
        checkpoint_every_s: Save the search's state after an update only
            when this many seconds passed since the last save (0: after every
            update). Nothing is lost in between: a resumed search replays the
            same proposals from the last checkpoint, and every child already
            in the store reuses its stored result instead of training again.
        max_in_flight: W, proposals outstanding at once (default: m, or the
            executor's capacity when larger); at least m.
        handle_signals: On SIGINT / SIGTERM (main thread only), cancel the
            children in flight, save a checkpoint and return with status
            ``stopped``; a second signal abandons at once.

    Raises:
        ConfigError: ``max_in_flight`` < 1, or < m (it would silently make
            every update smaller than m).
    """

    def __init__(self, space: SearchSpace, evaluator: Evaluator, run_dir: str, config: SearchConfig,
                 executor: Executor | None = None, logger: Logger | None = None,
                 child_logs: bool = True, checkpoint_every_s: float = 0.0,
                 algorithm=None, max_in_flight: int | None = None,
                 handle_signals: bool = False):
        self.space = space
        self.checkpoint_every_s = checkpoint_every_s
        self._last_save = 0.0
        self.evaluator = evaluator
        self.run_dir = Path(run_dir)
        self.config = config
        self.executor = executor or InlineExecutor()
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigError("--max_in_flight must be >= 1. "
                              f"Received: max_in_flight={max_in_flight}")
        if max_in_flight is not None and max_in_flight < config.children_per_update:
            # With fewer than m outstanding, every update would get fewer than m
            # rewards: m would silently shrink to W.
            raise ConfigError(
                "--max_in_flight must be >= --children_per_update (m): an update needs m "
                "rewards, so at least m proposals must be outstanding. Lower m or raise W. "
                f"Received: max_in_flight={max_in_flight}, "
                f"children_per_update={config.children_per_update}")
        self._w_given = max_in_flight is not None
        self.max_in_flight = max_in_flight or max(config.children_per_update,
                                                  int(self.executor.capacity))
        self.handle_signals = handle_signals
        self.child_logs = child_logs
        # The lock first, then the identity; then the checkpoint and the
        # store must agree before anything is written into the directory.
        self.store = open_run_dir(self.run_dir, space, config, evaluator)  # holds the lock
        try:
            # A run recorded by an older format of the space keeps its decisions.
            self.space = space = space.as_recorded(self.store.get_meta("space"))
            # An algorithm instance may be handed in (benchmarks reuse one compiled
            # controller across seeds); by default it is made from the config.
            self.algorithm = algorithm or make_algorithm(space, config)
            self.ckpt = Checkpointer(self.run_dir / CHECKPOINT_DIR, self.algorithm)
            self._state = self.ckpt.restore()
            check_store_not_behind(self.store, self.run_dir, self._state,
                                   read_summary(self.run_dir))
            self._summary_file = SummaryWriter(self.run_dir)
            record = evaluator_record(evaluator)
            if record is not None:
                self.store.set_meta(evaluator=record)
        except BaseException:
            self.store.close()
            raise
        self.tb = TensorBoardLogger(str(self.run_dir))
        self.logger = MultiLogger([self.tb, logger])
        self._environment_error: str | None = None
        self.stop_requested = False
        self.stop_reason = ""
        self._best: float | None = None
        self._start = time.time()
        self._wall_before = float(self.store.get_meta("wall_time_s", 0.0))
        # The loop's state (see _restore).
        self._out: dict[int, _Entry] = {}
        self._queue: collections.deque[int] = collections.deque()
        self._waiting: dict[int, list[int]] = {}
        self._seen: set[int] = set()
        self._post_rows: set[int] = set()
        self._ckpt_max_id = 0
        self._base_rows = 0
        self._seq = 0
        self._arrivals = 0
        self._updates = 0
        self._duplicates = 0
        self._stale = 0
        self._n_finished = 0
        self._finished_at_update = 0
        self._proposing = True
        self._dirty = False

    # -------------------------------------------------------------- helpers
    def _reward_of(self, trial) -> float:
        if trial.status == DONE:
            return float(trial.reward)
        return float(self.config.failure_reward)

    def _context(self, trial_id: int) -> ChildContext:
        log_dir = str(self.run_dir / "children" / str(trial_id)) if self.child_logs else None
        return ChildContext(child_id=trial_id, log_dir=log_dir,
                            seed=self.config.seed * 100003 + trial_id,
                            on_progress=self.logger.child_progress)

    def _result_file(self, trial_id: int) -> str:
        return str(self.run_dir / RESULTS_DIR / f"{trial_id}.json")

    def summary(self, status: str = "running") -> dict:
        counts = self.store.counts()
        best = self.store.best(1)
        b = best[0] if best else None
        return {
            "space": self.space.name,
            "space_config": self.space.config(),
            "algorithm": self.config.algorithm,
            "seed": self.config.seed,
            "max_children": self.config.max_children,
            "children_trained": counts[DONE] + counts[FAILED],
            "children_done": counts[DONE],
            "children_failed": counts[FAILED],
            "children_pending": counts[PENDING] + counts[RUNNING],
            "proposals": self.algorithm.num_proposed,
            "duplicates": self._duplicates,
            "updates": self._updates,
            "executor": self.executor.name,
            "max_in_flight": self.max_in_flight,
            "best_reward": None if b is None else b.reward,
            "best_spec": None if b is None else b.spec,
            "best_child_id": None if b is None else b.id,
            "best_metrics": None if b is None else b.metrics,
            "wall_time_s": round(self._wall_before + time.time() - self._start, 3),
            "status": status,
            "stop_reason": self.stop_reason,
            "run_dir": str(self.run_dir),
        }

    def _write_summary(self, status="running") -> dict:
        return self._summary_file.write(self.summary(status))

    def request_stop(self, reason: str = "stop requested") -> None:
        """Asks the loop to stop soon (safe from a signal handler)."""
        self.stop_requested = True
        if not self.stop_reason:
            self.stop_reason = reason

    # ------------------------------------------------------------ state
    def _loop_state(self) -> dict:
        return {
            "version": 2,
            "outstanding": [e.to_json() for e in self._out.values()],
            "seq": self._seq,
            "arrivals": self._arrivals,
            "duplicates": self._duplicates,
            "stale": self._stale,
            "finished": self._n_finished,
            "finished_at_update": self._finished_at_update,
            "max_trial_id": max([self._ckpt_max_id, *self._seen]),
            "store_finished": self.store.num_finished(),
        }

    def _save(self) -> None:
        self.store.flush_wal()  # the main file alone is as new as this checkpoint
        self.ckpt.save(self._updates, self._loop_state())
        self._last_save = time.time()
        self._dirty = False

    def _restore(self, state: dict | None) -> None:
        """Rebuilds the loop from its checkpointed state.

        Rows created after the checkpoint (ids above its ``max_trial_id``)
        belong to proposals the restored algorithm is about to make again:
        the first time each is proposed again it takes its place in the queue
        as if it trained, and resolves from the store (or from its result
        file) without training. So a resumed search makes the same updates
        as one never interrupted, given the same order of results.
        """
        trials = self.store.trials()
        self._updates = int(self.ckpt.round.numpy())
        if state is None:  # no checkpoint: replay everything from the seed
            state = {"max_trial_id": 0, "finished": 0}
        elif "max_trial_id" not in state:  # a version-1 checkpoint, after round `_updates`
            old = [t for t in trials if (t.round or 0) <= self._updates]
            state = {"max_trial_id": max([t.id for t in old], default=0),
                     "finished": sum(t.status in (DONE, FAILED) for t in old),
                     "duplicates": int(self.store.get_meta("duplicates", 0))}
        self._ckpt_max_id = int(state["max_trial_id"])
        self._base_rows = sum(1 for t in trials if t.id <= self._ckpt_max_id)
        self._post_rows = {t.id for t in trials if t.id > self._ckpt_max_id}
        self._n_finished = int(state.get("finished", 0))
        self._finished_at_update = int(state.get("finished_at_update", self._n_finished))
        self._seq = int(state.get("seq", self.algorithm.num_proposed))
        self._arrivals = int(state.get("arrivals", 0))
        self._duplicates = int(state.get("duplicates", 0))
        self._stale = int(state.get("stale", 0))
        for row in state.get("outstanding", []):
            e = _Entry.from_json(row)
            if self.store.get_id(e.trial_id) is None:  # lost with the last commits of the store
                spec = self.space.tokens_to_spec(e.tokens)
                e.trial_id = self.store.add(e.hash, self.space.spec_to_json(spec), e.tokens,
                                            e.version + 1).id
            self._out[e.seq] = e
            if e.arrived is None:
                self._waiting.setdefault(e.trial_id, []).append(e.seq)
                if e.job:
                    self._queue.append(e.seq)

    # ----------------------------------------------------------------- loop
    def run(self) -> dict:
        """Runs until the budget is spent (or a stop); returns the summary."""
        state = self._state
        if self.ckpt.note:
            self.logger.message(self.ckpt.note)
        requeued = self.store.requeue_running()
        self._restore(state)
        kept = self.store.num_finished()
        if state is not None or kept:
            self.logger.message(
                f"Resumed {self.run_dir}: {kept} children kept, {requeued} re-queued, "
                f"update {self._updates}, {len(self._out)} proposals outstanding.")
        best = self.store.best(1)
        self._best = best[0].reward if best else None
        self._write_summary()
        self.executor.start(self.evaluator)
        if not self._w_given:  # a Ray executor knows its capacity only once started
            self.max_in_flight = max(self.config.children_per_update,
                                     int(self.executor.capacity))
        previous = self._install_signals()
        try:
            self._drive()
            if self.stop_requested:
                for job in self.executor.cancel():
                    trial = self.store.get_id(job.trial_id)
                    if trial is not None and trial.status not in (DONE, FAILED):
                        self.store.mark_pending(job.trial_id)
                self._dirty = True
            if self._dirty:
                self._save()
            status = "stopped" if self.stop_requested else "finished"
            if self.stop_requested and not self._environment_error:
                self.stop_reason = (f"{self.stop_reason or 'stop requested'}; run the same "
                                    f"command again to resume from {self.run_dir}")
                self.logger.message(f"Stopped ({self.stop_reason}). Checkpoint saved.")
            self.store.set_meta(wall_time_s=self._wall_before + time.time() - self._start,
                                duplicates=self._duplicates)
            self.store.flush_wal()
            summary = self._write_summary(status)
            if self._environment_error:
                raise DataError(self._environment_error)
            self.logger.text(summary["children_trained"], "search/summary",
                             f"**{status}**: {self.stop_reason}")
            return summary
        except BaseException:
            # Abandoned: kill the workers; rows left running are re-queued on resume.
            self.executor.cancel()
            raise
        finally:
            self._restore_signals(previous)
            self.logger.flush()

    def _drive(self) -> None:
        self._propose()
        while not self.stop_requested:
            self._fill()
            while self._update_due():
                self._update()
                self._propose()
                self._fill()
            if self.stop_requested:
                return
            if not self._out:
                if self._adopt_orphans():
                    continue
                return
            if self.executor.num_in_flight() == 0 and not self._queue:
                raise RuntimeError("search loop stalled: proposals outstanding, none training")
            for outcome in self.executor.poll(timeout=0.5):
                self._record(outcome)

    def _allocated(self) -> int:
        """Rows of this search's trajectory so far (the budget counts them)."""
        return self._base_rows + len(self._seen)

    def _can_propose(self) -> bool:
        cfg = self.config
        if not self._proposing:
            return False
        reason = ""
        if self._n_finished >= cfg.max_children:
            reason = f"budget reached: {self._n_finished} unique children"
        elif self.algorithm.num_proposed >= cfg.proposal_limit:
            reason = (f"proposal limit reached: {self.algorithm.num_proposed} proposals gave "
                      f"{self._n_finished} unique children (the policy keeps proposing known "
                      "architectures); raise --max_proposals to go on")
        elif self._stale >= cfg.patience_rounds:
            reason = (f"converged: {self._stale} updates in a row proposed only known "
                      f"architectures ({self._n_finished} unique children); raise "
                      "--patience_rounds or the entropy bonus to keep exploring")
        if reason:
            self._proposing = False
            self.stop_reason = self.stop_reason or reason
            return False
        # The whole budget is in flight: wait (unless rows of an earlier life
        # are still to be proposed again).
        return self._allocated() < cfg.max_children or bool(self._post_rows - self._seen)

    def _propose(self) -> None:
        if self.stop_requested or not self._can_propose():
            return
        n = self.max_in_flight - len(self._out)
        if n <= 0:
            return
        tokens_list = self.algorithm.propose(n, self._curriculum_count())
        self._dirty = True
        for tokens in tokens_list:
            tokens = tuple(int(t) for t in tokens)
            spec = self.space.tokens_to_spec(tokens)
            h = self.space.hash_spec(spec)
            trial = self.store.get(h)
            e = _Entry(self._seq, tokens, h, 0, self._updates, job=False)
            if trial is not None and trial.id in self._waiting:
                self._duplicates += 1  # training now: wait for it
                e.trial_id = trial.id
                self._waiting[trial.id].append(e.seq)
            elif trial is not None and (
                    (trial.id in self._post_rows and trial.id not in self._seen)
                    or trial.status not in (DONE, FAILED)):
                # Proposed again after a resume (or left pending): queue it as a job.
                e.trial_id, e.job = trial.id, True
                self._seen.add(trial.id)
                self._waiting[trial.id] = [e.seq]
                self._queue.append(e.seq)
            elif trial is not None:
                self._duplicates += 1  # trained before: its reward now
                e.trial_id = trial.id
                e.arrived = self._arrivals
                self._arrivals += 1
            else:
                if self._allocated() >= self.config.max_children:
                    self._seq += 1
                    continue  # beyond the budget: neither trained nor fed back
                trial = self.store.add(h, self.space.spec_to_json(spec), tokens,
                                       self._updates + 1)
                e.trial_id, e.job = trial.id, True
                self._seen.add(trial.id)
                self._waiting[trial.id] = [e.seq]
                self._queue.append(e.seq)
            self._out[e.seq] = e
            self._seq += 1

    def _curriculum_count(self) -> int:
        """What the space's curriculum counts: samples (proposals so far,
        duplicates and failures included; paper §4.1) or unique children."""
        if getattr(self.space, "curriculum_count", "samples") == "children":
            return self._n_finished
        return self.algorithm.num_proposed

    def _adopt_orphans(self) -> bool:
        """Queues rows left pending by an earlier life that no proposal of
        this one matched (possible when results arrived in another order);
        they are trained and fed back. Returns whether there were any."""
        if self._n_finished >= self.config.max_children:
            return False
        orphans = [t for t in self.store.trials(PENDING) if t.id not in self._waiting]
        for t in orphans:
            e = _Entry(self._seq, tuple(t.tokens), t.hash, t.id, self._updates, job=True)
            self._seq += 1
            self._seen.add(t.id)
            self._out[e.seq] = e
            self._waiting[t.id] = [e.seq]
            self._queue.append(e.seq)
        return bool(orphans)

    def _fill(self) -> None:
        """Starts queued jobs while the executor has room."""
        while self._queue and self.executor.free_slots() > 0 and not self.stop_requested:
            e = self._out[self._queue.popleft()]
            trial = self.store.get_id(e.trial_id)
            if trial.status in (DONE, FAILED):  # trained in an earlier life
                self._arrive(trial.id)
                continue
            job = Job(trial.id, self.space.tokens_to_spec(e.tokens), self._context(trial.id),
                      result_file=self._result_file(trial.id))
            recovered = read_result_file(job)
            if recovered is not None:  # finished as the last search died
                self._record(recovered)
                continue
            self.store.mark_running(trial.id)
            self.executor.submit(job)

    def _record(self, outcome: Outcome) -> None:
        tid = outcome.job.trial_id
        if not outcome.ok and not outcome.retry and is_environment_error(outcome.error):
            # The machine failed, not the architecture: leave the child pending
            # (it trains after the fix) and stop the search with one line.
            self.store.mark_pending(tid)
            if outcome.job.result_file and os.path.exists(outcome.job.result_file):
                os.remove(outcome.job.result_file)  # or the resume would read the failure back
            if not self._environment_error:
                first = (outcome.error or "").strip().splitlines()[0][:300]
                self._environment_error = (
                    f"child {tid} could not train because of its environment, not its "
                    f"architecture ({first}). The search stopped and left it pending, not "
                    f"failed: fix the cause and run the same command again to resume from "
                    f"{self.run_dir}.")
                self.request_stop("environment error")
            return
        if outcome.retry:  # the executor gave the job back: queue it again
            self.store.mark_pending(tid)
            seqs = self._waiting.get(tid, [])
            job_seq = next((s for s in seqs if self._out[s].job), None)
            if job_seq is not None:
                self._queue.appendleft(job_seq)
            return
        if outcome.ok:
            self.store.mark_done(tid, outcome.result.reward, outcome.result.metrics,
                                 outcome.duration)
        else:
            self.store.mark_failed(tid, outcome.error, self.config.failure_reward,
                                   outcome.duration)
        if outcome.job.result_file:
            try:
                os.remove(outcome.job.result_file)
            except OSError:
                pass
        trial = self.store.get_id(tid)
        self.logger.child(trial, self.space)
        self._after_child(trial)
        self._arrive(tid)

    def _arrive(self, trial_id: int) -> None:
        for seq in self._waiting.pop(trial_id, []):
            self._out[seq].arrived = self._arrivals
            self._arrivals += 1
        self._n_finished += 1
        self._dirty = True
        self.logger.progress(self._n_finished, self.config.max_children, self._best)

    def _update_due(self) -> bool:
        arrived = sum(1 for e in self._out.values() if e.arrived is not None)
        if arrived >= self.config.children_per_update:
            return True
        return arrived > 0 and arrived == len(self._out)  # nothing more is coming

    def _update(self) -> None:
        """Feeds the first m rewards that arrived back, in proposal order."""
        cfg = self.config
        self.logger.progress(self._n_finished, cfg.max_children, self._best,
                             note="updating the controller")
        arrived = sorted((e for e in self._out.values() if e.arrived is not None),
                         key=lambda e: e.arrived)[:cfg.children_per_update]
        batch = sorted(arrived, key=lambda e: e.seq)
        for e in batch:
            del self._out[e.seq]
        rewards = [self._reward_of(self.store.get_id(e.trial_id)) for e in batch]
        stats: dict = {}
        groups: dict[int, list[int]] = {}
        for i, e in enumerate(batch):  # one feedback per curriculum stage (token width)
            groups.setdefault(len(e.tokens), []).append(i)
        for idx in groups.values():
            stats.update(self.algorithm.feedback([batch[i].tokens for i in idx],
                                                 [rewards[i] for i in idx]))
        staleness = sum(self._updates - e.version for e in batch) / len(batch)
        self._updates += 1
        self._stale = self._stale + 1 if self._n_finished == self._finished_at_update else 0
        self._finished_at_update = self._n_finished
        self._dirty = True
        step = self._n_finished
        scalars = {
            "reward/mean": sum(rewards) / len(rewards),
            "reward/max": max(rewards),
            "reward/best_so_far": self._best,
            "search/duplicates": self._duplicates,
            "search/proposals": self.algorithm.num_proposed,
            "search/staleness": staleness,
            "search/in_flight": self.executor.num_in_flight(),
            "search/children_per_hour": 3600.0 * self.store.num_finished() / max(
                1e-9, self._wall_before + time.time() - self._start),
        }
        for k, v in stats.items():
            scalars[f"controller/{k}"] = v
        if hasattr(self.algorithm, "last_entropy") and "entropy" not in stats:
            scalars["controller/entropy"] = self.algorithm.last_entropy
        if hasattr(self.algorithm, "optimizer"):
            scalars["controller/learning_rate"] = float(
                self.algorithm.optimizer.learning_rate.numpy())
        self.logger.scalars(step, scalars)
        self.store.set_meta(duplicates=self._duplicates,
                            wall_time_s=self._wall_before + time.time() - self._start)
        self.store.flush_wal()  # trials.sqlite alone is as new as the summary written below
        if time.time() - self._last_save >= self.checkpoint_every_s:
            self._save()
        self._write_summary()

    def _after_child(self, trial) -> None:
        if trial.status == DONE and (self._best is None or trial.reward > self._best):
            self._best = trial.reward
            spec = self.space.spec_from_json(trial.spec)
            self.logger.text(
                self._n_finished + 1, "best/architecture",
                f"child {trial.id}, reward {trial.reward:.6g}\n\n{self.space.describe(spec)}")

    # ------------------------------------------------------------ signals
    def _install_signals(self):
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return None
        previous = {}

        def handler(signum, frame):
            name = signal.Signals(signum).name
            if self.stop_requested:
                raise KeyboardInterrupt(f"second {name}: abandoning")
            self.request_stop(f"{name} received")
            self.logger.message(
                f"{name}: stopping; children in flight are cancelled (a child training in "
                "this process finishes first; send it again to abandon it at once) ...")

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signals(previous) -> None:
        for sig, h in (previous or {}).items():
            signal.signal(sig, h)

    def close(self) -> None:
        try:
            self.logger.close()
            self.executor.close()
            self.evaluator.close()
        finally:
            self.store.close()  # and the lock, last: nothing writes the directory after it


def run_search(space: SearchSpace, evaluator: Evaluator, *, run_dir: str,
               config: SearchConfig | None = None, executor: Executor | None = None,
               logger: Logger | None = None, child_logs: bool = True,
               checkpoint_every_s: float = 0.0, algorithm=None,
               max_in_flight: int | None = None, handle_signals: bool = False) -> dict:
    """Runs (or resumes) a search and returns its summary (as ``summary.json``).

    See :class:`SearchLoop` for the arguments.

    Example:

    >>> from nas_tf.loop import run_search  # doctest: +SKIP
    >>> summary = run_search(space, evaluator, run_dir="runs/x",
    ...                      config=SearchConfig(max_children=20))  # doctest: +SKIP
    """
    loop = SearchLoop(space, evaluator, run_dir, config or SearchConfig(), executor=executor,
                      logger=logger, child_logs=child_logs,
                      checkpoint_every_s=checkpoint_every_s, algorithm=algorithm,
                      max_in_flight=max_in_flight, handle_signals=handle_signals)
    try:
        return loop.run()
    finally:
        loop.close()
