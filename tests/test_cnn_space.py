"""Tests of cnn_space.space: the CNN spec, the space's decisions, tokens and curriculum."""

import dataclasses
import json
import pickle
import random
import subprocess
import sys

import pytest

from cnn_space.space import (
    FILTER_SIZES,
    NUM_FILTERS,
    STRIDES,
    CnnLayer,
    CnnSpace,
    CnnSpec,
    layer_shapes,
)
from nas_tf.errors import ConfigError, InvalidArchitectureError
from nas_tf.space import Anchor, Categorical, token_width, validate_decisions


def random_tokens(decisions, rng, p=0.5):
    tokens = []
    for d in decisions:
        if isinstance(d, Categorical):
            tokens.append(rng.randrange(d.num_choices))
        else:
            tokens += [int(rng.random() < p) for _ in range(d.num_inputs)]
    return tuple(tokens)


@pytest.mark.parametrize(
    "preset,layers,strides,pools",
    [("v1", 15, False, ()), ("v2", 20, True, ()), ("v3", 39, False, (13, 26))],
)
def test_presets(preset, layers, strides, pools):
    space = CnnSpace(preset)
    decisions = validate_decisions(space.decisions())
    assert space.num_layers == layers
    assert space.pool_positions == pools
    per_layer = 6 if strides else 4
    assert len(decisions) == per_layer * layers
    names = [d.name for d in decisions[:per_layer]]
    expected = ["layer_0/filter_height", "layer_0/filter_width"]
    # §3.1: filter height, filter width, stride height, stride width, number of filters.
    expected += ["layer_0/stride_height", "layer_0/stride_width"] if strides else []
    assert names == expected + ["layer_0/filters", "layer_0/inputs"]
    anchors = [d for d in decisions if isinstance(d, Anchor)]
    assert [a.num_inputs for a in anchors] == list(range(layers))
    cats = {d.name: d.values for d in decisions if isinstance(d, Categorical)}
    assert cats["layer_3/filter_height"] == FILTER_SIZES == (1, 3, 5, 7)
    assert cats["layer_3/filters"] == NUM_FILTERS == (24, 36, 48, 64)
    if strides:
        assert cats["layer_3/stride_height"] == cats["layer_3/stride_width"] == STRIDES
        assert STRIDES == (1, 2, 3)
    assert json.loads(json.dumps(space.config()))["preset"] == preset


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
@pytest.mark.parametrize("seed", range(5))
def test_tokens_spec_round_trip(preset, seed):
    space = CnnSpace(preset)
    rng = random.Random(seed)
    tokens = random_tokens(space.decisions(), rng, p=rng.random())
    spec = space.tokens_to_spec(tokens)
    assert space.spec_to_tokens(spec) == tokens
    assert spec.num_layers == space.num_layers
    assert spec.pool_positions == space.pool_positions
    # JSON round trip, through text, and hashing.
    again = space.spec_from_json(json.loads(json.dumps(space.spec_to_json(spec))))
    assert again == spec and hash(again) == hash(spec)
    assert space.hash_spec(again) == space.hash_spec(spec)
    assert pickle.loads(pickle.dumps(spec)) == spec
    # hparams reports every decision with the chosen value.
    hp = space.hparams(spec)
    assert hp["layer_0/filters"] == spec.layers[0].filters
    assert hp["layer_1/inputs"] == ("0" if spec.layers[1].inputs else "-")
    if preset != "v2":
        assert all(layer.stride == 1 for layer in spec.layers)


def test_tokens_decode_to_the_chosen_values():
    space = CnnSpace("v2", num_layers=3)
    # per layer: filter height, filter width, stride height, stride width, filters, inputs
    tokens = (3, 0, 2, 2, 1) + (1, 1, 0, 0, 0, 1) + (2, 3, 1, 2, 3, 1, 0)
    spec = space.tokens_to_spec(tokens)
    assert spec.layers == (
        CnnLayer(7, 1, 36, 3, ()),
        CnnLayer(3, 3, 24, 1, (0,)),
        CnnLayer(5, 7, 64, (2, 3), (0,)),
    )
    assert spec.layers[2].strides == (2, 3) and spec.layers[0].strides == (3, 3)
    assert (spec.layers[2].stride_height, spec.layers[2].stride_width) == (2, 3)
    assert space.spec_to_tokens(spec) == tokens
    assert space.hparams(spec)["layer_2/stride_width"] == 3


