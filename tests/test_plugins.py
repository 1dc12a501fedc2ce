"""Space plug-ins: the registry, the spine naming no space, and a user-defined
space installed outside the repository, run from the CLI and the API."""

from __future__ import annotations

import ast
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import nas_tf
from nas_tf import plugins
from nas_tf.errors import ConfigError, RunDirError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "experiments" / "custom_space" / "mlp_space.py"


def test_the_three_spaces_are_registered_through_entry_points():
    assert {"nb201", "rnn", "cnn"} <= set(plugins.names())
    for name in ("nb201", "rnn", "cnn"):
        assert plugins.get(name).name == name
    with pytest.raises(ConfigError, match="Unknown search space; use one of .*nb201"):
        plugins.get("transformer")
    with pytest.raises(RunDirError, match="no installed plug-in"):
        plugins.space_from_config({"name": "transformer"})


def test_the_spine_imports_no_space_package():
    """nas_tf finds spaces only through the registry: no import of cells / cnn_space."""
    offenders = []
    for path in sorted((REPO / "nas_tf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in ("cells", "cnn_space")]
    assert offenders == []


def test_register_in_process_and_use_through_the_api(tmp_path):
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import mlp_space
    finally:
        sys.path.remove(str(EXAMPLE.parent))

    class Other(mlp_space.MlpPlugin):
        name = "mlp_inprocess"

    plugins.register(Other)
    try:
        space, evaluator = nas_tf.make_space("mlp_inprocess", epochs=1)
        assert isinstance(space, mlp_space.MlpSpace) and evaluator.config.epochs == 1
        with pytest.raises(ConfigError, match="Unknown mlp setting"):
            nas_tf.make_space("mlp_inprocess", units=3)
    finally:
        plugins.unregister("mlp_inprocess")
    with pytest.raises(ConfigError, match="Unknown search space"):
        plugins.get("mlp_inprocess")


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example space installed as a separate distribution in a temporary
    folder: its module and a dist-info with the ``nas_tf.spaces`` entry point."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(EXAMPLE, site / "mlp_space.py")
    info = site / "mlp_space-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlp-space\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nas_tf.spaces]\nmlp = mlp_space:PLUGIN\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH")
                                  else []))
    return env


def _rows(run_dir):
    con = sqlite3.connect(Path(run_dir) / "trials.sqlite")
    try:
        return con.execute("SELECT id, hash, status, attempts FROM trials ORDER BY id").fetchall()
    finally:
        con.close()


def test_user_space_from_the_cli_with_resume(installed_example, tmp_path):
    run = tmp_path / "cli_run"
    cmd = [sys.executable, "-m", "nas_tf.run", "--space=mlp", "--mlp_epochs=1",
           f"--run_dir={run}", "--algorithm=random", "--seed=0"]
    first = subprocess.run(cmd + ["--max_children=3"], env=installed_example, cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _rows(run)
    assert [r[2] for r in rows] == ["done"] * 3
    second = subprocess.run(cmd + ["--max_children=5"], env=installed_example, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    after = _rows(run)
    assert after[:3] == rows  # kept, not trained again (attempts unchanged)
    assert len(after) == 5 and {r[2] for r in after} == {"done"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["space"] == "mlp" and summary["children_trained"] == 5
    # Its flags are listed by --helpfull like the project's own.
    helped = subprocess.run([sys.executable, "-m", "nas_tf.run", "--helpfull"],
                            env=installed_example, capture_output=True, text=True, timeout=300)
    assert "--mlp_epochs" in helped.stdout + helped.stderr


_API = """
import json, sys, nas_tf
run = sys.argv[1]
s = nas_tf.Search("mlp", run_dir=run, algorithm="reinforce", max_children=int(sys.argv[2]),
                  seed=1, epochs=1)
summary = s.search()
best = nas_tf.open_run(run).best(1)[0]
print(json.dumps({"trained": summary["children_trained"], "best": best.spec_json,
                  "reward": best.reward}))
"""


def test_user_space_from_the_api_with_resume(installed_example, tmp_path):
    run = tmp_path / "api_run"
    outs = []
    for budget in (3, 4):
        proc = subprocess.run([sys.executable, "-c", _API, str(run), str(budget)],
                              env=installed_example, cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert [o["trained"] for o in outs] == [3, 4]
    assert set(outs[1]["best"]) == {"depth", "width", "activation"}
    assert 0.0 <= outs[1]["reward"] <= 1.0
    rows = _rows(run)
    assert len(rows) == 4 and all(r[3] == 1 for r in rows)  # resumed: none trained twice
