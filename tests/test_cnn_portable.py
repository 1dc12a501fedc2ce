"""Tests of cnn_space.portable: CNN children rebuilt from built-in Keras layers."""

import random

import keras
import numpy as np
import pytest

from cnn_space.builder import build_model
from cnn_space.portable import portable_model
from cnn_space.space import CnnSpace, CnnSpec
from nas_tf.space import Categorical

INPUT = (12, 12, 3)


def _random_spec(space, rng, p):
    tokens = []
    for d in space.decisions():
        if isinstance(d, Categorical):
            tokens.append(rng.randrange(d.num_choices))
        else:
            tokens += [int(rng.random() < p) for _ in range(d.num_inputs)]
    return space.tokens_to_spec(tokens)


def _randomise_statistics(model, rng):
    """Moves every batch-norm weight away from its start, so copying them is tested."""
    body = model.get_layer("convolutions")
    for i in range(body.spec.num_layers):
        for v in body.layer_variables(i)[1:]:
            v.assign(rng.uniform(0.5, 1.5, size=v.shape).astype("float32"))


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_portable_model_computes_the_same_with_stock_layers(preset):
    space = CnnSpace(preset, num_layers=12 if preset == "v3" else 8, width_multiplier=0.25)
    spec = _random_spec(space, random.Random(3), p=0.4)
    assert any(len(layer.inputs) > 1 for layer in spec.layers)  # joins are exercised
    child = build_model(spec, INPUT, num_classes=5)
    rng = np.random.default_rng(0)
    _randomise_statistics(child, rng)
    portable = portable_model(child)
    assert {type(layer).__module__.split(".")[0] for layer in portable.layers} == {"keras"}
    assert portable.count_params() == child.count_params()
    x = rng.normal(size=(4, *INPUT)).astype("float32")
    np.testing.assert_allclose(np.asarray(portable(x)), np.asarray(child(x)), atol=1e-5)
    keras.backend.clear_session()


def test_portable_model_keeps_the_normalisation_in_front():
    spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 1, ()), (3, 1, 6, 1, (0, 1))),
                   pool_positions=(2,))
    child = build_model(spec, INPUT, num_classes=3)
    image = keras.Input(INPUT)
    norm = keras.layers.Normalization(mean=[100.0, 90.0, 80.0], variance=[900.0, 400.0, 100.0])
    wrapped = keras.Model(image, child(norm(image)))
    portable = portable_model(wrapped)
    x = np.random.default_rng(1).uniform(0, 255, size=(3, *INPUT)).astype("float32")
    np.testing.assert_allclose(np.asarray(portable(x)), np.asarray(wrapped(x)), atol=1e-5)


def test_portable_model_refuses_a_model_without_a_cnn_body():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="one CnnBody"):
        portable_model(model)
