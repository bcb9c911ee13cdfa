"""The HOD resolution check: the Tinker08 mass function against colossus, the unresolved fraction against direct
quadrature, the warn (5%) / refuse (50%) thresholds with the number printed, the force flag, the LRG preset's
documented statistics, and ``emulator generate`` refusing before computing anything."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import quad

from emulator.core.cosmology import get_preset, particle_mass_from_cosmology
from emulator.mocks import api
from emulator.mocks.api import generate_mocks
from emulator.mocks.hod import HODParams, get_preset as hod_preset, mean_ncen, mean_nsat
from emulator.mocks.massfunction import (HODResolutionError, check_hod_resolution, hod_number_density,
                                         tinker08_dndlnm, unresolved_fraction)

COSMO = get_preset("planck18")


def test_tinker08_matches_colossus():
    pytest.importorskip("colossus")
    from colossus.cosmology import cosmology as cc
    from colossus.lss import mass_function

    cc.setCosmology("emulator-test", params=dict(flat=True, H0=100 * COSMO.h, Om0=COSMO.Omega_m,
                                                 Ob0=COSMO.Omega_b, sigma8=COSMO.sigma8, ns=COSMO.n_s,
                                                 relspecies=False))
    mass = np.logspace(11, 14, 7)
    for z in (0.0, 0.5):
        ref = mass_function.massFunction(mass, z, mdef="200m", model="tinker08", q_out="dndlnM")
        # colossus uses the Eisenstein-Hu transfer function, we use CAMB: ~2% apart (measured 1-2%)
        np.testing.assert_allclose(tinker08_dndlnm(COSMO, mass, z), ref, rtol=0.03)


def test_unresolved_fraction_against_quadrature():
    p = HODParams(logMmin=12.5, sigma_logM=0.3, logM0=12.5, logM1=13.5, alpha=1.0)
    z, mres = 0.3, 1.0e13

    def density(lnm):
        m = np.exp(lnm)
        return float(tinker08_dndlnm(COSMO, m, z) * (mean_ncen(m, p) + mean_nsat(m, p)))

    lo, hi = math.log(1e10), math.log(3e16)
    below = quad(density, lo, math.log(mres), limit=200)[0]
    total = below + quad(density, math.log(mres), hi, limit=200)[0]
    assert unresolved_fraction(p, COSMO, z, mres) == pytest.approx(below / total, abs=3e-3)
    assert hod_number_density(p, COSMO, z) == pytest.approx(total, rel=1e-2)
    # a step HOD with every central above the resolution is fully resolved; one far below, not at all
    step_hi = HODParams(logMmin=14.0, sigma_logM=0.01, logM0=16.0, logM1=17.0, alpha=1.0)
    step_lo = HODParams(logMmin=11.0, sigma_logM=0.01, logM0=16.0, logM1=17.0, alpha=1.0)
    assert unresolved_fraction(step_hi, COSMO, z, mres) < 1e-6
    frac = unresolved_fraction(step_lo, COSMO, z, mres)
    want = quad(lambda x: float(tinker08_dndlnm(COSMO, np.exp(x), z)), math.log(1e11), math.log(mres))[0]
    want /= quad(lambda x: float(tinker08_dndlnm(COSMO, np.exp(x), z)), math.log(1e11), hi, limit=200)[0]
    assert frac == pytest.approx(want, abs=5e-3)


def test_thresholds_print_the_fraction_and_force():
    pmass = particle_mass_from_cosmology(COSMO.Omega_m, 128.0, 64**3)  # 2 Mpc/h
    with pytest.raises(HODResolutionError, match=r"7\d\.\d% of the galaxies .*--force-hod"):
        check_hod_resolution(hod_preset("zheng07_mr20"), COSMO, 0.0, 20 * pmass)
    with pytest.warns(UserWarning, match=r"7\d\.\d% of the galaxies"):
        frac = check_hod_resolution(hod_preset("zheng07_mr20"), COSMO, 0.0, 20 * pmass, force=True)
    assert 0.7 < frac < 0.8
    with pytest.warns(UserWarning, match=r"2\d\.\d% of the galaxies"):  # 20 particles: warned, not refused
        check_hod_resolution(hod_preset("lrg_desi_like"), COSMO, 0.5, 20 * pmass)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 10 particles: below 5%, silent
        assert check_hod_resolution(hod_preset("lrg_desi_like"), COSMO, 0.5, 10 * pmass) < 0.05


def test_lrg_preset_has_its_documented_statistics():
    p = hod_preset("lrg_desi_like")
    mass = np.exp(np.linspace(math.log(1e10), math.log(3e16), 2001))
    dn = tinker08_dndlnm(COSMO, mass, 0.5)
    ncen, nsat = mean_ncen(mass, p), mean_nsat(mass, p)
    ng = np.trapezoid(dn * (ncen + nsat), np.log(mass))
    assert ng == pytest.approx(3.9e-4, rel=0.03)
    assert np.trapezoid(dn * nsat, np.log(mass)) / ng == pytest.approx(0.11, abs=0.01)
    assert np.trapezoid(dn * (ncen + nsat) * np.log10(mass), np.log(mass)) / ng == pytest.approx(13.40, abs=0.03)


def test_generate_refuses_an_unresolved_hod_before_computing(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a mock was computed")

    monkeypatch.setattr(api, "emulate_fields", refuse)
    with pytest.raises(ValueError, match=r"% of the galaxies this HOD should make"):
        generate_mocks("planck18", box_size=64.0, out_dir=tmp_path / "m", progress=False, tracer="galaxies",
                       hod="zheng07_mr20", resolution=2.0)  # the 2 Mpc/h model: 80% unresolved
    assert not (tmp_path / "m").exists()


def test_lightcone_checks_the_hod_at_every_ladder_redshift(tmp_path, monkeypatch):
    """A galaxy lightcone is checked (before anything is computed) at the ladder redshift where the most galaxies
    are unresolved, not only at ``redshift``: here the deep end of the cone is refused while z = 0 alone passes."""
    from emulator.mocks.lightcone import default_ladder

    def refuse(*args, **kwargs):
        raise AssertionError("a mock was computed")

    monkeypatch.setattr(api, "emulate_fields", refuse)
    pmass = particle_mass_from_cosmology(COSMO.Omega_m, 128.0, 64**3)
    hod = hod_preset("zheng07_mr21p5")
    ladder = default_ladder(0.0, 0.7)
    fracs = [unresolved_fraction(hod, COSMO, z, 40 * pmass) for z in ladder]
    worst = ladder[int(np.argmax(fracs))]
    assert fracs[0] < 0.5 < max(fracs) and worst > 0.3  # z = 0 passes, the deep end is refused
    with pytest.raises(HODResolutionError, match=rf"z={worst:g}\)"):
        generate_mocks("planck18", redshift=0.0, box_size=128.0, out_dir=tmp_path / "m", progress=False,
                       tracer="galaxies", hod="zheng07_mr21p5", min_members=40, resolution=2.0,
                       cutsky={"redshift_range": [0.0, 0.7], "lightcone": True})
    assert not (tmp_path / "m").exists()
