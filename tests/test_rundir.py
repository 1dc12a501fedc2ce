"""The run directory (nas_tf.rundir): one owner at a time, a complete
identity, a store that never lies, data checked first, damage answered with
one line. Kills and second searches run in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import REPO, TESTS_DIR, FakeEvaluator, ToySpace, write_synthetic_nb201_table

from nas_tf.config import SearchConfig
from nas_tf.errors import DataError, RunDirError
from nas_tf.evaluator import EvalResult, Evaluator
from nas_tf.loop import run_search
from nas_tf.rundir import (
    LOCK_FILE,
    STORE_FILE,
    SUMMARY_FILE,
    RunLock,
    describe_os_error,
    open_run_dir,
    open_store,
    read_trials,
)
from nas_tf.store import TrialStore

SPACE = ToySpace(num_layers=2, num_values=3)


def _cfg(**kw):
    return SearchConfig(**{"algorithm": "random", "max_children": 6, "children_per_update": 2,
                           **kw})


def _run(run_dir, evaluator=None, **kw):
    return run_search(SPACE, evaluator or FakeEvaluator(SPACE), run_dir=str(run_dir),
                      config=_cfg(**kw), child_logs=False)


def _nb201_run(run_dir, table, **kw):
    from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator

    return run_search(Nb201Space(), Nb201TableEvaluator(str(table)), run_dir=str(run_dir),
                      config=_cfg(**kw), child_logs=False)


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": f"{REPO}{os.pathsep}{TESTS_DIR}"}


def _cli(*args, module="nas_tf.run", timeout=300):
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=os.getcwd())
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _one_error(proc, words):
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert words in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb201") / "table.csv"
    write_synthetic_nb201_table(path)
    return path


# ---------------------------------------------------------------------------
# The lock.
# ---------------------------------------------------------------------------


def test_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    first = RunLock(tmp_path)
    first.write_note()
    with pytest.raises(RunDirError, match=f"in use by another search \\(pid {os.getpid()} on"):
        RunLock(tmp_path)
    first.close()
    RunLock(tmp_path).close()  # free again


def test_deleting_run_lock_by_hand_does_not_let_a_second_search_in(tmp_path):
    first = RunLock(tmp_path)
    first.write_note()
    (tmp_path / LOCK_FILE).unlink()
    with pytest.raises(RunDirError, match="in use by another search"):
        RunLock(tmp_path)  # the directory itself is locked
    first.close()
    RunLock(tmp_path).close()


def test_second_search_on_a_held_run_dir_stops_at_once(tmp_path, table):
    """Another process holds the directory: the CLI stops with one line naming it
    and trains nothing."""
    from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator

    run = tmp_path / "run"
    ev = Nb201TableEvaluator(str(table))
    store = open_run_dir(run, Nb201Space(), _cfg(max_children=20), ev)
    try:
        proc = _cli("--space=nb201", f"--nb201_table={table}", f"--run_dir={run}",
                    "--algorithm=random", "--max_children=20", "--children_per_update=2")
        _one_error(proc, f"pid {os.getpid()}")
        assert store.row_stats() == (0, 0)  # nothing trained by the second
    finally:
        store.close()


def test_lock_of_a_sigkilled_process_does_not_block(tmp_path):
    code = ("import sys, time; from nas_tf.rundir import RunLock; "
            "l = RunLock(sys.argv[1]); l.write_note(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=_env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"pid {proc.pid}"):
            RunLock(tmp_path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / LOCK_FILE).exists()  # the stale file is left...
    RunLock(tmp_path).close()  # ...and does not block


def test_readers_do_not_need_the_lock(tmp_path, table):
    from nas_tf.api import open_run
    from nas_tf.export import export_child
    from nas_tf.report import make_report

    _nb201_run(tmp_path / "run", table)
    held = RunLock(tmp_path / "run")
    try:
        assert make_report(tmp_path / "run").counts["done"] == 6
        assert export_child(tmp_path / "run", tmp_path / "out", rank=1)["spec"] is not None
        assert len(open_run(str(tmp_path / "run")).trials()) == 6
    finally:
        held.close()


# ---------------------------------------------------------------------------
# Store, checkpoint and summary agree.
# ---------------------------------------------------------------------------


def test_truncated_store_is_refused_and_nothing_changes(tmp_path):
    run = tmp_path / "run"
    _run(run)
    summary = (run / SUMMARY_FILE).read_bytes()
    (run / STORE_FILE).write_bytes(b"")
    with pytest.raises(RunDirError, match="is empty \\(0 bytes\\).*lost or truncated"):
        _run(run, max_children=8)
    assert (run / STORE_FILE).stat().st_size == 0 and (run / SUMMARY_FILE).read_bytes() == summary


def test_store_with_rows_missing_is_refused(tmp_path):
    run = tmp_path / "run"
    _run(run)
    db = sqlite3.connect(run / STORE_FILE)
    db.execute("DELETE FROM trials WHERE id > 2")
    db.commit()
    db.close()
    summary = json.loads((run / SUMMARY_FILE).read_text())
    with pytest.raises(RunDirError, match="is behind its run.*missing.*-wal"):
        _run(run, max_children=8)
    assert json.loads((run / SUMMARY_FILE).read_text()) == summary  # not overwritten


def test_main_file_alone_is_complete_after_every_update(tmp_path):
    """After each controller update the WAL is copied into trials.sqlite, so a
    copy of the main file without its -wal holds every child the summary counts."""
    seen = []

    class Watch(FakeEvaluator):
        def evaluate(self, spec, context):
            run = tmp_path / "run"
            if (run / SUMMARY_FILE).is_file():
                copy = tmp_path / f"copy{len(seen)}.sqlite"
                shutil.copyfile(run / STORE_FILE, copy)  # no -wal
                db = sqlite3.connect(f"file:{copy}?immutable=1", uri=True)
                n = db.execute("SELECT count(*) FROM trials WHERE status IN ('done','failed')"
                               ).fetchone()[0]
                db.close()
                trained = json.loads((run / SUMMARY_FILE).read_text())["children_trained"]
                seen.append((n, trained))
            return super().evaluate(spec, context)

    _run(tmp_path / "run", Watch(SPACE), max_children=8)
    assert len(seen) >= 6 and all(n >= trained for n, trained in seen), seen
    assert any(trained > 0 for _, trained in seen)


def test_summary_is_never_overwritten_with_a_poorer_one(tmp_path):
    from nas_tf.rundir import SummaryWriter

    w = SummaryWriter(tmp_path)
    w.write({"children_trained": 5, "best_reward": 0.9})
    with pytest.raises(RunDirError, match="poorer"):
        SummaryWriter(tmp_path).write({"children_trained": 2, "best_reward": None})
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["children_trained"] == 5


# ---------------------------------------------------------------------------
# Identity.
# ---------------------------------------------------------------------------


def test_identity_covers_the_table_contents(tmp_path, table):
    from cnn_space.nb201 import Nb201Space, Nb201TableEvaluator

    mine = tmp_path / "t.csv"
    shutil.copyfile(table, mine)
    run = tmp_path / "run"
    open_run_dir(run, Nb201Space(), _cfg(), Nb201TableEvaluator(str(mine))).close()
    with open(mine, "a") as f:
        f.write("\n")  # another file at the same path
    with pytest.raises(RunDirError, match=r"nb201_table.sha256 \(run: \"[0-9a-f]+\", now: "):
        open_run_dir(run, Nb201Space(), _cfg(), Nb201TableEvaluator(str(mine)))
    # Budgets may change.
    shutil.copyfile(table, mine)
    open_run_dir(run, Nb201Space(), _cfg(max_children=99), Nb201TableEvaluator(str(mine))).close()


def test_identity_covers_child_settings_and_data_dir(tmp_path):
    from cells.search import RnnSearchConfig, make_evaluator, make_space

    data = tmp_path / "ptb"
    data.mkdir()
    for s in ("train", "valid", "test"):
        (data / f"ptb.{s}.txt").write_text("a b c\n")
    run = tmp_path / "run"
    base = RnnSearchConfig(dataset="ptb", data_dir=str(data), units=8, cell_base=2)
    open_run_dir(run, make_space(base), _cfg(), make_evaluator(base)).close()
    other = RnnSearchConfig(dataset="ptb", data_dir=str(data), units=16, cell_base=2)
    with pytest.raises(RunDirError, match=r"child.units \(run: 8, now: 16\)"):
        open_run_dir(run, make_space(other), _cfg(), make_evaluator(other))
    (data / "ptb.train.txt").write_text("a b c d\n")
    with pytest.raises(RunDirError, match=r"inputs.data_dir.sha256"):
        open_run_dir(run, make_space(base), _cfg(), make_evaluator(base))


def test_identity_covers_the_devices_of_a_child(tmp_path):
    """A child's batch is split over its devices: another device count is another search."""
    from cells.search import RnnSearchConfig, make_evaluator, make_space

    data = tmp_path / "ptb"
    data.mkdir()
    for s in ("train", "valid", "test"):
        (data / f"ptb.{s}.txt").write_text("a b c\n")
    run = tmp_path / "run"
    cfg = RnnSearchConfig(dataset="ptb", data_dir=str(data), units=8, cell_base=2)
    space, ev = make_space(cfg), make_evaluator(cfg)
    open_run_dir(run, space, _cfg(), ev, devices_per_child=1).close()
    with pytest.raises(RunDirError, match=r"devices.per_child \(run: 1, now: 2\)"):
        open_run_dir(run, space, _cfg(), ev, devices_per_child=2)
    open_run_dir(run, space, _cfg(), ev, devices_per_child=1).close()
    # A run made before the device count was recorded resumes, and records it.
    db = sqlite3.connect(run / STORE_FILE)
    db.execute("DELETE FROM meta WHERE key = 'devices'")
    db.commit()
    db.close()
    open_run_dir(run, space, _cfg(), ev, devices_per_child=2).close()
    with pytest.raises(RunDirError, match=r"devices.per_child \(run: 2, now: 1\)"):
        open_run_dir(run, space, _cfg(), ev, devices_per_child=1)


