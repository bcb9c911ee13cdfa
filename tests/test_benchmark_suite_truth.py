"""``truth.source: suite``: the benchmark makes its truth with data-prep's suite code, reuses it while config and
simulator version match, reads the snapshot at its redshift in Lagrangian order, and refuses a mismatch; and the
committed standard report is the one its config and suite describe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from benchmarks.config import DEFAULTS, load_config, pm_settings, resolve_repo_path
from benchmarks.contenders import write_identity_model
from benchmarks.run import run_tier
from benchmarks.suite_truth import suite_recipe, suite_truth
from data_prep.simulate.run import run_simulation
from data_prep.simulate.suite import _design, load_suite_config

ROOT = Path(__file__).resolve().parents[1]
SIM = {"z_init": 9.0, "steps": 3, "force_factor": 2, "output_redshifts": [1.0, 0.0]}


def _suite(tmp_path: Path, **sim) -> Path:
    cfg = {"name": "tiny", "out_dir": str(tmp_path / "suite"), "box_size": 64.0, "ngrid": 8, "n_cosmologies": 0,
           "prior": DEFAULTS["model"]["fallback_prior"],
           "cosmologies": [{"name": "a", "Omega_m": 0.3, "Omega_b": 0.048, "h": 0.68, "n_s": 0.96, "sigma8": 0.8,
                            "seed": 61}, {"name": "b", "Omega_m": 0.26, "Omega_b": 0.045, "h": 0.7, "n_s": 0.95,
                                          "sigma8": 0.85, "seed": 62}],
           "simulation": {**SIM, **sim}}
    path = tmp_path / "tiny_suite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_suite_truth_is_made_once_then_reused_in_lagrangian_order(tmp_path):
    torch.set_num_threads(1)
    path = _suite(tmp_path)
    mocks, cfg, notes = suite_truth(path, 0.0, ngrid=8, box_size=64.0, log=lambda m: None)
    assert [m.seed for m in mocks] == [61, 62] and "recipe" in notes[0]
    # the same particles as the simulator run directly (same outputs, so the same steps), in Lagrangian order
    direct = run_simulation(mocks[1].cosmology, 62, 8, 64.0, **cfg.simulation).outputs[-1]
    assert direct.redshift == pytest.approx(0.0)
    torch.testing.assert_close(mocks[1].positions, direct.positions, atol=2e-4, rtol=0)
    torch.testing.assert_close(mocks[1].velocities, direct.velocities, atol=2e-2, rtol=1e-4)
    stamps = sorted(p.stat().st_mtime_ns for p in (tmp_path / "suite").glob("*/done.json"))
    again, _, _ = suite_truth(path, 1.0, ngrid=8, box_size=64.0, log=lambda m: None)  # reused, not rerun
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "suite").glob("*/done.json")) == stamps
    assert all(m.redshift == pytest.approx(1.0) for m in again)


@pytest.mark.parametrize("kwargs, match", [({"ngrid": 16}, "ngrid 8 differs"), ({"box_size": 32.0}, "box_size 64"),
                                           ({"redshift": 0.5}, "no output at the benchmark redshift 0.5")])
def test_suite_truth_refuses_what_it_does_not_hold(tmp_path, kwargs, match):
    path = _suite(tmp_path)
    with pytest.raises(ValueError, match=match):
        suite_truth(path, kwargs.pop("redshift", 0.0), **{"ngrid": 8, "box_size": 64.0, **kwargs})
    assert not (tmp_path / "suite").exists()  # refused before simulating anything


def test_a_tier_on_a_suite_reports_its_cosmologies_seeds_and_recipe(tmp_path):
    path = _suite(tmp_path)
    model = write_identity_model(tmp_path / "m.pt", 8.0, DEFAULTS["model"]["fallback_prior"], (0.0, 2.0))
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(
        f"ngrid: 8\nredshift: 0.0\ndevice: cpu\nthreads: 1\ntruth: {{source: suite, suite: {path}}}\n"
        "pm_few: {steps: 2}\n"
        "statistics: {bispectrum: {dk: 1.0, equilateral: [2.0], isosceles_k: 2.0, isosceles_thetas: [0.6, 0.8]},"
        " pdf: {smoothing_cells: [1.5], nbins: 8}, halos: {min_halos: 1000}}\n"
        "covariance: {realizations: 2, nbins: 2, simulation: {z_init: 9.0, steps: 2, force_factor: 2}}\n"
        "speed: {enabled: false}\nreport: {figures: false}\n")
    run_tier("smoke", config=cfg, out=tmp_path / "out", model=model, log=lambda m: None)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["setup"]["truth_source"] == "suite"
    assert data["setup"]["simulation"] == {k: v for k, v in SIM.items() if k != "output_redshifts"}
    assert data["setup"]["covariance_simulation"]["steps"] == 2
    assert [e["seed"] for e in data["per_cosmology"]] == [61, 62]


def test_the_committed_standard_report_matches_its_config_and_suite():
    """benchmarks/results/standard was made by the README command from configs/benchmarks/standard.yaml."""
    data = json.loads((ROOT / "benchmarks" / "results" / "standard" / "results.json").read_text())
    cfg = load_config("standard")
    suite = load_suite_config(resolve_repo_path(cfg["truth"]["suite"]))
    design = _design(suite)
    assert data["tier"] == "standard" and data["setup"]["truth_source"] == "suite" == cfg["truth"]["source"]
    assert data["config"]["truth"]["suite"] == cfg["truth"]["suite"]
    assert [e["seed"] for e in data["per_cosmology"]] == [d["seed"] for d in design]
    for e, d in zip(data["per_cosmology"], design):
        got = e["cosmology"]
        assert all(np.isclose(got[k], d["cosmology"][k], rtol=1e-12) for k in d["cosmology"]), (got, d)
    assert data["setup"]["simulation"] == suite_recipe(suite)
    assert data["setup"]["covariance_simulation"] == cfg["covariance"]["simulation"]
    assert len(data["covariance"]["seeds"]) == cfg["covariance"]["realizations"] >= 30
    assert data["setup"]["ngrid"] == cfg["ngrid"] == suite.ngrid and data["setup"]["box_size"] == suite.box_size
    assert data["hardware"]["torch_threads"] == cfg["threads"] == 1
    assert list(data["summary"]) == cfg["contenders"] and len(cfg["pm"]) >= 3
    assert data["setup"]["pm_contenders"] == {name: pm_settings(cfg, name) for name in cfg["pm"]}
    assert all(len(v["seconds"]) >= 3 for v in data["speed"].values())  # medians of at least three
    assert not any("auto" in n or "stand-in" in n or "identity" in n for n in data["notes"])
    assert data["config"]["statistics"]["galaxies"] == cfg["statistics"]["galaxies"]  # HOD galaxy multipoles
    if cfg["statistics"]["galaxies"]:
        assert all("gal_dp4_over_p0" in e["contenders"]["generator"]["compare"] for e in data["per_cosmology"])
