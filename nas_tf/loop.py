"""The search loop: propose -> evaluate -> feed back -> log -> checkpoint.

The loop only coordinates; it is handed its parts (a space, an evaluator, an
executor, a logger), as in acme's ``EnvironmentLoop``, and leaves each role to
its module:

* :mod:`nas_tf.scheduler` — which proposals train, wait or resolve, updates, budgets;
* :mod:`nas_tf.checkpoint` — the algorithm's and the scheduler's state;
* :mod:`nas_tf.rundir` — the run directory (lock, identity, store, ``summary.json``);
* :mod:`nas_tf.executors` — where children train; :mod:`nas_tf.logger` — TensorBoard;
  :mod:`nas_tf.summary`, :mod:`nas_tf.signals`, :mod:`nas_tf.warmup` (zero-cost warm-up).

Running it again on the same directory resumes, also after a SIGKILL at any moment:
finished children are kept (none is trained twice), running ones are trained again, the
algorithm continues from its last checkpoint and replays the proposals it made after it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nas_tf.algorithms import make_algorithm
from nas_tf.checkpoint import Checkpointer, restore_scheduler
from nas_tf.config import SearchConfig
from nas_tf.errors import DataError
from nas_tf.evaluator import ChildContext, Evaluator
from nas_tf.executors import Executor, InlineExecutor, Job, Outcome, read_result_file
from nas_tf.identity import recorded_identity
from nas_tf.logger import Logger, MultiLogger, TensorBoardLogger
from nas_tf.rundir import (  # noqa: F401
    CHECKPOINT_DIR,
    RESULTS_DIR,
    STORE_FILE,
    SUMMARY_FILE,
    evaluator_record,
    is_environment_error,
    is_run_dir,
    open_run_dir,
    read_trials,
    write_json_atomic,
)
from nas_tf.runstate import SummaryWriter, check_resume, stored_wall_time
from nas_tf.scheduler import Known, Scheduler, check_max_in_flight
from nas_tf.sharing import attach_evaluator
from nas_tf.signals import stop_on_signals
from nas_tf.space import SearchSpace
from nas_tf.store import DONE, FAILED, PENDING
from nas_tf.summary import search_summary, update_scalars
from nas_tf.validation import check_positive
from nas_tf.warmup import warm_up_loop

__all__ = ["SearchLoop", "run_search", "open_run_dir", "read_trials", "is_run_dir",
           "write_json_atomic", "STORE_FILE", "SUMMARY_FILE", "CHECKPOINT_DIR", "RESULTS_DIR"]


#: Default checkpoint cadence: wait at least this many times the last save's duration.
SAVE_COST_FACTOR = 20.0


class SearchLoop:
    """Runs one search in a run directory.

    Proposals are made, trained and fed back asynchronously: up to
    ``max_in_flight`` (W) are outstanding and the algorithm is updated each
    time m rewards have arrived (see :mod:`nas_tf.scheduler`; W = m is the
    paper's synchronous loop, W > m feeds back samples of older policies, as
    the paper's replicas did, §3.3).

    Args:
        space: The search space.
        evaluator: Trains (or looks up) children.
        run_dir: The run directory (created, or resumed).
        config: The search configuration.
        executor: Where children train (default: in this process).
        logger: Extra logger (e.g. the CLI's console); TensorBoard is always on.
        algorithm: An :class:`nas_tf.algorithms.Algorithm` to use instead of
            making one from ``config`` (it must match ``config``).
        child_logs: Give each child ``run_dir/children/<id>`` for its curves
            (not to an evaluator with ``cheap_children``).
        checkpoint_every_s: Save the search's state after an update only
            when this many seconds passed since the last save (0: after every
            update; default None: unless the last save took over 1/20 of the
            time since). Nothing is lost in between: a resumed search replays
            the proposals made after it, each stored child reusing its result.
        max_in_flight: W, proposals outstanding at once (default: m, or the
            executor's capacity when larger); at least m.
        handle_signals: On SIGINT / SIGTERM (main thread only), cancel the
            children in flight, save a checkpoint and return with status
            ``stopped``; a second signal abandons at once.
        proxy: ``proxy(spec) -> float`` of ``config.warmup`` (:mod:`nas_tf.warmup`).

    Raises:
        ConfigError: ``max_in_flight`` < 1, or < m (it would silently make
            every update smaller than m).
    """

    def __init__(self, space: SearchSpace, evaluator: Evaluator, run_dir: str, config: SearchConfig,
                 executor: Executor | None = None, logger: Logger | None = None,
                 child_logs: bool = True, checkpoint_every_s: float | None = None,
                 algorithm=None, max_in_flight: int | None = None,
                 handle_signals: bool = False, proxy=None):
        self.space = space
        self.proxy = proxy
        check_positive("checkpoint_every_s", checkpoint_every_s, allow_zero=True)
        self.checkpoint_every_s = checkpoint_every_s
        self._last_save = 0.0
        self._save_s = 0.0  # how long the last save took
        self.evaluator = evaluator
        self.run_dir = Path(run_dir)
        self.config = config
        self.executor = executor or InlineExecutor()
        attach_evaluator(evaluator, isinstance(self.executor, InlineExecutor),
                         self.executor.name, self.run_dir)
        check_max_in_flight(max_in_flight, config.children_per_update)
        self._w_given = max_in_flight is not None
        self.sched = Scheduler(
            max_children=config.max_children, children_per_update=config.children_per_update,
            proposal_limit=config.proposal_limit, patience_rounds=config.patience_rounds,
            max_search_s=config.max_search_s,
            max_in_flight=max_in_flight or max(config.children_per_update,
                                               int(self.executor.capacity)))
        self.handle_signals = handle_signals
        cheap = bool(getattr(evaluator, "cheap_children", False))
        self.child_logs = child_logs and not cheap
        self._open(algorithm)
        self.tb = TensorBoardLogger(str(self.run_dir), keep_recent=0 if cheap else "default")
        self.logger = MultiLogger([self.tb, logger])
        self._environment_error: str | None = None
        self.stop_requested = False
        self.stop_reason = ""
        self.best: float | None = None
        self._start = time.time()
        self.warmup_s = float(self.store.get_meta("warmup_s", 0.0))
        self._warmup_incomplete = False

    def _open(self, algorithm) -> None:
        """Takes the run directory: the lock first, then the identity; then
        the checkpoint and the store must agree before anything is written."""
        self.store = open_run_dir(  # holds the lock
            self.run_dir, self.space, self.config, self.evaluator,
            devices_per_child=getattr(self.executor, "devices_per_child", None))
        try:
            # A run recorded by an older format of the space keeps its decisions.
            self.space = self.space.as_recorded(self.store.get_meta("space"))
            # An algorithm instance may be handed in (benchmarks reuse one compiled
            # controller across seeds); by default it is made from the config.
            self.algorithm = algorithm or make_algorithm(self.space, self.config)
            self.ckpt = Checkpointer(self.run_dir / CHECKPOINT_DIR, self.algorithm)
            self._state = self.ckpt.restore()
            self._wall_before, note = stored_wall_time(self.store, self.run_dir)
            self.ckpt.note = " ".join(n for n in (self.ckpt.note, note) if n) or None
            check_resume(self.store, self.run_dir, self._state, self.evaluator)
            self._summary_file = SummaryWriter(self.run_dir, self.store)
            self.identity = recorded_identity(self.store)
            record = evaluator_record(self.evaluator)
            if record is not None:
                self.store.set_meta(evaluator=record)
        except BaseException:
            self.store.close()
            raise

    @property
    def max_in_flight(self) -> int:
        return self.sched.max_in_flight

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

    def wall_time(self) -> float:
        return self._wall_before + time.time() - self._start

    def summary(self, status: str = "running") -> dict:
        """The search's summary now (as ``summary.json``)."""
        return search_summary(self, status)

    def _write_summary(self, status="running", fsync: bool = True) -> dict:
        return self._summary_file.write(self.summary(status), fsync)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Asks the loop to stop soon (safe from a signal handler)."""
        self.stop_requested = True
        if not self.stop_reason:
            self.stop_reason = reason

    # ------------------------------------------------------------ state
    def _save(self) -> None:
        self.store.flush_wal()  # the main file alone is as new as this checkpoint
        start = time.time()
        self.ckpt.save(self.sched.updates, self.sched.to_state(self.store.num_finished()))
        self._last_save = time.time()
        self._save_s = self._last_save - start
        self.sched.dirty = False

    # ----------------------------------------------------------------- loop
    def run(self) -> dict:
        """Runs until the budget is spent (or a stop); returns the summary."""
        self._start_up()
        try:
            with stop_on_signals(self.handle_signals, lambda: self.stop_requested,
                                 self.request_stop, self.logger.message):
                self._drive()
                return self._finish()
        except BaseException:
            # Abandoned: kill the workers; rows left running are re-queued on resume.
            self.executor.cancel()
            raise
        finally:
            self.logger.flush()

    def _start_up(self) -> None:
        """Restores the state, says what was resumed and starts the executor."""
        state = self._state
        if self.ckpt.note:
            self.logger.message(self.ckpt.note)
        requeued = self.store.requeue_running()
        restore_scheduler(self.sched, self.ckpt, state, self.store, self.space,
                          self.algorithm.num_proposed)
        kept = self.store.num_finished()
        if state is not None or kept:
            self.logger.message(
                f"Resumed {self.run_dir}: {kept} children kept, {requeued} re-queued, "
                f"update {self.sched.updates}, {len(self.sched.out)} proposals outstanding.")
        best = self.store.best(1)
        self.best = best[0].reward if best else None
        if self.config.warmup.enabled and not self.algorithm.warmed_up:
            warm_up_loop(self)
        self._write_summary()
        self.executor.start(self.evaluator)
        if not self._w_given:  # a Ray executor knows its capacity only once started
            self.sched.max_in_flight = max(self.config.children_per_update,
                                           int(self.executor.capacity))

    def _finish(self) -> dict:
        """After the drive: cancels what is in flight on a stop, saves, writes
        the summary; raises the environment error that stopped the search."""
        if self.stop_requested:
            for job in self.executor.cancel():
                trial = self.store.get_id(job.trial_id)
                if trial is not None and trial.status not in (DONE, FAILED):
                    self.store.mark_pending(job.trial_id)
            self.sched.dirty = True
        if self.sched.dirty and not self._warmup_incomplete:
            self._save()
        status = "stopped" if self.stop_requested else "finished"
        if self.stop_requested and not self._environment_error:
            self.stop_reason = (f"{self.stop_reason or 'stop requested'}; run the same "
                                f"command again to resume from {self.run_dir}")
            self.logger.message(f"Stopped ({self.stop_reason}). Checkpoint saved.")
        self.store.set_meta(wall_time_s=self.wall_time(), duplicates=self.sched.duplicates)
        self.store.flush_wal()
        summary = self._write_summary(status)
        if self._environment_error:
            raise DataError(self._environment_error)
        self.logger.text(summary["children_trained"], "search/summary",
                         f"**{status}**: {self.stop_reason}")
        return summary

    def _drive(self) -> None:
        self._propose()
        while not self.stop_requested:
            self._fill()
            while self.sched.update_due():
                self._update()
                self._propose()
                self._fill()
            if self.stop_requested:
                return
            if not self.sched.out:
                if self._adopt_orphans():
                    continue
                return
            if self.executor.num_in_flight() == 0 and not self.sched.queue:
                raise RuntimeError("search loop stalled: proposals outstanding, none training")
            for outcome in self.executor.poll(timeout=0.5):
                self._record(outcome)

    def _propose(self) -> None:
        if self.stop_requested:
            return
        n = self.sched.room(self.algorithm.num_proposed, self.wall_time())
        self.stop_reason = self.stop_reason or self.sched.end_reason
        if n <= 0:
            return
        tokens_list = self.algorithm.propose(n, self._curriculum_count())
        self.sched.dirty = True
        for tokens in tokens_list:
            tokens = tuple(int(t) for t in tokens)
            spec = self.space.tokens_to_spec(tokens)
            h = self.space.hash_spec(spec)
            trial = self.store.get(h)
            known = None if trial is None else Known(trial.id, trial.status in (DONE, FAILED))
            self.sched.offer(tokens, h, known, lambda: self.store.add(
                h, self.space.spec_to_json(spec), tokens, self.sched.updates + 1).id)

    def _curriculum_count(self) -> int:
        """What the space's curriculum counts: samples (proposals so far,
        duplicates and failures included; paper §4.1) or unique children."""
        if getattr(self.space, "curriculum_count", "samples") == "children":
            return self.sched.finished
        return self.algorithm.num_proposed

    def _adopt_orphans(self) -> bool:
        """Queues rows left pending by an earlier life that no proposal of
        this one matched; returns whether there were any."""
        if self.sched.finished >= self.config.max_children:
            return False  # (and the store is not read)
        return self.sched.adopt((t.id, tuple(t.tokens), t.hash)
                                for t in self.store.trials(PENDING))

    def _fill(self) -> None:
        """Starts queued jobs while the executor has room."""
        while self.sched.queue and self.executor.free_slots() > 0 and not self.stop_requested:
            e = self.sched.next_job()
            trial = self.store.get_id(e.trial_id)
            if trial.status in (DONE, FAILED):  # trained in an earlier life (counted)
                self._arrive(trial.id, new=False)
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
            self._environment_failure(outcome)
            return
        if outcome.retry:  # the executor gave the job back: queue it again
            self.store.mark_pending(tid)
            self.sched.requeue(tid)
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

    def _environment_failure(self, outcome: Outcome) -> None:
        """The machine failed, not the architecture: leave the child pending
        (it trains after the fix) and stop the search with one line."""
        tid = outcome.job.trial_id
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

    def _arrive(self, trial_id: int, new: bool = True) -> None:
        self.sched.arrive(trial_id, new)
        self.logger.progress(self.sched.finished, self.config.max_children, self.best)

    def _update(self) -> None:
        """Feeds the first m rewards that arrived back, in proposal order."""
        self.logger.progress(self.sched.finished, self.config.max_children, self.best,
                             note="updating the controller")
        batch, staleness = self.sched.take_batch()
        rewards = [self._reward_of(self.store.get_id(e.trial_id)) for e in batch]
        stats: dict = {}
        groups: dict[int, list[int]] = {}
        for i, e in enumerate(batch):  # one feedback per curriculum stage (token width)
            groups.setdefault(len(e.tokens), []).append(i)
        for idx in groups.values():
            stats.update(self.algorithm.feedback([batch[i].tokens for i in idx],
                                                 [rewards[i] for i in idx]))
        self.logger.scalars(self.sched.finished, update_scalars(self, rewards, staleness, stats))
        self.store.set_meta(duplicates=self.sched.duplicates, wall_time_s=self.wall_time())
        self.store.flush_wal()  # trials.sqlite alone is as new as the summary written below
        every = (SAVE_COST_FACTOR * self._save_s if self.checkpoint_every_s is None
                 else self.checkpoint_every_s)
        saving = time.time() - self._last_save >= every
        if saving:
            self._save()
        self._write_summary(fsync=saving)

    def _after_child(self, trial) -> None:
        if trial.status == DONE and (self.best is None or trial.reward > self.best):
            self.best = trial.reward
            spec = self.space.spec_from_json(trial.spec)
            self.logger.text(
                self.sched.finished + 1, "best/architecture",
                f"child {trial.id}, reward {trial.reward:.6g}\n\n{self.space.describe(spec)}")

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
               checkpoint_every_s: float | None = None, algorithm=None,
               max_in_flight: int | None = None, handle_signals: bool = False,
               proxy=None) -> dict:
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
                      max_in_flight=max_in_flight, handle_signals=handle_signals, proxy=proxy)
    try:
        return loop.run()
    finally:
        loop.close()