def test_executors_tell_their_devices_per_child():
    from nas_tf.executors import InlineExecutor, LocalExecutor

    assert InlineExecutor().devices_per_child == 1
    assert LocalExecutor(num_workers=1, gpus_per_child=0).devices_per_child == 1


def test_run_dir_of_the_previous_format_is_accepted_and_recorded(tmp_path):
    run = tmp_path / "run"
    _run(run)
    db = sqlite3.connect(run / STORE_FILE)
    db.execute("DELETE FROM meta WHERE key IN ('child', 'inputs')")
    db.commit()
    db.close()
    _run(run, max_children=8)  # unknown identity parts: accepted
    with TrialStore(str(run / STORE_FILE), readonly=True) as s:
        assert s.get_meta("inputs") == {}


def _empty_meta(run):
    db = sqlite3.connect(run / STORE_FILE)
    db.execute("DELETE FROM meta")
    db.commit()
    db.close()


def test_an_emptied_meta_table_is_checked_against_the_summary_and_restored(tmp_path):
    run = tmp_path / "run"
    _run(run)
    with TrialStore(str(run / STORE_FILE), readonly=True) as s:
        identity = {k: s.get_meta(k) for k in ("space", "search", "child", "inputs", "created")}
    _empty_meta(run)
    with pytest.raises(RunDirError, match=r"differs in: seed \(run: 0, now: 5\)"):
        _run(run, seed=5, max_children=8)  # other settings: refused, not re-recorded
    with TrialStore(str(run / STORE_FILE), readonly=True) as s:
        assert s.get_meta("space") is None
    summary = _run(run, max_children=8)  # the same settings: resumed, identity restored
    assert summary["children_trained"] == 8
    with TrialStore(str(run / STORE_FILE), readonly=True) as s:
        assert {k: s.get_meta(k) for k in identity} == identity
    with pytest.raises(RunDirError, match="seed"):
        _run(run, seed=5, max_children=9)


