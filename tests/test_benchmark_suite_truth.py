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
from data_prep.simulate.suite import (finished_records, finished_simulations, load_suite_config, run_suite,
                                      suite_design)
from emulator.core.locks import BusyError, exclusive_lock, release_lock, take_lock

ROOT = Path(__file__).resolve().parents[1]
SIM = {"z_init": 9.0, "steps": 3, "force_factor": 2, "output_redshifts": [1.0, 0.0]}


def _suite(tmp_path: Path, second_seed: int | None = None, **sim) -> Path:
    """Two cosmologies (seeds 61, 62); with ``second_seed`` the first again with that seed (``a_seed2``)."""
    cfg = {"name": "tiny", "out_dir": str(tmp_path / "suite"), "box_size": 64.0, "ngrid": 8, "n_cosmologies": 0,
           "prior": DEFAULTS["model"]["fallback_prior"],
           "cosmologies": [{"name": "a", "Omega_m": 0.3, "Omega_b": 0.048, "h": 0.68, "n_s": 0.96, "sigma8": 0.8,
                            "seed": 61}, {"name": "b", "Omega_m": 0.26, "Omega_b": 0.045, "h": 0.7, "n_s": 0.95,
                                          "sigma8": 0.85, "seed": 62}],
           "simulation": {**SIM, **sim}}
    if second_seed is not None:
        cfg["cosmologies"].append({**cfg["cosmologies"][0], "name": "a_seed2", "seed": second_seed})
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
    # each truth names its snapshot file (path, size, mtime, record digest): what a resumed benchmark keys on
    snap, size, mtime, record = again[1].source
    assert Path(snap).parent.name == mocks[1].label and Path(snap).stat().st_size == size > 0
    assert mtime == Path(snap).stat().st_mtime_ns and len(record) == 64 and snap != mocks[1].source[0]


def test_a_finished_suite_is_read_under_a_shared_lock(tmp_path):
    """Benchmark runs side by side on one finished suite: readers share the suite's lock (was: BusyError for
    the second), a writer holding it excludes them, and the records come from the checked markers."""
    torch.set_num_threads(1)
    path = _suite(tmp_path)
    cfg = load_suite_config(path)
    assert finished_simulations(cfg) is None  # nothing made yet
    suite_truth(path, 0.0, ngrid=8, box_size=64.0, log=lambda m: None)
    records = finished_simulations(cfg)
    assert [(r["sim_id"], r["seed"]) for r in records] == [("a", 61), ("b", 62)]
    lock = tmp_path / "suite" / "simulate.lock"
    fd = take_lock(lock, "another reader", shared=True)  # another benchmark reading the same suite
    try:
        mocks, _, _ = suite_truth(path, 1.0, ngrid=8, box_size=64.0, log=lambda m: None)
        assert [m.seed for m in mocks] == [61, 62]
        with pytest.raises(BusyError, match="a benchmark reading it"):  # a writer must wait for the readers
            run_suite(cfg)
    finally:
        release_lock(lock, fd)
    with exclusive_lock(lock, "a writer"):
        with pytest.raises(BusyError, match="another data-prep simulate is writing"):
            suite_truth(path, 1.0, ngrid=8, box_size=64.0, log=lambda m: None)
    manifest = json.loads((tmp_path / "suite" / "manifest.json").read_text())
    manifest["simulations"] = manifest["simulations"][:1]  # a manifest behind its markers is not what is read
    (tmp_path / "suite" / "manifest.json").write_text(json.dumps(manifest))
    assert [r["sim_id"] for r in finished_simulations(cfg)] == ["a", "b"]
    assert finished_simulations(load_suite_config(_suite(tmp_path, steps=4))) is None  # other recipe, same folder
    other, stale = finished_records(load_suite_config(_suite(tmp_path, steps=4)))
    assert other == [] and set(stale) == {"a", "b"} and all("simulation.steps" in k for k in stale["a"])
    (tmp_path / "suite" / "b" / "done.json").unlink()
    assert finished_simulations(cfg) is None
    records, stale = finished_records(cfg)  # what a reader of a partial suite gets: the finished ones, in order
    assert [r["sim_id"] for r in records] == ["a"] and stale == {}


