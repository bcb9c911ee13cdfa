"""benchmarks.response: central-difference responses against analytic ones (P proportional to sigma8^2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks.response import SUITE, response_curves, run_response
from emulator.core.provenance import sha256_file

REPO = Path(__file__).resolve().parents[1]
CENTRE = {"Omega_m": 0.32, "Omega_b": 0.048, "h": 0.68, "n_s": 0.96, "sigma8": 0.80}


def _suite(tmp_path) -> str:
    cosmologies = [{"name": "centre", **CENTRE, "seed": 7}]
    for p, d in (("sigma8", 0.015), ("Omega_m", 0.01)):
        cosmologies += [{"name": f"{p}_plus", **CENTRE, p: CENTRE[p] + d, "seed": 7},
                        {"name": f"{p}_minus", **CENTRE, p: CENTRE[p] - d, "seed": 7}]
    cfg = {"name": "resp", "out_dir": str(tmp_path / "suite"), "box_size": 128.0, "ngrid": 16, "n_cosmologies": 0,
           "seeds_per_cosmology": 1, "base_seed": 7, "design_seed": 0,
           "prior": {"Omega_m": [0.24, 0.40], "Omega_b": [0.040, 0.056], "h": [0.60, 0.76], "n_s": [0.92, 1.00],
                     "sigma8": [0.70, 0.90]},
           "cosmologies": cosmologies,
           "simulation": {"z_init": 12.0, "steps": 6, "force_factor": 2, "output_redshifts": [0.0]},
           "num_files": 1, "device": "cpu"}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_the_model_record_names_the_pgd_sharpening_its_particles_get():
    """Every benchmark's model record (resolve_model: the tiers' and the response's results.json, and the response's
    resumable pieces) says which PGD file the particles were sharpened with: a refitted file is another run."""
    from benchmarks.contenders import resolve_model
    from benchmarks.report_model import pgd_words

    model, info = resolve_model("hybrid_cola4")
    assert json.loads(info["pgd"])["alpha"] == pytest.approx([0.00483, 0.0, 0.0, 0.0])
    assert json.loads(info["pgd"])["sha256"] == model.sha256
    assert "PGD-sharpened" in pgd_words(info) and "0.00483 at z = 0" in pgd_words(info)
    assert resolve_model("default")[1]["pgd"] == "none"


def test_response_curves_are_central_differences():
    pk = {"a_plus": np.array([1.1, 2.0]), "a_minus": np.array([0.9, 2.0])}
    r = response_curves(pk, {"a": ("a_plus", "a_minus", 0.05)})["a"]
    np.testing.assert_allclose(r, [np.log(1.1 / 0.9) / 0.1, 0.0])


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_sigma8_response_is_two_over_sigma8_on_large_scales(tmp_path):
    """P is proportional to sigma8^2 in linear theory: d ln P / d sigma8 = 2 / sigma8 exactly for CAMB's linear
    P(k) and, on the largest scales (k_f = 0.05 h/Mpc at z = 0), for the simulations too (same phases)."""
    res = run_response(suite=_suite(tmp_path), redshifts=[0.0], out=tmp_path / "out", contenders=["2lpt", "pm6"],
                       log=lambda m: None)
    block = res["redshifts"]["0"]
    assert set(block["steps"]) == {"sigma8", "Omega_m"} and block["steps"]["sigma8"] == pytest.approx(0.015)
    want = 2.0 / CENTRE["sigma8"]
    s8, d = CENTRE["sigma8"], 0.015
    finite = 2.0 * np.log((s8 + d) / (s8 - d)) / (2 * d)  # the central difference of 2 ln sigma8: 2/sigma8 + O(d^2)
    np.testing.assert_allclose(block["response"]["linear"]["sigma8"], finite, rtol=1e-9)
    assert finite == pytest.approx(want, rel=2e-4)
    for name in ("truth", "pm6"):  # 2LPT is not: its large-scale damping grows with sigma8 (lower response)
        assert block["response"][name]["sigma8"][0] == pytest.approx(want, rel=0.03), name
    # nonlinear growth makes the small-scale response steeper than linear theory's, in the truth and halofit
    assert block["response"]["truth"]["sigma8"][-1] > 1.05 * want
    assert block["response"]["halofit"]["sigma8"][-1] > 1.05 * want
    assert block["summary"]["pm6"]["sigma8"]["relative"] < block["summary"]["2lpt"]["sigma8"]["relative"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["redshifts"]["0"]["summary"] == block["summary"]  # run_response returns what it wrote
    assert (tmp_path / "out" / "report.md").read_text().count("d ln P / d sigma8") == 1
    assert (tmp_path / "out" / "response.png").stat().st_size > 10_000
    # a second start reuses every (redshift, cosmology) piece the first kept in out/partial, and gives the same curves
    said: list[str] = []
    again = run_response(suite=_suite(tmp_path), redshifts=[0.0], out=tmp_path / "out", contenders=["2lpt", "pm6"],
                         log=said.append)
    assert sum("reused from" in m for m in said) == 5 and not any(m.endswith(" done") and "z = 0" in m for m in said)
    assert again["redshifts"]["0"]["summary"] == block["summary"] and "5 piece(s)" in again["resumed"][0]
    # another contender list is another run: nothing reused
    said.clear()
    run_response(suite=_suite(tmp_path), redshifts=[0.0], out=tmp_path / "out", contenders=["2lpt"], log=said.append)
    assert not any("reused from" in m for m in said)
    assert len(list((tmp_path / "out" / "partial").glob("*.pt"))) == 10  # both runs' pieces are kept
    # fresh: every earlier piece deleted (this very run's included), nothing reused, only this run's pieces left
    said.clear()
    run_response(suite=_suite(tmp_path), redshifts=[0.0], out=tmp_path / "out", contenders=["2lpt"], log=said.append,
                 fresh=True)
    assert not any("reused from" in m for m in said) and any("--fresh" in m for m in said)
    assert len(list((tmp_path / "out" / "partial").glob("*.pt"))) == 5


@pytest.mark.parametrize("folder, model, suite_path", [
    ("response", "default", SUITE), ("response_hybrid", "hybrid_pm4", SUITE), ("response_cola4", "hybrid_cola4", SUITE),
    ("response_128", "hybrid_pm4", "configs/suite_converged_response_128.yaml")])
def test_committed_response_reports_match_their_suite_model_and_curves(folder, model, suite_path):
    """benchmarks/results/response (the standard tier's `default`, the README command), response_hybrid
    (``--model hybrid_pm4``), response_cola4 (``--model hybrid_cola4``) and response_128 (the same at the full
    tier's 128^3 in 256 Mpc/h): the suite they claim,
    the embedded model file's very bytes, the suite's +/- steps and centre, and every summary cell recomputed from
    the stored curves (max |R_c - R_t| over k <= k_Nyq/2)."""
    res = json.loads((REPO / "benchmarks/results" / folder / "results.json").read_text())
    suite = yaml.safe_load((REPO / suite_path).read_text())
    assert res["suite"] == suite_path and SUITE == "configs/suite_converged_response.yaml"
    assert res["model"]["path"] == f"emulator/models/{model}.pt"
    assert res["model"]["sha256"] == sha256_file(REPO / res["model"]["path"])
    assert res["contenders"] == ["generator", "2lpt", "pm6", "pm12", "pm20_3x"]
    by_name = {c["name"]: c for c in suite["cosmologies"]}
    assert sorted(res["redshifts"]) == ["0", "0.5", "1"]
    params = ["Omega_m", "Omega_b", "h", "n_s", "sigma8"]
    for z, block in res["redshifts"].items():
        assert list(block["centre"]) == list(block["steps"]) == params  # every parameter measured
        assert set(block["summary"]) == set(res["contenders"]) | {"linear", "halofit"}
        assert set(block["response"]) == set(block["summary"]) | {"truth"}
        assert all(set(cells) == set(params) for cells in block["summary"].values())
        assert block["centre"] == {p: by_name["centre"][p] for p in params}
        for p, d in block["steps"].items():  # central differences over the suite's own +/- cosmologies
            assert (by_name[f"{p}_plus"][p] - by_name[f"{p}_minus"][p]) / 2 == pytest.approx(d, rel=1e-9)
        k = np.asarray(block["k"])
        assert block["kmax"] == pytest.approx(np.pi * suite["ngrid"] / suite["box_size"] / 2)
        sel = k <= block["kmax"] * (1 + 1e-9)
        truth = block["response"]["truth"]
        for name, cells in block["summary"].items():
            for p, cell in cells.items():
                r_t, r_c = np.asarray(truth[p])[sel], np.asarray(block["response"][name][p])[sel]
                assert cell["max_abs_diff"] == pytest.approx(np.max(np.abs(r_c - r_t)), rel=1e-9), (z, name, p)
                assert cell["relative"] == pytest.approx(cell["max_abs_diff"] / np.max(np.abs(r_t)), rel=1e-9)