def test_width_multiplier_scales_filter_choices():
    space = CnnSpace("v3", width_multiplier=2)
    filters = [d for d in space.decisions() if d.name == "layer_0/filters"][0]
    assert filters.values == (48, 72, 96, 128)
    spec = space.tokens_to_spec(random_tokens(space.decisions(), random.Random(0)))
    assert {layer.filters for layer in spec.layers} <= {48, 72, 96, 128}
    with pytest.raises(InvalidArchitectureError, match="filters must be one of"):
        CnnSpace("v3").spec_to_tokens(spec)


def test_depth_is_configurable_and_pools_follow():
    space = CnnSpace("v3", num_layers=9)
    assert space.pool_positions == (3, 6)
    assert CnnSpace("v3", num_layers=2).pool_positions == (1,)
    assert CnnSpace("v3", num_layers=1).pool_positions == ()
    assert CnnSpace("v3", num_layers=3).pool_positions == (1, 2)
    assert CnnSpace("v1", num_layers=1).tokens_to_spec((0, 0, 0)).layers == (
        CnnLayer(1, 1, 24, 1, ()),)


# ------------------------------------------------------------------ curriculum


def test_curriculum_off_by_default():
    space = CnnSpace("v1")
    assert space.decisions(0) == space.decisions(10**6) == space.final_decisions()
    with pytest.raises(InvalidArchitectureError, match="no next stage"):
        space._next_stage(0)


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_curriculum_stages_extend_each_other(preset):
    space = CnnSpace(preset, curriculum_start=6, curriculum_step=2, curriculum_every=1600)
    assert space.config()["curriculum"] == {"start": 6, "step": 2, "every": 1600,
                                            "count": "samples"}
    n, stages = 0, []
    while True:
        stages.append((n, space.decisions(n)))
        try:
            nxt = space._next_stage(n)
        except InvalidArchitectureError:
            break
        assert nxt > n and space.decisions(nxt - 1) == space.decisions(n)
        n = nxt
    depths = [space.depth(n) for n, _ in stages]
    expected = list(range(6, space.num_layers, 2))
    if expected[-1] != space.num_layers:
        expected.append(space.num_layers)
    assert depths == expected
    assert [n for n, _ in stages][:3] == [0, 1600, 3200]
    for (_, short), (_, long) in zip(stages, stages[1:]):
        assert long[: len(short)] == short and len(long) > len(short)
    # The controller sizes its weights by final_decisions(): the last stage, not the first.
    assert space.final_decisions() == stages[-1][1] == CnnSpace(preset).decisions()
    assert len(space.final_decisions()) > len(space.decisions(0))
    # Every stage's tokens decode (the base class finds the stage by width).
    rng = random.Random(1)
    for n, decisions in stages:
        tokens = random_tokens(decisions, rng)
        assert space.decisions_for_tokens(len(tokens)) == decisions
        spec = space.tokens_to_spec(tokens)
        assert spec.num_layers == space.depth(n)
        assert spec.pool_positions == tuple(p for p in space.pool_positions if p < spec.num_layers)
        assert space.spec_to_tokens(spec) == tokens


def test_curriculum_rejects_widths_between_stages():
    space = CnnSpace("v1", num_layers=10, curriculum_start=6)
    width = token_width(space.decisions(0)) + 3 + 6  # one more layer: not a stage
    with pytest.raises(InvalidArchitectureError, match="No stage"):
        space.tokens_to_spec((0,) * width)
    with pytest.raises(InvalidArchitectureError, match="depths"):
        space.spec_to_tokens(CnnSpec(layers=((1, 1, 24, 1, ()),) * 7))


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"preset": "v4"}, "Unknown CNN preset.*v4"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"num_layers": -3}, "num_layers=-3"),
        ({"num_layers": 2.5}, "num_layers=2.5"),
        ({"curriculum_start": 0}, "curriculum_start=0"),
        ({"curriculum_start": 16}, "curriculum_start=16"),
        ({"curriculum_start": 6, "curriculum_step": 0}, "curriculum_step=0"),
        ({"curriculum_start": 6, "curriculum_every": -1}, "curriculum_every=-1"),
        ({"width_multiplier": 0}, "width_multiplier=0"),
        ({"width_multiplier": 0.01}, "collapse"),
    ],
)
def test_bad_space_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CnnSpace(**kwargs)