@pytest.mark.parametrize("kwargs, match", [({"ngrid": 16}, "ngrid 8 differs"), ({"box_size": 32.0}, "box_size 64"),
                                           ({"redshift": 0.5}, "no output at the benchmark redshift 0.5")])
def test_suite_truth_refuses_what_it_does_not_hold(tmp_path, kwargs, match):
    path = _suite(tmp_path)
    with pytest.raises(ValueError, match=match):
        suite_truth(path, kwargs.pop("redshift", 0.0), **{"ngrid": 8, "box_size": 64.0, **kwargs})
    assert not (tmp_path / "suite").exists()  # refused before simulating anything


def test_a_tier_on_a_suite_reports_its_cosmologies_seeds_and_recipe(tmp_path):
    path = _suite(tmp_path, second_seed=63)
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
    assert [e["seed"] for e in data["per_cosmology"]] == [61, 62, 63]
    assert (data["setup"]["n_cosmologies"], data["setup"]["seeds_per_cosmology"]) == (2, 1)
    per, kmax = data["per_cosmology"], data["setup"]["summary_kmax"]
    for name, s in data["summary"].items():  # the realization noise: the two seeds of cosmology "a"
        a, a2 = (np.array(per[i]["contenders"][name]["compare"]["pk_ratio"], dtype=float) for i in (0, 2))
        keep = (np.array(per[0]["truth"]["k"]) <= kmax) & np.isfinite(a) & np.isfinite(a2)
        assert s["pk_ratio_seed_scatter"] == pytest.approx(np.max(np.abs(a - a2)[keep]) / np.sqrt(2), rel=1e-9)


def test_the_committed_standard_report_matches_its_config_and_suite():
    """benchmarks/results/standard was made by the README command from configs/benchmarks/standard.yaml."""
    data = json.loads((ROOT / "benchmarks" / "results" / "standard" / "results.json").read_text())
    cfg = load_config("standard")
    suite = load_suite_config(resolve_repo_path(cfg["truth"]["suite"]))
    design = suite_design(suite)
    assert data["tier"] == "standard" and data["setup"]["truth_source"] == "suite" == cfg["truth"]["source"]
    assert data["config"]["truth"]["suite"] == cfg["truth"]["suite"]
    assert [e["seed"] for e in data["per_cosmology"]] == [d["seed"] for d in design]
    assert data["setup"]["seeds_per_cosmology"] >= 2 and data["setup"]["n_cosmologies"] >= 8  # issue 12
    for e, d in zip(data["per_cosmology"], design):
        got = e["cosmology"]
        assert all(np.isclose(got[k], d["cosmology"][k], rtol=1e-12) for k in d["cosmology"]), (got, d)
    assert data["setup"]["simulation"] == suite_recipe(suite)
    assert data["setup"]["covariance_simulation"] == cfg["covariance"]["simulation"]
    assert len(data["covariance"]["seeds"]) == cfg["covariance"]["realizations"] >= 30
    assert data["setup"]["ngrid"] == cfg["ngrid"] == suite.ngrid and data["setup"]["box_size"] == suite.box_size
    assert data["config"]["threads"] == cfg["threads"]  # the accuracy phases' threads
    assert cfg["speed"]["threads"] == 1 and all(v["threads"] == 1 for v in data["speed"].values())  # timings
    assert list(data["summary"]) == cfg["contenders"] and len(cfg["pm"]) >= 3
    assert data["setup"]["pm_contenders"] == {name: pm_settings(cfg, name) for name in cfg["pm"]}
    assert all(len(v["seconds"]) >= 3 for v in data["speed"].values())  # medians of at least three
    assert not any("auto" in n or "stand-in" in n or "identity" in n for n in data["notes"])
    assert data["config"]["statistics"]["galaxies"] == cfg["statistics"]["galaxies"]  # HOD galaxy multipoles
    if cfg["statistics"]["galaxies"]:
        assert all("gal_dp4_over_p0" in e["contenders"]["generator"]["compare"] for e in data["per_cosmology"])
    # made from a clone, it names files relative to the repository, never the path of the clone that made it
    assert data["config"]["config_file"] == "configs/benchmarks/standard.yaml"
    assert data["model"]["path"] == "emulator/models/default.pt"
    # the config pins that model (the default model is now hybrid_cola4), so the README command grades it again
    from emulator.core.provenance import sha256_file
    from emulator.model.header import resolve_model_path

    assert data["model"]["sha256"] == sha256_file(resolve_model_path(cfg["model"]["path"]))


