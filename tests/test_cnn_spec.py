"""Tests of cnn_space.spec: stride height and width (§3.1) in specs, JSON and shapes."""

import json
import random

import pytest

from cnn_space.spec import STRIDES, CnnLayer, CnnSpec, layer_shapes
from nas_tf.errors import InvalidArchitectureError
from nas_tf.space import spec_hash


def test_stride_pairs_normalise_and_compare():
    a = CnnSpec(layers=((3, 3, 24, (2, 2), ()), (1, 5, 36, [1, 3], [0])))
    b = CnnSpec(layers=((3, 3, 24, 2, ()), CnnLayer(1, 5, 36, (1, 3), (0,))))
    assert a == b and hash(a) == hash(b)
    assert a.layers[0].stride == 2 and a.layers[0].strides == (2, 2)
    assert a.layers[1].stride == (1, 3)
    assert (a.layers[1].stride_height, a.layers[1].stride_width) == (1, 3)


def test_json_keeps_the_old_form_for_equal_strides():
    spec = CnnSpec(layers=((3, 3, 24, 2, ()), (1, 5, 36, (3, 1), (0,))))
    obj = spec.to_json()
    assert obj["layers"][0]["stride"] == 2 and "stride_height" not in obj["layers"][0]
    assert obj["layers"][1]["stride_height"] == 3 and obj["layers"][1]["stride_width"] == 1
    assert "stride" not in obj["layers"][1]
    assert CnnSpec.from_json(json.loads(json.dumps(obj))) == spec
    # A spec written before strides were separate hashes as it did then.
    old = {"layers": [{"filter_height": 3, "filter_width": 3, "filters": 24, "stride": 2,
                       "inputs": []}], "pool_positions": []}
    assert CnnSpec.from_json(old).to_json() == old
    assert spec_hash("cnn", CnnSpec.from_json(old).to_json()) == spec_hash("cnn", old)


@pytest.mark.parametrize(
    "layer,match",
    [
        ((3, 3, 24, (1, 4), ()), "stride_width must be one of .*Received: stride_width=4"),
        ((3, 3, 24, (0, 1), ()), "stride_height=0"),
        ((3, 3, 24, (4, 4), ()), "Received: stride=4"),
        ((3, 3, 24, (1, 2, 3), ()), "stride must be an int or a pair"),
        ((3, 3, 24, (1, 2.5), ()), "must be an integer"),
    ],
)
def test_bad_strides(layer, match):
    with pytest.raises(InvalidArchitectureError, match=match):
        CnnSpec(layers=(layer,))


@pytest.mark.parametrize(
    "extra",
    [{"stride": 1, "stride_height": 2, "stride_width": 1}, {"stride_height": 2}],
)
def test_bad_stride_json(extra):
    obj = {"layers": [{"filter_height": 3, "filter_width": 3, "filters": 24, **extra}]}
    with pytest.raises(InvalidArchitectureError, match="either stride or both"):
        CnnSpec.from_json(obj)


def _random_spec(rng, n, pools=()):
    layers = []
    for i in range(n):
        layers.append((rng.choice((1, 3, 5, 7)), rng.choice((1, 3, 5, 7)),
                       rng.choice((4, 6, 8)), (rng.choice(STRIDES), rng.choice(STRIDES)),
                       tuple(j for j in range(i) if rng.random() < 0.4)))
    return CnnSpec(layers=tuple(layers), pool_positions=pools)


def _ceil(a, b):
    return -(-a // b)


@pytest.mark.parametrize("seed", range(200))
def test_shapes_with_non_square_strides_follow_the_rules(seed):
    """Independent re-derivation of §3.3 with height and width tracked separately."""
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    pools = tuple(sorted(rng.sample(range(1, n), k=min(n - 1, rng.randint(0, 2))))) if n > 1 else ()
    spec = _random_spec(rng, n, pools)
    h0, w0 = rng.choice((8, 9, 13, 32)), rng.choice((7, 8, 16, 31))
    shapes, final = layer_shapes(spec, (h0, w0, 3))
    outs = []
    for i, (layer, s) in enumerate(zip(spec.layers, shapes)):
        stage = spec.stage_of(i)
        srcs = [outs[j] for j in layer.inputs] or [(h0, w0, 3, 0)]
        hs, ws = [], []
        for h, w, _, st in srcs:
            for _ in range(stage - st):
                h, w = _ceil(h, 2), _ceil(w, 2)
            hs.append(h)
            ws.append(w)
        assert (s.in_height, s.in_width) == (max(hs), max(ws))
        assert s.in_channels == sum(c for _, _, c, _ in srcs)
        assert (s.out_height, s.out_width) == (_ceil(max(hs), layer.stride_height),
                                               _ceil(max(ws), layer.stride_width))
        outs.append((s.out_height, s.out_width, layer.filters, stage))
    assert final[2] == sum(spec.layers[j].filters for j in spec.unused_outputs())
