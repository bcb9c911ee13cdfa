"""The report's targets table (benchmarks.targets): values from results.json, thresholds from the config."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.config import DEFAULTS
from benchmarks.retarget import HEADING, retarget_text
from benchmarks.retarget import main as retarget_main
from benchmarks.targets import POOLED_MIN_HALOS, target_values, targets_table, thresholds

ROOT = Path(__file__).resolve().parents[1]


def _results(ratio_bad: float) -> dict:
    """Two realizations (two seeds of one cosmology), one contender; every number below is chosen so each
    target's value is known."""
    k = [0.1, 0.2, 0.4, 0.8]  # the last bin is above summary_kmax = 0.5 and must be ignored
    halos_t = {"particle_mass": 1.0, "mass_edges": [20.0, 42.0, 90.0, 200.0], "counts": [100, 40, 5],
               "pk": [1000.0, 800.0, 500.0]}
    halos_c = {"particle_mass": 1.0, "mass_edges": [20.0, 42.0, 90.0, 200.0], "counts": [90, 44, 2],
               "pk": [1210.0, 968.0, 0.0]}  # bias sqrt(1.21) - 1 = 0.1
    per = []
    for i in range(2):
        cmp = {"pk_ratio": [1.0, 1.0 + 0.01 * i, ratio_bad, 5.0], "r": [1.0, 0.999, 0.997 - 0.001 * i, 0.5],
               "dq_eq": [0.02, 0.1, 9.0]}
        per.append({"cosmology": {"Omega_m": 0.3, "sigma8": 0.8},
                    "truth": {"k": k, "halos": halos_t, "q_eq": [1.0, 2.0, 3.0]},
                    "contenders": {"gen": {"compare": cmp, "measured": {"halos": halos_c}}}})
    return {"setup": {"summary_kmax": 0.5, "ngrid": 32}, "per_cosmology": per, "summary": {"gen": {}},
            "config": {"statistics": {"bispectrum": {"equilateral": [2.0, 4.0, 6.0]}}},
            "speed": {"gen": {"seconds_per_mock": 0.5}, "pm": {"seconds_per_mock": 20.0}}}


def test_target_values_are_the_worst_case_over_cosmologies():
    v = target_values(_results(1.02), "gen")
    assert v["pk_worst"] == pytest.approx(0.02)
    assert v["pk_median"] == pytest.approx(np.median([0, 0, 0.02, 0, 0.01, 0.02]))
    assert v["one_minus_r"] == pytest.approx(0.004)
    assert v["halo_count"] == pytest.approx(46 / 45 - 1)  # N(>= 42 particles): 44 + 2 against 40 + 5
    assert v["halo_bias"] == pytest.approx(0.1)
    assert v["hmf"] == pytest.approx(0.1)  # bins with >= 10 truth halos: 90/100 and 44/40
    assert v["bispectrum_eq"] == pytest.approx(0.05)  # k <= 32/8 = 4 k_f: 0.02/1 and 0.1/2
    assert v["speedup_vs_truth"] == pytest.approx(40.0)


def test_targets_table_says_pass_and_fail():
    table = targets_table(_results(1.05), DEFAULTS["targets"], lambda res, name: name)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1].strip(" |") for line in table.splitlines()[2:]}
    assert rows["worst abs(P/P_t − 1), k ≤ k_Nyq/2 ≤ 0.03"] == "0.05 FAIL"
    assert rows["worst 1 − r(k), k ≤ k_Nyq/2 ≤ 0.005"] == "0.004 pass"
    assert rows["FoF count above the first mass-bin edge ≥ 40 particles (42 particles) within 0.05"] == "0.0222 pass"
    assert rows["cheaper than the truth run by ≥ 30×"] == "40 pass"
    assert rows["large-scale halo bias √(P_hh/P_hh,t), 2 lowest k bins, within 0.05"] == "0.1 FAIL"


def test_committed_report_targets_agree_with_its_summary():
    """On the committed standard results, the targets' worst P(k) and r(k) equal the summary's (computed apart)."""
    res = json.loads((ROOT / "benchmarks" / "results" / "standard" / "results.json").read_text())
    for name, s in res["summary"].items():
        v = target_values(res, name)
        assert v["pk_worst"] == pytest.approx(s["max_abs_pk_ratio_minus_1"], rel=1e-9), name
        assert v["one_minus_r"] == pytest.approx(s["max_one_minus_r"], rel=1e-9), name


def _set_halos(e: dict, who: str, **changes) -> None:
    """Give realization ``e``'s truth (``who="truth"``) or contender a halo dict of its own with ``changes``."""
    d = e["truth"] if who == "truth" else e["contenders"]["gen"]["measured"]
    d["halos"] = {**d["halos"], **changes}  # a new dict: _results shares one between the realizations


