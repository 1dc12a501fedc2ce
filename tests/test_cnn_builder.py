"""Tests of cnn_space.builder: Keras children of CNN specs and the connection rules (§3.3)."""

import random

import keras
import numpy as np
import pytest

from cnn_space.builder import CnnBody, build_model, count_flops, count_params, merge_inputs
from cnn_space.space import CnnSpace, CnnSpec, layer_shapes
from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.space import Categorical

INPUT = (8, 8, 3)  # tiny images: building is what is tested here, not training
NUM_SPECS = 200


def random_spec(space, rng, p=None):
    """A random spec of ``space``; the skip density ``p`` is random (sparse to dense) if None."""
    p = rng.choice((0.0, 0.1, 0.3, 0.5)) if p is None else p
    tokens = []
    for d in space.decisions():
        if isinstance(d, Categorical):
            tokens.append(rng.randrange(d.num_choices))
        else:
            tokens += [int(rng.random() < p) for _ in range(d.num_inputs)]
    return space.tokens_to_spec(tokens)


def body_of(model):
    return model.get_layer("convolutions")


def layer_weights(model, i):
    """The (kernel, gamma, beta, moving_mean, moving_variance) arrays of layer i."""
    return [np.asarray(w) for w in body_of(model).layer_variables(i)]


def reference_layer(x, weights, stride, training=False):
    """Layer i computed by stock Keras layers: Conv2D(no bias) -> BatchNormalization -> ReLU."""
    kernel = weights[0]
    conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=stride,
                               padding="same", use_bias=False)
    bn = keras.layers.BatchNormalization()
    y = conv(x)
    bn.build(y.shape)
    conv.set_weights(weights[:1])
    bn.set_weights(weights[1:])
    return np.maximum(np.asarray(bn(conv(x), training=training)), 0.0), bn


def check_shapes(model, spec, input_shape, num_classes):
    """The model's symbolic shapes are those layer_shapes() infers, and the output is right."""
    assert tuple(model.output.shape) == (None, num_classes)
    shapes, final = layer_shapes(spec, input_shape)
    assert tuple(body_of(model).output.shape) == (None, *final)
    assert tuple(model.get_layer("classifier").kernel.shape) == (final[2], num_classes)
    for i, shape in enumerate(shapes):
        kernel = body_of(model).layer_variables(i)[0]
        layer = spec.layers[i]
        assert tuple(kernel.shape) == (layer.filter_height, layer.filter_width,
                                       shape.in_channels, layer.filters)


FORWARD_EVERY = 5  # specs per symbolic forward pass (a v3 trace costs ~0.3 s)


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_random_specs_build(preset):
    """NUM_SPECS random specs per preset build in Keras with the right shapes.

    Variables are left uninitialised (``keras.StatelessScope(initialize_variables=False)``):
    every layer is created, built and connected and Keras infers every shape,
    only the TensorFlow variables are not allocated (that is most of the cost
    of a build). ``test_random_specs_run`` builds fully and runs.
    """
    space = CnnSpace(preset)
    rng = random.Random({"v1": 1, "v2": 2, "v3": 3}[preset])
    num_classes = 3
    for k in range(NUM_SPECS):
        spec = random_spec(space, rng)
        with keras.StatelessScope(initialize_variables=False):
            model = build_model(spec, INPUT, num_classes=num_classes)
            if k % FORWARD_EVERY == 0:
                # The functional model takes the body's shapes from compute_output_shape
                # (layer_shapes() itself): trace the real forward pass symbolically too.
                outs, final = body_of(model).layer_outputs(keras.KerasTensor((None, *INPUT)))
        check_shapes(model, spec, INPUT, num_classes)
        if k % FORWARD_EVERY == 0:
            shapes, expected_final = layer_shapes(spec, INPUT)
            assert [tuple(o.shape) for o in outs] == [
                (None, s.out_height, s.out_width, s.out_channels) for s in shapes]
            assert tuple(final.shape) == (None, *expected_final)
        if k % 50 == 49:
            keras.backend.clear_session(free_memory=False)
    keras.backend.clear_session()