@pytest.mark.parametrize(
    "layers,pools,match",
    [
        ((), (), "at least one layer"),
        (((3, 3, 0, 1, ()),), (), "filters > 0. Received: filters=0"),
        (((3, 3, -24, 1, ()),), (), "Received: filters=-24"),
        (((2, 3, 24, 1, ()),), (), "filter_height must be one of.*Received: filter_height=2"),
        (((3, 9, 24, 1, ()),), (), "filter_width=9"),
        (((3, 3, 24, 4, ()),), (), "stride=4"),
        (((3, 3, 24, 1, (0,)),), (), r"earlier layers.*Received: inputs=\(0,\)"),
        (((3, 3, 24, 1, ()), (3, 3, 24, 1, (1,))), (), r"inputs=\(1,\)"),
        (((3, 3, 24, 1, ()), (3, 3, 24, 1, (-1,))), (), r"inputs=\(-1,\)"),
        (((3, 3, 24, 1, ()), (3, 3, 24, 1, (0, 0))), (), "twice"),
        (((3, 3, 24.5, 1, ()),), (), "must be an integer"),
        (((3, 3, 24, 1, ()), (3, 3, 24, 1, ())), (0,), r"pool_positions=\(0,\)"),
        (((3, 3, 24, 1, ()), (3, 3, 24, 1, ())), (2,), r"pool_positions=\(2,\)"),
        (((3, 3, 24, 1, ()),) * 4, (2, 1), r"pool_positions=\(2, 1\)"),
        (((3, 3),), (), "Layer 0 must be"),
    ],
)
def test_bad_spec(layers, pools, match):
    with pytest.raises(InvalidArchitectureError, match=match):
        CnnSpec(layers=layers, pool_positions=pools)


def test_spec_normalises_and_is_hashable():
    a = CnnSpec(layers=[[3, 3, 24, 1, []], (1, 5, 36, 2, [0])])
    b = CnnSpec(layers=((3, 3, 24), (1, 5, 36, 2, (0,))))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert isinstance(a.layers[1], CnnLayer) and a.layers[1].inputs == (0,)
    c = CnnSpec(layers=((1, 1, 24), (1, 1, 24), (1, 1, 24, 1, (1, 0))))
    assert c.layers[2].inputs == (0, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.layers = ()


@pytest.mark.parametrize(
    "obj,match",
    [
        ([], "object with a 'layers' list"),
        ({"layers": "x"}, "object with a 'layers' list"),
        ({"layers": [], "extra": 1}, "Unknown keys"),
        ({"layers": [{"filter_height": 3}]}, "Layer 0 of a CNN spec's JSON"),
        ({"layers": [{"filter_height": 3, "filter_width": 3, "filters": 24, "inputs": 0}]},
         "inputs must be a list"),
        ({"layers": [{"filter_height": 3, "filter_width": 3, "filters": 0}]}, "filters=0"),
        ({"layers": [{"filter_height": 3, "filter_width": 3, "filters": 24}],
          "pool_positions": 1}, "pool_positions must be a list"),
    ],
)
def test_bad_json(obj, match):
    with pytest.raises(InvalidArchitectureError, match=match):
        CnnSpec.from_json(obj)


def test_spec_to_tokens_rejects_specs_of_other_spaces():
    v1 = CnnSpace("v1", num_layers=2)
    with pytest.raises(InvalidArchitectureError, match="needs a CnnSpec"):
        v1.spec_to_tokens({"layers": []})
    with pytest.raises(InvalidArchitectureError, match="does not predict strides"):
        v1.spec_to_tokens(CnnSpec(layers=((3, 3, 24, 2, ()), (3, 3, 24, 1, ()))))
    with pytest.raises(InvalidArchitectureError, match="depths"):
        v1.spec_to_tokens(CnnSpec(layers=((3, 3, 24, 1, ()),)))
    with pytest.raises(InvalidArchitectureError, match="pools before layers"):
        CnnSpace("v3", num_layers=3).spec_to_tokens(CnnSpec(layers=((3, 3, 24, 1, ()),) * 3))
    with pytest.raises(InvalidArchitectureError, match="filters must be one of"):
        v1.spec_from_json(CnnSpec(layers=((3, 3, 25, 1, ()),) * 2).to_json())
    with pytest.raises(InvalidArchitectureError, match="Expected 7 tokens|No stage"):
        v1.tokens_to_spec((0, 0, 0, 0, 0, 0))
    with pytest.raises(InvalidArchitectureError, match="must be in"):
        v1.tokens_to_spec((4, 0, 0, 0, 0, 0, 0))
    with pytest.raises(InvalidArchitectureError, match="0 or 1"):
        v1.tokens_to_spec((0, 0, 0, 0, 0, 0, 2))


# -------------------------------------------------------------- description


def test_describe_is_a_markdown_table_with_skip_inputs():
    spec = CnnSpec(layers=((3, 5, 24, 1, ()), (1, 1, 36, 1, (0,)), (7, 7, 48, 1, ())),
                   pool_positions=(2,))
    text = CnnSpace("v3", num_layers=3).describe(spec)
    lines = text.splitlines()
    assert lines[0].startswith("| layer |") and lines[1].startswith("|---")
    assert "| 0 | 3 x 5 | 24 | 1 x 1 | image |" in lines
    assert "| 1 | 1 x 1 | 36 | 1 x 1 | 0 |" in lines
    assert lines.index("| 2 | 7 x 7 | 48 | 1 x 1 | image |") == lines.index(
        "| pool | 2 x 2 max | | 2 x 2 | all |") + 1
    spec = CnnSpec(layers=((3, 5, 24, (1, 3), ()),))
    assert "| 0 | 3 x 5 | 24 | 1 x 3 | image |" in CnnSpace("v2", num_layers=1).describe(spec)
    assert "input: layers 1, 2." in text


# -------------------------------------------------------------------- shapes


def test_layer_shapes_follow_the_connection_rules():
    spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 3, ()), (3, 3, 6, 1, (0, 1)),
                           (1, 1, 7, 1, (0,))), pool_positions=(3,))
    shapes, final = layer_shapes(spec, (8, 10, 3))
    assert (shapes[0].out_height, shapes[0].out_width, shapes[0].in_channels) == (4, 5, 3)
    assert (shapes[1].out_height, shapes[1].out_width) == (3, 4)
    assert (shapes[2].in_height, shapes[2].in_width, shapes[2].in_channels) == (4, 5, 9)
    # Layer 3 sits after the pool: layer 0's 4x5 output is pooled to 2x3.
    assert (shapes[3].in_height, shapes[3].in_width, shapes[3].in_channels) == (2, 3, 4)
    # Unused outputs 2 (4x5, pooled to 2x3) and 3 (2x3) reach the classifier.
    assert spec.unused_outputs() == (2, 3) and final == (2, 3, 13)
    with pytest.raises(ConfigError, match="input_shape"):
        layer_shapes(spec, (8, 8))
    with pytest.raises(ConfigError, match="input_shape"):
        layer_shapes(spec, (8, 0, 3))