def test_an_emptied_meta_table_without_a_summary_copy_is_refused(tmp_path):
    run = tmp_path / "run"
    _run(run)
    _empty_meta(run)
    summary = json.loads((run / SUMMARY_FILE).read_text())
    del summary["identity"]  # as a summary written before the copy existed
    (run / SUMMARY_FILE).write_text(json.dumps(summary))
    with pytest.raises(RunDirError, match="holds 6 children but no record of the search's "
                                          "settings") as info:
        _run(run, max_children=8)
    assert "\n" not in str(info.value)
    with TrialStore(str(run / STORE_FILE), readonly=True) as s:
        assert s.get_meta("space") is None and len(s.trials()) == 6


# ---------------------------------------------------------------------------
# Failures of the environment are not the architecture's.
# ---------------------------------------------------------------------------


class FlakyData(Evaluator):
    """Fails with a DataError while ``broken`` exists."""

    def __init__(self, broken):
        self.broken = str(broken)

    def evaluate(self, spec, context):
        if os.path.exists(self.broken):
            raise DataError(f"ptb.train.txt vanished ({self.broken})")
        return EvalResult(reward=0.5)


def test_environment_failure_stops_the_search_and_children_stay_pending(tmp_path):
    broken = tmp_path / "broken"
    broken.write_text("x")
    run = tmp_path / "run"
    with pytest.raises(DataError, match="environment, not its architecture.*pending"):
        _run(run, FlakyData(broken))
    rows = read_trials(run)
    assert rows and not [t for t in rows if t.status == "failed"]
    broken.unlink()  # the fix
    summary = _run(run, FlakyData(broken))
    assert summary["children_trained"] == 6 and summary["children_failed"] == 0


