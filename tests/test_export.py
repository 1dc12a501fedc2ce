"""Export of a found child: rebuild, retrain, save, reload in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nas_tf
from cnn_space.nb201 import Nb201Space
from nas_tf.config import SearchConfig
from nas_tf.errors import ConfigError, InvalidArchitectureError, RunDirError
from nas_tf.evaluator import EvalResult, Evaluator
from nas_tf.export import (
    CELL_FILE,
    CELL_SPEC_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SPEC_FILE,
    evaluator_record,
    export_child,
    get_exporter,
    main,
    space_from_config,
)

REPO = Path(__file__).resolve().parents[1]

RNN_SETTINGS = {"cell_base": 2, "dataset": "synthetic", "units": 8, "bptt": 8, "batch_size": 4,
                "eval_batch_size": 4, "steps_per_epoch": 3, "valid_tokens": 400}
TINY_RETRAIN = {"steps_per_epoch": 4}


@pytest.fixture(scope="module")
def rnn_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("rnn_run")
    search = nas_tf.Search("rnn", run_dir=str(d), algorithm="random", max_children=2, seed=1,
                           **RNN_SETTINGS)
    summary = search.search()
    assert summary["children_done"] >= 1
    return d


def _write_image_folder(root: Path, size=8, per_class=12, test_per_class=3):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 90, (size, size, 3)) + 120 * c
                png = tf.io.encode_png(img.astype(np.uint8)).numpy()
                (folder / f"{i:03d}.png").write_bytes(png)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("images")
    _write_image_folder(data)
    d = tmp_path_factory.mktemp("cnn_run")
    search = nas_tf.Search("cnn", run_dir=str(d), algorithm="random", max_children=2, seed=0,
                           dataset="imagefolder", data_dir=str(data), num_layers=2, epochs=1,
                           batch_size=8, eval_batch_size=16, augment=False)
    summary = search.search()
    assert summary["children_done"] >= 1
    return d


class _ConvCount(Evaluator):
    def evaluate(self, spec, context):
        return EvalResult(reward=sum(op.startswith("nor_conv") for op in spec.ops) / 6,
                          metrics={"test_accuracy": 1.0})


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory):
    from nas_tf.loop import run_search

    d = tmp_path_factory.mktemp("nb201_run")
    run_search(Nb201Space(), _ConvCount(), run_dir=str(d),
               config=SearchConfig(algorithm="random", max_children=5, children_per_update=5))
    return d


_RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    jobs = json.loads(sys.argv[1])
    import keras
    import nas_tf
    nas_tf.register_layers()  # the custom layers, for keras.saving.load_model
    import cells
    for job in jobs:
        x = np.load(job["x"])
        a = keras.saving.load_model(job["model"])
        b = nas_tf.load_model(job["model"])
        pa = np.asarray(a(x, training=False))
        pb = np.asarray(b(x, training=False))
        np.testing.assert_allclose(pa, np.load(job["y"]), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(pa, pb)
        if "cell" in job:
            c = json.load(open(job["cell_json"]))
            layer = keras.layers.RNN(cells.TreeCell.from_spec(c["spec"], c["units"]))
            h = np.asarray(layer(np.ones((2, 3, c["input_dim"]), "float32")))
            assert h.shape == (2, c["units"]), h.shape
            trained = keras.saving.load_model(job["cell"])
            assert trained.get_layer("rnn").cell.spec.to_json() == c["spec"]
        print("ok", job["model"])
""")


