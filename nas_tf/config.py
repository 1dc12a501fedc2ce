"""Typed configuration of a search.

Defaults are the paper's values (Zoph & Le 2017, arXiv:1611.01578) where the
paper gives one, with the section cited; the CLI (``nas_tf/run.py``) is the
only place that reads flags and turns them into these dataclasses.
"""

from __future__ import annotations

import dataclasses
import math

from nas_tf.errors import ConfigError
from nas_tf.validation import check_choice, check_finite, check_int, check_positive  # noqa: F401
from nas_tf.warmup import WarmupConfig

ALGORITHMS = ("reinforce", "random", "evolution", "tpe")


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """The controller RNN (paper §3.1, §4.1).

    Attributes:
        lstm_size: Units of each LSTM layer (§4.1: "two-layer LSTM with 35
            hidden units on each layer").
        num_layers: Number of LSTM layers (§4.1: two).
        init_range: Weights are uniform in [-init_range, init_range] (§4.1: 0.08).
        temperature: Softmax temperature used when sampling (1 = none).
        tanh_constant: If set, logits are ``c * tanh(logits / c)``: bounded to
            (-c, c) and unchanged near 0. This project's variant of the
            ENAS bound (Pham et al. 2018 compute ``c * tanh(logits)``, after
            dividing by the temperature, which also scales small logits by c).
    """

    lstm_size: int = 35
    num_layers: int = 2
    init_range: float = 0.08
    temperature: float = 1.0
    tanh_constant: float | None = None

    def __post_init__(self):
        check_positive("lstm_size", self.lstm_size)
        check_positive("num_layers", self.num_layers)
        check_positive("init_range", self.init_range)
        check_positive("temperature", self.temperature)
        check_positive("tanh_constant", self.tanh_constant)


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
    """REINFORCE with a moving-average baseline (paper §3.2).

    The advantage of a child with (scaled) reward R is R - b, where b is the
    exponential moving average of the rewards of the children fed back
    *before* it (§3.2: "an exponential moving average of the previous
    architecture accuracies"), in the order they were proposed; within one
    batch of m, each child's baseline already includes the earlier children
    of the batch, never the child itself.

    Attributes:
        learning_rate: Adam learning rate (§4.1: 0.0006).
        baseline_decay: b <- decay * b + (1 - decay) * R (the decay is not
            given in the paper; 0.95 as in the authors' later code).
        baseline_init: Start value of b, in units of the reward (before
            ``reward_scale``). None (default): there is no previous reward
            for the very first child, so its reward only sets b and its
            advantage is 0; the rest of the first batch already has a
            baseline from previous rewards.
        entropy_weight: Weight of the entropy bonus (0: none, as in the paper).
        max_grad_norm: Global gradient-norm clip (None: none).
        reward_scale: Rewards are multiplied by this before the update.
        normalize_advantage: Divide R - b by max(sigma, advantage_std_floor),
            sigma the moving root-mean-square of R - b over previous rewards
            (same decay as b), and clip the result to +-advantage_clip.
        advantage_std_floor: Floor of sigma, in units of the scaled reward.
            A run of identical rewards drives sigma to 0 (e.g. failures at 0,
            or a converged policy fed its duplicates' rewards); with the floor,
            |A| <= |R - b| / advantage_std_floor.
        advantage_warmup: With ``normalize_advantage``, the deviations
            (R - b)^2 needed before R - b is divided by their spread; until
            then the advantage is R - b (clipped). A spread estimated from
            one or two deviations made the earliest updates the largest: with
            rewards 0.90, 0.91, 0.92, ... the second advantage was always the
            clip (5), whatever the reward.
        advantage_clip: With ``normalize_advantage``, |A| <= advantage_clip
            whatever the sequence of rewards (None: no clip; the floor alone
            bounds A).
        steps_per_batch: Adam steps taken on each batch of m rewards (1 in the
            paper). The later steps reuse the same samples and advantages.
    """

    learning_rate: float = 6e-4
    baseline_decay: float = 0.95
    baseline_init: float | None = None
    entropy_weight: float = 0.0
    max_grad_norm: float | None = None
    reward_scale: float = 1.0
    normalize_advantage: bool = False
    advantage_std_floor: float = 1e-3
    advantage_clip: float | None = 5.0
    advantage_warmup: int = 4
    steps_per_batch: int = 1

    def __post_init__(self):
        check_positive("learning_rate", self.learning_rate)
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(
                f"baseline_decay must be in [0, 1). Received: baseline_decay={self.baseline_decay}"
            )
        if self.baseline_init is not None and not math.isfinite(float(self.baseline_init)):
            raise ConfigError("baseline_init must be a finite number or None. "
                              f"Received: baseline_init={self.baseline_init}")
        check_positive("entropy_weight", self.entropy_weight, allow_zero=True)
        check_positive("max_grad_norm", self.max_grad_norm)
        check_positive("reward_scale", self.reward_scale)
        check_positive("advantage_std_floor", self.advantage_std_floor)
        check_positive("advantage_clip", self.advantage_clip)
        check_positive("steps_per_batch", self.steps_per_batch)
        check_int("advantage_warmup", self.advantage_warmup, minimum=0)


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    """Regularized (aging) evolution (Real et al. 2019, arXiv:1802.01548).

    Attributes:
        population_size: P, the number of most recent children kept alive.
        tournament_size: S, the sample size of each tournament.
    """

    population_size: int = 20
    tournament_size: int = 5

    def __post_init__(self):
        check_positive("population_size", self.population_size)
        check_positive("tournament_size", self.tournament_size)
        if self.tournament_size > self.population_size:
            raise ConfigError(
                "tournament_size must be <= population_size. Received: "
                f"tournament_size={self.tournament_size}, population_size={self.population_size}"
            )


