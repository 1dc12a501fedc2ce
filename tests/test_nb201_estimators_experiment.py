"""experiments/nb201_estimators.py: its statistics, and one tiny run end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import load_experiment, write_synthetic_nb201_table

est = load_experiment("nb201_estimators")


def test_rank_statistics_by_hand():
    assert est.kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert est.kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 4 concordant pairs, one tie in each: tau-b = 4 / sqrt(5 * 5) (scipy's kendalltau: 0.8).
    assert est.kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    # rho = 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 12 / 60
    assert est.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # -inf (a singular NASWOT kernel) ranks lowest.
    np.testing.assert_array_equal(est.ranks([3.0, -math.inf, 1.0, 1.0]), [3, 0, 1.5, 1.5])


def test_top_share():
    scores = [5, 4, 3, 2, 1, 0]
    accs = [90, 10, 95, 20, 30, 99]
    assert est.top_share(scores, accs, 2, threshold=90) == 0.5
    assert est.top_share(scores, accs, 3, threshold=90) == pytest.approx(2 / 3)


def _images(folder, n=6):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        d = folder / f"class{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_tiny_run_writes_scores_and_a_summary_and_resumes(tmp_path):
    table = tmp_path / "table.csv"
    write_synthetic_nb201_table(table)
    _images(tmp_path / "train")
    out_json, out_md = tmp_path / "scores.json", tmp_path / "lab.md"
    argv = [f"--table={table}", f"--images_dir={tmp_path / 'train'}", "--num_cells=5",
            "--batch=4", "--channels=2", "--cells=1", f"--out_json={out_json}",
            f"--out_md={out_md}"]
    assert est.main(argv) == 0
    data = json.loads(out_json.read_text())
    rows = data["C2_N1_B4_seed0"]["rows"]
    assert len(rows) == 5 and len({r["arch"] for r in rows}) == 5
    for r in rows:
        assert set(r) >= {"arch", "test_accuracy", "params", "naswot", "synflow"}
    md = out_md.read_text()
    assert "| naswot |" in md and "| synflow |" in md and "load average" in md
    # A second run of the same skeleton reuses the stored scores.
    rows[0]["naswot"] = 12345.0
    out_json.write_text(json.dumps(data))
    assert est.main(argv) == 0
    assert json.loads(out_json.read_text())["C2_N1_B4_seed0"]["rows"][0]["naswot"] == 12345.0


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert est.main([f"--table={tmp_path / 'missing.csv'}"]) == 2
    assert capsys.readouterr().err.startswith("error: NAS-Bench-201 table not found")
    table = tmp_path / "table.csv"
    write_synthetic_nb201_table(table)
    assert est.main([f"--table={table}", f"--images_dir={tmp_path}"]) == 2
    assert "--images_dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        est.parse_args(["--estimators=naswot,zen"])
    assert "Received: --estimators=zen" in capsys.readouterr().err
