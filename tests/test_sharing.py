"""Tests of nas_tf/sharing.py and --sharing in the search (cells/sharing.py, the CLI, the API)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_events

from nas_tf import plugins
from nas_tf.errors import ConfigError
from nas_tf.scheduler import Scheduler
from nas_tf.sharing import SharedScoring, SharingConfig, read_scores

SMALL = ["--space=rnn", "--cell_base=2", "--child_units=8", "--bptt=5", "--child_batch_size=4",
         "--train_tokens=3000", "--valid_tokens=600", "--children_per_update=4"]


def _cli(*args, timeout=400):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "nas_tf.run", *args], cwd=os.getcwd(), env=env,
                          capture_output=True, text=True, timeout=timeout)


def _shared_steps(run_dir) -> int:
    from nas_tf.rundir import read_trials

    return max((t.metrics or {}).get("shared_steps", 0) for t in read_trials(run_dir))


def test_config_checks_and_json_round_trip():
    cfg = SharingConfig(mode="enas", steps_per_child=2)
    assert SharingConfig.from_json(cfg.to_json()) == cfg and cfg.enabled
    assert not SharingConfig().enabled and SharingConfig.from_json(None) == SharingConfig()
    with pytest.raises(ConfigError, match="sharing='darts'"):
        SharingConfig(mode="darts")
    with pytest.raises(ConfigError, match="shared_score_windows"):
        SharingConfig(mode="enas", score_windows=0)
    with pytest.raises(ConfigError, match="Unknown sharing setting"):
        SharingConfig.from_json({"mode": "enas", "epochs": 3})


def test_fractional_steps_per_child_trains_on_average_and_by_trial_id():
    # ENAS's ratio: one shared batch after every fifth scored architecture.
    fifth = SharingConfig(mode="enas", steps_per_child=0.2)
    assert [fifth.train_steps(i) for i in range(10)] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert sum(SharingConfig(mode="enas", steps_per_child=0.3).train_steps(i)
               for i in range(100)) == 30
    assert [SharingConfig(mode="enas", steps_per_child=2).train_steps(i)
            for i in range(3)] == [2, 2, 2]
    assert SharingConfig.from_json(fifth.to_json()) == fifth
    # A float flag's 2.0 is the API's 2: the same run identity.
    two = SharingConfig(mode="enas", steps_per_child=2.0)
    assert two == SharingConfig(mode="enas", steps_per_child=2)
    assert type(two.to_json()["steps_per_child"]) is int
    for bad in (0, -1, float("nan"), "2", True):
        with pytest.raises(ConfigError, match="shared_steps_per_child"):
            SharingConfig(mode="enas", steps_per_child=bad)


class _FakeShared:
    """A shared model without TensorFlow: counts saves."""

    def __init__(self):
        self.steps, self.skipped, self.saves = 0, 0, 0

    def save(self, path):
        self.saves += 1
        Path(path).write_text(str(self.steps))

    def restore(self, path):
        self.steps = int(Path(path).read_text())


class _Spec:
    def __init__(self, n):
        self.n = n

    def to_json(self):
        return {"n": self.n, "ops": ["a", "b"]}


class _Scoring(SharedScoring):
    model_file = "fake.txt"

    def __init__(self, folder):
        self._init_sharing(SharingConfig(mode="enas"))
        self.bind_run_dir(folder)

    def _build_shared(self):
        return _FakeShared()


def test_scores_are_appended_and_a_cut_last_line_is_dropped(tmp_path):
    scoring = _Scoring(tmp_path)
    model = scoring.shared_model()
    for n in range(3):
        model.steps += 1
        metrics = {}
        scoring._record(_Spec(n), 10.0 + n, 0.5, metrics)
        assert metrics == {"shared_train_loss": 0.5}
    scoring._record(_Spec(1), 20.0, None, {})  # no training: scores only, no save
    assert model.saves == 3
    lines = (tmp_path / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0]) == {"score": 10.0, "spec": _Spec(0).to_json()}
    key = json.dumps(_Spec(1).to_json(), sort_keys=True)
    assert read_scores(tmp_path)[key] == 20.0 and len(read_scores(tmp_path)) == 3
    # A search killed mid-write leaves a cut line: dropped, cut from the file, and the
    # next append starts on a fresh line.
    with (tmp_path / "scores.jsonl").open("a") as f:
        f.write('{"score": 3.0, "spec": {"n"')
    again = _Scoring(tmp_path)
    assert again.shared_model().steps == 3 and len(again._scores) == 3
    again._record(_Spec(7), 1.0, None, {})
    assert len(read_scores(tmp_path)) == 4
    assert all(json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines())
    # A run directory written before the JSON-lines file still resumes its scores.
    old = tmp_path / "old"
    old.mkdir()
    (old / "scores.json").write_text(json.dumps({key: 5.0}))
    assert read_scores(old) == {key: 5.0}


def test_only_spaces_that_supply_sharing_accept_it():
    class NoSharing(plugins.SpacePlugin):
        name = "no_sharing_test"

    plugins.check_sharing(plugins.get("rnn"), "enas")
    plugins.check_sharing(plugins.get("nb201"), "enas")  # its supernet (--nb201_reward=sharing)
    plugins.check_sharing(NoSharing(), "none")
    with pytest.raises(ConfigError, match="not available for --space=no_sharing_test; "
                                          "spaces with it: cnn, nb201, rnn"):
        plugins.check_sharing(NoSharing(), "enas")


def test_max_search_s_stops_proposing_and_says_why():
    s = Scheduler(max_children=100, children_per_update=2, proposal_limit=1000,
                  patience_rounds=10, max_in_flight=2, max_search_s=60.0)
    assert s.can_propose(0, elapsed_s=59.0)
    assert not s.can_propose(0, elapsed_s=60.5)
    assert s.end_reason.startswith("time budget reached: 60 s of --max_search_s=60")
    assert s.room(0, elapsed_s=0.0) == 0  # stopped for good


def test_which_budget_binds():
    from nas_tf.config import OPEN_CHILD_BUDGET, SHARING_DEFAULT_MAX_CHILDREN, child_budget

    assert child_budget(None, 10, None, False) == (10, 10)  # the space's default
    assert child_budget(None, 10, None, True) == (SHARING_DEFAULT_MAX_CHILDREN,) * 2
    # A wall-time budget alone binds: no child budget; auto still picks by the default.
    assert child_budget(None, 10, 240.0, False) == (OPEN_CHILD_BUDGET, 10)
    assert child_budget(None, 10, 240.0, True) == (OPEN_CHILD_BUDGET, 1000)
    assert child_budget(7, 10, 240.0, True) == (7, 7)  # given: the first budget reached


def test_a_wall_time_budget_is_not_cut_by_the_default_child_budget(tmp_path):
    """`--sharing=enas --max_search_s=...` without --max_children stopped at the rnn
    default of 10 children after 16 s; now the wall time binds."""
    run_dir = tmp_path / "timed"
    out = _cli(*SMALL, f"--run_dir={run_dir}", "--sharing=enas", "--shared_steps_per_child=1",
               "--max_search_s=25")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"].startswith("time budget reached"), summary["stop_reason"]
    assert summary["architectures_evaluated"] > 10, summary["architectures_evaluated"]
    assert "/1000000000 children" not in out.stderr  # the bar shows the time, not 1e9
    helptext = " ".join(_cli("--helpfull").stdout.split())
    assert "Default: none when --max_search_s is given (the wall time binds)" in helptext


def test_rnn_search_with_sharing_from_the_cli_resumes_and_ranks(tmp_path):
    run_dir = tmp_path / "enas"
    args = [*SMALL, f"--run_dir={run_dir}", "--sharing=enas", "--shared_steps_per_child=2",
            "--shared_top_k=3"]
    out = _cli(*args, "--max_children=6")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["sharing"] == "enas" and summary["architectures_evaluated"] == 6
    assert "val_perplexity" in summary["best_metrics"]
    assert summary["best_metrics"]["shared_steps"] >= 2
    assert (run_dir / "shared" / "shared_lm.npz").exists()
    ranking = json.loads((run_dir / "shared" / "ranking.json").read_text())
    assert 1 <= len(ranking) <= 3
    # TensorBoard: the shared model's loss and steps beside the controller's scalars.
    events = run_events(run_dir)
    assert {"shared/train_loss", "shared/steps", "controller/loss"} <= set(events)
    assert all(v is not None and v > 0 for _, v in events["shared/train_loss"])
    steps_before = _shared_steps(run_dir)
    # Resume with a larger budget: the shared weights continue where they were.
    out = _cli(*args, "--max_children=8")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["architectures_evaluated"] == 8
    steps_after = _shared_steps(run_dir)
    assert steps_after >= steps_before + 2
    # Report and export read it as any run; export retrains the best cell from scratch.
    from nas_tf.export import export_child
    from nas_tf.report import format_report, make_report

    assert "val_perplexity" in format_report(make_report(run_dir))
    res = export_child(run_dir, tmp_path / "export", rank=1, retrain_epochs=1,
                       child_config={"steps_per_epoch": 3}, test_limit=200)
    metrics = json.loads((tmp_path / "export" / "metrics.json").read_text())
    assert metrics["retrained"] is True and res["keras_model"] is not None
    # The same run directory without sharing is another search: refused.
    out = _cli(*SMALL, f"--run_dir={run_dir}", "--max_children=9")
    assert out.returncode == 2 and "sharing" in out.stderr


def test_sharing_errors_are_one_line(tmp_path):
    out = _cli("--space=nb201", "--sharing=enas", f"--run_dir={tmp_path / 'x'}")
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and lines[-1].startswith(
        "error: --nb201_reward=sharing scores cells on images")
    assert len([ln for ln in lines if ln.startswith("Traceback")]) == 0
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------
# Damaged shared state: refused in one line before any child, or recovered.
# ----------------------------------------------------------------------------
class _NpzShared:
    """A shared model without TensorFlow that saves an .npz as the real ones do."""

    def __init__(self):
        self.steps, self.skipped = 0, 0

    def save(self, path):
        import numpy as np

        tmp = Path(str(path) + ".tmp.npz")
        np.savez(tmp, w0=np.arange(64.0), counters=np.asarray([self.steps, 0], dtype=np.int64))
        tmp.replace(path)

    def restore(self, path):
        import numpy as np

        with np.load(path) as data:
            self.steps = int(data["counters"][0])


def _npz_evaluator(space):
    from conftest import FakeEvaluator

    class NpzScoring(SharedScoring, FakeEvaluator):
        model_file = "shared_x.npz"

        def __init__(self):
            FakeEvaluator.__init__(self, space)
            self._init_sharing(SharingConfig(mode="enas"))

        def _build_shared(self):
            return _NpzShared()

        def evaluate(self, spec, context):
            model = self.shared_model()
            result = FakeEvaluator.evaluate(self, spec, context)
            model.steps += 1
            self._record(spec, result.reward, 0.1, {})
            return result

        def rank(self):
            return []

    return NpzScoring()


def _cut(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("damage,fragment", [
    (_cut, "shared_x.npz is damaged"),
    (lambda p: p.write_bytes(b"garbage" * 20), "shared_x.npz is damaged"),
    (lambda p: p.unlink(), "shared_x.npz is missing"),
    (lambda p: (p.parent / "scores.jsonl").unlink(), "scores.jsonl is missing"),
    (lambda p: (p.parent / "scores.json").write_text("{not json"), "scores.json is damaged"),
    (lambda p: (p.parent / "scores.json").write_text("[1, 2]"), "scores.json is damaged"),
    (lambda p: (p.unlink(), (p.parent / "scores.jsonl").unlink(), os.rmdir(p.parent),
                p.parent.write_text("x")), "shared is (a file where|not a directory)"),
    (lambda p: (p.unlink(), p.mkdir()), "shared_x.npz is not a file"),
])
def test_damaged_shared_state_is_refused_before_any_child(tmp_path, toy_space, damage,
                                                          fragment):
    from nas_tf.config import SearchConfig
    from nas_tf.errors import RunDirError
    from nas_tf.loop import read_trials, run_search

    run = tmp_path / "run"
    config = SearchConfig(algorithm="random", max_children=6, children_per_update=2)
    run_search(toy_space, _npz_evaluator(toy_space), run_dir=str(run), config=config)
    before = [(t.id, t.status, t.reward) for t in read_trials(run)]
    damage(run / "shared" / "shared_x.npz")
    evaluator = _npz_evaluator(toy_space)
    with pytest.raises(RunDirError, match=fragment) as info:
        run_search(toy_space, evaluator, run_dir=str(run),
                   config=SearchConfig(algorithm="random", max_children=12,
                                       children_per_update=2))
    assert "\n" not in str(info.value)
    assert evaluator.calls == []  # no child was scored (none marked failed)
    assert [(t.id, t.status, t.reward) for t in read_trials(run)] == before


def test_a_garbage_line_in_the_scores_is_skipped_not_the_rest(tmp_path):
    lines = [json.dumps({"spec": {"n": i}, "score": float(i)}) for i in range(30)]
    lines.insert(12, "garbage{")
    (tmp_path / "scores.jsonl").write_text("\n".join(lines) + "\n")
    scores = read_scores(tmp_path)
    assert len(scores) == 30 and scores[json.dumps({"n": 29})] == 29.0
    assert len((tmp_path / "scores.jsonl").read_text().splitlines()) == 31  # nothing deleted