#: Largest seed (children's seeds, seed * 100003 + id, stay int64) and budget.
MAX_SEED = 2**32 - 1
MAX_COUNT = 10**12


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One search.

    Attributes:
        algorithm: One of ``reinforce``, ``random``, ``evolution``, ``tpe``
            (Optuna's TPE, an optional extra: :mod:`nas_tf.tpe`).
        max_children: Budget of unique children trained (duplicates are not
            counted; the paper trains 12,800 on CIFAR-10, §4.1).
        children_per_update: m, children per controller update (§3.3 uses
            m = 8 per replica).
        seed: Seed of the controller / algorithm; the same seed gives the same
            sequence of architectures on CPU.
        max_proposals: Bound on proposals (duplicates included); None means
            ``20 * max_children``. A search that hits it stops and says so.
        patience_rounds: Stop when this many updates in a row proposed only
            architectures already trained (a collapsed policy). Duplicates
            cost no training, and a converged REINFORCE policy still finds a
            new architecture now and then: on NAS-Bench-201, 200 rounds found
            the optimum in 18 of 20 seeds, 50 rounds in 17 of 20
            (experiments/results/nb201.md).
        max_search_s: Wall-time budget in seconds (all lives of a resumed
            search together); None: none. Proposing stops when it is spent and
            the children in flight finish.
        failure_reward: Reward fed back for a failed child.
        controller, reinforce, evolution: Algorithm settings.
        warmup: A zero-cost warm-up before the first child (:mod:`nas_tf.warmup`).
    """

    algorithm: str = "reinforce"
    max_children: int = 100
    children_per_update: int = 8
    seed: int = 0
    max_proposals: int | None = None
    patience_rounds: int = 200
    max_search_s: float | None = None
    failure_reward: float = 0.0
    controller: ControllerConfig = dataclasses.field(default_factory=ControllerConfig)
    reinforce: ReinforceConfig = dataclasses.field(default_factory=ReinforceConfig)
    evolution: EvolutionConfig = dataclasses.field(default_factory=EvolutionConfig)
    warmup: WarmupConfig = dataclasses.field(default_factory=WarmupConfig)

    def __post_init__(self):
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_positive("max_children", self.max_children)
        check_positive("children_per_update", self.children_per_update)
        check_positive("max_proposals", self.max_proposals)
        check_positive("patience_rounds", self.patience_rounds)
        check_positive("max_search_s", self.max_search_s)
        check_finite("failure_reward", self.failure_reward)
        if self.seed < 0 or self.seed > MAX_SEED:
            raise ConfigError(f"seed must be in [0, {MAX_SEED}]. Received: seed={self.seed}")
        for name in ("max_children", "max_proposals"):
            value = getattr(self, name)
            if value is not None and value > MAX_COUNT:
                raise ConfigError(f"{name} must be <= {MAX_COUNT} (a store holds int64 ids). "
                                  f"Received: {name}={value}")

    @property
    def proposal_limit(self) -> int:
        return self.max_proposals if self.max_proposals else 20 * self.max_children

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------
# Presets. "paper" is Zoph & Le 2017 as published (§3.2, §4.1). "small_budget"
# is tuned on NAS-Bench-201 for searches of a few hundred children (see
# experiments/nb201_benchmark.py and experiments/results/nb201.md): with only
# hundreds of rewards, lr 6e-4 barely moves the policy, so the small-budget
# preset learns faster and normalises the advantage.
# ----------------------------------------------------------------------------
PRESETS = ("paper", "small_budget")

# Chosen by a grid over learning rate {6e-4 .. 0.05}, baseline decay {0.7 ..
# 0.95}, entropy weight {0 .. 0.5} and m {1, 2, 3, 5, 8, 10} on NAS-Bench-201
# CIFAR-10, 10-20 seeds each (experiments/results/nb201.md): the paper's values
# end near random search at 500 children; a faster learner without an entropy
# bonus collapses onto a sub-optimal cell within ~100 children.
# Issue 9 (in-memory harness experiments/nb201_tune.py, CIFAR-10 table, 10
# seeds, mean best at 50 / 100 / 200 children, with the baseline of previous
# rewards and the floored, clipped advantage of ReinforceConfig):
#   m = 3 (before):              93.664 / 93.889 / 94.256
#   m = 1:                       93.679 / 94.021 / 94.289  <- chosen
#   m = 3, 4 steps per batch:    93.916 / 94.128 / 94.166  (converges too early:
#                                optimum in 30 % of seeds at 200, against 70 %)
# On two other tables (8 seeds; a synthetic NB201-shaped table, and CIFAR-10
# with permuted op labels and rewards exp(r/10)) m = 1 is also ahead at 50 and
# 100 (synthetic 85.6 / 89.4 vs 82.1 / 89.1; transformed 93.85 / 94.23 vs
# 93.76 / 93.99) and level at 200. m = 1 is REINFORCE with one child per
# update, its baseline the moving average of the rewards before it.
_SMALL_BUDGET_REINFORCE = dict(
    learning_rate=0.01,
    baseline_decay=0.8,
    entropy_weight=0.2,
    normalize_advantage=True,
)
_SMALL_BUDGET_CHILDREN_PER_UPDATE = 1


def _check_preset(name: str) -> None:
    if name not in PRESETS:
        raise ConfigError(f"Unknown controller preset; use one of {', '.join(PRESETS)}. "
                          f"Received: preset={name!r}")


# Issue 9, section 3: the policy collapsed. With m = 1 and the normalised
# advantage, the normaliser sigma (RMS of R - b) falls from 10.4 to 0.1
# accuracy points within 250 proposals while |A| stays ~0.6, so the update
# keeps full strength on ever smaller reward differences: the entropy falls
# from 9.2 nats (uniform 9.66) to 1.5 by proposal 200 and 0.2 by 500, new
# architectures drop to 14 % of proposals by proposal 200 and ~1 % by 450,
# and patience stops most searches before 500 children, often on the second
# best cell (94.363), one edge from both optima (experiments/nb201_diagnose.py,
# 5 seeds). A bounded logit (c * tanh(logit / c), c = 2.5: this project's
# variant of ENAS's bound, Pham et al. 2018, which computes c * tanh(logit) after
# the temperature; here with temperature 1, applied after the tanh) caps each
# decision's top probability at ~0.97, so the policy keeps proposing one-edge
# neighbours of its mode (entropy floor ~1.8 nats with the 0.2 bonus): it
# hill-climbs like evolution instead of stopping.
# In-memory harness, 10 seeds, mean best / optimum at 50 / 100 / 200 children:
#   CIFAR-10     no tanh (before): 93.697 / 94.023 / 94.259, 50 % (20 seeds)
#                tanh 2.5:         93.723 / 94.038 / 94.325, 60 %
#   transformed  no tanh (8 seeds): 93.845 / 94.230 / 94.305, 75 %
#                tanh 2.5:         93.817 / 94.220 / 94.349, 70 %
#   synthetic    no tanh (20 seeds): 86.570 / 90.351 / 92.436, 25 %
#                tanh 2.5:         85.587 / 88.257 / 92.985, 30 %
# Tried and not kept (CIFAR-10, 10 seeds): entropy 0.5 without tanh
# (93.711 / 93.993 / 94.174, 94.358 at 500 but optimum in 60 %); tanh 2.5 with
# entropy 0 (the policy sits on the bound: 121-189 new children in 800-2000
# proposals, patience stops it); tanh 2.5 with lr 0.03 (93.775 / 94.131 /
# 94.294: faster at 100, slower at 200). 20 seeds, CIFAR-10, 50 / 100 / 200 /
# 500: 93.725 / 94.046 / 94.285 / 94.373 with the optimum in 100 % of seeds at
# 500 (before: 93.697 / 94.023 / 94.259 / 94.261, 60 %; evolution 94.373,
# 100 %). At 500 on the other tables (6 seeds): transformed 94.373, 100 %;
# synthetic 94.283, 67 % (before 92.436, 25 %; evolution 94.410, 70 %).
# experiments/results/nb201.md.
_SMALL_BUDGET_CONTROLLER = dict(tanh_constant=2.5)


def controller_preset(name: str) -> ControllerConfig:
    """The controller settings of a preset: the paper's controller (§3.1,
    §4.1); ``small_budget`` bounds its logits (tanh_constant, see above)."""
    _check_preset(name)
    if name == "paper":
        return ControllerConfig()
    return ControllerConfig(**_SMALL_BUDGET_CONTROLLER)


def reinforce_preset(name: str) -> ReinforceConfig:
    """The REINFORCE settings of a preset."""
    _check_preset(name)
    if name == "paper":
        return ReinforceConfig()
    return ReinforceConfig(**_SMALL_BUDGET_REINFORCE)


def children_per_update_preset(name: str) -> int:
    """m of a preset: 8 in the paper (§3.3), fewer for small budgets."""
    _check_preset(name)
    return 8 if name == "paper" else _SMALL_BUDGET_CHILDREN_PER_UPDATE


# ----------------------------------------------------------------------------
# The one preset rule, used by the CLI and the API alike.
# ----------------------------------------------------------------------------
AUTO_PRESET_MAX_CHILDREN = 2000
#: The child budget of a search bounded by its wall time alone (no limit in practice).
OPEN_CHILD_BUDGET = 10**9
#: The default child budget with weight sharing (children are scored, not trained: ~1-2 s
#: each on a CPU here, so 1,000 is about half an hour).
SHARING_DEFAULT_MAX_CHILDREN = 1000


def child_budget(max_children: int | None, space_default: int, max_search_s: float | None,
                 sharing: bool) -> tuple[int, int]:
    """Which budget binds: ``(max_children, preset_budget)``.

    A given ``max_children`` binds (with ``max_search_s`` too, the first one
    reached). Not given: with ``max_search_s`` the wall time binds and the
    child budget is open (:data:`OPEN_CHILD_BUDGET`); else with weight
    sharing :data:`SHARING_DEFAULT_MAX_CHILDREN`; else the space's default.
    ``preset_budget`` is what ``--controller_preset=auto`` judges by (an open
    budget counts as the default it replaces).

    >>> child_budget(None, 10, 240.0, True)
    (1000000000, 1000)
    >>> child_budget(None, 10, None, False), child_budget(50, 10, 240.0, True)
    ((10, 10), (50, 50))
    """
    if max_children is not None:
        return max_children, max_children
    default = SHARING_DEFAULT_MAX_CHILDREN if sharing else space_default
    if max_search_s is not None:
        return OPEN_CHILD_BUDGET, default
    return default, default


def default_children_per_update(preset: str, algorithm: str,
                                recorded_search: dict | None = None) -> int:
    """m when not given: the run's own when one is resumed, else the
    preset's, but 1 for TPE (it refits at every reward, see :mod:`nas_tf.tpe`)."""
    recorded = (recorded_search or {}).get("children_per_update")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    return 1 if algorithm == "tpe" else children_per_update_preset(preset)


