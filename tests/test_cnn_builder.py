"""Tests of cnn_space.builder: Keras children of CNN specs and the connection rules (§3.3)."""

import random

import keras
import numpy as np
import pytest

from cnn_space.builder import ConvBnRelu, SkipMerge, build_model, count_flops, count_params
from cnn_space.space import CnnSpace, CnnSpec, layer_shapes
from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.space import Categorical

INPUT = (8, 8, 3)  # tiny images: building is what is tested here, not training
NUM_SPECS = 200
CHUNKS = 4


def random_spec(space, rng):
    """A random spec of ``space``; the skip density is itself random (sparse to dense)."""
    p = rng.choice((0.0, 0.1, 0.3, 0.5))
    tokens = []
    for d in space.decisions():
        if isinstance(d, Categorical):
            tokens.append(rng.randrange(d.num_choices))
        else:
            tokens += [int(rng.random() < p) for _ in range(d.num_inputs)]
    return space.tokens_to_spec(tokens)


def check_shapes(model, spec, input_shape, num_classes):
    """The Keras model's shapes are those layer_shapes() infers, and the output is right."""
    assert tuple(model.output.shape) == (None, num_classes)
    shapes, final = layer_shapes(spec, input_shape)
    for i, shape in enumerate(shapes):
        out = model.get_layer(f"layer_{i}").output.shape
        assert tuple(out) == (None, shape.out_height, shape.out_width, shape.out_channels)
    assert tuple(model.get_layer("global_pool").output.shape) == (None, final[2])


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_random_specs_build(preset, chunk):
    """NUM_SPECS random specs per preset build in Keras (in CHUNKS tests).

    Variables are left uninitialised (``keras.StatelessScope(initialize_variables=False)``):
    every layer is created, built and connected and Keras infers every shape,
    only the TensorFlow variables are not allocated, which makes a 39-layer
    build several times faster. ``test_random_specs_run`` builds fully and runs.
    """
    space = CnnSpace(preset)
    rng = random.Random(1000 * chunk + hash(preset) % 1000)
    num_classes = 3
    for _ in range(NUM_SPECS // CHUNKS):
        spec = random_spec(space, rng)
        with keras.StatelessScope(initialize_variables=False):
            model = build_model(spec, INPUT, num_classes=num_classes)
        check_shapes(model, spec, INPUT, num_classes)
        keras.backend.clear_session(free_memory=False)


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_random_specs_run(preset):
    space = CnnSpace(preset, width_multiplier=0.5)
    rng = random.Random(7)
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype("float32")
    for _ in range(2):
        spec = random_spec(space, rng)
        model = build_model(spec, (12, 12, 3), num_classes=5)
        check_shapes(model, spec, (12, 12, 3), 5)
        probs = model(x, training=True)
        assert probs.shape == (2, 5)
        np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)
        assert count_params(model) > 0
        keras.backend.clear_session()


# ------------------------------------------------------------ connection rules


def test_layer_without_inputs_takes_the_image():
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,)), (5, 5, 6, 1, ())))
    model = build_model(spec, INPUT, num_classes=2)
    assert model.get_layer("layer_0").input is model.inputs[0]
    assert model.get_layer("layer_2").input is model.inputs[0]
    assert model.get_layer("layer_1").input is model.get_layer("layer_0").output
    assert model.get_layer("layer_2").kernel.shape == (5, 5, 3, 6)


def test_unused_outputs_reach_the_classifier():
    # Layer 0 feeds layers 1 and 2, layer 1 feeds nothing, layer 2 feeds layer 3:
    # the classifier gets layers 1 and 3 (in that order), not 0 or 2.
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,)), (3, 3, 6, 1, (0,)),
                           (1, 1, 7, 1, (2,))))
    assert spec.unused_outputs() == (1, 3)
    model = build_model(spec, INPUT, num_classes=2)
    merged = model.get_layer("classifier_inputs")
    assert list(merged.input) == [model.get_layer("layer_1").output,
                                  model.get_layer("layer_3").output]
    assert model.get_layer("classifier").kernel.shape == (5 + 7, 2)
    # Numerically: the pooled features are the channel means of layers 1 and 3.
    probe = keras.Model(model.input, [model.get_layer("layer_1").output,
                                       model.get_layer("layer_3").output,
                                       model.get_layer("global_pool").output])
    x = np.random.default_rng(1).normal(size=(2, *INPUT)).astype("float32")
    a, b, pooled = (np.asarray(t) for t in probe(x))
    np.testing.assert_allclose(pooled, np.concatenate([a.mean((1, 2)), b.mean((1, 2))], -1),
                               rtol=1e-5, atol=1e-6)


