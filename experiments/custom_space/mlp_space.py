"""A user-defined search space, complete: the README's "Add your own search space".

A tiny space of multi-layer perceptrons (depth, width, activation) whose
children are Keras models trained on a generated two-moons task; the reward
is their validation accuracy. It plugs into nas_tf through the entry-point
group ``nas_tf.spaces``, like the project's own spaces: in your package's
``setup.py`` (or ``pyproject.toml``)::

    entry_points={"nas_tf.spaces": ["mlp = mlp_space:PLUGIN"]}

then ``python -m nas_tf.run --space=mlp --mlp_epochs=3 --run_dir=runs/mlp`` and
``nas_tf.Search("mlp", run_dir=..., epochs=3)`` find it. The test
``tests/test_plugins.py`` installs this file in a temporary folder outside the
repository's packages and runs it from the CLI and the API, resume included.
"""

from __future__ import annotations

import dataclasses

from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.evaluator import EvalResult, Evaluator
from nas_tf.plugins import SpacePlugin
from nas_tf.space import Categorical, SearchSpace, split_tokens

DEPTHS, WIDTHS, ACTIVATIONS = (1, 2, 3), (4, 16, 64), ("relu", "tanh")


@dataclasses.dataclass(frozen=True)
class MlpSpec:
    """One architecture: a frozen, JSON-able, hashable dataclass without TensorFlow."""

    depth: int
    width: int
    activation: str

    def __post_init__(self):
        if self.depth not in DEPTHS or self.width not in WIDTHS or \
                self.activation not in ACTIVATIONS:
            raise InvalidArchitectureError(f"Not an MLP of the space. Received: {self}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class MlpSpace(SearchSpace):
    """Three categorical decisions; the controller sees nothing else."""

    name = "mlp"

    def decisions(self, num_children=0):
        return (Categorical("depth", DEPTHS), Categorical("width", WIDTHS),
                Categorical("activation", ACTIVATIONS))

    def tokens_to_spec(self, tokens):
        d, w, a = split_tokens(self.decisions(), tokens)
        return MlpSpec(DEPTHS[d], WIDTHS[w], ACTIVATIONS[a])

    def spec_to_tokens(self, spec):
        return (DEPTHS.index(spec.depth), WIDTHS.index(spec.width),
                ACTIVATIONS.index(spec.activation))

    def spec_from_json(self, obj):
        try:
            return MlpSpec(**obj)
        except TypeError as e:
            raise InvalidArchitectureError(f"Not an MLP spec: {e}. Received: {obj!r}") from None


@dataclasses.dataclass(frozen=True)
class MlpConfig:
    """How children train (it is recorded in the run directory)."""

    epochs: int = 3
    examples: int = 400

    def __post_init__(self):
        for name in ("epochs", "examples"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0. Received: {name}={getattr(self, name)}")


class MlpEvaluator(Evaluator):
    """Trains a child on two moons; the reward is its validation accuracy."""

    def __init__(self, config: MlpConfig):
        self.config = config

    def _data(self, seed):
        import numpy as np

        rng = np.random.default_rng(seed)
        n = self.config.examples
        t = rng.uniform(0, np.pi, n)
        label = rng.integers(0, 2, n)
        x = np.stack([np.cos(t) + label, np.sin(t) * (1 - 2 * label) + 0.5 * label], axis=1)
        return (x + rng.normal(scale=0.1, size=x.shape)).astype("float32"), label

    def evaluate(self, spec, context):
        import keras

        x, y = self._data(0)  # the same data for every child; weights seeded per child
        split = int(0.8 * len(x))
        init = keras.initializers.GlorotUniform(seed=context.seed)
        layers = [keras.Input((2,))]
        layers += [keras.layers.Dense(spec.width, spec.activation, kernel_initializer=init)
                   for _ in range(spec.depth)]
        model = keras.Sequential(layers + [keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:split], y[:split], epochs=self.config.epochs, batch_size=32, verbose=0)
        _, acc = model.evaluate(x[split:], y[split:], verbose=0)
        return EvalResult(reward=float(acc), metrics={"val_accuracy": float(acc),
                                                      "params": int(model.count_params())})


class MlpPlugin(SpacePlugin):
    """What nas_tf needs from the space: settings -> (space, evaluator), flags."""

    name = "mlp"
    summary = "multi-layer perceptrons on two moons (an example plug-in)"
    default_max_children = 6

    def make(self, epochs=3, examples=400, **unknown):
        if unknown:
            raise ConfigError(f"Unknown mlp setting(s) {sorted(unknown)}. Received: {unknown}")
        return MlpSpace(), MlpEvaluator(MlpConfig(epochs, examples))

    def space_from_config(self, config):
        return MlpSpace()

    def define_flags(self):
        from absl import flags

        if "mlp_epochs" not in flags.FLAGS:
            flags.DEFINE_integer("mlp_epochs", 3, "mlp: epochs of each child.")

    def settings_from_flags(self, flag_values):
        return {"epochs": flag_values.mlp_epochs}


PLUGIN = MlpPlugin()
