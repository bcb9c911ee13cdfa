"""benchmarks.compare_targets: the side-by-side Targets table of reports of one truth."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path

import pytest

from benchmarks.compare_targets import compare_table, load_results, main, truth_identity
from benchmarks.targets import TARGETS, target_values

REPO = Path(__file__).resolve().parents[1]
Z0 = REPO / "benchmarks" / "results" / "hybrid_cola4_standard"
Z05 = REPO / "benchmarks" / "results" / "hybrid_cola4_standard_z0.5"


@pytest.fixture(scope="module")
def res():
    return load_results(Z0)


def _cells(table: str, col: int) -> dict[str, str]:
    rows = [line.strip("|").split(" | ") for line in table.splitlines()[2:]]
    return {r[0].strip(): r[col].strip() for r in rows}


def test_values_are_the_reports_own(res):
    """Each cell is target_values of the report, and the passes are those of the report's own Targets table."""
    table = compare_table([res, res], ["a", "b"])
    want = target_values(res, "generator")
    rows = table.splitlines()[2:-1]
    assert len(rows) == len(TARGETS)
    for line, (key, _, _) in zip(rows, TARGETS):
        cells = [c.strip() for c in line.strip("|").split(" | ")[1:]]
        assert cells[0] == cells[1]
        if want[key] is None:
            assert cells[0] == "–"
        else:
            assert float(cells[0].split()[0]) == pytest.approx(want[key], rel=5e-3)  # 3 significant digits
    report = (Z0 / "report.md").read_text()
    section = report[report.index("### Targets"):]
    section = section[:section.index("\n\n", section.index("| target"))]
    n_pass = len(re.findall(r"\| [0-9.e+-]+ pass \|", section))
    assert table.splitlines()[-1] == f"| targets passed | {n_pass} | {n_pass} |"
    assert n_pass == 4  # the committed z = 0 report of hybrid_cola4: median P, halo bias twice, mass function


def test_thresholds_are_the_first_reports(res):
    """A looser threshold in the first report's config passes a value that fails the default 3%."""
    loose = copy.deepcopy(res)
    loose["config"]["targets"] = {"pk_worst": 0.05}
    first = _cells(compare_table([loose, res], ["loose", "default"]), 1)
    row = next(k for k in first if k.startswith("worst abs(P/P_t − 1)"))
    assert row.endswith("≤ 0.05") and first[row].endswith("pass")
    default = _cells(compare_table([res, loose], ["default", "loose"]), 2)
    assert default[next(k for k in default if k.startswith("worst abs(P/P_t − 1)"))].endswith("FAIL")


def test_gzipped_results_read(res, tmp_path):
    with gzip.open(tmp_path / "results.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(res, fh)
    assert truth_identity(load_results(tmp_path)) == truth_identity(res)
    assert target_values(load_results(tmp_path / "results.json.gz"), "generator") == target_values(res, "generator")


def test_other_truth_refused(res):
    with pytest.raises(ValueError, match="graded another truth than a: redshift differs"):
        compare_table([res, load_results(Z05)], ["a", "b"])
    fewer = copy.deepcopy(res)
    fewer["per_cosmology"] = fewer["per_cosmology"][:-1]
    with pytest.raises(ValueError, match="realizations differ"):
        compare_table([res, fewer], ["a", "b"])


def test_bad_input_is_one_line_and_no_table(res, tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "nowhere: no results.json" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json.gz").write_bytes(b"not gzip")
    assert main([str(tmp_path / "bad")]) == 2
    assert "not readable as JSON" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no contender 'pm6'"):
        compare_table([res], ["a"], contender="pm6")
    assert main([str(Z0), str(Z05)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "redshift differs" in err