def test_per_cosmology_halo_targets_take_its_seeds_together_and_never_cancel_across_cosmologies():
    res = _results(1.0)
    _set_halos(res["per_cosmology"][1], "gen", pk=[810.0, 648.0, 0.0])  # bias sqrt(0.81) - 1 = -0.1
    v = target_values(res, "gen")
    assert v["halo_bias"] == pytest.approx(0.1) and v["halo_bias_cosmo"] == pytest.approx(0.0, abs=1e-12)
    assert v["halo_count_cosmo"] == pytest.approx(92 / 90 - 1)  # (44 + 2) x 2 against (40 + 5) x 2
    assert v["hmf_cosmo"] is None  # truth counts over the seeds 200, 80, 10: no bin reaches POOLED_MIN_HALOS
    # a second cosmology whose seeds have the opposite count error: summed over everything they would cancel
    other = [json.loads(json.dumps(e)) for e in res["per_cosmology"]]
    for e in other:
        e["cosmology"] = {"Omega_m": 0.4, "sigma8": 0.7}
        _set_halos(e, "gen", counts=[90, 40, 2])  # 42 against 45 above the 42-particle edge
    res["per_cosmology"] += other
    v = target_values(res, "gen")
    assert v["halo_count_cosmo"] == pytest.approx(max(abs(92 / 90 - 1), abs(84 / 90 - 1)))
    assert POOLED_MIN_HALOS == 400
    for e in res["per_cosmology"]:  # ten times the halos: per cosmology, bins 0 and 1 reach 400; bin 2 (100) not
        for who in ("truth", "gen"):
            d = e["truth"] if who == "truth" else e["contenders"]["gen"]["measured"]
            _set_halos(e, who, counts=[10 * c for c in d["halos"]["counts"]])
    _set_halos(res["per_cosmology"][1], "gen", counts=[1000, 420, 20])  # cosmology 1: 1900/2000, 860/800
    v = target_values(res, "gen")  # cosmology 2: 1800/2000 = 0.9 and 800/800; bin 2 (ratios 0.4) left out
    assert v["hmf_cosmo"] == pytest.approx(0.1)
    res["per_cosmology"] = res["per_cosmology"][:2]
    assert target_values(res, "gen")["hmf_cosmo"] == pytest.approx(0.075)
    rows = targets_table(res, DEFAULTS["targets"], lambda res, name: name)  # the per-realization thresholds
    assert "| mass function, each cosmology's seeds together (bins with ≥ 400 truth halos: 20 to 90 particles) " \
           "within 0.1 | 0.075 pass |" in rows
    res["config"]["targets"] = {"halo_bias": 0.2}  # one threshold per statistic: the per-cosmology row follows
    assert thresholds(res)["halo_bias_cosmo"] == 0.2


def test_committed_reports_carry_the_current_targets_table(tmp_path):
    """Every committed report's Targets table is what its results.json gives now (python -m benchmarks.retarget)."""
    folders = [p.parent for p in sorted((ROOT / "benchmarks" / "results").glob("*/report.md"))
               if HEADING in p.read_text()]
    assert len(folders) >= 6
    for f in folders:
        text = (f / "report.md").read_text()
        assert retarget_text(text, json.loads((f / "results.json").read_text())) == text, f.name
    # retarget replaces the table and nothing else, and refuses a report without one, writing nothing
    f = folders[0]
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text((f / "results.json").read_text())
    text = (f / "report.md").read_text()
    lines = text.split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| mass function, each cosmology's"))
    (tmp_path / "r" / "report.md").write_text("\n".join(lines[:at] + lines[at + 1:]))  # an older table
    assert retarget_main([str(tmp_path / "r")]) == 0 and (tmp_path / "r" / "report.md").read_text() == text
    (tmp_path / "gz").mkdir()  # a report committed with its results compressed (results.json.gz) re-judges alike
    with gzip.open(tmp_path / "gz" / "results.json.gz", "wt", encoding="utf-8") as fh:
        fh.write((f / "results.json").read_text())
    (tmp_path / "gz" / "report.md").write_text("\n".join(lines[:at] + lines[at + 1:]))
    assert retarget_main([str(tmp_path / "gz")]) == 0 and (tmp_path / "gz" / "report.md").read_text() == text
    # refused, nothing written: no Targets heading; a heading whose table is missing (the next section's table
    # must not be taken for it); a bad folder beside a good one (the good one is not written either)
    head = next(i for i, ln in enumerate(lines) if ln.startswith(HEADING))
    end = next(i for i in range(head + 2, len(lines)) if not lines[i].startswith("|"))
    bad = {"none": "# no targets here\n", "tableless": "\n".join(lines[:head + 1] + lines[end:])}
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "results.json").write_text((f / "results.json").read_text())
    for name, content in bad.items():
        (tmp_path / "good" / "report.md").write_text("\n".join(lines[:at] + lines[at + 1:]))
        (tmp_path / "r" / "report.md").write_text(content)
        assert retarget_main([str(tmp_path / "good"), str(tmp_path / "r")]) == 2, name
        assert (tmp_path / "r" / "report.md").read_text() == content, name
        assert (tmp_path / "good" / "report.md").read_text() == "\n".join(lines[:at] + lines[at + 1:]), name
