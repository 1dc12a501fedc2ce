"""Tests of experiments/plot_ptb_curves.py: reading the results rows, drawing the PNG."""

import pytest
from conftest import load_experiment

RESULTS = """
### ptb-lstm-200 (start)

| run | epoch | lr | train ppl | valid ppl | valid bits/token | epoch s | tokens/s |
|---|---:|---:|---:|---:|---:|---:|---:|
| ptb-lstm-200 | 1 | 1 | 265.69 | 177.15 | 7.4688 | 2900 | 320 |
| ptb-tree-8 | 1 | 1 | 5326.94 | 1,722.05 | 10.7499 | 1743 | 533 |
| ptb-lstm-200 | 2 | 1 | 132.13 | 150.00 | 7.2 | 1557 | 597 |

### ptb-lstm-200 (resumed after epoch 1): epoch 2 again, the later row wins

| ptb-lstm-200 | 2 | 1 | 132.13 | 143.10 | 7.1609 | 1557 | 597 |
| ptb_char-lstm-128 | 1 | 0.002 | 2.5 | 2.2458 | 900 | 4000 |

**ptb-lstm-200: test ppl 113.07** | not | a | row | at | all | here |
"""


@pytest.fixture(scope="module")
def plot():
    return load_experiment("plot_ptb_curves")


def test_rows_are_read_per_run_and_epoch(plot):
    curves = plot.read_curves(RESULTS)
    assert curves == {"ptb-lstm-200": {1: 177.15, 2: 143.10}, "ptb-tree-8": {1: 1722.05},
                      "ptb_char-lstm-128": {1: 2.2458}}


def test_png_is_written_and_bad_inputs_are_one_line(plot, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib (nas_tf[report]) is not installed")
    results, out = tmp_path / "r.md", tmp_path / "c.png"
    results.write_text(RESULTS)
    assert plot.main([f"--results={results}", f"--out={out}"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.main([f"--results={tmp_path / 'none.md'}", f"--out={out}"]) == 2
    assert "error: no results file" in capsys.readouterr().err
    (tmp_path / "empty.md").write_text("# nothing yet\n")
    assert plot.main([f"--results={tmp_path / 'empty.md'}", f"--out={out}"]) == 2
    assert "has no per-epoch rows" in capsys.readouterr().err