def reference_model(spec, input_shape, num_classes):
    """The child of ``spec`` from stock Keras layers, written from the paper's rules (§3.3).

    An independent implementation to check :class:`CnnBody` against: Conv2D ->
    BatchNormalization -> ReLU per layer, ZeroPadding2D + Concatenate for joins,
    MaxPooling2D for the fixed pools. Returns ``(model, convs, bns)``; the model
    outputs ``[probabilities, pooled features]``.
    """
    layers = keras.layers
    image = keras.Input(input_shape)
    outs, convs, bns = [], [], []

    def pool(t, times):
        for _ in range(times):
            t = layers.MaxPooling2D(2, 2, padding="same")(t)
        return t

    def join(tensors):
        if len(tensors) == 1:
            return tensors[0]
        h, w = max(t.shape[1] for t in tensors), max(t.shape[2] for t in tensors)
        padded = []
        for t in tensors:
            dh, dw = h - t.shape[1], w - t.shape[2]
            padded.append(layers.ZeroPadding2D(((dh // 2, dh - dh // 2),
                                                 (dw // 2, dw - dw // 2)))(t))
        return layers.Concatenate()(padded)

    def inputs_of(sources, stage):
        if not sources:
            return pool(image, stage)
        return join([pool(outs[j][0], stage - outs[j][1]) for j in sources])

    for i, layer in enumerate(spec.layers):
        stage = spec.stage_of(i)
        convs.append(layers.Conv2D(layer.filters, (layer.filter_height, layer.filter_width),
                                   strides=layer.stride, padding="same", use_bias=False))
        bns.append(layers.BatchNormalization())
        x = layers.ReLU()(bns[-1](convs[-1](inputs_of(layer.inputs, stage))))
        outs.append((x, stage))
    features = layers.GlobalAveragePooling2D()(
        inputs_of(spec.unused_outputs(), spec.stage_of(spec.num_layers - 1)))
    probs = layers.Dense(num_classes, activation="softmax")(features)
    return keras.Model(image, [probs, features]), convs, bns


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_random_specs_run_and_match_stock_keras_layers(preset):
    """A fully built random child runs, every layer's real output shape is the
    inferred one, and it computes what the same child made of stock Keras layers does."""
    # One child per preset, v3 at 15 layers (pools before layers 5 and 10): a full build
    # initialises every variable, and the stock-layer reference has ~5 Keras layers per layer.
    space = CnnSpace(preset, num_layers=15 if preset == "v3" else None, width_multiplier=0.5)
    spec = random_spec(space, random.Random(7), p=0.3)
    assert any(len(layer.inputs) > 1 for layer in spec.layers)  # joins are exercised
    if preset == "v2":  # stride height and width differ somewhere (§3.1 predicts both)
        assert any(layer.stride_height != layer.stride_width for layer in spec.layers)
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype("float32")
    model = build_model(spec, (12, 12, 3), num_classes=5)
    check_shapes(model, spec, (12, 12, 3), 5)
    outs, final = body_of(model).layer_outputs(x)
    shapes, final_shape = layer_shapes(spec, (12, 12, 3))
    assert [tuple(o.shape) for o in outs] == [
        (2, s.out_height, s.out_width, s.out_channels) for s in shapes]
    assert tuple(final.shape) == (2, *final_shape)
    assert count_params(model) > 0

    ref, convs, bns = reference_model(spec, (12, 12, 3), 5)
    assert count_params(model) == ref.count_params()
    rng = np.random.default_rng(1)
    for i in range(spec.num_layers):
        variables = body_of(model).layer_variables(i)
        values = [np.asarray(variables[0])] + [
            rng.uniform(0.5, 1.5, size=v.shape).astype("float32") for v in variables[1:]]
        for var, value in zip(variables, values):
            var.assign(value)
        convs[i].set_weights(values[:1])
        bns[i].set_weights(values[1:])
    ref.layers[-1].set_weights(model.get_layer("classifier").get_weights())
    features = keras.Model(model.input, model.get_layer("global_pool").output)
    for training in (False, True):
        ref_probs, ref_features = (np.asarray(t) for t in ref(x, training=training))
        np.testing.assert_allclose(np.asarray(features(x, training=training)), ref_features,
                                   rtol=1e-4, atol=1e-4)
        probs = np.asarray(model(x, training=training))
        np.testing.assert_allclose(probs, ref_probs, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)
    keras.backend.clear_session()


# ------------------------------------------------------------ connection rules


def test_layer_without_inputs_takes_the_image():
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,)), (5, 5, 6, 1, ())))
    model = build_model(spec, INPUT, num_classes=2)
    x = np.random.default_rng(0).normal(size=(2, *INPUT)).astype("float32")
    outs, _ = body_of(model).layer_outputs(x)
    assert layer_weights(model, 2)[0].shape == (5, 5, 3, 6)
    np.testing.assert_allclose(np.asarray(outs[0]),
                               reference_layer(x, layer_weights(model, 0), 1)[0],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(outs[2]),
                               reference_layer(x, layer_weights(model, 2), 1)[0],
                               rtol=1e-4, atol=1e-5)
    # Layer 1 takes layer 0, not the image.
    np.testing.assert_allclose(np.asarray(outs[1]),
                               reference_layer(np.asarray(outs[0]), layer_weights(model, 1), 1)[0],
                               rtol=1e-4, atol=1e-5)


def test_unused_outputs_reach_the_classifier():
    # Layer 0 feeds layers 1 and 2, layer 1 feeds nothing, layer 2 feeds layer 3:
    # the classifier gets layers 1 and 3 (in that order), not 0 or 2.
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,)), (3, 3, 6, 1, (0,)),
                           (1, 1, 7, 1, (2,))))
    assert spec.unused_outputs() == (1, 3)
    model = build_model(spec, INPUT, num_classes=2)
    assert model.get_layer("classifier").kernel.shape == (5 + 7, 2)
    x = np.random.default_rng(1).normal(size=(2, *INPUT)).astype("float32")
    outs, final = body_of(model).layer_outputs(x)
    a, b = np.asarray(outs[1]), np.asarray(outs[3])
    np.testing.assert_allclose(np.asarray(final), np.concatenate([a, b], -1))
    # The model's pooled features are the channel means of layers 1 and 3.
    probe = keras.Model(model.input, model.get_layer("global_pool").output)
    np.testing.assert_allclose(np.asarray(probe(x)),
                               np.concatenate([a.mean((1, 2)), b.mean((1, 2))], -1),
                               rtol=1e-5, atol=1e-6)


