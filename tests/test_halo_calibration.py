"""Halo-mass calibration: the table's interpolation and rounding, its file checks, the fit recovering a known mass
deficit, and generation applying it (masses, cuts, HaloID, attrs) or not (stale file, other b, opted out)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from benchmarks.halo_mass import fit_calibration, summarise
from emulator.api import generate_mocks
from emulator.core.cosmology import Cosmology
from emulator.core.provenance import sha256_file
from emulator.mocks.fof import friends_of_friends
from emulator.mocks.halo_mass import calibrate_halos, raw_min_members
from emulator.mocks.io import read_catalog
from emulator.model.halo_calibration import HaloMassCalibration, calibration_path, read_calibration
from emulator.model.pgd_correction import pgd_digest, read_pgd
from emulator.model.portable import load_model
from tests.helpers_model import write_small_model

COSMO = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)


def _cal(factor, members=(10.0, 100.0), redshifts=(0.0, 1.0), sha="x" * 64, b=0.2):
    return HaloMassCalibration(sha256=sha, redshifts=np.array(redshifts), members=np.array(members),
                               factor=np.array(factor, dtype=np.float64), linking_length=b, source={"suite": "s"})


def test_factors_interpolate_in_log_members_and_redshift_and_hold_beyond():
    cal = _cal([[1.2, 1.1], [1.0, 1.0]])
    assert cal.factor_at([10, 100], 0.0) == pytest.approx([1.2, 1.1])
    assert cal.factor_at([np.sqrt(10 * 100)], 0.0) == pytest.approx([1.15])  # linear in log N
    assert cal.factor_at([5, 1000], 0.0) == pytest.approx([1.2, 1.1])  # constant beyond the end nodes
    assert cal.factor_at([10], 0.25) == pytest.approx([1.15])  # linear in z
    with pytest.warns(UserWarning, match="z = 1.5"):
        assert cal.factor_at([10], 1.5) == pytest.approx([1.0])


def test_calibrated_counts_are_whole_and_the_fof_cut_reaches_them():
    cal = _cal([[1.1, 1.1], [1.1, 1.1]])
    assert cal.calibrated_members([17, 18, 19, 20], 0.0).tolist() == [19, 20, 21, 22]  # floor(1.1 N + 1/2)
    assert cal.min_raw_members(20, 0.0) == 18 and raw_min_members(cal, 20, 0.0) == 18
    assert raw_min_members(None, 20, 0.0) == 20


@pytest.mark.parametrize("factor, match", [([[1.0, 1.0]], "factor must be"), ([[2.0, 0.1], [1, 1]], "decrease"),
                                           ([[1.0, -1.0], [1, 1]], "positive")])
def test_bad_tables_are_refused(factor, match):
    with pytest.raises(ValueError, match=match):
        _cal(factor)


def test_calibrate_halos_keeps_order_and_drops_the_tail():
    rng = np.random.default_rng(0)
    pos = np.concatenate([rng.normal(c, 0.05, (n, 3)) for c, n in ((10, 40), (30, 19), (50, 17))]) % 64.0
    halos = friends_of_friends(pos, 64.0, 0.2, 10, particle_mass=2.0)
    assert halos.n_members.tolist() == [40, 19, 17]
    out = calibrate_halos(halos, _cal([[1.1, 1.1], [1.1, 1.1]]), 0.0, 20)
    assert out.n_members.tolist() == [40, 19] and out.mass.tolist() == [44 * 2.0, 21 * 2.0]
    assert set(np.unique(out.labels)) == {-1, 0, 1} and np.count_nonzero(out.labels == 1) == 19


def test_read_calibration_checks_the_model_bytes(tmp_path, capsys):
    model = tmp_path / "m.pt"
    model.write_bytes(b"model")
    assert read_calibration(model, "a" * 64, pgd_sha256="none") is None  # no file: no calibration, no warning
    calibration_path(model).write_text(json.dumps(_cal([[1.1, 1.0], [1.0, 1.0]], sha="b" * 64).to_dict()))
    assert read_calibration(model, "b" * 64, pgd_sha256="none").factor[0, 0] == 1.1
    assert read_calibration(model, "a" * 64, pgd_sha256="none") is None and "stale" in capsys.readouterr().err
    calibration_path(model).write_text("{not json")
    assert read_calibration(model, "b" * 64, pgd_sha256="none") is None and "unusable" in capsys.readouterr().err
    newer = {**_cal([[1.1, 1.0], [1.0, 1.0]], sha="b" * 64).to_dict(), "format_version": 2}
    calibration_path(model).write_text(json.dumps(newer))
    assert read_calibration(model, "b" * 64, pgd_sha256="none") is None
    assert "format_version 2" in capsys.readouterr().err


def _power_law_counts(rng, n, lo=8):
    return np.floor(lo * (1.0 - rng.random(n)) ** (-1.0 / 0.9)).astype(np.int64)


def test_the_fit_recovers_an_injected_mass_deficit_and_the_calibrated_counts_match():
    rng = np.random.default_rng(1)
    snaps = []
    for i in range(8):
        for z, f in ((0.0, 1.12), (1.0, 1.04)):
            truth = _power_law_counts(rng, 6000)
            gen = np.floor(rng.permutation(truth) / f + rng.random(truth.size)).astype(np.int64)  # unbiased rounding
            gen = gen[gen >= 8]
            snaps.append({"sim_id": f"s{i}", "redshift": z, "truth": truth, "gen": gen})
    cal = fit_calibration(snaps, "c" * 64, min_pairs=100)
    whole = cal.members <= 32  # whole truth counts: within one count of N f
    for row, f in zip(cal.factor, (1.12, 1.04)):
        assert np.abs(cal.members[whole] * row[whole] - f * cal.members[whole]).max() <= 1.0
        assert row[~whole & (cal.members <= 200)] == pytest.approx(f, abs=0.015)
        assert np.all(np.diff(cal.members * row) >= 0)
    raw, fixed = summarise(snaps)["summary"], summarise(snaps, cal)["summary"]
    assert raw["0"]["count_ratio_20_minus_1"][0] < -0.08
    for z in ("0", "1"):
        assert abs(fixed[z]["count_ratio_20_minus_1"][0]) < 0.02 and abs(fixed[z]["count_ratio_40_minus_1"][0]) < 0.02
        assert fixed[z]["mass_ratio_35_200"][0] == pytest.approx(1.0, abs=0.01)


def test_the_summary_measures_how_the_count_error_runs_with_sigma8():
    """Generator counts above 40 particles that fall by exp(-0.3 (sigma8 - 0.8)): the slope comes back."""
    rng = np.random.default_rng(3)
    snaps, truth = [], _power_law_counts(rng, 6000)
    for i, s8 in enumerate(np.linspace(0.7, 0.9, 9)):
        gen = truth.copy()
        big = np.flatnonzero(gen >= 40)
        drop = rng.choice(big, int(round(big.size * (1 - np.exp(-0.3 * (s8 - 0.8))))), replace=False) if s8 > 0.8 \
            else np.array([], dtype=np.int64)
        gen[drop] = 39  # those halos now fall below the cut
        add = int(round(big.size * (np.exp(-0.3 * (s8 - 0.8)) - 1))) if s8 < 0.8 else 0
        gen = np.sort(np.concatenate([gen, np.full(add, 41)]))[::-1]
        snaps.append({"sim_id": f"s{i}", "redshift": 0.0, "cosmology": {"sigma8": float(s8)}, "truth": truth,
                      "gen": gen})
    slope, err = summarise(snaps)["summary"]["0"]["count_40_sigma8_slope"]
    assert slope == pytest.approx(-0.3, abs=0.01) and err < 0.01
    assert "count_40_sigma8_slope" not in summarise([{**s, "cosmology": None} for s in snaps])["summary"]["0"]


@pytest.fixture(scope="module")
def calibrated_model(tmp_path_factory):
    """A small random-weight model (cell 4 Mpc/h) and, beside it, a calibration f = 1.5 for b = 0.2."""
    path = write_small_model(tmp_path_factory.mktemp("calmodel") / "m.pt", COSMO)
    cal = _cal([[1.5, 1.5], [1.5, 1.5]], sha=sha256_file(path))
    calibration_path(path).write_text(json.dumps(cal.to_dict()))
    return path


def test_generation_applies_the_calibration_and_records_it(calibrated_model, tmp_path):
    assert load_model(calibrated_model).halo_calibration is not None
    kw = dict(box_size=128.0, model=calibrated_model, seeds=[3], progress=False, tracer="halos")
    (cal,) = generate_mocks(COSMO, out_dir=tmp_path / "cal", min_members=9, **kw)
    (raw,) = generate_mocks(COSMO, out_dir=tmp_path / "raw", min_members=6, calibrate_halo_masses=False, **kw)
    c, r = read_catalog(cal, "data"), read_catalog(raw, "data")
    pmass = c.attrs["particle_mass"]
    assert len(r["Mass"]) > 0 and np.array_equal(c["HaloID"], r["HaloID"])  # round(1.5 N) >= 9 <=> N >= 6
    assert np.array_equal(c["Length"], r["Length"])
    np.testing.assert_allclose(c["Mass"], np.floor(1.5 * c["Length"] + 0.5) * pmass)
    np.testing.assert_allclose(r["Mass"], r["Length"] * pmass)
    assert json.loads(c.attrs["halo_mass_calibration"])["factor"] == [[1.5, 1.5], [1.5, 1.5]]
    assert r.attrs["halo_mass_calibration"] == "none"


def test_a_stale_calibration_or_another_linking_length_leaves_masses_raw(calibrated_model, tmp_path, capsys):
    stale = tmp_path / "s" / "m.pt"
    stale.parent.mkdir()
    shutil.copy(calibrated_model, stale)
    calibration_path(stale).write_text(json.dumps(_cal([[1.5, 1.5], [1.5, 1.5]], sha="d" * 64).to_dict()))
    assert load_model(stale).halo_calibration is None and "stale" in capsys.readouterr().err
    kw = dict(box_size=128.0, model=calibrated_model, seeds=[3], progress=False, tracer="halos", min_members=6)
    with pytest.warns(UserWarning, match="linking_length=0.2"):
        (p,) = generate_mocks(COSMO, out_dir=tmp_path / "b", linking_length=0.25, **kw)
    c = read_catalog(p, "data")
    np.testing.assert_allclose(c["Mass"], c["Length"] * c.attrs["particle_mass"])
    assert c.attrs["halo_mass_calibration"] == "none"


@pytest.mark.parametrize("name, suite", [("hybrid_pm4", "configs/suite_converged.yaml"),
                                         ("hybrid_pm4_1mpc", "configs/suite_converged_1mpc.yaml")])
def test_the_shipped_calibration_is_for_the_shipped_model_and_fitted_on_training_simulations(name, suite, capsys):
    from emulator.cli import main
    from emulator.model.header import MODELS_DIR

    model = MODELS_DIR / f"{name}.pt"
    sha = sha256_file(model)
    cal = read_calibration(model, sha, pgd_sha256=pgd_digest(read_pgd(model, sha)))  # fitted on the particles generated
    assert cal is not None and cal.linking_length == 0.2 and list(cal.redshifts) == [0.0, 0.5, 1.0, 2.0]
    assert cal.source["suite"] == suite  # the model's training suite, never a test suite
    assert f"--fit emulator/models/{name}.halo_mass.json" in cal.source["command"]
    assert main(["info", "--model", name]) == 0
    assert "halo-mass calibration (FoF b = 0.2" in capsys.readouterr().out


def test_a_table_whose_interpolation_reorders_masses_or_holds_nan_is_refused():
    with pytest.raises(ValueError, match="decreases"):  # nodes fine (15, 15), between them N f(N) dips
        _cal([[1.5, 0.75], [1.5, 0.75]], members=(10.0, 20.0))
    with pytest.raises(ValueError, match="finite"):
        _cal([[1.1, 1.1], [1.1, 1.1]], members=(10.0, float("nan")))


def test_streamed_and_in_memory_halos_are_calibrated_alike(tmp_path, monkeypatch):
    """A table varying in N and z, beside a copy of the 2LPT-based model (streaming needs a 2LPT base): the
    streamed mock (slab FoF) equals the in-memory one, with masses round(N f(N, z)) particle masses."""
    from emulator.model.header import LPT_MODEL, resolve_model_path

    model = tmp_path / "lpt.pt"
    shutil.copy(resolve_model_path(LPT_MODEL), model)
    cal = _cal([[1.3, 1.1], [1.2, 1.05]], sha=sha256_file(model))
    calibration_path(model).write_text(json.dumps(cal.to_dict()))
    common = dict(redshift=0.5, box_size=128.0, seeds=[4], model=model, tile=32, progress=False, tracer="halos",
                  min_members=12)
    whole = read_catalog(generate_mocks("planck18", out_dir=tmp_path / "whole", **common)[0], "data")
    monkeypatch.setattr("emulator.mocks.memory_model.IN_MEMORY_BYTES_PER_PARTICLE", 4e4)  # the cap forces streaming
    small = read_catalog(generate_mocks("planck18", out_dir=tmp_path / "streamed", max_memory=1.0, **common)[0],
                         "data")
    assert small.attrs["streamed"] and len(whole["Mass"]) > 100
    for name in whole:
        assert np.array_equal(whole[name], small[name]), name
    expect = cal.calibrated_members(whole["Length"], 0.5)
    np.testing.assert_allclose(whole["Mass"], expect * whole.attrs["particle_mass"])
    assert expect.min() >= 12 and whole["Length"].min() < 12  # halos below 12 members that calibrate above
    assert whole.attrs["halo_mass_calibration_sha256"] == small.attrs["halo_mass_calibration_sha256"] != "none"


def test_the_benchmark_grades_the_generator_halos_calibrated():
    from benchmarks.metrics import _halos
    from benchmarks.truth import Mock

    rng = np.random.default_rng(2)
    pos = np.concatenate([rng.normal(c, 0.05, (n, 3)) for c, n in ((10, 40), (30, 19), (50, 13))]) % 64.0
    pos = torch.as_tensor(np.concatenate([pos, rng.random((4000, 3)) * 64.0]))
    cfg = {"linking_length": 0.2, "min_members": 20, "mass_bins": 4}
    b = type("B", (), {"box_size": 64.0, "n": 16, "halo_edges": torch.linspace(0.1, 0.7, 4)})()
    raw = Mock(name="generator", cosmology=COSMO, redshift=0.0, box_size=64.0, ngrid=16, seed=1, positions=pos)
    cal = Mock(**{**raw.__dict__, "halo_calibration": _cal([[1.1, 1.1], [1.1, 1.1]])})
    (_, cat_raw), (out_cal, cat_cal) = _halos(raw, b, cfg, None), _halos(cal, b, cfg, None)
    assert cat_raw.n_members.tolist() == [40] and cat_cal.n_members.tolist() == [40, 19]
    assert cat_cal.mass.tolist() == [44 * out_cal["particle_mass"], 21 * out_cal["particle_mass"]]
