"""Search algorithms: REINFORCE (the paper), random search, aging evolution.

All three share one interface (as PyGlove's DNA generators): they see only
decisions and tokens, never specs or models.

* ``propose(n, num_children)`` returns n token tuples;
* ``feedback(tokens, rewards)`` takes the rewards back (and returns stats);
* ``recover(history)`` rebuilds state that lives in the history of
  (tokens, reward) pairs (the evolution population);
* ``trackables()`` / ``get_state()`` / ``set_state()`` give the state that a
  checkpoint must hold.

REINFORCE follows Zoph & Le 2017 (arXiv:1611.01578, §3.2): the gradient
(1/m) Σ_k Σ_t ∇ log P(a_t | a_<t) (R_k − b_k), with b_k an exponential moving
average of the rewards before child k, optimised with Adam.
"""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Callable
from typing import Sequence

import numpy as np

from nas_tf.config import SearchConfig
from nas_tf.space import Anchor, Categorical, Decision, SearchSpace, Tokens, split_tokens


def random_tokens(decisions: Sequence[Decision], rng: np.random.Generator) -> Tokens:
    """Uniformly random tokens (anchor bits are fair coins)."""
    out: list[int] = []
    for d in decisions:
        if isinstance(d, Categorical):
            out.append(int(rng.integers(d.num_choices)))
        else:
            out.extend(int(b) for b in rng.integers(0, 2, size=d.num_inputs))
    return tuple(out)


def mutate_tokens(decisions: Sequence[Decision], tokens: Tokens,
                  rng: np.random.Generator) -> Tokens:
    """Changes exactly one decision of ``tokens`` to another value.

    A categorical decision takes a different value; an anchor flips one bit.
    Decisions with a single possible value are never picked.
    """
    mutable = [i for i, d in enumerate(decisions)
               if (isinstance(d, Categorical) and d.num_choices > 1)
               or (isinstance(d, Anchor) and d.num_inputs > 0)]
    if not mutable:
        return tuple(tokens)
    parts = split_tokens(decisions, tokens)
    i = mutable[int(rng.integers(len(mutable)))]
    d = decisions[i]
    if isinstance(d, Categorical):
        new = int(rng.integers(d.num_choices - 1))
        parts[i] = new if new < parts[i] else new + 1
    else:
        bits = list(parts[i])
        j = int(rng.integers(len(bits)))
        bits[j] = 1 - bits[j]
        parts[i] = tuple(bits)
    flat: list[int] = []
    for p in parts:
        flat.extend(p if isinstance(p, tuple) else (p,))
    return tuple(flat)


_WARMUP_STREAM = 2**31 - 7  # the warm-up's random draws: a stream apart from proposals


class Algorithm(abc.ABC):
    """A search algorithm over the decisions of ``space``."""

    name = ""

    def __init__(self, space: SearchSpace, config: SearchConfig):
        self.space = space
        self.config = config
        self.num_proposed = 0

    @abc.abstractmethod
    def propose(self, n: int, num_children: int = 0) -> list[Tokens]:
        """Proposes ``n`` architectures (tokens) for the curriculum stage in
        force after ``num_children`` children."""

    def feedback(self, tokens: Sequence[Tokens], rewards: Sequence[float]) -> dict:
        """Takes rewards for proposed tokens; returns stats to log."""
        return {}

    def recover(self, history: Sequence[tuple[Tokens, float]]) -> None:
        """Rebuilds history-derived state from (tokens, reward) pairs, oldest first."""

    def trackables(self) -> dict:
        """TensorFlow objects to checkpoint (controller, optimizer, ...)."""
        return {}

    def get_state(self) -> dict:
        """JSON-able state to checkpoint."""
        state = {"num_proposed": self.num_proposed}
        if self.warmed_up:
            state.update(warmed_up=True, preferred=[list(t) for t in self.preferred])
        return state

    def set_state(self, state: dict) -> None:
        self.num_proposed = int(state.get("num_proposed", 0))
        self.warmed_up = bool(state.get("warmed_up", False))
        self.preferred = [tuple(int(x) for x in t) for t in state.get("preferred", [])]

    # ------------------------------------------------------ zero-cost warm-up
    warmed_up = False  # set by warm_up() (and restored with the state)
    preferred: list = []  # tokens proposed before anything else (a warm-up's picks)

    def warm_up(self, score: Callable[[list[Tokens]], list[float]], n: int,
                top_k: int) -> dict:
        """Proposes first the ``top_k`` best of ``n`` uniform draws by a proxy ``score``
        (:func:`nas_tf.warmup.uniform_warm_up`; REINFORCE overrides it)."""
        from nas_tf.warmup import uniform_warm_up

        return uniform_warm_up(self, score, n, top_k, _WARMUP_STREAM)

    def _take_preferred(self, n: int, width: int) -> list[Tokens]:
        """Up to ``n`` of the warm-up's picks (of this width), removed from the queue."""
        take = [t for t in self.preferred if len(t) == width][:n]
        if take:
            self.preferred = [t for t in self.preferred if t not in take]
        return take

    def _rng(self) -> np.random.Generator:
        # A fresh generator per proposal call, keyed by (seed, count): the
        # same seed gives the same stream, also across a resume.
        return np.random.default_rng([self.config.seed, self.num_proposed])