def test_the_full_tier_is_converged_paired_in_seeds_and_has_100_realizations():
    """Issue 12's full tier: the converged recipe of the test suite, >= 8 cosmologies with the (Omega_m, sigma8)
    corners, >= 2 seeds each (disjoint from every suite), >= 100 covariance realizations, the PM settings."""
    cfg = load_config("full")
    test_suite = load_suite_config(resolve_repo_path("configs/suite_converged_test.yaml"))
    truth = cfg["truth"]
    assert truth["source"] == "suite"  # cached and resumable: the truth may be made over several sittings
    suite = load_suite_config(resolve_repo_path(truth["suite"]))
    assert suite_recipe(suite) == suite_recipe(test_suite) and suite.simulation["output_redshifts"] == [2, 1, 0.5, 0]
    assert (suite.ngrid, suite.box_size) == (cfg["ngrid"], 256.0) == (128, 2.0 * test_suite.box_size)
    design = suite_design(suite)
    assert len({d["seed"] for d in design}) == len(design)  # one seed per entry

    def key(d):
        return tuple(round(float(d["cosmology"][k]), 6) for k in ("Omega_m", "Omega_b", "h", "n_s", "sigma8"))

    seeds: dict = {}
    for d in design:
        seeds.setdefault(key(d), set()).add(d["seed"])
    assert len(seeds) >= 8 and all(len(s) >= 2 for s in seeds.values())
    assert {(om, s8) for om, _, _, _, s8 in seeds} >= {(0.24, 0.7), (0.24, 0.9), (0.4, 0.7), (0.4, 0.9)}
    assert set(seeds) == {key(d) for d in suite_design(test_suite)}  # the test suite's cosmologies
    suites = ("suite_converged", "suite_converged_val", "suite_converged_test", "suite_converged_1mpc",
              "suite_converged_1mpc_test")
    used = {d["seed"] for name in suites
            for d in suite_design(load_suite_config(resolve_repo_path(f"configs/{name}.yaml")))}
    assert not used & {d["seed"] for d in design}
    assert cfg["covariance"]["realizations"] >= 100 and cfg["covariance"]["simulation"]["steps"] >= 12
    assert {"pm6", "pm12", "pm20_3x"} <= set(cfg["contenders"]) and len(cfg["pm"]) >= 3


@pytest.mark.slow
def test_missing_truth_simulations_run_in_torchrun_processes_with_the_same_particles(tmp_path):
    """``processes=2``: the suite's simulations are made by two torchrun ranks of ``data-prep simulate`` (one
    thread each) and are the particles one process with one thread makes (the benchmark's tiers fix threads 1)."""
    torch.set_num_threads(1)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    mocks1, _, _ = suite_truth(_suite(one), 0.0, ngrid=8, box_size=64.0, log=lambda m: None)
    lines: list[str] = []
    mocks2, _, _ = suite_truth(_suite(two), 0.0, ngrid=8, box_size=64.0, log=lines.append, processes=2)
    assert any("2 simulations of suite tiny in 2 torchrun processes" in line for line in lines)
    assert len(list((two / "suite").glob("*/done.json"))) == 2
    for a, b in zip(mocks1, mocks2):
        assert a.seed == b.seed and torch.equal(a.positions, b.positions) and torch.equal(a.velocities, b.velocities)
    lines.clear()  # all made: nothing is spawned again
    suite_truth(_suite(two), 1.0, ngrid=8, box_size=64.0, log=lines.append, processes=2)
    assert not any("torchrun" in line for line in lines)


GRADED = "configs/benchmarks/standard_generator_only.yaml", "hybrid_pm4", "standard"
GRADED_1MPC = "configs/benchmarks/standard_1mpc.yaml", "hybrid_pm4_1mpc", "standard"
GRADED_FULL = "configs/benchmarks/full_generator_only.yaml", "hybrid_pm4", "full"