# ---------------------------------------------------------------------------
# Damage: one line, or recovered and said.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sql, words", [
    ("UPDATE trials SET reward=NULL WHERE id=1", r"no reward \(NULL\)"),
    ("UPDATE trials SET reward='high' WHERE id=1", "not a number"),
    ("UPDATE trials SET spec='{oops' WHERE id=1", "unreadable values"),
    ("UPDATE meta SET value='{oops' WHERE key='space'", "not JSON"),
])
def test_edited_store_is_one_line(tmp_path, sql, words):
    from nas_tf.report import make_report

    _run(tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / STORE_FILE)
    db.execute(sql)
    db.commit()
    db.close()
    with pytest.raises(RunDirError, match=words):
        make_report(tmp_path / "run")


def test_garbled_page_of_the_store_is_one_line(tmp_path):
    _run(tmp_path / "run", max_children=40)
    path = tmp_path / "run" / STORE_FILE
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 2 * page
    data[page:2 * page] = b"\xa5" * page  # a page of garbage
    path.write_bytes(bytes(data))
    proc = _cli(f"--run_dir={tmp_path / 'run'}", module="nas_tf.report")
    line = _one_error(proc, "trials.sqlite")
    assert "move it away" not in line or "damaged" in line or "readable" in line


def test_full_disk_is_not_called_damage(tmp_path):
    s = TrialStore(str(tmp_path / "t.sqlite"))
    s._db.execute("PRAGMA max_page_count=8")
    with pytest.raises(RunDirError, match="is full") as e:
        for i in range(10000):
            s.add(f"h{i}", {"x": "y" * 500}, (i,))
    assert "damaged" not in str(e.value) and "move" not in str(e.value)
    assert "is full" in describe_os_error(OSError(28, "No space left on device"), "d")
    tf_text = ("{{function_node __wrapped__CreateSummaryFileWriter_device_/job:localhost/replica:0"
               "/task:0/device:CPU:0}} /r/events.out; No space left on device "
               "[Op:CreateSummaryFileWriter]")
    line = describe_os_error(RuntimeError(tf_text), "/r")
    assert line.startswith("the disk holding /r is full (/r/events.out; No space left on device")


