r"""Reliability drill of the run directory: bad inputs, corruption, kills, two searches.

Every case runs the real command line in a subprocess on the NAS-Bench-201
space (a synthetic full table: made-up accuracies, real mechanics) and is
judged by what a user sees:

* bad inputs: exit 2, exactly one ``error:`` line on stderr, no traceback,
  and the run directory not created (or not changed);
* corruption: one ``error:`` line (refused), or recovered (exit 0, no fewer
  children and no worse best than before) — never a traceback, never a
  silent loss;
* SIGKILLs: ``experiments/fault_drill.py`` (its table is included);
* concurrent runs: two searches started together on one directory; the
  second must stop at once and no child may be trained twice.

The disk-full and read-only cases mount a small tmpfs (needs root; skipped
otherwise). Writes its tables to ``$RELIABILITY_OUT`` (default: the drill's
temporary directory, printed at the end); experiments/results/reliability.md
holds them with notes, so the drill does not overwrite it.

  nice -n 5 python experiments/reliability_drill.py
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import write_synthetic_nb201_table  # noqa: E402
from reliability_tables import write_results  # noqa: E402

from nas_tf.rundir import read_summary, read_trials  # noqa: E402


def env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}


def cli(*args, module="nas_tf.run", timeout=600, cwd=None):
    p = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=env(), cwd=str(cwd or REPO))
    return p.returncode, p.stderr


#: TensorFlow's C++ start-up lines (absl / oneDNN), printed when TensorFlow is imported
#: whatever TF_CPP_MIN_LOG_LEVEL says; silencing them is issue 12's part.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} )")
NOISY: set[str] = set()  # cases whose one error line came with TensorFlow's start-up lines


def one_line(rc, err, name="") -> tuple[bool, str]:
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("warning:")]
    noise = [x for x in lines if _TF_NOISE.match(x)]
    lines = [x for x in lines if not _TF_NOISE.match(x)]
    ok = rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    if ok and noise and name:
        NOISY.add(name)
    return ok, (lines[-1] if lines else "")[:160]


#: A progress line of the console logger (stderr), e.g. ``[###---] 3/30 children  best ...``.
_PROGRESS = re.compile(r"^\[[#-]+\] \d+/\d+ children")
#: A warning of the library's Python logging (absl format), e.g.
#: ``W1130 08:44:06.338032 140370774809472 base.py:124] Could not write ...``.
_PY_WARNING = re.compile(r"^W\d{4} [\d:.]+ +\d+ [\w.-]+\.py:\d+\] ")


def one_line_after_progress(rc, err, name="") -> tuple[bool, str]:
    """A failure in the middle of a run: what the search printed while it ran (progress lines,
    warnings), then one ``error:`` line as the last line, exit 2, no traceback."""
    lines = [x for x in err.splitlines() if x.strip()]
    ok_last = bool(lines) and lines[-1].startswith("error: ")
    rest = [x for x in lines if not (_PROGRESS.match(x) or _PY_WARNING.match(x))]
    ok, line = one_line(rc, "\n".join(rest), name)
    return ok and ok_last, line


class Drill:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.table = tmp / "table.csv"
        write_synthetic_nb201_table(self.table)
        self.bad: list[tuple[str, bool, str]] = []
        self.valid: list[tuple[str, bool, str]] = []
        self.corrupt: list[tuple[str, str, bool, str]] = []
        self.tracebacks = 0  # corruption and mount cases whose stderr held a traceback

    def nb201(self, run, *extra):
        return cli("--space=nb201", f"--nb201_table={self.table}", f"--run_dir={run}",
                   "--algorithm=reinforce", "--max_children=60", *extra)

    # ------------------------------------------------------------ bad inputs
    def bad_input(self, name, args, module="nas_tf.run", run=None, keep=None):
        before = snapshot(keep) if keep else None
        rc, err = cli(*args, module=module)
        ok, line = one_line(rc, err, name)
        if run is not None and Path(run).exists() and keep is None:
            ok, line = False, f"run dir created: {line}"
            shutil.rmtree(run)
        if keep is not None and snapshot(keep) != before:
            ok, line = False, f"files changed: {line}"
        self.bad.append((name, ok, line))
        print(("ok  " if ok else "BAD ") + name + " -> " + line, flush=True)

    def bad_inputs(self, base: Path):
        t, r = self.tmp, self.tmp / "never"
        nb = ["--space=nb201", f"--nb201_table={self.table}"]
        files = {
            "table_cols.csv": "arch,acc\n", "table_one.csv": "arch,test_accuracy\n"
            "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n",
        }
        for n, text in files.items():
            (t / n).write_text(text)
        (t / "table_dup.csv").write_text(self.table.read_text() + self.table.read_text()
                                         .splitlines()[1] + "\n")
        (t / "table_bin.csv").write_bytes(b"\x89PNG\x00\xff" * 100)
        ptb = {"ptb_empty": {"train": "", "valid": "a\n", "test": "a\n"},
               "ptb_unk": {"train": "<unk> <unk>\n", "valid": "<unk>\n", "test": "<unk>\n"},
               "ptb_missing": {"train": "a b\n", "valid": "a\n"}}
        for d, splits in ptb.items():
            (t / d).mkdir()
            for s, text in splits.items():
                (t / d / f"ptb.{s}.txt").write_text(text)
        (t / "ptb_bin").mkdir()
        for s in ("train", "valid", "test"):
            (t / "ptb_bin" / f"ptb.{s}.txt").write_bytes(b"\xff\xfe\x00\x01 x")
        (t / "afile").write_text("x")
        (t / "foreign").mkdir()
        (t / "foreign" / "thesis.tex").write_text("precious")
        (t / "spec.bin").write_bytes(b"\x00\xff\xfe")
        rnn = ["--space=rnn", "--dataset=ptb", f"--run_dir={r}"]
        cases = [
            ("--space=transformer", [*nb, f"--run_dir={r}", "--space=transformer"]),
            ("--max_children=abc", [*nb, f"--run_dir={r}", "--max_children=abc"]),
            ("unknown flag --frobnicate", [*nb, f"--run_dir={r}", "--frobnicate=1"]),
            ("--algorithm=bayes", [*nb, f"--run_dir={r}", "--algorithm=bayes"]),
            ("--max_children=0", [*nb, f"--run_dir={r}", "--max_children=0"]),
            ("--children_per_update=-1", [*nb, f"--run_dir={r}", "--children_per_update=-1"]),
            ("--learning_rate=nan", [*nb, f"--run_dir={r}", "--learning_rate=nan",
                                     "--max_children=6"]),
            ("--child_timeout=nan", [*nb, f"--run_dir={r}", "--child_timeout=nan",
                                     "--max_children=6"]),
            ("extra positional argument", [*nb, f"--run_dir={r}", "extra"]),
            ("table missing", ["--space=nb201", f"--nb201_table={t / 'no.csv'}",
                               f"--run_dir={r}"]),
            ("table wrong columns", ["--space=nb201", f"--nb201_table={t / 'table_cols.csv'}",
                                     f"--run_dir={r}"]),
            ("table with 1 row", ["--space=nb201", f"--nb201_table={t / 'table_one.csv'}",
                                  f"--run_dir={r}"]),
            ("table with a duplicate row", ["--space=nb201",
                                            f"--nb201_table={t / 'table_dup.csv'}",
                                            f"--run_dir={r}"]),
            ("table is binary", ["--space=nb201", f"--nb201_table={t / 'table_bin.csv'}",
                                 f"--run_dir={r}"]),
            ("PTB --data_dir does not exist", [*rnn, f"--data_dir={t / 'nope'}"]),
            ("PTB empty file", [*rnn, f"--data_dir={t / 'ptb_empty'}"]),
            ("PTB all <unk>", [*rnn, f"--data_dir={t / 'ptb_unk'}"]),
            ("PTB not UTF-8", [*rnn, f"--data_dir={t / 'ptb_bin'}"]),
            ("PTB file missing", [*rnn, f"--data_dir={t / 'ptb_missing'}"]),
            ("--dataset=imagenet for rnn", ["--space=rnn", "--dataset=imagenet",
                                            f"--run_dir={r}"]),
            ("--run_dir is a file", [*nb, f"--run_dir={t / 'afile'}"]),
            ("--run_dir under a file", [*nb, f"--run_dir={t / 'afile' / 'run'}"]),
            ("report --run_dir missing", [f"--run_dir={t / 'nope'}"], "nas_tf.report"),
            ("report --top_k=0", [f"--run_dir={base}", "--top_k=0"], "nas_tf.report"),
            ("report unknown flag", [f"--run_dir={base}", "--colour"], "nas_tf.report"),
            ("export --spec=<binary file>", [f"--run_dir={base}", f"--spec={t / 'spec.bin'}",
                                             f"--out={t / 'o1'}"], "nas_tf.export"),
            ("export --spec=<not JSON>", [f"--run_dir={base}", "--spec={oops",
                                          f"--out={t / 'o2'}"], "nas_tf.export"),
            ("export --rank=9999", [f"--run_dir={base}", "--rank=9999", f"--out={t / 'o3'}"],
             "nas_tf.export"),
        ]
        for name, args, *mod in cases:
            self.bad_input(name, args, module=mod[0] if mod else "nas_tf.run", run=r)
        kept = [("non-empty foreign --run_dir", [*nb, f"--run_dir={t / 'foreign'}"], "foreign"),
                ("resume with another --seed", [*nb, f"--run_dir={base}", "--seed=5"], base),
                ("resume with --algorithm=random", [*nb, f"--run_dir={base}",
                                                    "--algorithm=random"], base)]
        for name, args, keep in kept:
            self.bad_input(name, args, keep=t / keep if isinstance(keep, str) else keep)
        self.default_run_dir()
        other = t / "table2.csv"
        other.write_text(self.table.read_text().replace(",9", ",8", 1))
        self.bad_input("resume with another table (content)",
                       ["--space=nb201", f"--nb201_table={other}", f"--run_dir={base}"],
                       keep=base)

    def default_run_dir(self):
        """No --run_dir is valid (issue 12): the search lives in runs/<space> of the working
        directory, and the same command again resumes it."""
        cwd = self.tmp / "cwd"
        cwd.mkdir()
        args = ["--space=nb201", f"--nb201_table={self.table}", "--max_children=6"]
        rc1, err1 = cli(*args, cwd=cwd)
        run = cwd / "runs" / "nb201"
        n1 = read_summary(run).get("children_trained")
        rc2, err2 = cli(*args[:-1], "--max_children=9", cwd=cwd)
        n2 = read_summary(run).get("children_trained")
        ok = rc1 == rc2 == 0 and n1 == 6 and n2 == 9 and "Traceback" not in err1 + err2
        what = f"rc {rc1}, {n1} children in runs/nb201; again with 9: rc {rc2}, {n2} children"
        self.valid.append(("no --run_dir (runs/<space>, the same command resumes)", ok, what))
        print(("ok  " if ok else "BAD ") + "no --run_dir -> " + what, flush=True)

    # ------------------------------------------------------------ corruption
    def scenario(self, name, base, damage, expect="refused or recovered"):
        run = self.tmp / f"c_{len(self.corrupt)}"
        shutil.copytree(base, run)
        before = read_summary(base)
        damage(run)
        rc, err = self.nb201(run, "--max_children=70")
        self.tracebacks += "Traceback" in err
        ok_line, line = one_line(rc, err, name)
        if rc == 0 and "Traceback" not in err:
            after = read_summary(run)
            ok = (after.get("children_trained", 0) >= before["children_trained"]
                  and (after.get("best_reward") or 0) >= before["best_reward"])
            outcome = f"recovered ({after.get('children_trained')} children)"
            note = [x for x in err.splitlines() if "checkpoint" in x.lower()][:1]
            line = note[0][:160] if note else ""
        else:
            ok, outcome = ok_line, "refused"
        self.corrupt.append((name, outcome, ok, line))
        print(("ok  " if ok else "BAD ") + f"{name}: {outcome} {line}", flush=True)

    def corruption(self, base: Path):
        def sql(q):
            def f(run):
                db = sqlite3.connect(run / "trials.sqlite")
                db.execute(q)
                db.commit()
                db.close()
            return f

        def garble_page(run):
            p = run / "trials.sqlite"
            b = bytearray(p.read_bytes())
            b[4096:8192] = b"\xa5" * 4096
            p.write_bytes(bytes(b))

        def ckpts(run):
            d = run / "checkpoints"
            return sorted(d.glob("ckpt-*.index"), key=lambda q: int(q.stem.split("-")[1]))

        cases = [
            ("trials.sqlite truncated to 0 bytes",
             lambda run: (run / "trials.sqlite").write_bytes(b"")),
            ("trials.sqlite deleted", lambda run: (run / "trials.sqlite").unlink()),
            ("rows missing (ids > 20 deleted)", sql("DELETE FROM trials WHERE id > 20")),
            ("a garbled page of the store", garble_page),
            ("non-JSON meta value", sql("UPDATE meta SET value='{x' WHERE key='search'")),
            ("non-JSON spec", sql("UPDATE trials SET spec='{x' WHERE id=3")),
            ("NULL reward of a done child", sql("UPDATE trials SET reward=NULL WHERE id=3")),
            ("text reward", sql("UPDATE trials SET reward='high' WHERE id=3")),
            ("binary summary.json", lambda run: (run / "summary.json").write_bytes(b"\0\xff")),
            ("summary.json is a directory", lambda run: ((run / "summary.json").unlink(),
                                                        (run / "summary.json").mkdir())),
            ("garbled checkpoint state file",
             lambda run: (run / "checkpoints" / "checkpoint").write_bytes(b"\0\xff{{")),
            ("damaged latest checkpoint", lambda run: ckpts(run)[-1].write_bytes(b"junk")),
            ("every checkpoint damaged", lambda run: [p.write_bytes(b"junk")
                                                      for p in ckpts(run)]),
        ]
        for name, damage in cases:
            self.scenario(name, base, damage)
        self.wal_copy()

    def wal_copy(self):
        """SIGKILL a search mid-run, copy trials.sqlite without its -wal and resume."""
        run = self.tmp / "walrun"
        p = subprocess.Popen([sys.executable, "-m", "nas_tf.run", "--space=nb201",
                              f"--nb201_table={self.table}", f"--run_dir={run}",
                              "--algorithm=reinforce", "--max_children=3000"],
                             env=env(), cwd=str(REPO), stderr=subprocess.DEVNULL)
        while p.poll() is None and read_summary(run).get("children_trained", 0) < 100:
            time.sleep(0.2)
        p.kill()
        p.wait()
        copy = self.tmp / "walcopy"
        copy.mkdir()
        for n in ("trials.sqlite", "summary.json", "checkpoints"):
            src = run / n
            (shutil.copytree if src.is_dir() else shutil.copyfile)(src, copy / n)
        db = sqlite3.connect(f"file:{copy / 'trials.sqlite'}?immutable=1", uri=True)
        main_only = db.execute("SELECT count(*) FROM trials WHERE status IN ('done','failed')"
                               ).fetchone()[0]
        db.close()
        before = read_summary(copy)["children_trained"]
        rc, err = cli("--space=nb201", f"--nb201_table={self.table}", f"--run_dir={copy}",
                      "--algorithm=reinforce", "--max_children=3000")
        self.tracebacks += "Traceback" in err
        ok_line, line = one_line(rc, err, "trials.sqlite copied without -wal after a SIGKILL")
        after = read_summary(copy).get("children_trained", 0)
        ok = (rc == 0 and after >= before and "Traceback" not in err) or ok_line
        self.corrupt.append((
            "trials.sqlite copied without -wal after a SIGKILL",
            f"main file alone: {main_only} finished, summary said {before}; resume rc {rc}, "
            f"{after} children", ok, line))
        print(("ok  " if ok else "BAD ") + self.corrupt[-1][1], flush=True)

    def mounts(self, base: Path):
        mnt = self.tmp / "mnt"
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                          capture_output=True).returncode != 0:
            self.corrupt.append(("disk full / read-only mount", "skipped (no mount)", True, ""))
            return
        try:
            rc, err = cli("--space=nb201", f"--nb201_table={self.table}",
                          f"--run_dir={mnt / 'run'}", "--algorithm=reinforce",
                          "--max_children=3000")
            (self.tmp / "disk_full.stderr").write_text(err)
            self.tracebacks += "Traceback" in err
            progress = sum(bool(_PROGRESS.match(x)) for x in err.splitlines())
            ok, line = one_line_after_progress(rc, err, "disk full mid-run (600 KiB tmpfs)")
            ok = ok and "full" in line and "damaged" not in line
            print(f"disk full: {progress} progress lines before the error line", flush=True)
            self.corrupt.append(("disk full mid-run (600 KiB tmpfs)", "refused", ok, line))
            print(("ok  " if ok else "BAD ") + "disk full: " + line, flush=True)
            subprocess.run(["umount", str(mnt)], check=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                           check=True)
            shutil.copytree(base, mnt / "ro")
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            rc1, err1 = cli(f"--run_dir={mnt / 'ro'}", module="nas_tf.report")
            rc2, err2 = cli(f"--run_dir={mnt / 'ro'}", f"--out={self.tmp / 'ro_export'}",
                            module="nas_tf.export")
            ok = rc1 == 0 and rc2 == 0 and "Traceback" not in err1 + err2
            self.tracebacks += "Traceback" in err1 + err2
            self.corrupt.append(("report and export of a run on a read-only mount",
                                 f"report rc {rc1}, export rc {rc2}", ok, ""))
            rc3, err3 = self.nb201(mnt / "ro", "--max_children=70")
            self.tracebacks += "Traceback" in err3
            ok3, line3 = one_line(rc3, err3, "resume on a read-only mount")
            ok3 = ok3 and "damaged" not in line3 and "move" not in line3
            self.corrupt.append(("resume on a read-only mount", "refused", ok3, line3))
            print(("ok  " if ok3 else "BAD ") + "read-only resume: " + line3, flush=True)
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True)

    # ------------------------------------------------------------ concurrency
    def concurrent(self, trials=3):
        out = []
        for i in range(trials):
            run = self.tmp / f"conc{i}"
            args = [sys.executable, "-m", "nas_tf.run", "--space=nb201",
                    f"--nb201_table={self.table}", f"--run_dir={run}", "--algorithm=reinforce",
                    "--max_children=300"]
            ps = [subprocess.Popen(args, env=env(), cwd=str(REPO), stderr=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, text=True) for _ in range(2)]
            errs = [p.communicate(timeout=900)[1] for p in ps]
            codes = [p.returncode for p in ps]
            rows = read_trials(run)
            twice = sum(t.attempts > 1 for t in rows)
            refused = sum(rc == 2 and "in use by another search" in e for rc, e in zip(codes, errs))
            tb = sum("Traceback" in e for e in errs)
            out.append((codes, refused, twice, len(rows), tb))
            print(f"concurrent {i}: rc {codes}, refused {refused}, trained twice {twice}, "
                  f"rows {len(rows)}, tracebacks {tb}", flush=True)
        return out


def snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(Path(d).rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def main() -> None:
    t0 = time.time()
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="nas_reliability_"))
    d = Drill(tmp)
    base = tmp / "base"
    rc, err = d.nb201(base)
    assert rc == 0, err[-2000:]
    fault_table, fault_rc = ["(not run: --no_fault_drill)"], 0
    phases = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--phases=")),
                  "bad,corruption,mounts,concurrent").split(",")
    if "bad" in phases:
        d.bad_inputs(base)
        write_results(d, [], fault_table, fault_rc, t0, load0, NOISY)
    if "corruption" in phases:
        d.corruption(base)
        write_results(d, [], fault_table, fault_rc, t0, load0, NOISY)
    if "mounts" in phases:
        d.mounts(base)
        write_results(d, [], fault_table, fault_rc, t0, load0, NOISY)
    conc = d.concurrent(2) if "concurrent" in phases else []
    write_results(d, conc, fault_table, fault_rc, t0, load0, NOISY)
    if "--no_fault_drill" not in sys.argv:
        fault = subprocess.run([sys.executable, str(REPO / "experiments" / "fault_drill.py"),
                                "--children=30", "--kills=4", "--sleep_s=0.1"], env=env(),
                               cwd=str(REPO), capture_output=True, text=True, timeout=1800)
        fault_table = [x for x in fault.stdout.splitlines() if x.startswith("|")]
        write_results(d, conc, fault_table, fault.returncode, t0, load0, NOISY)


if __name__ == "__main__":
    main()