def test_single_last_layer_is_the_only_classifier_input():
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,))))
    model = build_model(spec, INPUT, num_classes=2)
    assert model.get_layer("global_pool").input is model.get_layer("layer_1").output


def test_mismatched_sizes_are_zero_padded_to_the_largest():
    # Layer 0: stride 3 on 8x8 -> 3x3; layer 1: stride 1 -> 8x8; layer 2 joins both.
    spec = CnnSpec(layers=((3, 3, 2, 3, ()), (1, 1, 3, 1, ()), (1, 1, 4, 1, (0, 1))))
    model = build_model(spec, INPUT, num_classes=2)
    merge = model.get_layer("layer_2_inputs")
    assert tuple(merge.output.shape) == (None, 8, 8, 5)
    probe = keras.Model(model.input, [model.get_layer("layer_0").output,
                                       model.get_layer("layer_1").output, merge.output])
    x = np.random.default_rng(2).normal(size=(2, *INPUT)).astype("float32")
    a, b, m = (np.asarray(t) for t in probe(x))
    assert a.shape == (2, 3, 3, 2)
    # 8 - 3 = 5 rows/columns of zeros: 2 before, 3 after.
    np.testing.assert_allclose(m[:, 2:5, 2:5, :2], a)
    mask = np.ones((8, 8), bool)
    mask[2:5, 2:5] = False
    assert np.all(m[:, mask, :2] == 0.0)
    np.testing.assert_allclose(m[:, :, :, 2:], b)


def test_skip_merge_pads_and_pools_exact_values():
    a = np.arange(2 * 2, dtype="float32").reshape(1, 2, 2, 1) + 1
    b = np.arange(5 * 4, dtype="float32").reshape(1, 5, 4, 1) + 1
    out = np.asarray(SkipMerge(pools=(0, 0))([a, b]))
    assert out.shape == (1, 5, 4, 2)
    expected = np.zeros((5, 4))
    expected[1:3, 1:3] = [[1, 2], [3, 4]]  # 3 rows: 1 above, 2 below; 2 columns: 1 and 1
    np.testing.assert_array_equal(out[0, :, :, 0], expected)
    np.testing.assert_array_equal(out[..., 1:], b)
    pooled = np.asarray(SkipMerge(pools=(1,))([b]))
    assert pooled.shape == (1, 3, 2, 1)
    np.testing.assert_array_equal(pooled[0, :, :, 0], [[6, 8], [14, 16], [18, 20]])


def test_pooling_layers_downsample_skip_connections():
    # v3-style: a pool before layer 2 (and none before 1). Layer 2 takes layer 0
    # (from before the pool): it sees layer 0 max-pooled to 4x4.
    spec = CnnSpec(layers=((3, 3, 2, 1, ()), (3, 3, 3, 1, (0,)), (1, 1, 4, 1, (0, 1)),
                           (1, 1, 4, 1, ())), pool_positions=(2,))
    model = build_model(spec, INPUT, num_classes=2)
    assert tuple(model.get_layer("layer_2_inputs").output.shape) == (None, 4, 4, 5)
    assert tuple(model.get_layer("layer_3_inputs").output.shape) == (None, 4, 4, 3)
    probe = keras.Model(model.input, [model.get_layer("layer_0").output,
                                       model.get_layer("layer_2_inputs").output,
                                       model.get_layer("layer_3_inputs").output])
    x = np.random.default_rng(3).normal(size=(1, *INPUT)).astype("float32")
    a, m, img = (np.asarray(t) for t in probe(x))
    np.testing.assert_allclose(m[..., :2], a.reshape(1, 4, 2, 4, 2, 2).max(axis=(2, 4)))
    np.testing.assert_allclose(img, x.reshape(1, 4, 2, 4, 2, 3).max(axis=(2, 4)))
    check_shapes(model, spec, INPUT, 2)