def test_damaged_latest_checkpoint_falls_back_and_says_so(tmp_path):
    run = tmp_path / "run"
    _run(run)
    ckpts = run / "checkpoints"
    latest = sorted(ckpts.glob("ckpt-*.index"), key=lambda p: int(p.stem.split("-")[1]))[-1]
    latest.write_bytes(b"garbage")
    messages = []

    class Catch:
        def __getattr__(self, name):
            return lambda *a, **k: messages.append(a[0]) if name == "message" else None

    summary = run_search(SPACE, FakeEvaluator(SPACE), run_dir=str(run),
                         config=_cfg(max_children=8), logger=Catch(), child_logs=False)
    assert summary["children_trained"] == 8
    assert any("cannot be restored; resumed from the previous one" in m for m in messages)


def test_garbled_checkpoint_state_file_is_recovered(tmp_path):
    run = tmp_path / "run"
    _run(run)
    (run / "checkpoints" / "checkpoint").write_bytes(b"\x00\xff{{ garbage")
    assert _run(run, max_children=8)["children_trained"] == 8
    assert list((run / "checkpoints").glob("checkpoint.damaged-*"))


def test_summary_json_that_is_binary_or_a_directory(tmp_path):
    from nas_tf.report import make_report

    run = tmp_path / "run"
    _run(run)
    (run / SUMMARY_FILE).write_bytes(b"\x00\xff\xfe")
    assert make_report(run).summary == {}  # the report still reads the store
    (run / SUMMARY_FILE).unlink()
    (run / SUMMARY_FILE).mkdir()
    with pytest.raises(RunDirError, match="summary.json is not a file"):
        _run(run, max_children=8)


def test_finished_run_reads_in_a_read_only_directory(tmp_path, monkeypatch):
    """As on a read-only mount (simulated: the tests may run as root, whom
    permissions do not stop)."""
    from nas_tf.report import write_report

    run = tmp_path / "run"
    _run(run)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK
                        else real_access(p, mode))
    before = sorted(p.name for p in run.iterdir())
    report = write_report(run)
    assert report.counts["done"] == 6 and not report.written and report.pictures == []
    with open_store(run) as s:
        assert s.num_finished() == 6
    assert sorted(p.name for p in run.iterdir()) == before


def test_unwritable_parent_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match="a part of that path is a file, not a directory") as e:
        _run(blocker / "sub" / "run")
    assert "Errno" not in str(e.value) and blocker.read_text() == "x"


def test_export_of_a_binary_spec_file_is_one_line(tmp_path, table):
    _nb201_run(tmp_path / "run", table)
    spec = tmp_path / "spec.bin"
    spec.write_bytes(b"\x89PNG\x00\xff")
    proc = _cli(f"--run_dir={tmp_path / 'run'}", f"--spec={spec}", f"--out={tmp_path / 'o'}",
                module="nas_tf.export")
    _one_error(proc, "cannot be read as JSON text")