@pytest.mark.parametrize("folder, redshift, graded", [
    ("hybrid_standard", 0.0, GRADED), ("hybrid_standard_z0.5", 0.5, GRADED), ("hybrid_standard_z1", 1.0, GRADED),
    ("hybrid_1mpc_standard", 0.0, GRADED_1MPC), ("hybrid_1mpc_standard_z0.5", 0.5, GRADED_1MPC),
    ("hybrid_1mpc_standard_z1", 1.0, GRADED_1MPC), ("full_generator", 0.0, GRADED_FULL),
    ("full_generator_z0.5", 0.5, GRADED_FULL), ("full_generator_z1", 1.0, GRADED_FULL)])
def test_the_committed_hybrid_reports_grade_the_committed_hybrid_models(folder, redshift, graded):
    """benchmarks/results/hybrid_*standard* and full_generator*: a shipped hybrid model (same bytes) on its
    held-out test suite (2 Mpc/h: configs/suite_converged_test.yaml, at 128^3 configs/suite_converged_test_128.yaml;
    1 Mpc/h: configs/suite_converged_1mpc_test.yaml), its halos graded with the halo-mass calibration it ships
    (the same table), if any."""
    from emulator.core.provenance import sha256_file
    from emulator.mocks.halo_mass import calibration_attr
    from emulator.model.halo_calibration import read_calibration
    from emulator.model.pgd_correction import pgd_attr, pgd_digest, read_pgd

    config, model, tier = graded
    data = json.loads((ROOT / "benchmarks" / "results" / folder / "results.json").read_text())
    cfg = load_config(tier, ROOT / config)
    design = suite_design(load_suite_config(resolve_repo_path(cfg["truth"]["suite"])))
    assert data["config"]["config_file"] == config
    assert data["config"]["truth"]["suite"] == cfg["truth"]["suite"]
    assert [e["seed"] for e in data["per_cosmology"]] == [d["seed"] for d in design]
    assert data["setup"]["redshift"] == redshift
    assert data["model"]["path"] == f"emulator/models/{model}.pt"
    assert data["model"]["sha256"] == sha256_file(ROOT / "emulator" / "models" / f"{model}.pt")
    path = ROOT / "emulator" / "models" / f"{model}.pt"
    pgd = read_pgd(path, sha256_file(path))
    assert data["model"].get("pgd", "none") == pgd_attr(pgd)
    assert data["model"].get("halo_calibration", "none") == calibration_attr(
        read_calibration(path, sha256_file(path), pgd_sha256=pgd_digest(pgd)))


FULL_REPORTS = (("full", 0.0), ("full_z0.5", 0.5), ("full_z1", 1.0))


def test_the_committed_full_tier_reports_match_their_config_and_suite():
    """benchmarks/results/full*: made by the README's full-tier commands from configs/benchmarks/full.yaml, on its
    suite's cosmologies and seeds and recipe, grading the committed hybrid_pm4 (same bytes), with timings of one
    thread, medians of three; the covariance only where covariance.redshifts asks for it."""
    from emulator.core.provenance import sha256_file

    cfg = load_config("full")
    suite = load_suite_config(resolve_repo_path(cfg["truth"]["suite"]))
    design = suite_design(suite)
    present = [(f, z) for f, z in FULL_REPORTS if (ROOT / "benchmarks" / "results" / f / "results.json").exists()]
    assert present, "no committed full-tier report"
    for folder, redshift in present:
        data = json.loads((ROOT / "benchmarks" / "results" / folder / "results.json").read_text())
        assert data["tier"] == "full" and data["config"]["config_file"] == "configs/benchmarks/full.yaml"
        assert data["config"]["truth"]["suite"] == cfg["truth"]["suite"] and data["setup"]["redshift"] == redshift
        assert [e["seed"] for e in data["per_cosmology"]] == [d["seed"] for d in design]
        assert data["setup"]["simulation"] == suite_recipe(suite)
        assert (data["setup"]["ngrid"], data["setup"]["box_size"]) == (suite.ngrid, suite.box_size) == (128, 256.0)
        assert data["model"]["path"] == "emulator/models/hybrid_pm4.pt"
        assert data["model"]["sha256"] == sha256_file(ROOT / "emulator" / "models" / "hybrid_pm4.pt")
        assert list(data["summary"]) == cfg["contenders"]
        assert all(v["threads"] == 1 and len(v["seconds"]) >= 3 for v in data["speed"].values())
        assert (data["covariance"] is not None) == any(abs(z - redshift) < 1e-9 for z in cfg["covariance"]["redshifts"])


