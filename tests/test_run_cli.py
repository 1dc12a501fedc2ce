"""The command line (``python -m nas_tf.run``) on the NAS-Bench-201 space, in
subprocesses: a search and its resume, and bad input answered with one line
``error: ...`` (exit 2, no traceback) that leaves existing files alone."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest
from conftest import REPO, shared_data_dir, write_synthetic_nb201_table


def _cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "nas_tf.run", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=os.getcwd())
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _one_line_error(proc, words):
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert words in lines[0], lines[0]
    return lines[0]


def _snapshot(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _rows(run_dir):
    db = sqlite3.connect(f"file:{run_dir / 'trials.sqlite'}?mode=ro", uri=True)
    try:
        # attempts and finished change if a child is trained again.
        return db.execute(
            "SELECT id, status, spec, attempts, finished FROM trials ORDER BY id").fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """The real table when ../shared/data has it, else a synthetic full table
    (made-up accuracies: these tests check the CLI's mechanics, not results)."""
    real = shared_data_dir() / "nb201" / "cifar10.csv"
    if real.is_file():
        return real
    path = tmp_path_factory.mktemp("nb201") / "synthetic.csv"
    write_synthetic_nb201_table(path)
    return path


# ---------------------------------------------------------------------------
# A search, its resume, and a run dir of another config.
# ---------------------------------------------------------------------------
def test_search_resume_and_other_config(tmp_path, table, parse_flags):
    from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator
    from nas_tf.loop import run_search

    run = tmp_path / "run"
    common = ["--space=nb201", f"--nb201_table={table}", f"--run_dir={run}", "--seed=3",
              "--algorithm=random"]
    # The first search through the API, with the config these flags give (this
    # process has TensorFlow loaded already); the CLI then resumes it.
    config = parse_flags(*common)._search_config(6)
    first = run_search(Nb201Space(), Nb201TableEvaluator(str(table)), run_dir=str(run),
                       config=config)
    summary = json.loads((run / "summary.json").read_text())
    assert summary == json.loads(json.dumps(first))
    assert summary["children_trained"] == 6 and summary["status"] == "finished"
    assert (summary["space"], summary["algorithm"], summary["seed"]) == ("nb201", "random", 3)
    assert "budget reached" in summary["stop_reason"]
    rows = _rows(run)
    assert [r[0] for r in rows] == list(range(1, 7)) and {r[1] for r in rows} == {"done"}

    # The same command with a larger budget resumes: the count goes on, nothing is retrained.
    second = _cli(*common, "--max_children=9")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "children: 9 trained, 0 failed" in second.stdout  # results on stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["children_trained"] == 9
    after = _rows(run)
    assert after[:6] == rows and [r[0] for r in after] == list(range(1, 10))
    assert len({r[2] for r in after}) == 9
    assert summary["best_reward"] == max(_rewards(run))

    # Another config on that run dir: one line, exit 2, the run left as it was.
    before = _state(run)
    _one_line_error(_cli(*common[:-2], "--seed=4", "--algorithm=random", "--max_children=9"),
                    "differs in: seed")
    _one_line_error(_cli(*common[:-1], "--algorithm=evolution", "--max_children=9"),
                    "differs in: algorithm")
    assert _state(run) == before


# ---------------------------------------------------------------------------
# Flags -> SearchConfig, in-process (no search is run).
# ---------------------------------------------------------------------------
@pytest.fixture
def parse_flags():
    from absl import flags

    from nas_tf import run

    def parse(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["nas_tf.run", *args])
        return run

    yield parse
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("args, max_children, preset", [
    ([], 500, "small_budget"),  # auto: small budgets get the tuned preset
    ([], 2000, "small_budget"),
    ([], 2001, "paper"),
    (["--controller_preset=paper"], 10, "paper"),
    (["--controller_preset=small_budget"], 12_800, "small_budget"),
])
def test_presets_from_flags(parse_flags, args, max_children, preset):
    from nas_tf import config as cfgmod

    cfg = parse_flags("--seed=7", *args)._search_config(max_children)
    assert (cfg.algorithm, cfg.seed, cfg.max_children) == ("reinforce", 7, max_children)
    assert cfg.reinforce == cfgmod.reinforce_preset(preset)
    assert cfg.controller == cfgmod.controller_preset(preset)
    assert cfg.children_per_update == cfgmod.children_per_update_preset(preset)


@pytest.mark.parametrize("first, preset", [(10, "small_budget"), (2500, "paper")])
def test_auto_preset_is_kept_on_resume(tmp_path, parse_flags, first, preset):
    """Raising (or lowering) the budget across the auto threshold must not make a
    resumed run's controller settings differ from the ones it started with."""
    from cnn_space.nb201 import Nb201Space
    from nas_tf import config as cfgmod
    from nas_tf.loop import open_run_dir

    run_dir = str(tmp_path / "run")
    run = parse_flags(f"--run_dir={run_dir}")
    open_run_dir(run_dir, Nb201Space(), run._search_config(first)).close()
    resumed = run._search_config(12_800 if first < 2000 else 10)
    assert resumed.reinforce == cfgmod.reinforce_preset(preset)
    assert resumed.children_per_update == cfgmod.children_per_update_preset(preset)
    open_run_dir(run_dir, Nb201Space(), resumed).close()  # accepted as the same search


def test_advantage_flags(parse_flags):
    run = parse_flags("--normalize_advantage=false", "--reward_scale=0.01")
    cfg = run._search_config(100)
    assert (cfg.reinforce.normalize_advantage, cfg.reinforce.reward_scale) == (False, 0.01)
    cfg = parse_flags("--controller_preset=paper", "--normalize_advantage")._search_config(100)
    assert cfg.reinforce.normalize_advantage and cfg.reinforce.reward_scale == 1.0


@pytest.mark.parametrize("flag, words", [
    ("--child_timeout=inf", "--child_timeout must be a finite number"),
    ("--cpus_per_child=nan", "--cpus_per_child must be a finite number"),
    ("--max_in_flight=2", "--max_in_flight must be >= --children_per_update"),
])
def test_non_finite_float_flags_and_small_w_from_the_command_line(tmp_path, table, flag, words):
    run = tmp_path / "run"
    proc = _cli("--space=nb201", f"--nb201_table={table}", f"--run_dir={run}",
                "--children_per_update=8", "--max_children=20", flag)
    _one_line_error(proc, words)
    assert not run.exists()


def test_flags_override_the_preset(parse_flags):
    from nas_tf import config as cfgmod

    run = parse_flags("--algorithm=evolution", "--children_per_update=5", "--learning_rate=0.02",
                      "--entropy_weight=0", "--temperature=2", "--tanh_constant=1.5",
                      "--baseline_decay=0.5", "--max_grad_norm=1", "--max_proposals=77",
                      "--patience_rounds=9", "--population_size=6", "--tournament_size=2")
    cfg = run._search_config(100)
    base = cfgmod.reinforce_preset("small_budget")
    assert cfg.algorithm == "evolution" and cfg.children_per_update == 5
    assert (cfg.reinforce.learning_rate, cfg.reinforce.entropy_weight,
            cfg.reinforce.baseline_decay, cfg.reinforce.max_grad_norm) == (0.02, 0.0, 0.5, 1.0)
    assert cfg.reinforce.normalize_advantage == base.normalize_advantage
    assert (cfg.controller.temperature, cfg.controller.tanh_constant) == (2.0, 1.5)
    assert (cfg.max_proposals, cfg.patience_rounds) == (77, 9)
    assert (cfg.evolution.population_size, cfg.evolution.tournament_size) == (6, 2)


def _rewards(run_dir):
    db = sqlite3.connect(f"file:{run_dir / 'trials.sqlite'}?mode=ro", uri=True)
    try:
        return [r for (r,) in db.execute("SELECT reward FROM trials WHERE status='done'")]
    finally:
        db.close()


def _state(run_dir):
    """The run dir's files (SQLite's own -wal/-shm aside) and the database's content."""
    files = {k: v for k, v in _snapshot(run_dir).items()
             if not k.startswith("trials.sqlite")}
    db = sqlite3.connect(f"file:{run_dir / 'trials.sqlite'}?mode=ro", uri=True)
    try:
        return files, list(db.iterdump())
    finally:
        db.close()


# ---------------------------------------------------------------------------
# Bad input: one line, exit 2, no traceback, nothing written.
# ---------------------------------------------------------------------------
BAD_SETTINGS = [
    (["--max_children=0"], "max_children must be > 0. Received: max_children=0"),
    (["--max_children=-5"], "max_children must be > 0. Received: max_children=-5"),
    (["--children_per_update=0"], "children_per_update must be > 0"),
    (["--children_per_update=-2"], "children_per_update must be > 0"),
    (["--max_proposals=-1"], "max_proposals must be > 0"),
    (["--patience_rounds=0"], "patience_rounds must be > 0"),
    (["--seed=-1"], "seed must be in [0, 4294967295]"),
    (["--learning_rate=0"], "learning_rate must be > 0"),
    (["--baseline_decay=1.0"], "baseline_decay must be in [0, 1)"),
    (["--learning_rate=nan"], "learning_rate must be a finite number"),
    (["--reward_scale=inf"], "reward_scale must be a finite number"),
    (["--entropy_weight=-inf"], "entropy_weight must be a finite number"),
    (["--baseline_decay=nan"], "baseline_decay must be in [0, 1)"),
    (["--algorithm=evolution", "--population_size=3", "--tournament_size=5"],
     "tournament_size must be <= population_size"),
]


@pytest.mark.parametrize("flags, words", BAD_SETTINGS)
def test_bad_settings_are_config_errors(parse_flags, flags, words):
    from nas_tf.errors import ConfigError

    run = parse_flags("--space=nb201", *flags)
    n = run.MAX_CHILDREN.value
    with pytest.raises(ConfigError, match=re.escape(words)):
        run._search_config(500 if n is None else n)


@pytest.mark.parametrize("flags, words", [BAD_SETTINGS[i] for i in (0, 2, -1)])
def test_bad_settings_from_the_command_line(tmp_path, flags, words):
    """Settings are checked before anything else (here the table does not even
    exist), so a bad flag costs nothing and writes nothing."""
    run = tmp_path / "run"
    proc = _cli("--space=nb201", f"--nb201_table={tmp_path / 'absent.csv'}", f"--run_dir={run}",
                *flags)
    _one_line_error(proc, words)
    assert not run.exists()


@pytest.mark.parametrize("table_text, words", [
    (None, "NAS-Bench-201 table not found"),
    ("", "wrong columns"),
    ("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n", "wrong columns"),
    ("arch,test_accuracy\n|none~0|+|none~0|,1\n", "bad architecture string"),
    ("arch,test_accuracy\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,high\n",
     "test_accuracy is not a number"),
    ("arch,test_accuracy\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n",
     "the NAS-Bench-201 space has 15625"),  # one row: it does not cover the space
    ("arch,test_accuracy\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n"
     "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,2\n", "listed twice"),
])
def test_missing_or_malformed_table(tmp_path, table_text, words):
    path = tmp_path / "table.csv"
    if table_text is not None:
        path.write_text(table_text)
    run = tmp_path / "run"
    line = _one_line_error(
        _cli("--space=nb201", f"--nb201_table={path}", f"--run_dir={run}"), words)
    assert str(path) in line  # names the file (and the line, or the fix)
    assert not run.exists()


def test_no_table_and_extra_arguments(tmp_path, table):
    _one_line_error(_cli("--space=nb201", f"--run_dir={tmp_path / 'run'}"),
                    "needs the table: pass --nb201_table=CSV")
    _one_line_error(_cli("--space=nb201", f"--nb201_table={table}", "--run_dir=x", "extra"),
                    "unexpected arguments ['extra']")
    assert not (tmp_path / "run").exists() and not (REPO / "x").exists()


def test_non_run_directory_is_refused_and_kept(tmp_path, table):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    before = _snapshot(d)
    _one_line_error(_cli("--space=nb201", f"--nb201_table={table}", f"--run_dir={d}"),
                    "not empty and holds no nas_tf search")
    assert _snapshot(d) == before


@pytest.mark.parametrize("flag, words", [
    ("--algorithm=bayes", "value should be one of"),
    ("--max_children=abc", "abc"),
    ("--no_such_flag=1", "no_such_flag"),
])
def test_flag_parsing_errors_are_one_error_line(tmp_path, table, flag, words):
    run = tmp_path / "run"
    proc = _cli("--space=nb201", f"--nb201_table={table}", f"--run_dir={run}", flag)
    line = _one_line_error(proc, words)  # not absl's "FATAL Flags parsing error", exit 1
    assert "FATAL" not in line
    assert not run.exists()


def test_unknown_space_names_the_registered_ones(tmp_path, table):
    run = tmp_path / "run"
    proc = _cli(f"--nb201_table={table}", f"--run_dir={run}", "--space=imagenet")
    _one_line_error(proc, "Unknown search space; use one of cnn, nb201, rnn")
    assert "Received: space='imagenet'" in proc.stderr
    assert not run.exists()


@pytest.mark.parametrize("flag, words", [
    ("--seed=99999999999999999999", "seed must be in [0, 4294967295]"),
    ("--max_children=99999999999999999999999", "max_children must be <= 1000000000000"),
    ("--checkpoint_every_s=-1", "--checkpoint_every_s must be >= 0"),
    ("--max_retries=-1", "--max_retries must be an integer >= 0"),
    ("--run_dir=", "--run_dir is empty"),
])
def test_values_absl_accepts_are_refused(parse_flags, flag, words):
    """Checked in ``_run`` before the space, the executor or the run directory."""
    from nas_tf.errors import ConfigError

    run = parse_flags("--space=nb201", flag)
    with pytest.raises(ConfigError, match=re.escape(words)):
        run._check_spine_flags()
        run._search_config(run.MAX_CHILDREN.value or 5)


@pytest.mark.parametrize("address", ["ray://256.1.1.1:1", "ray://host:99999", "ray://:1",
                                     "ray://bad_host!:10001"])
def test_a_malformed_ray_address_is_refused_before_ray_starts(address):
    from nas_tf.errors import ConfigError
    from nas_tf.executors.ray_executor import check_ray_address

    with pytest.raises(ConfigError, match="--ray_address must be"):
        check_ray_address(address)
    for good in (None, "auto", "local", "ray://10.0.0.1:10001", "head-node.lan:6379",
                 "ray://[::1]:10001"):
        check_ray_address(good)


def test_a_bad_ray_address_writes_nothing_and_prints_one_line(tmp_path, table):
    run = tmp_path / "run"
    proc = _cli("--space=nb201", f"--nb201_table={table}", f"--run_dir={run}",
                "--max_children=5", "--executor=ray", "--ray_address=ray://256.1.1.1:1")
    _one_line_error(proc, "--ray_address must be")
    assert not run.exists()


def test_a_run_dir_that_is_not_utf8_is_one_error_line(tmp_path, table):
    run = os.fsdecode(bytes(tmp_path) + b"/run\xff")
    proc = _cli("--space=nb201", f"--nb201_table={table}", f"--run_dir={run}",
                "--max_children=5")
    _one_line_error(proc, "--run_dir is not UTF-8 text")
    assert os.listdir(tmp_path) == []
    from nas_tf.errors import RunDirError
    from nas_tf.rundir import open_store

    with pytest.raises(RunDirError, match="not UTF-8"):
        open_store(run)  # report and export
