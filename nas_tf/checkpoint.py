"""The search's state in a run directory's ``checkpoints/`` folder.

The JSON state of the algorithm and of the loop (the proposals not yet fed
back, counters, how many rows the trial store held) and the number of updates
are saved in the same ``tf.train.Checkpoint`` as the TensorFlow objects, so
one file set is always consistent. TensorFlow writes a checkpoint's files
under temporary names and then points the ``checkpoint`` state file at it,
so a search killed while saving resumes from the previous checkpoint. A
damaged latest checkpoint (or a garbled state file) is passed over for the
newest one that restores, and :attr:`Checkpointer.note` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

from nas_tf.errors import RunDirError
from nas_tf.rundir import describe_os_error
from nas_tf.store import DONE, FAILED


@contextlib.contextmanager
def _quiet_restore():
    """Silences TensorFlow's "value in checkpoint could not be found" warnings
    of failed restore attempts (the failure is reported in one line instead)."""
    import gc
    import logging

    from absl import logging as absl_logging

    level, tf_logger = absl_logging.get_verbosity(), logging.getLogger("tensorflow")
    tf_level = tf_logger.level
    absl_logging.set_verbosity(absl_logging.ERROR)
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        gc.collect()  # the load statuses warn when they are collected
        absl_logging.set_verbosity(level)
        tf_logger.setLevel(tf_level)


def _short(e: BaseException) -> str:
    """One short line of a restore error; a controller of another layout (an
    older nas_tf) is said as such."""
    text = _first_line(e)
    if "incompatible tensor" in text and "controller/" in text:
        return ("its controller was saved by another version of nas_tf, with weights of other "
                "shapes")
    return text[:300]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:160] if text else ''}"


class Checkpointer:
    """Saves and restores an algorithm's trackables and the loop's JSON state."""

    def __init__(self, directory: str | os.PathLike, algorithm):
        import tensorflow as tf

        self._tf = tf
        self.directory = Path(directory)
        self.algorithm = algorithm
        self.note: str | None = None
        self.round = tf.Variable(0, dtype=tf.int64, trainable=False, name="round")
        self.state = tf.Variable("{}", dtype=tf.string, trainable=False, name="algorithm_state")
        self.ckpt = tf.train.Checkpoint(round=self.round, algorithm_state=self.state,
                                        **algorithm.trackables())
        state_file = self.directory / "checkpoint"
        try:
            tf.train.get_checkpoint_state(str(self.directory))
        except Exception as e:  # noqa: BLE001 - a garbled state file: list the files instead
            aside = state_file.with_name(f"checkpoint.damaged-{int(time.time())}")
            try:
                os.replace(state_file, aside)
            except OSError as e2:
                raise RunDirError(describe_os_error(e2, str(state_file))) from None
            self.note = (f"The checkpoint state file {state_file} was damaged ({_first_line(e)}); "
                         f"moved it to {aside.name} and looked for the checkpoints themselves.")
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.directory), max_to_keep=3)

    def _candidates(self) -> list[str]:
        """Checkpoint prefixes, newest first (the state file's, then any others on disk)."""
        found = {}
        for p in self.directory.glob("ckpt-*.index"):
            m = re.fullmatch(r"ckpt-(\d+)\.index", p.name)
            if m:
                found[str(self.directory / f"ckpt-{m.group(1)}")] = int(m.group(1))
        latest = self.manager.latest_checkpoint
        ordered = sorted(found, key=lambda k: -found[k])
        if latest and latest in ordered:
            ordered.remove(latest)
            ordered.insert(0, latest)
        return ordered

    def restore(self) -> dict | None:
        """Restores the newest checkpoint that can be restored; returns the
        loop's state (None without a checkpoint; ``{}`` for a checkpoint of
        an older version).

        Raises:
            RunDirError: there are checkpoints and none can be restored.
        """
        candidates = self._candidates()
        if not candidates:
            return None
        damaged = []
        with _quiet_restore():
            return self._restore_first(candidates, damaged)

    def _restore_first(self, candidates, damaged) -> dict:
        for path in candidates:
            try:
                self.ckpt.restore(path).assert_existing_objects_matched()
                state = json.loads(self.state.numpy().decode("utf-8"))
                if not isinstance(state, dict):
                    raise ValueError("its JSON state is not an object")
                if "loop" not in state or "algorithm" not in state:
                    raise ValueError("its JSON state has no 'loop' and 'algorithm'")
                self.algorithm.set_state(state["algorithm"])
                loop = state["loop"]
            except Exception as e:  # noqa: BLE001 - any damage: try the previous checkpoint
                damaged.append(f"{os.path.basename(path)} ({_short(e)})")
                continue
            if damaged:
                self.note = ((self.note + " ") if self.note else "") + (
                    f"Checkpoint {', '.join(damaged)} cannot be restored; resumed from the "
                    f"previous one, {os.path.basename(path)} (children trained since are kept "
                    "and not trained again).")
            return loop
        raise RunDirError(
            f"No checkpoint in {self.directory} can be restored: {'; '.join(damaged)}. Move "
            f"{self.directory} away to restart the controller from scratch (the trained "
            "children are kept), or use a new --run_dir.")

    def save(self, round_: int, loop_state: dict) -> None:
        self.round.assign(round_)
        self.state.assign(json.dumps({"algorithm": self.algorithm.get_state(),
                                      "loop": loop_state}))
        try:
            self.manager.save()  # numbered by the checkpoint's own (restored) save counter
        except Exception as e:  # noqa: BLE001 - e.g. ResourceExhaustedError on a full disk
            if isinstance(e, OSError) or "space" in str(e) or "ResourceExhausted" in \
                    type(e).__name__ or "Permission" in str(e) or "Read-only" in str(e):
                raise RunDirError(describe_os_error(e, str(self.directory))) from None
            raise


def loop_state_for_resume(state: dict | None, trials, updates: int,
                          stored_duplicates: int) -> dict:
    """The loop state a resume starts from: ``state`` as restored, the empty
    state without a checkpoint, or the state a version-1 checkpoint (saved
    after update ``updates``, without ``max_trial_id``) implies from the
    store's rows (``trials``) and its ``duplicates`` record."""
    if state is None:  # no checkpoint: replay everything from the seed
        return {"max_trial_id": 0, "finished": 0}
    if "max_trial_id" not in state:  # a version-1 checkpoint, after round `updates`
        old = [t for t in trials if (t.round or 0) <= updates]
        return {"max_trial_id": max([t.id for t in old], default=0),
                "finished": sum(t.status in (DONE, FAILED) for t in old),
                "duplicates": int(stored_duplicates)}
    return state


def restore_scheduler(sched, checkpointer: Checkpointer, state: dict | None, store, space,
                      num_proposed: int) -> None:
    """Rebuilds a :class:`nas_tf.scheduler.Scheduler` from the loop state
    ``checkpointer`` restored (see :meth:`nas_tf.scheduler.Scheduler.restore`),
    with the trial ``store`` of the run and its ``space``."""
    trials = store.trials()
    updates = int(checkpointer.round.numpy())
    state = loop_state_for_resume(state, trials, updates, store.get_meta("duplicates", 0))

    def recreate(e) -> int:  # a row lost with the last commits of the store
        spec = space.tokens_to_spec(e.tokens)
        return store.add(e.hash, space.spec_to_json(spec), e.tokens, e.version + 1).id

    sched.restore(state, updates=updates, trial_ids=[t.id for t in trials],
                  num_proposed=num_proposed, exists=lambda i: store.get_id(i) is not None,
                  recreate=recreate,
                  stored_finished=sum(t.status in (DONE, FAILED) for t in trials))
