"""The report's targets table (benchmarks.targets): values from results.json, thresholds from the config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.config import DEFAULTS
from benchmarks.targets import target_values, targets_table

ROOT = Path(__file__).resolve().parents[1]


def _results(ratio_bad: float) -> dict:
    """Two cosmologies, one contender; every number below is chosen so each target's value is known."""
    k = [0.1, 0.2, 0.4, 0.8]  # the last bin is above summary_kmax = 0.5 and must be ignored
    halos_t = {"particle_mass": 1.0, "mass_edges": [20.0, 42.0, 90.0, 200.0], "counts": [100, 40, 5],
               "pk": [1000.0, 800.0, 500.0]}
    halos_c = {"particle_mass": 1.0, "mass_edges": [20.0, 42.0, 90.0, 200.0], "counts": [90, 44, 2],
               "pk": [1210.0, 968.0, 0.0]}  # bias sqrt(1.21) - 1 = 0.1
    per = []
    for i in range(2):
        cmp = {"pk_ratio": [1.0, 1.0 + 0.01 * i, ratio_bad, 5.0], "r": [1.0, 0.999, 0.997 - 0.001 * i, 0.5],
               "dq_eq": [0.02, 0.1, 9.0]}
        per.append({"truth": {"k": k, "halos": halos_t, "q_eq": [1.0, 2.0, 3.0]},
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
