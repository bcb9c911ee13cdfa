"""benchmarks.frontier_compare: several models' reports of one truth on one cost-accuracy frontier."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from benchmarks.frontier import frontier_rows
from benchmarks.frontier_compare import main, merge_reports
from benchmarks.results_file import load_results
from benchmarks.targets import target_values

REPO = Path(__file__).resolve().parents[1]
DESIGN = REPO / "benchmarks" / "results" / "design_cpu"
COLA4, COLA6 = DESIGN / "val_cola4_z0", DESIGN / "val_cola6_z0"  # both graded with the PM contenders


@pytest.fixture(scope="module")
def reports():
    return load_results(COLA4), load_results(COLA6)


def test_each_model_keeps_its_own_numbers(reports):
    """A merged row is the report's own: cost, worst P(k), 1 - r and the target module's mass-function error."""
    a, b = reports
    rows = {r["name"]: r for r in frontier_rows(merge_reports([("four", a), ("six", b)]))}
    for label, res in (("four", a), ("six", b)):
        s = res["summary"]["generator"]
        assert rows[label]["seconds"] == s["seconds_per_mock"] and not rows[label]["pm"]
        assert rows[label]["max_abs_pk_ratio_minus_1"] == s["max_abs_pk_ratio_minus_1"]
        assert rows[label]["max_one_minus_r"] == s["max_one_minus_r"]
        assert rows[label]["hmf_populated"] == target_values(res, "generator")["hmf"]
    # the PM contenders come from the first report that ran them, and stay PM rows
    for name in ("pm_few", "pm6", "pm12"):
        assert rows[name]["pm"] and rows[name]["seconds"] == a["summary"][name]["seconds_per_mock"]
    assert "generator" not in rows and "2lpt" not in rows  # only the graded models and the simulators


def test_refuses_other_truths_and_bad_labels(reports):
    a, b = reports
    other = copy.deepcopy(b)
    other["per_cosmology"] = other["per_cosmology"][:-1]
    with pytest.raises(ValueError, match="six graded another truth than four: realizations differ"):
        merge_reports([("four", a), ("six", other)])
    with pytest.raises(ValueError, match="labels repeat"):
        merge_reports([("x", a), ("x", b)])
    with pytest.raises(ValueError, match="is the name of a PM contender"):
        merge_reports([("four", a), ("pm6", b)])


def test_cli_writes_table_and_figure(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["--run", f"COLA-4 base={COLA4}", "--run", f"COLA-6 base={COLA6}", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert out.stat().st_size > 10_000
    assert "| COLA-6 base | 1.12 | 0.041 | 0.00509 |" in table and "| PM 12 steps, 2x mesh |" in table
    # a cost measured elsewhere replaces a row's; a row that does not exist is refused
    assert main(["--run", f"COLA-4 base={COLA4}", "--run", f"COLA-6 base={COLA6}", "--out", str(out),
                 "--seconds", "COLA-6 base=1.2", "--seconds", "pm12=1.7"]) == 0
    table = capsys.readouterr().out
    assert "| COLA-6 base | 1.2 | 0.041 |" in table and "| PM 12 steps, 2x mesh | 1.7 | 0.0824 |" in table
    for bad in ("pm99=1", "pm12=fast", "pm12=-1"):
        assert main(["--run", f"a={COLA4}", "--out", str(tmp_path / "h.png"), "--seconds", bad]) == 2
    assert "no such row" in capsys.readouterr().err and not (tmp_path / "h.png").exists()
    assert main(["--run", "nolabel", "--out", str(tmp_path / "g.png")]) == 2
    assert main(["--run", f"a={COLA4}", "--out", str(tmp_path / "no" / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "expected LABEL=DIR" in err and "does not exist" in err and not (tmp_path / "g.png").exists()