def test_space_module_does_not_import_tensorflow():
    code = ("import sys, cnn_space, cnn_space.space; cnn_space.CnnSpace('v3'); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_space_pickles():
    space = CnnSpace("v2", num_layers=4, curriculum_start=2)
    again = pickle.loads(pickle.dumps(space))
    assert again.config() == space.config() and again.decisions(5000) == space.decisions(5000)


# ------------------------------------------------------- versions and resuming

# space.config() of CnnSpace("v2", num_layers=4, curriculum_start=2, curriculum_step=1,
# curriculum_every=3) as written by the code before space versions (commit a09c4fb).
OLD_V2_CONFIG = {
    "name": "cnn", "preset": "v2", "num_layers": 4, "predict_strides": True,
    "pool_positions": [], "filter_sizes": [1, 3, 5, 7], "filters": [24, 36, 48, 64],
    "strides": [1, 2, 3], "width_multiplier": 1,
    "curriculum": {"start": 2, "step": 1, "every": 3},
}
DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_version_one_is_the_old_space():
    old = CnnSpace.from_config(OLD_V2_CONFIG)
    assert old.version == 1 and old.curriculum_count == "children"
    assert old.config() == OLD_V2_CONFIG
    assert [d.name for d in old.decisions()][:5] == [
        "layer_0/filter_height", "layer_0/filter_width", "layer_0/filters", "layer_0/stride",
        "layer_0/inputs"]
    new = CnnSpace("v2", num_layers=4, curriculum_start=2, curriculum_step=1,
                   curriculum_every=3)
    assert new.config()["version"] == 2 and new.config() != OLD_V2_CONFIG
    assert new.as_recorded(OLD_V2_CONFIG).config() == OLD_V2_CONFIG
    assert new.as_recorded(new.config()) is new
    assert CnnSpace.from_config(new.config()).config() == new.config()
    # Another depth, preset or curriculum is another space.
    assert CnnSpace("v2", num_layers=5).as_recorded(OLD_V2_CONFIG) is None
    assert CnnSpace("v1", num_layers=4).as_recorded(OLD_V2_CONFIG) is None
    assert new.as_recorded({**OLD_V2_CONFIG, "curriculum": None}) is None
    assert new.as_recorded({"name": "rnn", "base": 8}) is None
    # Version 1 cannot hold different height and width strides.
    with pytest.raises(InvalidArchitectureError, match="version 1"):
        old.spec_to_tokens(CnnSpec(layers=((3, 3, 24, (1, 2), ()),) * 2))


def test_paper_filter_choices_and_more_filters():
    space = CnnSpace("v3", filters=(6, 12, 24, 36), added_filters=40)
    assert space.filter_choices == (46, 52, 64, 76)
    assert CnnSpace.from_config(space.config()).filter_choices == (46, 52, 64, 76)
    with pytest.raises(ConfigError, match="added_filters"):
        CnnSpace("v3", added_filters=-1)
    with pytest.raises(ConfigError, match="filters must be"):
        CnnSpace("v3", filters=())
    with pytest.raises(ConfigError, match="curriculum_count"):
        CnnSpace("v1", curriculum_count="epochs")
    with pytest.raises(ConfigError, match="version"):
        CnnSpace("v1", version=3)


def test_curriculum_counts_samples_in_the_loop(tmp_path):
    """§4.1: the depth grows every `every` *samples* (proposals, duplicates included);
    ``curriculum_count="children"`` counts unique finished children instead."""
    from fake_evaluators import FakeEvaluator

    from nas_tf.algorithms import RandomSearch
    from nas_tf.config import SearchConfig
    from nas_tf.loop import read_trials, run_search

    calls = {}
    for count in ("samples", "children"):
        # 1-layer children of one filter choice: 16 architectures, so duplicates come early.
        space = CnnSpace("v1", num_layers=3, curriculum_start=1, curriculum_step=1,
                         curriculum_every=12, curriculum_count=count, filters=(24,))
        config = SearchConfig(algorithm="random", max_children=14, children_per_update=2,
                              seed=0)
        algo = RandomSearch(space, config)
        seen = calls[count] = []
        propose = algo.propose

        def spy(n, num, algo=algo, seen=seen, propose=propose):
            seen.append((algo.num_proposed, num))
            return propose(n, num)

        algo.propose = spy
        summary = run_search(space, FakeEvaluator(), run_dir=str(tmp_path / count),
                             config=config, algorithm=algo, child_logs=False)
        assert summary["duplicates"] > 0  # so samples and children differ
        depths = [len(t.spec["layers"]) for t in read_trials(tmp_path / count)]
        assert depths == sorted(depths) and depths[0] == 1
        if count == "samples":
            assert all(num == proposed for proposed, num in seen)
            # Depth 2 from the 13th sample on: fewer than 12 one-layer children.
            assert depths.count(1) < 12 and 2 in depths
        else:
            assert any(num < proposed for proposed, num in seen)
            assert depths.count(1) == 12  # 12 unique children before depth 2


def test_a_run_of_the_old_space_resumes_with_its_decisions(tmp_path):
    """A run directory written before space versions (tests/data, made by commit a09c4fb's
    code: v2 with one stride decision, curriculum counted in children, stopped after 5
    children) resumes under today's CnnSpace("v2") flags: the same children as the old
    code's own resume (hashes recorded then), nothing trained twice."""
    import shutil
    import tarfile

    from fake_evaluators import FakeEvaluator

    from nas_tf.config import SearchConfig
    from nas_tf.loop import read_trials, run_search

    with tarfile.open(DATA / "cnn_space_v1_run.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    run = tmp_path / "old_v2"
    before = {t.id: t.hash for t in read_trials(run)}
    assert len(before) == 5
    space = CnnSpace("v2", num_layers=4, curriculum_start=2, curriculum_step=1,
                     curriculum_every=3)
    calls = tmp_path / "calls.txt"
    summary = run_search(space, FakeEvaluator(calls_file=str(calls)), run_dir=str(run),
                         config=SearchConfig(algorithm="random", max_children=10,
                                             children_per_update=2, seed=3),
                         child_logs=False)
    assert summary["space_config"] == OLD_V2_CONFIG
    expected = json.loads((DATA / "cnn_space_v1_resumed.json").read_text())
    got = [{"id": t.id, "hash": t.hash, "layers": len(t.spec["layers"])}
           for t in read_trials(run)]
    assert got == expected
    trained = sorted(int(line.split()[0]) for line in calls.read_text().splitlines())
    assert trained == [6, 7, 8, 9, 10]
    # The same flags on a new directory start a version-2 run.
    fresh = tmp_path / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    s2 = run_search(space, FakeEvaluator(), run_dir=str(fresh),
                    config=SearchConfig(algorithm="random", max_children=2,
                                        children_per_update=2, seed=3), child_logs=False)
    assert s2["space_config"]["version"] == 2
