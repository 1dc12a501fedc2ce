"""The public Python API: its docstring examples run as tests, plus edge cases."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nas_tf
from cnn_space.nb201 import Nb201Space
from nas_tf.errors import ConfigError, InvalidArchitectureError, RunDirError
from nas_tf.evaluator import EvalResult, Evaluator

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("NAS_TF_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _run_doctests(module, globs) -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module, globs=globs) if t.examples]
    assert tests, f"{module.__name__} has no examples"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {module.__name__}"
    assert result.attempted >= 10, result


def test_api_docstring_examples_run_on_nb201(tmp_path):
    """The examples of nas_tf.api (a NAS-Bench-201 search with the shared table)."""
    table = _shared_data() / "nb201" / "cifar10.csv"
    if not table.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {table} (set NAS_TF_SHARED_DATA)")
    from nas_tf import api

    _run_doctests(api, {**vars(api), "TABLE": str(table), "RUN_DIR": str(tmp_path / "run")})


# Modules with runnable docstring examples (nas_tf.logger's and nas_tf.report's
# are marked +SKIP: they need a run directory).
@pytest.mark.parametrize("module_name", ["nas_tf.exporters", "nas_tf.plugins"])
def test_other_docstring_examples(module_name):
    import importlib

    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_import_loads_no_tensorflow():
    code = ("import sys, nas_tf; nas_tf.Search; nas_tf.make_space; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
            "assert 'keras' not in sys.modules, 'keras imported'; print('light')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0 and "light" in proc.stdout, proc.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nas_tf.nope  # noqa: B018


class _OpsReward(Evaluator):
    calls = 0  # evaluations in this process (the inline executor)

    def evaluate(self, spec, context):
        type(self).calls += 1
        if "none" in spec.ops[4:]:
            raise RuntimeError("one of the last two edges is none")
        return EvalResult(reward=sum(op == "nor_conv_3x3" for op in spec.ops) + 0.01 * len(
            set(spec.ops)), metrics={"val_accuracy": 0.5})


def test_search_with_a_space_instance(tmp_path):
    search = nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(tmp_path / "r"),
                           algorithm="evolution", max_children=12, seed=2)
    summary = search.search()
    assert summary["children_trained"] == 12 and summary["algorithm"] == "evolution"
    records = search.trials()
    done = search.trials("done")
    failed = search.trials("failed")
    assert len(done) + len(failed) == 12
    assert failed and all("none" in r["spec"]["ops"][4:] for r in failed)
    best = search.best(100)
    assert len(best) == len(done)
    assert [r.reward for r in best] == sorted((r["reward"] for r in done), reverse=True)
    assert best[0].spec == Nb201Space().spec_from_json(best[0].spec_json)
    assert {r["id"] for r in records} == {r["id"] for r in done + failed}
    assert search.summary()["best_reward"] == best[0].reward
    assert "rank  child  reward" in search.report(3)
    with pytest.raises(ConfigError, match="nb201 has no model builder|no model builder"):
        search.build_model(best[0])
    # Running the same search again resumes: nothing is trained twice.
    _OpsReward.calls = 0
    again = nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(tmp_path / "r"),
                          algorithm="evolution", max_children=12, seed=2).search()
    assert again["children_trained"] == 12
    assert _OpsReward.calls == 0


def test_build_model_of_an_rnn_spec(tmp_path):
    space, _ = nas_tf.make_space("rnn", cell_base=2)
    search = nas_tf.Search("rnn", run_dir=str(tmp_path / "r"), cell_base=2, units=6)
    spec = space.tokens_to_spec([0] * 10)
    model = search.build_model(spec)
    assert model.get_layer("rnn_0").cell.units == 6
    model2 = search.build_model(space.spec_to_json(spec), units=4)
    assert model2.get_layer("rnn_1").cell.units == 4
    with pytest.raises(InvalidArchitectureError, match="Not a spec of space 'rnn'"):
        search.build_model(Nb201Space().tokens_to_spec([0] * 6))


@pytest.mark.parametrize("call, error, match", [
    (lambda d: nas_tf.Search("transformer", run_dir=d), ConfigError, "Unknown search space"),
    (lambda d: nas_tf.Search("rnn", run_dir=d, unitz=3), ConfigError, r"\['unitz'\]"),
    (lambda d: nas_tf.Search("nb201", run_dir=d, table="/no/such.csv"), nas_tf.DataError,
     "table not found"),
    (lambda d: nas_tf.Search("rnn", run_dir=""), ConfigError, "run_dir is required"),
    (lambda d: nas_tf.Search(Nb201Space(), run_dir=d, table="x"), ConfigError,
     "need a space name"),
    (lambda d: nas_tf.search_config(max_children=0), ConfigError, "max_children must be > 0"),
    (lambda d: nas_tf.search_config(bogus=1), ConfigError, "bogus"),
    (lambda d: nas_tf.open_run(d), RunDirError, "not a nas_tf run"),
    (lambda d: nas_tf.load_model(os.path.join(d, "m.keras")), RunDirError, "No saved model"),
])
def test_bad_input(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(str(tmp_path))


def test_open_run_cannot_search_without_evaluator(tmp_path):
    nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(tmp_path), algorithm="random",
                  max_children=3).search()
    run = nas_tf.open_run(str(tmp_path))
    assert len(run.trials()) == 3
    with pytest.raises(ConfigError, match="has no evaluator"):
        run.search()
    with pytest.raises(ConfigError, match="k must be"):
        run.best(0)
    with pytest.raises(ConfigError, match="status must be one of"):
        run.trials("finished")


def test_one_preset_rule_for_cli_and_api(tmp_path):
    """auto keeps the preset of the run being resumed, in the API as in the CLI."""
    from nas_tf import config as cfgmod

    assert cfgmod.resolve_preset("auto", 500) == "small_budget"
    assert cfgmod.resolve_preset("auto", 2001) == "paper"
    assert cfgmod.resolve_preset("paper", 10) == "paper"
    with pytest.raises(ConfigError, match="Unknown controller preset"):
        cfgmod.resolve_preset("fast", 10)
    run = tmp_path / "r"
    first = nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(run), algorithm="reinforce",
                          max_children=4, seed=0)
    assert first.config.reinforce == cfgmod.reinforce_preset("small_budget")
    first.search()
    # Resumed with a budget past 2,000: the recorded preset is kept (not the paper's), so
    # the identity matches and the search goes on.
    again = nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(run), algorithm="reinforce",
                          max_children=2500, seed=0)
    assert again.config.reinforce == cfgmod.reinforce_preset("small_budget")
    assert again.config.children_per_update == cfgmod.children_per_update_preset("small_budget")
    fresh = nas_tf.search_config("reinforce", 2500, 0, run_dir=str(tmp_path / "new"))
    assert fresh.reinforce == cfgmod.reinforce_preset("paper")


def test_a_run_of_an_earlier_version_resumes(tmp_path):
    """A run recorded before settings were added (here REINFORCE's advantage bound and
    steps per batch, with the small_budget m of that version, 3) still resumes: the new
    settings are unknown to it and accepted, and it keeps its own m."""
    from nas_tf.store import TrialStore

    run = tmp_path / "r"
    first = nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(run), algorithm="reinforce",
                          max_children=3, seed=0,
                          config=nas_tf.search_config("reinforce", 3, 0, children_per_update=3))
    first.search()
    with TrialStore(str(run / "trials.sqlite")) as store:
        search = store.get_meta("search")
        for key in ("baseline_init", "advantage_std_floor", "advantage_clip", "steps_per_batch"):
            del search["reinforce"][key]
        store.set_meta(search=search)
    again = nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(run), algorithm="reinforce",
                          max_children=5, seed=0)
    assert again.config.children_per_update == 3
    assert again.search()["children_trained"] == 5
    with pytest.raises(RunDirError, match="children_per_update"):
        nas_tf.Search(Nb201Space(), _OpsReward(), run_dir=str(run), algorithm="reinforce",
                      max_children=6, seed=0,
                      config=nas_tf.search_config("reinforce", 6, 0, children_per_update=2)
                      ).search()