def test_irrelevant_flags_are_warned(tmp_path, table):
    run = tmp_path / "run"
    proc = _cli("--space=nb201", f"--nb201_table={table}", f"--run_dir={run}",
                "--algorithm=random", "--max_children=4", "--num_workers=3", "--cnn_num_layers=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning: --num_workers has no effect with --executor=inline" in proc.stderr
    assert "warning: --cnn_num_layers has no effect with --space=nb201" in proc.stderr


def test_concurrent_clis_train_nothing_twice(tmp_path, table):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "nas_tf.run", "--space=nb201", f"--nb201_table={table}",
            f"--run_dir={run}", "--algorithm=random", "--max_children=60"]
    procs = [subprocess.Popen(args, env=_env(), cwd=os.getcwd(), stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    if codes == [0, 2]:  # they overlapped: the second stopped at once
        refused = outs[[p.returncode for p in procs].index(2)]
        assert "in use by another search" in refused and "Traceback" not in refused
    else:  # one ended before the other began: a resume of a finished search
        assert codes == [0, 0], outs
    rows = read_trials(run)
    assert len(rows) == 60 and all(t.attempts == 1 for t in rows)
    time.sleep(0)


def test_environment_errors_are_told_from_architecture_errors():
    from nas_tf.rundir import is_environment_error

    assert is_environment_error("DataError: ptb.train.txt is missing (at ptb.py:12)")
    assert is_environment_error("OSError: [Errno 28] No space left on device")
    assert is_environment_error("ModuleNotFoundError: No module named 'cells'")
    assert not is_environment_error("RuntimeError: shapes (3, 4) and (5,) do not match")
    assert not is_environment_error("ResourceExhaustedError: OOM when allocating tensor")


def test_irrelevant_flag_lines():
    from nas_tf.flag_checks import irrelevant_flags

    owned = {"rnn": ("child_units",), "cnn": ("cnn_preset",), "nb201": ("nb201_table",)}
    lines = irrelevant_flags({"num_workers", "dataset", "population_size", "seed"}, "nb201",
                             "inline", "reinforce", owned, trains_children=False)
    assert len(lines) == 3 and all(x.startswith("warning: --") for x in lines)
    assert irrelevant_flags({"num_workers", "child_units"}, "rnn", "local", "reinforce",
                            owned) == []
    assert irrelevant_flags({"cnn_preset", "nb201_table"}, "rnn", "inline", "reinforce",
                            owned) == [
        "warning: --cnn_preset has no effect with --space=rnn (ignored).",
        "warning: --nb201_table has no effect with --space=rnn (ignored)."]


def test_a_summary_with_a_higher_best_than_the_intact_store_is_corrected(tmp_path):
    """The store holds every child the summary counted: it is the record, and the
    summary (edited by hand) is rewritten from it instead of refusing forever."""
    run = tmp_path / "run"
    _run(run)
    summary = json.loads((run / SUMMARY_FILE).read_text())
    true_best = summary["best_reward"]
    summary["best_reward"] = true_best + 5.0
    (run / SUMMARY_FILE).write_text(json.dumps(summary))
    again = _run(run, max_children=8)
    assert again["children_trained"] == 8 and again["best_reward"] >= true_best
    assert again["best_reward"] < true_best + 5.0


@pytest.mark.parametrize("folder", ["checkpoints", "children", "children_archive", "results"])
def test_a_file_where_the_search_keeps_a_folder_is_one_error(tmp_path, folder):
    run = tmp_path / "run"
    _run(run)
    if (run / folder).is_dir():
        shutil.rmtree(run / folder)
    (run / folder).write_text("x")
    with pytest.raises(RunDirError, match=f"{folder} is a file where the search keeps a folder"):
        _run(run, max_children=8)
    assert len(read_trials(run)) == 6


def test_a_damaged_stored_wall_time_is_taken_from_the_summary(tmp_path):
    from nas_tf.logger import Logger

    class Notes(Logger):
        def __init__(self):
            self.lines = []

        def message(self, text):
            self.lines.append(text)

    run = tmp_path / "run"
    first = _run(run)
    db = sqlite3.connect(run / STORE_FILE)
    db.execute("UPDATE meta SET value='\"x\"' WHERE key='wall_time_s'")
    db.commit()
    db.close()
    notes = Notes()
    again = run_search(SPACE, FakeEvaluator(SPACE), run_dir=str(run),
                       config=_cfg(max_children=8), child_logs=False, logger=notes)
    assert again["children_trained"] == 8 and again["wall_time_s"] >= first["wall_time_s"]
    assert any("stored wall time of the search ('x') was not a number" in n
               for n in notes.lines), notes.lines


@pytest.mark.parametrize("text", ["garbage", '{"best": 3}', '{"best": [[1]], "recent": []}',
                                  "[]"])
def test_a_damaged_retained_json_is_moved_aside_and_the_search_goes_on(tmp_path, text):
    run = tmp_path / "run"
    _run(run)
    retained = run / "children_archive" / "retained.json"
    retained.parent.mkdir(exist_ok=True)
    retained.write_text(text)
    for budget in (8, 10):  # every resume goes on (it used to crash after one child)
        assert _run(run, max_children=budget)["children_trained"] == budget
    assert list(retained.parent.glob("retained.json.damaged-*"))
    assert set(json.loads(retained.read_text())) == {"best", "recent"}