class RandomSearch(Algorithm):
    """Uniform random search over the space's decisions (after a warm-up's picks)."""

    name = "random"

    def propose(self, n, num_children=0):
        decisions = self.space.decisions(num_children)
        first = self._take_preferred(n, sum(d.width for d in decisions))
        rng = self._rng()
        self.num_proposed += n
        return first + [random_tokens(decisions, rng) for _ in range(n - len(first))]


class AgingEvolution(Algorithm):
    """Regularized (aging) evolution, Real et al. 2019 (arXiv:1802.01548).

    The population is the P most recent children; each proposal is the best
    of S children sampled from it, with one decision mutated. Until P children
    exist, proposals are random (after a warm-up: the proxy's top P).
    """

    def warm_up(self, score, n, top_k):
        return super().warm_up(score, n, self.config.evolution.population_size)

    name = "evolution"

    def __init__(self, space, config):
        super().__init__(space, config)
        self.population: deque = deque(maxlen=config.evolution.population_size)

    def propose(self, n, num_children=0):
        decisions = self.space.decisions(num_children)
        width = sum(d.width for d in decisions)
        rng = self._rng()
        self.num_proposed += n
        cfg = self.config.evolution
        out = self._take_preferred(n, width)
        for _ in range(n - len(out)):
            if len(self.population) < cfg.population_size:
                out.append(random_tokens(decisions, rng))
                continue
            idx = rng.choice(len(self.population), size=cfg.tournament_size, replace=False)
            parent = max((self.population[i] for i in idx), key=lambda tr: tr[1])[0]
            if len(parent) < width:  # curriculum grew: extend the parent randomly
                parent = tuple(parent) + random_tokens(decisions, rng)[len(parent):]
            out.append(mutate_tokens(decisions, parent, rng))
        return out

    def feedback(self, tokens, rewards):
        for t, r in zip(tokens, rewards):
            self.population.append((tuple(t), float(r)))
        return {}

    def recover(self, history):
        self.population.clear()
        for t, r in history:
            self.population.append((tuple(t), float(r)))

    def get_state(self):
        return {**super().get_state(), "population": [[list(t), r] for t, r in self.population]}

    def set_state(self, state):
        super().set_state(state)
        self.recover([(tuple(t), r) for t, r in state.get("population", [])])


def reinforce_advantages(rewards: Sequence[float], baseline: float, variance: float,
                         ready: bool, config, seen: int | None = None
                         ) -> tuple[np.ndarray, float, float, int | None]:
    """Advantages of ``rewards`` (already scaled), in order, and the new state.

    Each reward's baseline is the moving average of the rewards before it
    (``baseline``, then the earlier rewards of this call); ``ready`` False
    means no reward came before, and b starts at ``config.baseline_init``
    (scaled) or, if None, at the first reward itself (advantage 0).

    With ``config.normalize_advantage`` the advantage is divided by
    max(sigma, advantage_std_floor) and clipped to ±advantage_clip, where
    sigma^2 is the moving mean of (R - b)^2 over the earlier rewards,
    bias-corrected for its start at 0 (``variance / (1 - decay^k)`` after k
    deviations, as Adam corrects its moments). A spread needs a few rewards:
    until ``config.advantage_warmup`` deviations were seen the advantage is
    R - b itself (clipped), never a ratio of two near-equal numbers -- without
    the warm-up the second reward always reached the clip, whatever it was.

    Args:
        seen: Rewards fed back before these (None: unknown, e.g. a checkpoint
            of a version that did not count them; its ``variance`` is then
            taken as warmed up and uncorrected).

    Returns:
        (advantages, baseline, variance, seen) as float64 / floats / int
        (None stays None).
    """
    d = config.baseline_decay
    b, var = float(baseline), float(variance)
    # Deviations (R - b)^2 folded into var: the very first reward's is 0 by
    # construction when b starts at it.
    k = None if (ready and seen is None) else max(
        0, (seen or 0) - (1 if config.baseline_init is None else 0))
    out = np.zeros(len(rewards), np.float64)
    for i, x in enumerate(rewards):
        x = float(x)
        informative = True
        if not ready:
            b = x if config.baseline_init is None else \
                float(config.baseline_init) * config.reward_scale
            var, k, ready = 0.0, 0, True
            informative = config.baseline_init is not None
        a = x - b
        if config.normalize_advantage:
            if k is None or k >= config.advantage_warmup:
                spread = var / (1.0 - d ** k) if k else var  # k None: no correction
                a /= max(float(np.sqrt(spread)), config.advantage_std_floor)
            if config.advantage_clip is not None:
                a = min(max(a, -config.advantage_clip), config.advantage_clip)
        out[i] = a
        if informative:
            var = d * var + (1 - d) * (x - b) ** 2
            if k is not None:
                k += 1
        b = d * b + (1 - d) * x
    if seen is None and k is None:
        return out, b, var, None
    return out, b, var, (seen or 0) + len(rewards)