def test_a_fitted_file_is_written_and_a_file_generation_does_not_read_is_said(tmp_path, capsys):
    import json
    from types import SimpleNamespace

    from benchmarks.suite_truth import write_fitted

    table = SimpleNamespace(to_dict=lambda: {"format": "t", "alpha": [0.5]}, describe=lambda: "table t")
    said = []
    assert write_fitted(table, tmp_path / "m.pgd.json", tmp_path / "m.pgd.json", said.append)
    assert json.loads((tmp_path / "m.pgd.json").read_text()) == {"format": "t", "alpha": [0.5]} and not said
    assert not write_fitted(table, tmp_path / "other.json", tmp_path / "m.pgd.json", said.append)
    assert (tmp_path / "other.json").exists()
    assert said == [f"note: generation reads {tmp_path / 'm.pgd.json'}, not {tmp_path / 'other.json'}"]
    assert capsys.readouterr().out == "table t\ntable t\n"


def test_fitting_tools_read_a_manifest_as_they_read_its_suite(tmp_path):
    """``--suite manifest.json`` (e.g. a ``data-prep merge`` design's): the same snapshots, seeds and grid as the
    suite YAML; simulations marked val or test are left out, those without a split used and said; a missing
    snapshot or seed, or another box than the snapshots', is refused naming the manifest."""
    from benchmarks.suite_truth import finished_snapshots

    suite = _suite(tmp_path)
    cfg = load_suite_config(suite)
    run_suite(cfg, progress=False)
    manifest = Path(cfg.out_dir) / "manifest.json"
    by_yaml = list(finished_snapshots(suite, [0.0, 1.0], log=lambda s: None))
    by_json = list(finished_snapshots(manifest, [0.0, 1.0], log=lambda s: None))
    assert len(by_yaml) == len(by_json) == 4
    for (g1, r1, c1, z1, s1), (g2, r2, c2, z2, s2) in zip(by_yaml, by_json):
        assert (g1.ngrid, g1.box_size, r1["sim_id"], r1["seed"], z1) == (g2.ngrid, g2.box_size, r2["sim_id"],
                                                                          r2["seed"], z2)
        assert c1.to_dict() == c2.to_dict() and np.array_equal(s1.positions, s2.positions)
    meta = json.loads(manifest.read_text())
    meta["simulations"][1]["split"] = "test"
    manifest.write_text(json.dumps(meta))
    said = []
    assert {r["sim_id"] for _, r, *_ in finished_snapshots(manifest, [0.0], log=said.append)} == {"a"}
    assert "marked val or test are skipped: ['b']" in said[0] and "1 simulation(s)" in said[1]
    bare = [{k: v for k, v in sim.items() if k not in ("inputs", "inputs_sha256")} for sim in meta["simulations"]]
    manifest.write_text(json.dumps({**meta, "box_size": 32.0, "simulations": bare}))  # hand-written: no inputs
    with pytest.raises(ValueError, match=r"manifest.json: simulation a: snapshot .* in 64 Mpc/h, not .* 8\^3 in 32"):
        list(finished_snapshots(manifest, [0.0]))
    del meta["simulations"][0]["inputs"], meta["simulations"][0]["inputs_sha256"]
    meta["simulations"][0]["seed"] = None
    manifest.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="manifest.json: simulation a has no seed"):
        list(finished_snapshots(manifest, [0.0]))
    meta["simulations"][0]["seed"] = 61
    meta["simulations"][0]["snapshots"].append("a/missing.hdf5")
    manifest.write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="manifest.json: simulation a: snapshot .*missing.hdf5 does not"):
        list(finished_snapshots(manifest, [0.0]))
