"""Zero-cost warm-up: a training-free proxy scores architectures before the
first child is trained, and the algorithm starts from what it says.

Training-free ("zero-cost") proxies such as NASWOT (Mellor et al. 2021) rank
architectures in about a second each, far less than a trained child; warming a
search up with them (Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021) spares the children a search spends on learning what any
cheap look already tells. With ``--warmup=PROXY --warmup_architectures=N``:

* REINFORCE: the controller samples N architectures in batches of m and is
  updated on their proxy scores, normalised to ranks (the share of the scores
  so far that each beats), with the paper's REINFORCE step; then its baseline
  starts afresh and the search continues on real rewards with the same
  controller (:meth:`nas_tf.algorithms.Reinforce.warm_up`);
* evolution: N uniform draws are scored and the proxy's top P (the
  population size) form the first population, trained first;
* TPE and random: the proxy's top k (``warmup_top_k``) are trained first
  (TPE sees them as its first trials).

Budgets count trained children only; the proxy's time is reported apart
(``warmup_s``), and counts against ``--max_search_s``. Every score is appended
to ``RUN_DIR/warmup/scores.jsonl`` as it is computed, so a search killed
during the warm-up resumes it without scoring any architecture twice, and one
killed after it (its checkpoint records that it is warmed up) never scores
the proxy again. The proxy itself comes from the space's plug-in
(:meth:`nas_tf.plugins.SpacePlugin.make_proxy`). No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nas_tf.errors import ConfigError

WARMUP_DIR = "warmup"
SCORES_FILE = "scores.jsonl"


@dataclasses.dataclass(frozen=True)
class WarmupConfig:
    """A zero-cost warm-up (part of a run's identity).

    Attributes:
        proxy: The proxy's name (``naswot``, ...; the space's plug-in knows
            which it offers), or None for no warm-up.
        architectures: N, architectures the proxy scores.
        top_k: Random search and TPE: how many of the proxy's best are trained
            first (default: m, one controller update's worth). Evolution uses
            its population size instead.
    """

    proxy: str | None = None
    architectures: int = 0
    top_k: int | None = None

    def __post_init__(self):
        n = self.architectures
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"warmup_architectures must be an integer >= 0. "
                              f"Received: warmup_architectures={n!r}")
        if self.proxy and n < 2:
            raise ConfigError(f"--warmup={self.proxy} needs --warmup_architectures of at least "
                              f"2 (e.g. 2000). Received: warmup_architectures={n}")
        if not self.proxy and n:
            raise ConfigError("--warmup_architectures needs a proxy: give --warmup=naswot "
                              f"(or another the space offers). Received: warmup_architectures={n}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or
                                       not isinstance(self.top_k, int) or self.top_k < 1):
            raise ConfigError(f"warmup_top_k must be an integer >= 1. "
                              f"Received: warmup_top_k={self.top_k!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.proxy)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def rank_scores(scores: Sequence[float], seen: Sequence[float]) -> list[float]:
    """Each score as the share of ``seen`` (every score so far, these included)
    strictly below it plus half the ties, in [0, 1]; a non-finite score is 0.

    Example:

    >>> rank_scores([1.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    [0.125, 0.625]
    """
    finite = sorted(s for s in seen if math.isfinite(s))
    out = []
    for s in scores:
        if not math.isfinite(s) or not finite:
            out.append(0.0)
            continue
        below = sum(1 for x in finite if x < s)
        ties = sum(1 for x in finite if x == s)
        out.append((below + 0.5 * ties) / len(finite))
    return out


class ProxyScores:
    """The proxy's scores, cached in ``folder/scores.jsonl`` (tokens -> score).

    Args:
        score_one: ``score_one(tokens) -> float`` (the live proxy).
        folder: ``RUN_DIR/warmup`` (None: no file, e.g. benchmarks).
        on_progress: Called as ``on_progress(scored, seconds)`` after each new score.
    """

    def __init__(self, score_one: Callable[[tuple], float], folder: Path | None = None,
                 on_progress: Callable[[int, float], None] | None = None):
        self.score_one = score_one
        self.folder = Path(folder) if folder is not None else None
        self.on_progress = on_progress
        self.cache: dict[tuple, float] = {}
        self.scored = 0  # scores computed by this process
        self.seconds = 0.0  # the proxy's time in this process
        path = None if self.folder is None else self.folder / SCORES_FILE
        if path is not None and path.exists():
            data = path.read_bytes()
            whole = data[:data.rfind(b"\n") + 1]  # a last line cut by a kill is dropped
            if len(whole) < len(data):
                with path.open("r+b") as f:
                    f.truncate(len(whole))
            for line in whole.decode("utf-8", "replace").splitlines():
                try:
                    row = json.loads(line)
                    self.cache[tuple(int(t) for t in row["tokens"])] = float(row["score"])
                except (ValueError, KeyError, TypeError):
                    continue  # a damaged line: that architecture is scored again

    def __call__(self, tokens_list: Sequence[Sequence[int]]) -> list[float]:
        out = []
        for tokens in tokens_list:
            key = tuple(int(t) for t in tokens)
            if key not in self.cache:
                start = time.perf_counter()
                value = float(self.score_one(key))
                self.seconds += time.perf_counter() - start
                self.scored += 1
                self.cache[key] = value
                if self.folder is not None:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    with (self.folder / SCORES_FILE).open("a") as f:
                        f.write(json.dumps({"tokens": list(key), "score": value}) + "\n")
                if self.on_progress is not None:
                    self.on_progress(len(self.cache), self.seconds)
            out.append(self.cache[key])
        return out


class WarmupInterrupted(Exception):
    """The warm-up stopped early (a signal, the time budget); nothing of it is
    checkpointed, and the same command resumes it from the scores file."""


def warm_up_search(loop, proxy: Callable | None) -> None:
    """Runs the warm-up of ``loop`` (a :class:`nas_tf.loop.SearchLoop` whose
    algorithm is not warmed up yet) with ``proxy(spec) -> float``.

    Raises:
        ConfigError: the search asks for a warm-up and the space gave no proxy.
        WarmupInterrupted: a stop was requested, or ``max_search_s`` was spent.
    """
    cfg = loop.config.warmup
    if proxy is None:
        raise ConfigError(f"--warmup={cfg.proxy} needs a proxy of the space, and "
                          f"--space={loop.space.name} gave none. Received: warmup={cfg.proxy!r}")
    budget = loop.config.max_search_s
    start = time.time()

    def progress(count: int, seconds: float) -> None:
        loop.logger.progress(min(count, cfg.architectures), cfg.architectures, None,
                             note=f"warm-up: {cfg.proxy}")
        if loop.stop_requested:
            raise WarmupInterrupted(loop.stop_reason or "stop requested")
        if budget is not None and loop.wall_time() >= budget:
            raise WarmupInterrupted(f"time budget reached during the warm-up: "
                                    f"{loop.wall_time():.0f} s of --max_search_s={budget:g}")

    scores = ProxyScores(lambda tokens: proxy(loop.space.tokens_to_spec(tokens)),
                         loop.run_dir / WARMUP_DIR, progress)
    try:
        stats = loop.algorithm.warm_up(scores, cfg.architectures,
                                       cfg.top_k or loop.config.children_per_update)
    finally:
        loop.warmup_s += time.time() - start
        loop.store.set_meta(warmup_s=loop.warmup_s)
    values = {"warmup/seconds": loop.warmup_s, "warmup/architectures": float(len(scores.cache)),
              "warmup/proxy_seconds_per_architecture": scores.seconds / max(1, scores.scored)}
    values.update({f"warmup/{k.removeprefix('warmup_')}": float(v) for k, v in stats.items()})
    loop.logger.scalars(0, values)
    loop.logger.message(
        f"warm-up: {cfg.proxy} scored {len(scores.cache)} architectures ({scores.scored} now, "
        f"{scores.seconds:.0f} s of proxy time); {loop.warmup_s:.0f} s in all")


def _finite_or_low(x: float) -> float:
    return float(x) if math.isfinite(x) else -math.inf


def uniform_warm_up(algorithm, score: Callable, n: int, top_k: int, stream: int) -> dict:
    """Random search, evolution, TPE: scores ``n`` uniform draws (distinct where
    the space allows; their own random stream) and queues the ``top_k`` best
    to be proposed first (``algorithm.preferred``)."""
    import numpy as np

    from nas_tf.algorithms import random_tokens

    decisions = algorithm.space.decisions()
    rng = np.random.default_rng([algorithm.config.seed, stream])
    draws: dict[tuple, None] = {}
    for _ in range(20 * n):
        draws.setdefault(random_tokens(decisions, rng), None)
        if len(draws) == n:
            break
    tokens = list(draws)
    scores = score(tokens)
    order = sorted(range(len(tokens)), key=lambda i: -_finite_or_low(scores[i]))
    algorithm.preferred = [tokens[i] for i in order[:top_k]]
    algorithm.warmed_up = True
    return {"warmup_best_score": _finite_or_low(scores[order[0]])}


def reinforce_warm_up(algorithm, score: Callable, n: int) -> dict:
    """REINFORCE: samples ``n`` architectures from the controller in batches of
    m and updates it on their proxy scores normalised to ranks
    (:func:`rank_scores`: the share of the warm-up's scores so far that each
    beats), then restarts the baseline so that real rewards, on another
    scale, start afresh."""
    m = algorithm.config.children_per_update
    decisions = algorithm.space.decisions()
    seen: list[float] = []
    done, best, stats = 0, -math.inf, {"entropy": math.nan}
    while done < n:
        k = min(m, n - done)
        tokens, _, _ = algorithm.controller.sample(k, decisions)
        tokens = [tuple(int(x) for x in row) for row in tokens]
        scores = [float(x) for x in score(tokens)]
        seen += scores
        best = max([best] + [_finite_or_low(x) for x in scores])
        stats = algorithm.feedback(tokens, rank_scores(scores, seen))
        done += k
    algorithm.baseline.assign(0.0)
    algorithm.reward_var.assign(0.0)
    algorithm.baseline_ready.assign(False)
    algorithm.warmed_up = True
    return {"warmup_best_score": best, "warmup_entropy": stats["entropy"]}


def warm_up_loop(loop) -> None:
    """The loop's warm-up, checkpointed when complete; an interrupted one stops
    the search with nothing of it checkpointed (the scores file keeps what
    was computed)."""
    try:
        warm_up_search(loop, loop.proxy)
    except WarmupInterrupted as e:
        loop._warmup_incomplete = True
        loop.request_stop(str(e))
        return
    loop._save()