def test_single_last_layer_is_the_only_classifier_input():
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,))))
    model = build_model(spec, INPUT, num_classes=2)
    x = np.random.default_rng(2).normal(size=(1, *INPUT)).astype("float32")
    outs, final = body_of(model).layer_outputs(x)
    assert tuple(final.shape) == (1, 8, 8, 5)
    np.testing.assert_array_equal(np.asarray(final), np.asarray(outs[1]))


def test_mismatched_sizes_are_zero_padded_to_the_largest():
    # Layer 0: stride 3 on 8x8 -> 3x3; layer 1: stride 1 -> 8x8; layer 2 joins both.
    spec = CnnSpec(layers=((3, 3, 2, 3, ()), (1, 1, 3, 1, ()), (3, 3, 4, 1, (0, 1))))
    model = build_model(spec, INPUT, num_classes=2)
    assert layer_weights(model, 2)[0].shape == (3, 3, 5, 4)
    x = np.random.default_rng(2).normal(size=(2, *INPUT)).astype("float32")
    outs, _ = body_of(model).layer_outputs(x)
    a, b = np.asarray(outs[0]), np.asarray(outs[1])
    assert a.shape == (2, 3, 3, 2) and b.shape == (2, 8, 8, 3)
    # 8 - 3 = 5 rows/columns of zeros: 2 before, 3 after.
    joined = np.concatenate([np.pad(a, ((0, 0), (2, 3), (2, 3), (0, 0))), b], -1)
    merged = np.asarray(merge_inputs([outs[0], outs[1]], [0, 0]))
    np.testing.assert_array_equal(merged, joined)
    np.testing.assert_allclose(np.asarray(outs[2]),
                               reference_layer(joined, layer_weights(model, 2), 1)[0],
                               rtol=1e-4, atol=1e-5)


