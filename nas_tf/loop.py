"""The search loop: propose -> evaluate -> feed back -> log -> checkpoint.

The loop only coordinates; it is handed its parts (a space, an evaluator, an
executor, a logger), as in acme's ``EnvironmentLoop``. Everything it knows
lives in the run directory:

* ``trials.sqlite`` — the trial store (:mod:`nas_tf.store`);
* ``checkpoints/`` — the algorithm's state (controller weights, Adam slots,
  sampler state, baseline, round counter) through ``tf.train.CheckpointManager``;
* ``summary.json`` — rewritten atomically after every update;
* TensorBoard event files, and ``children/<id>/`` for each child's curves.

Running it again on the same directory resumes: finished children are kept,
children that were running are trained again, the algorithm continues from
its last checkpoint, and duplicates of stored children reuse their reward.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from nas_tf.algorithms import make_algorithm
from nas_tf.config import SearchConfig
from nas_tf.errors import RunDirError
from nas_tf.evaluator import ChildContext, Evaluator
from nas_tf.executors import Executor, InlineExecutor, Job
from nas_tf.logger import Logger, MultiLogger, TensorBoardLogger
from nas_tf.space import SearchSpace, canonical_json
from nas_tf.store import DONE, FAILED, PENDING, RUNNING, TrialStore

STORE_FILE = "trials.sqlite"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
FORMAT_VERSION = 1

# Config fields that may change when a search is resumed (budgets).
_RESUMABLE_FIELDS = ("max_children", "max_proposals", "patience_rounds")


def _identity(config: SearchConfig) -> dict:
    d = config.to_json()
    for k in _RESUMABLE_FIELDS:
        d.pop(k, None)
    return d


def write_json_atomic(path: Path, obj: Any) -> None:
    """Writes JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / STORE_FILE).is_file()


