"""The NAS-Bench-201 space and its table evaluator (cnn_space/nb201/)."""

from __future__ import annotations

import csv
import itertools
import pickle

import pytest
from conftest import write_synthetic_nb201_table

from cnn_space.nb201 import EDGES, OPS, Nb201Space, Nb201Spec, Nb201TableEvaluator, load_table
from nas_tf.errors import DataError, InvalidArchitectureError
from nas_tf.evaluator import ChildContext
from nas_tf.space import Categorical

BEST = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


def _ctx(tmp_path):
    return ChildContext(child_id=1, log_dir=str(tmp_path), seed=0)


# ---------------------------------------------------------------------------
# The real table (skipped when ../shared/data is absent).
# ---------------------------------------------------------------------------
def test_arch_string_round_trip_on_every_row_of_the_real_table(nb201_table):
    space = Nb201Space()
    with open(nb201_table, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["arch", "test_accuracy"]
    archs = [r[0] for r in rows[1:]]
    assert len(archs) == 15625 == len(OPS) ** len(EDGES)
    tokens = set()
    for arch in archs:
        spec = Nb201Spec.from_arch_string(arch)
        assert spec.to_arch_string() == arch
        t = space.spec_to_tokens(spec)
        assert space.tokens_to_spec(t) == spec
        assert space.spec_from_json(space.spec_to_json(spec)) == spec
        tokens.add(t)
    # Every cell of the space is in the table exactly once.
    assert tokens == set(itertools.product(range(len(OPS)), repeat=len(EDGES)))


@pytest.fixture(scope="module")
def real_table(nb201_table):
    return load_table(str(nb201_table))


def test_real_table_values_and_evaluator(nb201_table, real_table, tmp_path):
    table = real_table
    assert len(table) == 15625
    assert round(max(table.values()), 2) == 94.37
    assert all(0.0 <= v <= 100.0 for v in table.values())
    ev = Nb201TableEvaluator(str(nb201_table))
    ev._table = table  # what its first use would load (load_table is checked above)
    assert ev.optimum() == pytest.approx(94.3733)
    res = ev.evaluate(Nb201Spec.from_arch_string(BEST), _ctx(tmp_path))
    assert res.reward == table[BEST] == pytest.approx(94.3733)
    assert res.metrics == {"test_accuracy": res.reward, "table_test_accuracy": res.reward}


# ---------------------------------------------------------------------------
# Space and spec (no table needed).
# ---------------------------------------------------------------------------
def test_space_decisions_and_round_trip():
    space = Nb201Space()
    ds = space.decisions()
    assert len(ds) == 6 and all(isinstance(d, Categorical) and d.values == OPS for d in ds)
    assert space.final_decisions() == ds == space.decisions(10_000)
    tokens = (0, 1, 2, 3, 4, 3)
    spec = space.tokens_to_spec(tokens)
    assert spec.ops == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                        "avg_pool_3x3", "nor_conv_3x3")
    assert space.spec_to_tokens(spec) == tokens
    assert spec.to_arch_string() == (
        "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    assert Nb201Spec.from_arch_string(spec.to_arch_string()) == spec
    assert space.hparams(spec)["edge_3_2"] == "nor_conv_3x3"
    assert spec.to_arch_string() in space.describe(spec)
    assert hash(spec) == hash(Nb201Spec(tuple(spec.ops)))
    with pytest.raises(InvalidArchitectureError):
        space.tokens_to_spec((0, 1, 2, 3, 4, 5))
    with pytest.raises(InvalidArchitectureError):
        space.tokens_to_spec((0, 1, 2))


@pytest.mark.parametrize("make, words", [
    (lambda: Nb201Spec(("none",) * 5), "has 6 edges"),
    (lambda: Nb201Spec(("none",) * 5 + ("conv_5x5",)), "Unknown NAS-Bench-201 op"),
    (lambda: Nb201Spec.from_json({"ops": "none"}), "six op names"),
    (lambda: Nb201Spec.from_json(["none"] * 6), "six op names"),
    (lambda: Nb201Spec.from_arch_string("|none~0|+|none~0|none~1|"), "3 nodes"),
    (lambda: Nb201Spec.from_arch_string("none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
     "Node 1 must be written"),
    (lambda: Nb201Spec.from_arch_string("|none~0|+|none~0|+|none~0|none~1|none~2|"),
     "Node 2 must have 2 incoming edges"),
    (lambda: Nb201Spec.from_arch_string("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|"),
     "must be written op~1"),
    (lambda: Nb201Spec.from_arch_string("|none-0|+|none~0|none~1|+|none~0|none~1|none~2|"),
     "must be written op~0"),
])
def test_bad_specs(make, words):
    with pytest.raises(InvalidArchitectureError, match=words):
        make()


# ---------------------------------------------------------------------------
# Malformed tables -> one DataError naming the problem.
# ---------------------------------------------------------------------------
GOOD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize("text, words", [
    ("name,acc\n" + GOOD + ",50\n", "wrong columns"),
    ("", "wrong columns"),
    ("arch,test_accuracy\n|none~0|+|bogus|,50\n", "bad architecture string"),
    ("arch,test_accuracy\n|none~0|+|none~0|+|none~0|none~1|none~2|,50\n",
     "Node 2 must have 2 incoming edges"),
    ("arch,test_accuracy\n|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,50\n",
     "Unknown NAS-Bench-201 op"),
    ("arch,test_accuracy\n" + GOOD + ",fifty\n", "test_accuracy is not a number"),
    ("arch,test_accuracy\n" + GOOD + ",nan\n", "not finite"),
    ("arch,test_accuracy\n" + GOOD + "\n", "expected 2 columns"),
    ("arch,test_accuracy\n\n", "has no rows"),
])
def test_malformed_table_is_a_data_error(tmp_path, text, words):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=words) as info:
        load_table(str(p))
    assert str(p) in str(info.value)


def test_line_number_in_the_error(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(f"arch,test_accuracy\n{GOOD},1\n{GOOD},x\n")
    with pytest.raises(DataError, match=r"t\.csv:3: test_accuracy is not a number"):
        load_table(str(p))


def test_binary_missing_and_unset_tables(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(DataError, match="not a text CSV"):
        load_table(str(p))
    with pytest.raises(DataError, match="table not found: .*absent.csv"):
        load_table(str(tmp_path / "absent.csv"))
    with pytest.raises(DataError, match="table not found"):
        load_table(str(tmp_path))  # a directory
    with pytest.raises(DataError, match="No NAS-Bench-201 table given"):
        load_table("")


# ---------------------------------------------------------------------------
# The evaluator on a synthetic full table.
# ---------------------------------------------------------------------------
def test_evaluator_is_lazy_picklable_and_looks_up(tmp_path):
    path = tmp_path / "table.csv"
    accs = write_synthetic_nb201_table(path)
    ev = Nb201TableEvaluator(str(path))
    assert ev._table is None  # nothing read until used
    spec = Nb201Spec.from_arch_string(GOOD)
    assert ev.evaluate(spec, _ctx(tmp_path)).reward == accs[GOOD]
    clone = pickle.loads(pickle.dumps(ev))
    assert clone._table is None and clone.table_path == str(path)
    assert clone.evaluate(spec, _ctx(tmp_path)).reward == accs[GOOD]
    assert ev.optimum() == max(accs.values())
    # A table without a cell: that child fails (the search records it, goes on).
    part = tmp_path / "part.csv"
    part.write_text(f"arch,test_accuracy\n{GOOD},12.5\n")
    other = Nb201Spec(("skip_connect",) * 6)
    with pytest.raises(DataError, match="not in the table"):  # the data's fault
        Nb201TableEvaluator(str(part)).evaluate(other, _ctx(tmp_path))
    # A bad table surfaces as a DataError from evaluate too.
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n")
    with pytest.raises(DataError):
        Nb201TableEvaluator(str(bad)).evaluate(spec, _ctx(tmp_path))


def test_an_unreadable_table_is_a_read_error_naming_the_table(tmp_path, monkeypatch):
    """(Simulated: the tests may run as root, whom chmod does not stop.)"""
    import cnn_space.nb201.table as nb201

    path = tmp_path / "t.csv"
    path.write_text("arch,test_accuracy\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(nb201, "open", denied, raising=False)
    with pytest.raises(DataError, match=r"cannot read the NAS-Bench-201 table .*t\.csv "
                                        r"\(Permission denied\): fix its permissions") as info:
        load_table(str(path))
    assert "runs" not in str(info.value) and "write" not in str(info.value)


def test_a_table_evaluator_has_cheap_children():
    """A lookup: the search gives it no log directory and TensorBoard no run per child."""
    assert Nb201TableEvaluator("x.csv").cheap_children
