"""Shared test support: the shared-data location, a tiny synthetic search
space (categorical decisions and skip anchors, optionally growing) and fake
evaluators that need no training.

Everything here is plain Python (no TensorFlow), so a test may also run it in
a subprocess: ``sys.path.insert(0, TESTS_DIR); import conftest``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
from pathlib import Path
from typing import Any, Sequence

import pytest

from nas_tf.errors import InvalidArchitectureError
from nas_tf.evaluator import EvalResult, Evaluator
from nas_tf.space import Anchor, Categorical, SearchSpace, split_tokens, validate_decisions

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent

# Subprocesses run in the test's temporary folder (see _in_a_temporary_folder), so
# they find the checkout's packages through PYTHONPATH, not through their cwd.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder: relative paths (the CLI's
    default ``runs/<space>``) never read or write the checkout, so a search
    that README's first command left in ``runs/`` cannot change a test."""
    monkeypatch.chdir(tmp_path)


def load_experiment(name: str):
    """Imports ``experiments/<name>.py`` (not a package) as module ``name``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def shared_data_dir() -> Path:
    """../shared/data relative to the repository root, or $NAS_TF_SHARED_DATA."""
    env = os.environ.get("NAS_TF_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data directory {d} is absent (set NAS_TF_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def nb201_table(shared_data) -> Path:
    p = shared_data / "nb201" / "cifar10.csv"
    if not p.is_file():
        pytest.skip(f"NAS-Bench-201 table {p} is absent")
    return p


# ---------------------------------------------------------------------------
# A tiny synthetic space.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ToySpec:
    """A toy architecture: just its tokens (validated by the space)."""

    tokens: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))

    def to_json(self) -> dict:
        return {"tokens": list(self.tokens)}


def toy_decisions(num_layers: int, num_values: int = 4, anchors: bool = True,
                  extra_categorical: int = 0):
    """Layer i: a categorical ``op`` and (optionally) an anchor with i inputs."""
    out = []
    for i in range(num_layers):
        out.append(Categorical(f"layer_{i}/op", tuple(f"op{v}" for v in range(num_values))))
        if anchors:
            out.append(Anchor(f"layer_{i}/inputs", i))
    for j in range(extra_categorical):
        out.append(Categorical(f"extra_{j}", tuple(range(num_values))))
    return validate_decisions(out)


class ToySpace(SearchSpace):
    """A synthetic space of ``num_layers`` layers, each an op choice and a skip anchor.

    With ``grow_every`` set it is a curriculum: it starts with ``start_layers``
    layers and gains one layer every ``grow_every`` children, up to ``num_layers``.
    """

    name = "toy"

    def __init__(self, num_layers: int = 3, num_values: int = 4, anchors: bool = True,
                 extra_categorical: int = 0, grow_every: int | None = None,
                 start_layers: int = 1):
        self.num_layers = num_layers
        self.num_values = num_values
        self.anchors = anchors
        self.extra_categorical = extra_categorical
        self.grow_every = grow_every
        self.start_layers = start_layers if grow_every else num_layers

    def _layers(self, num_children: int) -> int:
        if not self.grow_every:
            return self.num_layers
        return min(self.num_layers, self.start_layers + num_children // self.grow_every)

    def decisions(self, num_children: int = 0):
        layers = self._layers(num_children)
        extra = self.extra_categorical if layers == self.num_layers else 0
        return toy_decisions(layers, self.num_values, self.anchors, extra)

    def final_decisions(self):
        return toy_decisions(self.num_layers, self.num_values, self.anchors,
                             self.extra_categorical)

    def _next_stage(self, num_children: int) -> int:
        if not self.grow_every or self._layers(num_children) >= self.num_layers:
            return super()._next_stage(num_children)
        return (num_children // self.grow_every + 1) * self.grow_every

    def tokens_to_spec(self, tokens: Sequence[int]) -> ToySpec:
        decisions = self.decisions_for_tokens(len(tuple(tokens)))
        split_tokens(decisions, tokens)  # validates
        return ToySpec(tuple(tokens))

    def spec_to_tokens(self, spec: ToySpec):
        return tuple(spec.tokens)

    def spec_from_json(self, obj: Any) -> ToySpec:
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise InvalidArchitectureError(f"A toy spec is {{'tokens': [...]}}. Received: {obj!r}")
        return self.tokens_to_spec(obj["tokens"])

    def config(self) -> dict:
        return {"name": self.name, "num_layers": self.num_layers, "num_values": self.num_values,
                "anchors": self.anchors, "extra_categorical": self.extra_categorical,
                "grow_every": self.grow_every, "start_layers": self.start_layers}


def target_reward(decisions, tokens, target) -> float:
    """Fraction of decisions (anchors: bits) whose tokens equal the hidden ``target``."""
    got = split_tokens(decisions, tokens)
    want = split_tokens(decisions, target[: len(tokens)])
    hits, total = 0, 0
    for g, w in zip(got, want):
        if isinstance(g, tuple):
            hits += sum(int(a == b) for a, b in zip(g, w))
            total += len(g)
        else:
            hits += int(g == w)
            total += 1
    return hits / max(total, 1)


# ---------------------------------------------------------------------------
# Fake evaluators (picklable, instant).
# ---------------------------------------------------------------------------
class FakeEvaluator(Evaluator):
    """Reward = a deterministic function of the tokens; records every call.

    Args:
        space: The toy space (to split tokens).
        fail_on: Token tuples whose evaluation raises.
        nan_on: Token tuples whose reward is NaN.
        kill_at: Call number (1-based) at which the process SIGKILLs itself.
        calls_file: If set, each call appends its tokens (one JSON line) here,
            so calls made by a process that dies are still known.
    """

    def __init__(self, space: ToySpace, fail_on=(), nan_on=(), kill_at: int | None = None,
                 calls_file: str | None = None):
        self.space = space
        self.fail_on = {tuple(t) for t in fail_on}
        self.nan_on = {tuple(t) for t in nan_on}
        self.kill_at = kill_at
        self.calls_file = calls_file
        self.calls: list[tuple[int, ...]] = []
        self.contexts = []

    def reward_of(self, tokens) -> float:
        # Distinct, deterministic rewards in [0, 1).
        h = 0
        for t in tokens:
            h = (h * 31 + int(t) + 7) % 1000003
        return (h % 9973) / 9973.0

    def evaluate(self, spec: ToySpec, context) -> EvalResult:
        tokens = tuple(spec.tokens)
        self.calls.append(tokens)
        self.contexts.append(context)
        if self.calls_file:
            with open(self.calls_file, "a") as f:
                f.write(json.dumps(list(tokens)) + "\n")
        if self.kill_at is not None and len(self.calls) == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if tokens in self.fail_on:
            raise RuntimeError(f"synthetic failure of {tokens}")
        if tokens in self.nan_on:
            return EvalResult(reward=math.nan)
        return EvalResult(reward=self.reward_of(tokens), metrics={"n_tokens": len(tokens)})


@pytest.fixture
def toy_space() -> ToySpace:
    return ToySpace(num_layers=3, num_values=4)


@pytest.fixture
def fake_evaluator(toy_space) -> FakeEvaluator:
    return FakeEvaluator(toy_space)


# ---------------------------------------------------------------------------
# A synthetic NAS-Bench-201 table (made-up accuracies, all 15,625 cells).
# ---------------------------------------------------------------------------
def write_synthetic_nb201_table(path) -> dict[str, float]:
    """Writes ``arch,test_accuracy`` for every NAS-Bench-201 cell with made-up,
    deterministic accuracies (for CLI mechanics when the real table is absent).
    Returns {arch: accuracy}."""
    import itertools

    from cnn_space.nb201 import EDGES, OPS, Nb201Spec

    out = {}
    lines = ["arch,test_accuracy"]
    for tokens in itertools.product(range(len(OPS)), repeat=len(EDGES)):
        arch = Nb201Spec(tuple(OPS[t] for t in tokens)).to_arch_string()
        acc = round(10.0 + (sum((i + 2) * t * t for i, t in enumerate(tokens)) % 8500) / 100.0, 2)
        out[arch] = acc
        lines.append(f"{arch},{acc}")
    Path(path).write_text("\n".join(lines) + "\n")
    return out


def run_events(run_dir) -> dict[str, list[tuple[int, float | None]]]:
    """{tag: [(step, scalar value or None), ...]} of the run dir's TensorBoard events."""
    import tensorflow as tf

    files = sorted(Path(run_dir).glob("events.out.tfevents.*"))
    assert files, sorted(os.listdir(run_dir))
    out: dict = {}
    for f in files:
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for v in event.summary.value:
                value = None
                if v.metadata.plugin_data.plugin_name == "scalars":
                    value = float(tf.make_ndarray(v.tensor))
                out.setdefault(v.tag, []).append((event.step, value))
    return out