class Reinforce(Algorithm):
    """The paper's controller trained with REINFORCE (§3.2).

    Args:
        space: The search space.
        config: The search config (``controller``, ``reinforce``, ``seed``).
    """

    name = "reinforce"

    def __init__(self, space, config):
        super().__init__(space, config)
        import tensorflow as tf

        from nas_tf.controller import Controller

        self._tf = tf
        # Everything random here is seeded explicitly (weights from numpy, the
        # sampler from its own tf.random.Generator): the global seeds are left
        # alone, as a child must leave them (changing TensorFlow's clears the
        # compiled kernels of every tf.function).
        # Weights for every decision the space can ever ask for (a curriculum
        # samples a growing prefix), so the optimizer's variable list is fixed.
        self.controller = Controller(space.final_decisions(), config.controller,
                                     seed=config.seed)
        self.optimizer = self._make_optimizer()
        self.baseline = tf.Variable(0.0, trainable=False, name="baseline")
        # A variable, not a constant traced in: reset() may change it.
        self.entropy_weight = tf.Variable(config.reinforce.entropy_weight, trainable=False,
                                          name="entropy_weight")
        self.reward_var = tf.Variable(0.0, trainable=False, name="reward_variance")
        self.baseline_ready = tf.Variable(False, trainable=False, name="baseline_ready")
        # Rewards fed back (JSON state, not a checkpointed variable: a checkpoint
        # of an older version lacks it; None there means "unknown, warmed up").
        self.rewards_seen: int | None = 0
        self._train_fns: dict = {}
        self.last_entropy = float("nan")

    def _make_optimizer(self):
        import keras

        rcfg = self.config.reinforce
        optimizer = keras.optimizers.Adam(
            learning_rate=rcfg.learning_rate,
            global_clipnorm=rcfg.max_grad_norm if rcfg.max_grad_norm else None,
        )
        optimizer.build(self.controller.trainable_variables)
        return optimizer

    def extend_decisions(self) -> None:
        """Follows a space whose ``final_decisions()`` grew after the
        controller was made (a KerasTuner space that discovers hyperparameters
        as trials run, :mod:`nas_tf.keras_tuner`): the controller keeps every
        weight it learned and gets heads for the new decisions, and Adam starts
        afresh over the enlarged variable list (its moments are dropped)."""
        decisions = tuple(self.space.final_decisions())
        if decisions == self.controller.decisions:
            return
        self.controller.extend(decisions)
        self.optimizer = self._make_optimizer()
        self._train_fns.clear()

    def reset(self, config: SearchConfig) -> None:
        """Starts afresh with ``config``, keeping the compiled functions.

        ``config`` may differ in anything the compiled functions do not
        depend on (seed, budgets, m, the REINFORCE settings but the gradient
        clip); benchmarks use it to run many seeds and settings without
        tracing the controller again.
        """
        same = (config.algorithm == self.config.algorithm
                and config.controller == self.config.controller
                and config.reinforce.max_grad_norm == self.config.reinforce.max_grad_norm)
        if not same:
            raise ValueError("reset() may not change the algorithm, the controller or "
                             "max_grad_norm (they are compiled in).")
        self.config = config
        self.num_proposed = 0
        self.controller.reset(config.seed)
        # Zero Adam's slots and step count (its variables include the learning
        # rate, which is set back afterwards).
        for v in self.optimizer.variables:
            v.assign(np.zeros(v.shape, v.dtype.name if hasattr(v.dtype, "name") else v.dtype))
        self.optimizer.learning_rate = config.reinforce.learning_rate
        self.entropy_weight.assign(config.reinforce.entropy_weight)
        self.baseline.assign(0.0)
        self.reward_var.assign(0.0)
        self.baseline_ready.assign(False)
        self.rewards_seen = 0

    def propose(self, n, num_children=0):
        decisions = self.space.decisions(num_children)
        tokens, _, ent = self.controller.sample(n, decisions)
        self.num_proposed += n
        self.last_entropy = float(np.mean(ent))
        return [tuple(int(x) for x in row) for row in tokens]

    def warm_up(self, score, n, top_k):
        """Updates the controller on the proxy's scores of ``n`` of its samples,
        normalised to ranks (:func:`nas_tf.warmup.reinforce_warm_up`)."""
        from nas_tf.warmup import reinforce_warm_up

        return reinforce_warm_up(self, score, n)

    def _train_fn(self, width):
        tf = self._tf
        key = width
        if key not in self._train_fns:
            logp_fn = self.controller.log_prob_fn(width)
            variables = self.controller.trainable_variables
            ent_w = self.entropy_weight

            # Plain Python loops over static decisions: no AutoGraph needed
            # (it doubles the tracing time); any number of children per call.
            @tf.function(autograph=False,
                         input_signature=[tf.TensorSpec([None, width], tf.int32),
                                          tf.TensorSpec([None], tf.float32)])
            def train(tokens, advantages):
                with tf.GradientTape() as tape:
                    _, logp, ent = logp_fn(tokens)
                    loss = -tf.reduce_mean(advantages * logp) - ent_w * tf.reduce_mean(ent)
                grads = tape.gradient(loss, variables)
                grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
                self.optimizer.apply_gradients(zip(grads, variables))
                return loss, tf.reduce_mean(ent)

            self._train_fns[key] = train
        return self._train_fns[key]

    def feedback(self, tokens, rewards):
        tf = self._tf
        rcfg = self.config.reinforce
        width = len(tokens[0])
        if any(len(t) != width for t in tokens):
            raise ValueError("All tokens of one feedback call must come from one curriculum stage.")
        r = np.asarray(rewards, np.float64) * rcfg.reward_scale
        adv, b, var, seen = reinforce_advantages(r, float(self.baseline.numpy()),
                                                 float(self.reward_var.numpy()),
                                                 bool(self.baseline_ready.numpy()), rcfg,
                                                 self.rewards_seen)
        train = self._train_fn(width)
        tok = tf.constant(np.asarray(tokens, np.int32))
        adv_t = tf.constant(adv, tf.float32)
        for _ in range(rcfg.steps_per_batch):
            loss, ent = train(tok, adv_t)
        self.baseline.assign(b)
        self.reward_var.assign(var)
        self.baseline_ready.assign(True)
        self.rewards_seen = seen
        return {"loss": float(loss), "baseline": b / rcfg.reward_scale, "entropy": float(ent),
                "advantage_abs": float(np.mean(np.abs(adv))),
                "advantage_max": float(np.max(np.abs(adv)))}

    def get_state(self):
        return {**super().get_state(), "rewards_seen": self.rewards_seen}

    def set_state(self, state):
        super().set_state(state)
        # A checkpoint written before the count existed: unknown (warmed up).
        seen = state.get("rewards_seen")
        self.rewards_seen = None if seen is None else int(seen)

    def trackables(self):
        return {
            "controller": self.controller,
            "optimizer": self.optimizer,
            "rng": self.controller.rng,
            "baseline": self.baseline,
            "reward_variance": self.reward_var,
            "baseline_ready": self.baseline_ready,
        }


ALGORITHM_CLASSES = {c.name: c for c in (Reinforce, RandomSearch, AgingEvolution)}


def make_algorithm(space: SearchSpace, config: SearchConfig) -> Algorithm:
    """The algorithm named by ``config.algorithm``.

    Raises:
        ConfigError: ``tpe`` without Optuna installed.
    """
    if config.algorithm == "tpe":  # an optional extra (Optuna), imported only when used
        from nas_tf.tpe import TpeSearch

        return TpeSearch(space, config)
    return ALGORITHM_CLASSES[config.algorithm](space, config)