# ------------------------------------------------------------------ the layer


@pytest.mark.parametrize("training", [True, False])
def test_conv_bn_relu_matches_keras_layers(training):
    x = np.random.default_rng(4).normal(size=(4, 7, 6, 3)).astype("float32")
    fused = ConvBnRelu(5, (3, 1), strides=2)
    fused.build(x.shape)
    conv = keras.layers.Conv2D(5, (3, 1), strides=2, padding="same", use_bias=False)
    bn = keras.layers.BatchNormalization()
    conv.build(x.shape)
    bn.build((4, 4, 3, 5))
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=w.shape).astype("float32") for w in fused.weights]
    weights[4] = np.abs(weights[4]) + 0.5  # a variance
    fused.set_weights(weights)
    conv.set_weights(weights[:1])
    bn.set_weights(weights[1:])
    expected = np.maximum(np.asarray(bn(conv(x), training=training)), 0.0)
    np.testing.assert_allclose(np.asarray(fused(x, training=training)), expected,
                               rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(fused.weights[3:], bn.weights[2:]):  # moving statistics
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-6)
    if training:
        assert not np.allclose(np.asarray(fused.moving_mean), weights[3])


def test_model_serialises_and_reloads(tmp_path):
    spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 1, ()), (3, 1, 6, 1, (0, 1))),
                   pool_positions=(2,))
    model = build_model(spec, INPUT, num_classes=3)
    x = np.random.default_rng(6).normal(size=(2, *INPUT)).astype("float32")
    path = tmp_path / "child.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5)


def test_weight_decay_adds_losses():
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,))))
    assert len(build_model(spec, INPUT, weight_decay=1e-4).losses) == 3  # 2 kernels + dense
    assert len(build_model(spec, INPUT, weight_decay=0).losses) == 0


# ------------------------------------------------------------ counts, errors


def test_count_flops_and_params():
    # 8x8x3 -> layer 0 (3x3, 4 filters, stride 2) -> 4x4x4; layer 1 takes the
    # image (1x1, 5) -> 8x8x5; classifier: 4 + 5 channels.
    spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 1, ())))
    flops = count_flops(spec, INPUT, num_classes=10)
    assert flops == 4 * 4 * 9 * 3 * 4 + 8 * 8 * 1 * 3 * 5 + 9 * 10
    model = build_model(spec, INPUT, num_classes=10)
    # kernels + 4 batch-norm vectors per layer + dense kernel and bias
    assert count_params(model) == (9 * 3 * 4 + 4 * 4) + (3 * 5 + 4 * 5) + (9 * 10 + 10)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"spec": "not a spec"}, InvalidArchitectureError, "needs a CnnSpec"),
        ({"input_shape": (8, 8)}, ConfigError, "input_shape"),
        ({"input_shape": (8, -8, 3)}, ConfigError, "input_shape"),
        ({"num_classes": 0}, ConfigError, "num_classes=0"),
        ({"weight_decay": -1.0}, ConfigError, "weight_decay=-1.0"),
    ],
)
def test_bad_build_arguments(kwargs, error, match):
    args = {"spec": CnnSpec(layers=((3, 3, 4, 1, ()),)), "input_shape": INPUT}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        build_model(**args)


def test_extreme_strides_still_build():
    # Stride 3 twenty times shrinks 8x8 to 1x1 and stays there ("same" padding).
    spec = CnnSpec(layers=tuple((7, 7, 24, 3, (i - 1,) if i else ()) for i in range(20))
                   + ((1, 1, 24, 1, (0, 19)),))
    model = build_model(spec, INPUT, num_classes=2)
    assert tuple(model.get_layer("layer_19").output.shape) == (None, 1, 1, 24)
    assert tuple(model.get_layer("layer_20_inputs").output.shape) == (None, 3, 3, 48)