def recorded_preset(search: dict | None) -> str | None:
    """The preset a recorded search identity (a run directory's ``search``
    meta) was made with, or None (settings of its own, or no record)."""
    import dataclasses as _dc

    recorded = (search or {}).get("reinforce")
    if not isinstance(recorded, dict):
        return None
    for name in ("small_budget", "paper"):
        # Settings added since the run was made are not in its record: compare the rest.
        preset = _dc.asdict(reinforce_preset(name))
        if all(preset.get(k) == v for k, v in recorded.items() if k in preset):
            return name
    return None


def preset_settings(preset: str, recorded_search: dict | None = None
                    ) -> tuple[ControllerConfig, ReinforceConfig]:
    """The controller and REINFORCE settings of ``preset``. A resumed run of
    the same preset keeps the settings it recorded: a preset retuned since
    (e.g. ``small_budget``'s tanh bound) must not make an older run refuse to
    resume, nor change its search half way."""
    ctrl, rein = controller_preset(preset), reinforce_preset(preset)
    if recorded_search and recorded_preset(recorded_search) == preset:
        ctrl = _from_record(ctrl, recorded_search.get("controller"))
        rein = _from_record(rein, recorded_search.get("reinforce"))
    return ctrl, rein


def _from_record(default, record):
    """``default`` with the fields a record gives (unknown keys ignored)."""
    import dataclasses as _dc

    if not isinstance(record, dict):
        return default
    known = {f.name for f in _dc.fields(default)}
    try:
        return _dc.replace(default, **{k: v for k, v in record.items() if k in known})
    except (ConfigError, TypeError, ValueError):
        return default


def resolve_preset(preset: str, max_children: int, recorded_search: dict | None = None) -> str:
    """The preset to use: ``auto`` keeps the preset of the run being resumed
    (whatever its new budget), else takes ``small_budget`` up to
    2,000 children and the paper's settings (§4.1) above."""
    if preset != "auto":
        _check_preset(preset)
        return preset
    return recorded_preset(recorded_search) or (
        "small_budget" if max_children <= AUTO_PRESET_MAX_CHILDREN else "paper")
