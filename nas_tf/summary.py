"""What a running search says about itself: the content of ``summary.json``
(rewritten after every update, see :class:`nas_tf.runstate.SummaryWriter`) and
the scalars logged at each controller update."""

from __future__ import annotations

from nas_tf.store import DONE, FAILED, PENDING, RUNNING


def search_summary(loop, status: str) -> dict:
    """``summary.json`` of a :class:`nas_tf.loop.SearchLoop` now."""
    counts = loop.store.counts()
    best = loop.store.best(1)
    b = best[0] if best else None
    return {
        "space": loop.space.name,
        "space_config": loop.space.config(),
        "algorithm": loop.config.algorithm,
        "seed": loop.config.seed,
        "max_children": loop.config.max_children,
        "children_trained": counts[DONE] + counts[FAILED],
        # With --sharing an architecture is scored, not trained: the same count.
        "architectures_evaluated": counts[DONE] + counts[FAILED],
        "sharing": getattr(loop.evaluator, "sharing_mode", "none"),
        "children_done": counts[DONE],
        "children_failed": counts[FAILED],
        "children_pending": counts[PENDING] + counts[RUNNING],
        "proposals": loop.algorithm.num_proposed,
        "duplicates": loop.sched.duplicates,
        "updates": loop.sched.updates,
        "executor": loop.executor.name,
        "max_in_flight": loop.sched.max_in_flight,
        "best_reward": None if b is None else b.reward,
        "best_spec": None if b is None else b.spec,
        "best_child_id": None if b is None else b.id,
        "best_metrics": None if b is None else b.metrics,
        "wall_time_s": round(loop.wall_time(), 3),
        # The zero-cost warm-up's time (part of wall_time_s; no child trained in it).
        "warmup_s": round(getattr(loop, "warmup_s", 0.0), 3),
        "status": status,
        "stop_reason": loop.stop_reason,
        "run_dir": str(loop.run_dir),
        # A copy of the run's identity: a resume checks against it, and
        # restores it, when the store's meta table lost it.
        "identity": loop.identity,
    }


def update_scalars(loop, rewards: list[float], staleness: float, stats: dict) -> dict:
    """The scalars of one controller update: its rewards, the search's
    counters and the algorithm's statistics (``stats``, as ``controller/*``)."""
    algorithm = loop.algorithm
    scalars = {
        "reward/mean": sum(rewards) / len(rewards),
        "reward/max": max(rewards),
        "reward/best_so_far": loop.best,
        "search/duplicates": loop.sched.duplicates,
        "search/proposals": algorithm.num_proposed,
        "search/staleness": staleness,
        "search/in_flight": loop.executor.num_in_flight(),
        "search/children_per_hour": 3600.0 * loop.store.num_finished() / max(
            1e-9, loop.wall_time()),
    }
    for k, v in stats.items():
        scalars[f"controller/{k}"] = v
    if hasattr(algorithm, "last_entropy") and "entropy" not in stats:
        scalars["controller/entropy"] = algorithm.last_entropy
    if hasattr(algorithm, "optimizer"):
        scalars["controller/learning_rate"] = float(algorithm.optimizer.learning_rate.numpy())
    # An evaluator with state of its own (a shared model) adds its scalars, e.g. shared/*.
    own = getattr(loop.evaluator, "scalars", None)
    if callable(own):
        scalars.update(own())
    return scalars