def test_export_retrain_reload_in_fresh_process(rnn_run, cnn_run, tmp_path):
    jobs = []
    # rnn: the language model and the cell alone.
    out = tmp_path / "rnn"
    res = export_child(rnn_run, out, rank=1, retrain_epochs=1, child_config=TINY_RETRAIN,
                       test_limit=200)
    assert set(res["files"]) == {MODEL_FILE, CELL_FILE, CELL_SPEC_FILE, SPEC_FILE, METRICS_FILE,
                                 "README.md"}
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["retrained"] and metrics["retrain_epochs"] == 1
    assert res["message"].startswith("retrained 1 epoch and")  # not "1 epochs"
    readme = (out / "README.md").read_text()
    assert "retrained from scratch for 1 epoch;" in readme and "retrained weights" in readme
    test = metrics["test"]
    assert np.isfinite(test["test_perplexity"]) and 1 < test["test_perplexity"] < 1000
    assert test["test_tokens"] == 200 and test["steps"] == 4
    spec = json.loads((out / SPEC_FILE).read_text())
    best = nas_tf.open_run(str(rnn_run)).best(1)[0]
    assert spec["spec"] == best.spec_json and spec["origin"]["child_id"] == best.child_id
    assert spec["child_config"]["units"] == RNN_SETTINGS["units"]  # the run's settings
    x = np.array([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], np.int32)
    np.save(tmp_path / "rnn_x.npy", x)
    np.save(tmp_path / "rnn_y.npy", np.asarray(res["keras_model"](x, training=False)))
    jobs.append({"model": str(out / MODEL_FILE), "x": str(tmp_path / "rnn_x.npy"),
                 "y": str(tmp_path / "rnn_y.npy"), "cell": str(out / CELL_FILE),
                 "cell_json": str(out / CELL_SPEC_FILE)})
    # cnn: raw images in, probabilities out.
    out = tmp_path / "cnn"
    res = export_child(cnn_run, out, rank=1, retrain_epochs=1)
    test = json.loads((out / METRICS_FILE).read_text())["test"]
    assert test["test_images"] == 6 and test["train_images"] == 24
    assert 0.0 <= test["test_accuracy"] <= 1.0
    x = np.random.default_rng(1).integers(0, 255, (3, 8, 8, 3)).astype(np.float32)
    y = np.asarray(res["keras_model"](x, training=False))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    np.save(tmp_path / "cnn_x.npy", x)
    np.save(tmp_path / "cnn_y.npy", y)
    jobs.append({"model": str(out / MODEL_FILE), "x": str(tmp_path / "cnn_x.npy"),
                 "y": str(tmp_path / "cnn_y.npy")})

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _RELOAD, json.dumps(jobs)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ok ") == 2


def test_export_without_retraining_is_untrained(rnn_run, tmp_path):
    res = export_child(rnn_run, tmp_path / "e", rank=1)
    metrics = json.loads((tmp_path / "e" / METRICS_FILE).read_text())
    assert metrics["retrained"] is False and metrics["test"] is None
    assert "untrained" in res["message"]
    readme = (tmp_path / "e" / "README.md").read_text()
    assert "fresh, untrained weights" in readme and "trained weights" not in readme.replace(
        "untrained weights", "")
    assert res["keras_model"].output.shape[-1] > 2  # logits over the vocabulary
    # Exporting again into the same directory replaces the previous export.
    ranked = nas_tf.open_run(str(rnn_run)).best(2)
    export_child(rnn_run, tmp_path / "e", rank=len(ranked))
    written = json.loads((tmp_path / "e" / SPEC_FILE).read_text())
    assert written["origin"]["child_id"] == ranked[-1].child_id
    assert written["spec"] == ranked[-1].spec_json


def test_export_a_spec_file(rnn_run, tmp_path):
    first = export_child(rnn_run, tmp_path / "a", rank=1)
    res = export_child(rnn_run, tmp_path / "b", spec=str(tmp_path / "a" / SPEC_FILE))
    assert res["spec"] == first["spec"]
    bare = json.dumps(first["spec"])
    assert export_child(rnn_run, tmp_path / "c", spec=bare)["spec"] == first["spec"]