def test_merge_inputs_pads_and_pools_exact_values():
    a = np.arange(2 * 2, dtype="float32").reshape(1, 2, 2, 1) + 1
    b = np.arange(5 * 4, dtype="float32").reshape(1, 5, 4, 1) + 1
    out = np.asarray(merge_inputs([a, b], [0, 0]))
    assert out.shape == (1, 5, 4, 2)
    expected = np.zeros((5, 4))
    expected[1:3, 1:3] = [[1, 2], [3, 4]]  # 3 rows: 1 above, 2 below; 2 columns: 1 and 1
    np.testing.assert_array_equal(out[0, :, :, 0], expected)
    np.testing.assert_array_equal(out[..., 1:], b)
    pooled = np.asarray(merge_inputs([b], [1]))
    assert pooled.shape == (1, 3, 2, 1)
    np.testing.assert_array_equal(pooled[0, :, :, 0], [[6, 8], [14, 16], [18, 20]])
    with pytest.raises(ValueError, match="one pool count per tensor"):
        merge_inputs([a, b], [0])


def test_pooling_layers_downsample_skip_connections():
    # v3-style: a pool before layer 2 (and none before 1). Layer 2 takes layers 0 and 1
    # (from before the pool): it sees them max-pooled to 4x4; layer 3 sees the pooled image.
    spec = CnnSpec(layers=((3, 3, 2, 1, ()), (3, 3, 3, 1, (0,)), (1, 1, 4, 1, (0, 1)),
                           (1, 1, 4, 1, ())), pool_positions=(2,))
    model = build_model(spec, INPUT, num_classes=2)
    check_shapes(model, spec, INPUT, 2)
    x = np.random.default_rng(3).normal(size=(1, *INPUT)).astype("float32")
    outs, final = body_of(model).layer_outputs(x)
    a, b = np.asarray(outs[0]), np.asarray(outs[1])

    def pool(t):
        return t.reshape(1, 4, 2, 4, 2, t.shape[-1]).max(axis=(2, 4))

    np.testing.assert_allclose(
        np.asarray(outs[2]),
        reference_layer(np.concatenate([pool(a), pool(b)], -1), layer_weights(model, 2), 1)[0],
        rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(outs[3]),
                               reference_layer(pool(x), layer_weights(model, 3), 1)[0],
                               rtol=1e-4, atol=1e-5)
    assert tuple(final.shape) == (1, 4, 4, 8)


# ------------------------------------------------------------------ the layers


@pytest.mark.parametrize("training", [True, False])
def test_layer_matches_conv2d_batchnorm_relu(training):
    x = np.random.default_rng(4).normal(size=(4, 7, 6, 3)).astype("float32")
    body = CnnBody(CnnSpec(layers=((3, 1, 5, 2, ()),)))
    body.build(x.shape)
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=w.shape).astype("float32") for w in body.layer_variables(0)]
    weights[4] = np.abs(weights[4]) + 0.5  # a variance
    for var, value in zip(body.layer_variables(0), weights):
        var.assign(value)
    out = np.asarray(body(x, training=training))
    expected, bn = reference_layer(x, weights, 2, training=training)
    assert out.shape == (4, 4, 3, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(body.layer_variables(0)[3:], bn.weights[2:]):  # moving statistics
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-6)
    if training:
        assert not np.allclose(np.asarray(body.layer_variables(0)[3]), weights[3])


def test_cnn_body_errors():
    with pytest.raises(InvalidArchitectureError, match="needs a CnnSpec"):
        CnnBody([(3, 3, 4)])
    with pytest.raises(InvalidArchitectureError, match="filters=0"):
        CnnBody({"layers": [{"filter_height": 3, "filter_width": 3, "filters": 0}]})
    with pytest.raises(ValueError, match="weight_decay=-1"):
        CnnBody(CnnSpec(layers=((3, 3, 4),)), weight_decay=-1)
    with pytest.raises(ValueError, match="not built yet"):
        CnnBody(CnnSpec(layers=((3, 3, 4),))).layer_variables(0)
    with pytest.raises(ValueError, match="static height"):
        CnnBody(CnnSpec(layers=((3, 3, 4),)))(keras.Input((None, None, 3)))


def test_model_serialises_and_reloads(tmp_path):
    spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 1, ()), (3, 1, 6, 1, (0, 1))),
                   pool_positions=(2,))
    model = build_model(spec, INPUT, num_classes=3)
    x = np.random.default_rng(6).normal(size=(2, *INPUT)).astype("float32")
    model(x, training=True)  # moves the batch-norm statistics away from their start
    path = tmp_path / "child.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert body_of(again).spec == spec
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5)