def open_run_dir(run_dir: str | os.PathLike, space: SearchSpace, config: SearchConfig) -> TrialStore:
    """Opens (or creates) a run directory for this space and config.

    Raises:
        RunDirError: the directory holds other files and no search, or a
            search of another space or config.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run_dir {run_dir} is a file, not a directory. Choose another path.")
    if run_dir.is_dir() and not is_run_dir(run_dir):
        others = [p.name for p in run_dir.iterdir()]
        if others:
            raise RunDirError(
                f"--run_dir {run_dir} is not empty and holds no nas_tf search "
                f"(found {', '.join(sorted(others)[:3])}). Choose a new or empty directory."
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    store = TrialStore(str(run_dir / STORE_FILE))
    space_cfg = store.get_meta("space")
    search_cfg = store.get_meta("search")
    if space_cfg is None:
        store.set_meta(space=space.config(), search=_identity(config), version=FORMAT_VERSION,
                       created=time.time())
        return store
    if canonical_json(space_cfg) != canonical_json(space.config()):
        store.close()
        raise RunDirError(
            f"--run_dir {run_dir} holds a search of another space "
            f"({canonical_json(space_cfg)}; this one is {canonical_json(space.config())}). "
            "Use a new --run_dir, or the flags that run was started with."
        )
    if canonical_json(search_cfg) != canonical_json(_identity(config)):
        diff = sorted(k for k in set(search_cfg) | set(_identity(config))
                      if search_cfg.get(k) != _identity(config).get(k))
        store.close()
        raise RunDirError(
            f"--run_dir {run_dir} holds a search with other settings (differs in: "
            f"{', '.join(diff)}). Use a new --run_dir, or the flags that run was started with."
        )
    return store


class _Checkpointer:
    """The algorithm's state in a ``tf.train.CheckpointManager``.

    The JSON state of the algorithm and the number of completed rounds are
    saved in the same checkpoint as the TensorFlow objects, so one file set
    is always consistent.
    """

    def __init__(self, directory: Path, algorithm):
        import tensorflow as tf

        self._tf = tf
        self.algorithm = algorithm
        self.round = tf.Variable(0, dtype=tf.int64, trainable=False, name="round")
        self.state = tf.Variable("{}", dtype=tf.string, trainable=False, name="algorithm_state")
        self.ckpt = tf.train.Checkpoint(round=self.round, algorithm_state=self.state,
                                        **algorithm.trackables())
        self.manager = tf.train.CheckpointManager(self.ckpt, str(directory), max_to_keep=3)

    def restore(self) -> bool:
        path = self.manager.latest_checkpoint
        if not path:
            return False
        try:
            self.ckpt.restore(path).assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001 - report any damage as one line
            raise RunDirError(
                f"The checkpoint {path} cannot be restored ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200]}). Delete the files of that checkpoint from "
                f"{os.path.dirname(path)} to resume from an earlier one, or use a new --run_dir."
            ) from None
        self.algorithm.set_state(json.loads(self.state.numpy().decode("utf-8")))
        return True

    def save(self, round_: int) -> None:
        self.round.assign(round_)
        self.state.assign(json.dumps(self.algorithm.get_state()))
        self.manager.save(checkpoint_number=round_)


@dataclasses.dataclass
class _Stats:
    proposals: int = 0
    duplicates: int = 0


class SearchLoop:
    """Runs one search in a run directory.

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
        checkpoint_every_s: Save the algorithm's state after an update only
            when this many seconds passed since the last save (0: after every
            update). Nothing is lost in between: a resumed search replays the
            same proposals from the last checkpoint, and every child already
            in the store reuses its stored reward instead of training again.
    """

    def __init__(self, space: SearchSpace, evaluator: Evaluator, run_dir: str, config: SearchConfig,
                 executor: Executor | None = None, logger: Logger | None = None,
                 child_logs: bool = True, checkpoint_every_s: float = 0.0,
                 algorithm=None):
        self.space = space
        self.checkpoint_every_s = checkpoint_every_s
        self._last_save = 0.0
        self.evaluator = evaluator
        self.run_dir = Path(run_dir)
        self.config = config
        self.executor = executor or InlineExecutor()
        self.child_logs = child_logs
        self.store = open_run_dir(self.run_dir, space, config)
        self.tb = TensorBoardLogger(str(self.run_dir))
        self.logger = MultiLogger([self.tb, logger])
        # An algorithm instance may be handed in (benchmarks reuse one compiled
        # controller across seeds); by default it is made from the config.
        self.algorithm = algorithm or make_algorithm(space, config)
        self.ckpt = _Checkpointer(self.run_dir / CHECKPOINT_DIR, self.algorithm)
        self.stop_requested = False
        self.stop_reason = ""
        self._best: float | None = None
        self._start = time.time()
        self._wall_before = float(self.store.get_meta("wall_time_s", 0.0))

    # -------------------------------------------------------------- helpers
    def _reward_of(self, trial) -> float:
        if trial.status == DONE:
            return float(trial.reward)
        return float(self.config.failure_reward)

    def _context(self, trial_id: int) -> ChildContext:
        log_dir = str(self.run_dir / "children" / str(trial_id)) if self.child_logs else None
        return ChildContext(child_id=trial_id, log_dir=log_dir, seed=self.config.seed * 100003 + trial_id)

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
            "duplicates": int(self.store.get_meta("duplicates", 0)),
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
        s = self.summary(status)
        write_json_atomic(self.run_dir / SUMMARY_FILE, s)
        return s

    # ----------------------------------------------------------------- loop
    def run(self) -> dict:
        """Runs until the budget is spent (or a stop); returns the summary."""
        cfg = self.config
        resumed = self.ckpt.restore()
        requeued = self.store.requeue_running()
        finished = [t for t in self.store.trials() if t.status in (DONE, FAILED)]
        if not resumed and finished:
            # No checkpoint yet: rebuild what the history can give.
            self.algorithm.recover([(t.tokens, self._reward_of(t)) for t in finished])
        if resumed or finished:
            self.logger.message(
                f"Resumed {self.run_dir}: {len(finished)} children kept, {requeued} re-queued, "
                f"round {int(self.ckpt.round.numpy())}.")
        best = self.store.best(1)
        self._best = best[0].reward if best else None
        round_ = int(self.ckpt.round.numpy())
        duplicates = int(self.store.get_meta("duplicates", 0))
        stale_rounds = 0
        self._write_summary()
        try:
            while not self.stop_requested:
                n_done = self.store.num_finished()
                if n_done >= cfg.max_children:
                    self.stop_reason = f"budget reached: {n_done} unique children"
                    break
                if self.algorithm.num_proposed >= cfg.proposal_limit:
                    self.stop_reason = (
                        f"proposal limit reached: {self.algorithm.num_proposed} proposals gave "
                        f"{n_done} unique children (the policy keeps proposing known "
                        "architectures); raise --max_proposals to go on")
                    break
                if stale_rounds >= cfg.patience_rounds:
                    self.stop_reason = (
                        f"converged: {stale_rounds} updates in a row proposed only known "
                        f"architectures ({n_done} unique children); raise --patience_rounds "
                        "or the entropy bonus to keep exploring")
                    break
                round_ += 1
                dup = self._round(round_, n_done)
                stale_rounds = stale_rounds + 1 if self.store.num_finished() == n_done else 0
                duplicates += dup
                self.store.set_meta(duplicates=duplicates,
                                    wall_time_s=self._wall_before + time.time() - self._start)
                if time.time() - self._last_save >= self.checkpoint_every_s:
                    self.ckpt.save(round_)
                    self._last_save = time.time()
                self._write_summary()
            if int(self.ckpt.round.numpy()) != round_:
                self.ckpt.save(round_)
            status = "stopped" if self.stop_requested else "finished"
            if self.stop_requested and not self.stop_reason:
                self.stop_reason = "stop requested"
            self.store.set_meta(wall_time_s=self._wall_before + time.time() - self._start)
            summary = self._write_summary(status)
            self.logger.text(summary["children_trained"], "search/summary",
                             f"**{status}**: {self.stop_reason}")
            return summary
        finally:
            self.logger.flush()

    def _round(self, round_: int, n_done: int) -> int:
        """One update: propose m, evaluate the new ones, feed back. Returns
        the number of duplicate proposals."""
        cfg = self.config
        tokens_list = self.algorithm.propose(cfg.children_per_update, n_done)
        entries = []  # (tokens, trial or None)
        jobs, job_of_hash = [], {}
        budget_left = cfg.max_children - n_done
        duplicates = 0
        for tokens in tokens_list:
            spec = self.space.tokens_to_spec(tokens)
            h = self.space.hash_spec(spec)
            trial = self.store.get(h)
            if trial is not None and trial.status in (DONE, FAILED):
                duplicates += 1
                entries.append((tokens, h))
                continue
            if h in job_of_hash:
                duplicates += 1
                entries.append((tokens, h))
                continue
            if budget_left <= 0:
                continue  # beyond the budget: neither trained nor fed back
            trial = self.store.add(h, self.space.spec_to_json(spec), tokens, round_)
            job_of_hash[h] = Job(trial.id, spec, self._context(trial.id))
            jobs.append(job_of_hash[h])
            entries.append((tokens, h))
            budget_left -= 1
        for job in jobs:
            self.store.mark_running(job.trial_id)
        for outcome in self.executor.run(self.evaluator, jobs):
            tid = outcome.job.trial_id
            if outcome.ok:
                self.store.mark_done(tid, outcome.result.reward, outcome.result.metrics,
                                     outcome.duration)
            elif outcome.retry:
                self.store.mark_pending(tid)
            else:
                self.store.mark_failed(tid, outcome.error, self.config.failure_reward,
                                       outcome.duration)
            trial = self.store.get_id(tid)
            self.logger.child(trial, self.space)
            self._after_child(trial)
        fed_tokens, rewards = [], []
        for tokens, h in entries:
            trial = self.store.get(h)
            if trial is None or trial.status not in (DONE, FAILED):
                continue  # requeued (worker died); proposed again later
            fed_tokens.append(tokens)
            rewards.append(self._reward_of(trial))
        stats = self.algorithm.feedback(fed_tokens, rewards) if fed_tokens else {}
        step = self.store.num_finished()
        scalars = {
            "reward/mean": sum(rewards) / len(rewards) if rewards else None,
            "reward/max": max(rewards) if rewards else None,
            "reward/best_so_far": self._best,
            "search/duplicates_in_round": duplicates,
            "search/proposals": self.algorithm.num_proposed,
            "search/children_per_hour": 3600.0 * step / max(
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
        self.logger.progress(step, cfg.max_children, self._best)
        return duplicates

    def _after_child(self, trial) -> None:
        if trial.status == DONE and (self._best is None or trial.reward > self._best):
            self._best = trial.reward
            spec = self.space.spec_from_json(trial.spec)
            self.logger.text(
                self.store.num_finished(), "best/architecture",
                f"child {trial.id}, reward {trial.reward:.6g}\n\n{self.space.describe(spec)}")

    def close(self) -> None:
        self.logger.close()
        self.executor.close()
        self.evaluator.close()
        self.store.close()


def run_search(space: SearchSpace, evaluator: Evaluator, *, run_dir: str,
               config: SearchConfig | None = None, executor: Executor | None = None,
               logger: Logger | None = None, child_logs: bool = True,
               checkpoint_every_s: float = 0.0, algorithm=None) -> dict:
    """Runs (or resumes) a search and returns its summary (as ``summary.json``).

    Example:

    >>> from nas_tf.loop import run_search  # doctest: +SKIP
    >>> summary = run_search(space, evaluator, run_dir="runs/x",
    ...                      config=SearchConfig(max_children=20))  # doctest: +SKIP
    """
    loop = SearchLoop(space, evaluator, run_dir, config or SearchConfig(), executor=executor,
                      logger=logger, child_logs=child_logs,
                      checkpoint_every_s=checkpoint_every_s, algorithm=algorithm)
    try:
        return loop.run()
    finally:
        loop.close()