def test_nb201_export_writes_spec_and_says_no_model(nb201_run, tmp_path, capsys):
    res = export_child(nb201_run, tmp_path / "n", rank=1)
    assert res["keras_model"] is None and not (tmp_path / "n" / MODEL_FILE).exists()
    assert "no model builder" in res["message"]
    spec = json.loads((tmp_path / "n" / SPEC_FILE).read_text())
    assert spec["space"] == {"name": "nb201"} and len(spec["spec"]["ops"]) == 6
    assert json.loads((tmp_path / "n" / METRICS_FILE).read_text())["search"]["test_accuracy"] == 1
    with pytest.raises(ConfigError, match="nb201 has no model builder"):
        export_child(nb201_run, tmp_path / "m", rank=1, retrain_epochs=2)
    with pytest.raises(ConfigError, match="no model builder") as err:  # nothing is written
        nas_tf.open_run(str(nb201_run)).build_model(res["spec"])
    assert "written" not in str(err.value)
    assert main(["export", f"--run_dir={nb201_run}", f"--out={tmp_path / 'o'}"]) == 0
    assert "no model builder" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, error, match", [
    ({"rank": 99}, ConfigError, r"--rank=99 is beyond the 5 finished"),
    ({"rank": 0}, ConfigError, r"--rank must be an integer >= 1"),
    ({"spec": '{"base": 2, "combinations": ["add"]}'}, InvalidArchitectureError,
     "not a valid spec of space 'nb201'"),
    ({"spec": '{"ops": ["none", "none", "none", "none", "none", "conv_9x9"]}'},
     InvalidArchitectureError, "Unknown NAS-Bench-201 op"),
    ({"spec": '{"space": {"name": "rnn"}, "spec": {}}'}, InvalidArchitectureError,
     "spec of space 'rnn' but the run searched space 'nb201'"),
    ({"spec": "{not json"}, InvalidArchitectureError, "not valid JSON"),
    ({"spec": "missing.json"}, InvalidArchitectureError, "no such file"),
    ({"retrain_epochs": -1}, ConfigError, "retrain_epochs must be >= 0"),
])
def test_bad_input_is_one_error(nb201_run, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        export_child(nb201_run, tmp_path / "x", **kwargs)


def test_bad_run_dir_and_out(nb201_run, tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        export_child(tmp_path / "nope", tmp_path / "x")
    with pytest.raises(RunDirError, match="not a nas_tf run"):
        export_child(tmp_path, tmp_path / "x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "data.csv").write_text("x")
    with pytest.raises(ConfigError, match="holds other files"):
        export_child(nb201_run, tmp_path / "busy")


def test_rnn_spec_from_hand_edited_nonsense(rnn_run, tmp_path):
    bad = {"base": 2, "combinations": ["add", "add", "add"], "activations": ["tanh"] * 3,
           "inject_combination": "add", "inject_activation": "tanh", "inject_node": 7,
           "cell_node": 0}
    with pytest.raises(InvalidArchitectureError, match="inject_node must be a node"):
        export_child(rnn_run, tmp_path / "x", spec=json.dumps(bad))
    with pytest.raises(ConfigError, match=r"Unknown rnn child setting\(s\) \['unitz'\]"):
        export_child(rnn_run, tmp_path / "x", child_config={"unitz": 3})


def test_cli_errors_are_one_line(nb201_run, tmp_path, capsys):
    argv = ["export", f"--run_dir={nb201_run}", f"--out={tmp_path / 'x'}"]
    for extra, match in ((["--rank=50"], "beyond"), (["--child_config=[1]"], "JSON object"),
                         (["--spec={"], "not valid JSON")):
        assert main(argv + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert main(["export", f"--run_dir={nb201_run}"]) == 2
    assert "--out is required" in capsys.readouterr().err


def test_registry_and_records():
    assert get_exporter("cnn").space_name == "cnn"
    with pytest.raises(ConfigError, match="Unknown search space"):
        get_exporter("x")
    assert space_from_config({"name": "rnn", "base": 2}).config() == {"name": "rnn", "base": 2}
    with pytest.raises(RunDirError, match="no installed plug-in provides"):
        space_from_config({"name": "transformer"})
    from cells.search import RnnEvaluator, RnnSearchConfig

    rec = evaluator_record(RnnEvaluator(RnnSearchConfig(units=5)))
    assert rec["type"] == "cells.search.RnnEvaluator" and rec["config"]["units"] == 5
    assert evaluator_record(_ConvCount()) is None


# A process that refuses to import this project: the exported CNN must load anyway.
_PLAIN_LOAD = textwrap.dedent("""
    import json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("nas_tf", "cells", "cnn_space"):
                raise ImportError("this process must not import " + name)
    sys.meta_path.insert(0, Block())
    import numpy as np, keras, tensorflow as tf
    job = json.loads(sys.argv[1])
    x, y = np.load(job["x"]), np.load(job["y"])
    model = keras.saving.load_model(job["model"])
    np.testing.assert_allclose(np.asarray(model(x, training=False)), y, atol=1e-5)
    served = tf.saved_model.load(job["saved_model"])
    np.testing.assert_allclose(np.asarray(served.serve(tf.constant(x))), y, atol=1e-5)
    assert not [m for m in sys.modules if m.split(".")[0] in ("nas_tf", "cells", "cnn_space")]
    print("ok plain keras and SavedModel")
""")


def test_exported_cnn_loads_without_the_project(cnn_run, tmp_path):
    out = tmp_path / "cnn"
    res = export_child(cnn_run, out, rank=1)
    assert "saved_model" in res["files"] and (out / "saved_model").is_dir()
    x = np.random.default_rng(2).integers(0, 255, (3, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.asarray(res["keras_model"](x, training=False)))
    job = {"model": str(out / MODEL_FILE), "saved_model": str(out / "saved_model"),
           "x": str(tmp_path / "x.npy"), "y": str(tmp_path / "y.npy")}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", _PLAIN_LOAD, json.dumps(job)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok plain keras and SavedModel" in proc.stdout
    # A second export into the same directory replaces the SavedModel too.
    export_child(cnn_run, out, rank=1)
    assert (out / "saved_model").is_dir()


def test_a_done_child_without_reward_is_refused_not_skipped(nb201_run, tmp_path):
    """A NULL reward on the best child (a damaged store) is reported, as report and
    run report it, instead of exporting the next child as rank 1."""
    import shutil
    import sqlite3

    run = tmp_path / "run"
    shutil.copytree(nb201_run, run)
    db = sqlite3.connect(run / "trials.sqlite")
    best = db.execute("SELECT id FROM trials ORDER BY reward DESC LIMIT 1").fetchone()[0]
    db.execute("UPDATE trials SET reward=NULL WHERE id=?", (best,))
    db.commit()
    db.close()
    with pytest.raises(RunDirError, match=f"child {best} is done but has no reward"):
        export_child(run, tmp_path / "x", rank=1)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("where, words", [
    ("under_a_file", "a part of that path is a file"),
    ("proc", "--out:"),
])
def test_an_out_that_cannot_be_written_is_one_error(nb201_run, tmp_path, capsys, where, words):
    out = {"under_a_file": tmp_path / "f" / "x", "proc": Path("/proc/nas_tf_export")}[where]
    (tmp_path / "f").write_text("")
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    assert main(["export", f"--run_dir={nb201_run}", f"--out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out") and words in err[0], err


def test_an_out_that_is_not_writable_is_one_error(nb201_run, tmp_path, monkeypatch):
    """(Simulated: the tests may run as root, whom chmod does not stop.)"""
    import builtins

    real_open = builtins.open

    def denied(path, *args, **kwargs):
        if ".nas_tf_probe_" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(ConfigError, match="read-only or not yours"):
        export_child(nb201_run, tmp_path / "o", rank=1)


def test_a_spec_nested_thousands_deep_is_one_error(nb201_run, tmp_path):
    deep = '{"ops": ' + "[" * 30000 + "]" * 30000 + "}"
    (tmp_path / "deep.json").write_text(deep)
    for spec in (deep, str(tmp_path / "deep.json")):
        with pytest.raises(InvalidArchitectureError, match="nested too deeply"):
            export_child(nb201_run, tmp_path / "x", spec=spec)