def test_weight_decay_adds_losses():
    spec = CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 1, (0,))))
    model = build_model(spec, INPUT, weight_decay=1e-2)
    assert len(model.losses) == 3  # 2 kernels + dense
    kernels = [layer_weights(model, i)[0] for i in range(2)]
    kernels.append(np.asarray(model.get_layer("classifier").kernel))
    expected = 1e-2 * sum(float(np.sum(k ** 2)) for k in kernels)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-4)
    assert len(build_model(spec, INPUT, weight_decay=0).losses) == 0


def test_model_trains_one_step():
    spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 1, (0,))))
    model = build_model(spec, INPUT, num_classes=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(7).normal(size=(4, *INPUT)).astype("float32")
    before = [np.asarray(w) for w in model.trainable_weights]
    mean_before = layer_weights(model, 0)[3]
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, batch_size=4, verbose=0)
    assert all(not np.allclose(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights))
    assert not np.allclose(mean_before, layer_weights(model, 0)[3])


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
    shapes, _ = layer_shapes(spec, INPUT)
    assert (shapes[19].out_height, shapes[19].out_width) == (1, 1)
    assert (shapes[20].in_height, shapes[20].in_width, shapes[20].in_channels) == (3, 3, 48)
    x = np.zeros((1, *INPUT), "float32")
    outs, _ = body_of(model).layer_outputs(x)
    assert tuple(outs[19].shape) == (1, 1, 1, 24) and tuple(outs[20].shape) == (1, 3, 3, 24)


def test_non_square_strides_pad_height_and_width_separately():
    """Layer 0 strides (1, 3), layer 1 strides (3, 1): joined, each dimension is padded to
    the larger one on its own, evenly (odd row/column bottom/right), with zeros."""
    spec = CnnSpec(layers=((1, 1, 2, (1, 3), ()), (1, 1, 3, (3, 1), ()),
                           (1, 1, 4, 1, (0, 1))))
    shapes, final = layer_shapes(spec, (9, 8, 3))
    assert [(s.out_height, s.out_width) for s in shapes] == [(9, 3), (3, 8), (9, 8)]
    assert (shapes[2].in_height, shapes[2].in_width, shapes[2].in_channels) == (9, 8, 5)
    assert final == (9, 8, 4)
    model = build_model(spec, (9, 8, 3), num_classes=2)
    x = np.random.default_rng(0).uniform(0.5, 1.0, size=(2, 9, 8, 3)).astype("float32")
    outs, _ = body_of(model).layer_outputs(x)
    assert [tuple(o.shape) for o in outs] == [(2, 9, 3, 2), (2, 3, 8, 3), (2, 9, 8, 4)]
    joined = np.asarray(merge_inputs([outs[0], outs[1]], [0, 0]))
    assert joined.shape == (2, 9, 8, 5)
    # Layer 0 (9 x 3) sits in columns 2..4 of 8 (5 padded: 2 left, 3 right).
    np.testing.assert_array_equal(joined[:, :, 2:5, :2], np.asarray(outs[0]))
    assert not joined[:, :, :2, :2].any() and not joined[:, :, 5:, :2].any()
    # Layer 1 (3 x 8) sits in rows 3..5 of 9 (6 padded: 3 top, 3 bottom).
    np.testing.assert_array_equal(joined[:, 3:6, :, 2:], np.asarray(outs[1]))
    assert not joined[:, :3, :, 2:].any() and not joined[:, 6:, :, 2:].any()
    # Layer 0 is what a stock Conv2D(strides=(1, 3)) -> BatchNorm -> ReLU computes.
    ref, _ = reference_layer(x, layer_weights(model, 0), (1, 3))
    np.testing.assert_allclose(np.asarray(outs[0]), ref, rtol=1e-4, atol=1e-5)


def test_mixed_precision_keeps_float32_variables_and_probabilities():
    spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 1, (0,)), (1, 1, 6, 1, ())),
                   pool_positions=(2,))
    x = np.random.default_rng(8).normal(size=(2, *INPUT)).astype("float32")
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(spec, INPUT, num_classes=3)
        probs = model(x, training=True)
        _, final = body_of(model).layer_outputs(x)
    finally:
        keras.config.set_dtype_policy("float32")
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    assert keras.backend.standardize_dtype(final.dtype) == "bfloat16"
    assert {v.dtype for v in model.weights} == {"float32"}
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)
