"""Zheng07 HOD: occupations against the published formulas (and halotools), Poisson statistics, NFW profiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from emulator.mocks.fof import friends_of_friends
from emulator.mocks.hod import PRESETS, HODParams, get_preset, mean_ncen, mean_nsat, populate_halos
from emulator.mocks.nfw import concentration_duffy08, nfw_inverse_mass_fraction, r200m

BOX = 500.0
OM = 0.3
MR20 = {"logMmin": 12.02, "sigma_logM": 0.26, "logM0": 11.38, "logM1": 13.31, "alpha": 1.06}


def ncen_ref(m, p):
    return 0.5 * (1 + special.erf((np.log10(m) - p["logMmin"]) / p["sigma_logM"]))


def nsat_ref(m, p):
    out = np.zeros_like(m)
    above = m > 10 ** p["logM0"]
    out[above] = ((m[above] - 10 ** p["logM0"]) / 10 ** p["logM1"]) ** p["alpha"]
    return out


def nfw_cdf(x, c):
    """Independent NFW enclosed-mass fraction of r/R for a halo truncated at R."""
    mu = lambda y: np.log(1 + y) - y / (1 + y)  # noqa: E731
    return mu(c * x) / mu(c)


def rho_mean_astropy(om: float) -> float:
    """Comoving mean matter density, (Msun/h)/(Mpc/h)^3, from astropy's critical density (h = 1)."""
    from astropy import units as u
    from astropy.cosmology import FlatLambdaCDM

    return om * FlatLambdaCDM(H0=100.0, Om0=om, Tcmb0=0.0).critical_density0.to(u.Msun / u.Mpc**3).value


def halos_at(mass, n, seed=0, vel=True):
    rng = np.random.default_rng(seed)
    out = {"Position": rng.random((n, 3)) * BOX, "Mass": np.broadcast_to(np.asarray(mass, float), (n,)).copy()}
    if vel:
        out["Velocity"] = rng.normal(0, 300, (n, 3))
    return out


# ---------------------------------------------------------------------------------------------------------------
def test_mean_occupations_match_zheng07_formulas():
    m = np.logspace(10, 16, 301)
    custom = {"logMmin": 12.5, "sigma_logM": 0.4, "logM0": 12.0, "logM1": 13.8, "alpha": 0.9}
    for p in (MR20, custom):
        np.testing.assert_allclose(mean_ncen(m, p), ncen_ref(m, p), rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(mean_nsat(m, p), nsat_ref(m, p), rtol=1e-13, atol=0)
        np.testing.assert_allclose(mean_nsat(m, p, modulate_with_cenocc=True), nsat_ref(m, p) * ncen_ref(m, p),
                                   rtol=1e-13)
    assert np.all(mean_nsat(m[m <= 10**MR20["logM0"]], MR20) == 0)
    assert get_preset("zheng07_mr20") == HODParams(**MR20)  # halotools' default threshold
    assert mean_ncen(torch.tensor([10**12.02]), "zheng07_mr20")[0] == pytest.approx(0.5)


def test_halotools_mean_occupations_agree():
    ht = pytest.importorskip("halotools.empirical_models")
    m = np.logspace(10.5, 15.5, 200)
    cens, sats = ht.Zheng07Cens(threshold=-20), ht.Zheng07Sats(threshold=-20)
    p = {k: v for k, v in {**cens.param_dict, **sats.param_dict}.items() if k in MR20}
    np.testing.assert_allclose(mean_ncen(m, p), cens.mean_occupation(prim_haloprop=m), rtol=1e-12)
    np.testing.assert_allclose(mean_nsat(m, p), sats.mean_occupation(prim_haloprop=m), rtol=1e-12)
    for t, name in [(-19, "zheng07_mr19"), (-21.5, "zheng07_mr21p5")]:
        ref = {**ht.Zheng07Cens(threshold=t).param_dict, **ht.Zheng07Sats(threshold=t).param_dict}
        assert all(getattr(get_preset(name), k) == pytest.approx(ref[k]) for k in MR20)


def test_populated_occupations_in_mass_bins_match_within_poisson():
    rng = np.random.default_rng(11)
    n = 40000
    mass = 10 ** rng.uniform(11.0, 15.0, n)
    halos = {"Position": rng.random((n, 3)) * BOX, "Mass": mass}
    gal = populate_halos(halos, "zheng07_mr20", seed=5, cosmology=OM, box_size=BOX)
    ncen = np.bincount(gal.halo_index[gal.is_central], minlength=n)
    nsat = np.bincount(gal.halo_index[~gal.is_central], minlength=n)
    assert ncen.max() == 1 and gal.velocity is None
    pc, ls = ncen_ref(mass, MR20), nsat_ref(mass, MR20)
    edges = np.arange(11.0, 15.01, 0.25)
    which = np.digitize(np.log10(mass), edges) - 1
    pulls = []
    for b in range(len(edges) - 1):
        sel = which == b
        var_c = np.sum(pc[sel] * (1 - pc[sel]))
        if var_c > 1:
            pulls.append((ncen[sel].sum() - pc[sel].sum()) / math.sqrt(var_c))
        if ls[sel].sum() > 1:
            pulls.append((nsat[sel].sum() - ls[sel].sum()) / math.sqrt(ls[sel].sum()))
    pulls = np.array(pulls)
    assert len(pulls) >= 20
    assert np.abs(pulls).max() < 4.0
    assert abs(np.sum(pulls**2) - len(pulls)) < 5 * math.sqrt(2 * len(pulls))  # chi^2 consistent with its dof


def test_satellite_counts_are_poisson():
    n, m = 6000, 1e14
    gal = populate_halos(halos_at(m, n, vel=False), MR20, seed=2, cosmology=OM, box_size=BOX)
    nsat = np.bincount(gal.halo_index[~gal.is_central], minlength=n)
    lam = nsat_ref(np.array([m]), MR20)[0]
    assert abs(nsat.mean() - lam) < 4 * math.sqrt(lam / n)
    ratio = nsat.var(ddof=1) / nsat.mean()  # Fano factor: 1 for Poisson
    assert abs(ratio - 1) < 4 * math.sqrt((2 * lam**2 + lam) / (n * lam**2))
    # the count distribution itself, against Poisson(lam) by chi^2 over well-populated counts
    k = np.arange(nsat.max() + 1)
    observed, expected = np.bincount(nsat), n * stats.poisson.pmf(k, lam)
    keep = expected > 20
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3


@pytest.mark.parametrize("concentration", [5.0, "duffy08"])
def test_satellite_radial_profile_is_nfw(concentration):
    m, n = 3e14, 2000
    halos = halos_at(m, n, seed=4)
    halos["Position"][: n // 2] = halos["Position"][: n // 2] * 0.002  # half the halos sit at the box corner
    gal = populate_halos(halos, MR20, seed=9, cosmology=OM, box_size=BOX, concentration=concentration)
    sat = ~gal.is_central
    d = gal.position[sat] - halos["Position"][gal.halo_index[sat]]
    r = np.linalg.norm(d - BOX * np.round(d / BOX), axis=1)
    radius = (3 * m / (4 * math.pi * 200 * rho_mean_astropy(OM))) ** (1 / 3)  # comoving R_200m, Mpc/h
    assert r200m(m, OM) == pytest.approx(radius, rel=2e-5)
    c = concentration if isinstance(concentration, float) else 10.14 * (m / 2e12) ** -0.081
    assert r.size > 10000 and r.max() <= radius * (1 + 1e-9)
    result = stats.kstest(r / radius, lambda x: nfw_cdf(np.clip(x, 0, 1), c))
    assert result.pvalue > 1e-3
    assert np.all((gal.position >= 0) & (gal.position < BOX))


def test_velocities_and_central_phase_space():
    from astropy import constants as const
    from astropy import units as u

    m, n, z = 1e14, 3000, 0.5
    halos = halos_at(m, n, seed=6)
    gal = populate_halos(halos, MR20, seed=3, cosmology=OM, box_size=BOX, redshift=z)
    cen, sat = gal.is_central, ~gal.is_central
    np.testing.assert_array_equal(gal.position[cen], halos["Position"][gal.halo_index[cen]])
    np.testing.assert_array_equal(gal.velocity[cen], halos["Velocity"][gal.halo_index[cen]])
    dv = gal.velocity[sat] - halos["Velocity"][gal.halo_index[sat]]
    g = const.G.to(u.Mpc * u.km**2 / u.s**2 / u.Msun).value
    r_phys = (3 * m / (4 * math.pi * 200 * rho_mean_astropy(OM))) ** (1 / 3) / (1 + z)
    sigma = math.sqrt(g * m / (2 * r_phys))  # h factors of M and R cancel
    nsat = dv.shape[0]
    assert np.all(np.abs(dv.mean(axis=0)) < 4 * sigma / math.sqrt(nsat))
    np.testing.assert_allclose(dv.std(axis=0), sigma, rtol=4 / math.sqrt(2 * nsat))


def test_deterministic_by_seed_and_accepts_fof_halos():
    rng = np.random.default_rng(0)
    centres = rng.random((30, 3)) * 100.0
    pos = np.concatenate([c + rng.normal(0, 0.05, (rng.integers(20, 400), 3)) for c in centres])
    halos = friends_of_friends(pos, 100.0, min_members=20, particle_mass=1e12, velocities=np.zeros_like(pos))
    assert len(halos) == 30
    a = populate_halos(halos, MR20, seed=1, cosmology=OM)
    b = populate_halos(halos, MR20, seed=1, cosmology=OM)
    c = populate_halos(halos, MR20, seed=2, cosmology=OM)
    for field in ("position", "velocity", "is_central", "halo_index"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.box_size == 100.0 and len(a) > 0
    assert len(a) != len(c) or not np.array_equal(a.position, c.position)
    t = populate_halos({k: torch.as_tensor(v) for k, v in halos_at(1e14, 50).items()}, MR20, 1, cosmology=OM,
                       box_size=BOX)
    np.testing.assert_array_equal(t.position, populate_halos(halos_at(1e14, 50), MR20, 1, cosmology=OM,
                                                             box_size=BOX).position)


def test_nfw_inverse_and_duffy():
    p = np.concatenate([[0.0, 1e-15, 1e-9, 1e-8, 1e-6], np.linspace(0, 1, 201)])
    for c in (1.0, 4.0, 15.0):
        u = nfw_inverse_mass_fraction(p, c)
        np.testing.assert_allclose(nfw_cdf(u, c), p, rtol=1e-7, atol=1e-14)
        assert np.all(np.diff(u[5:]) > 0) and u[0] == 0.0 and u[-1] == pytest.approx(1.0)
    assert concentration_duffy08(2e12) == pytest.approx(10.14)
    assert concentration_duffy08(2e14, 1.0) == pytest.approx(10.14 * 100**-0.081 * 2**-1.01)
    assert set(PRESETS) >= {"zheng07_mr18", "zheng07_mr20", "zheng07_mr22"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"params": {**MR20, "sigma_logM": 0.0}},
        {"params": "zheng07_mr99"},
        {"params": {"logMmin": 12.0}},
        {"seed": -1},
        {"concentration": "bullock01"},
        {"concentration": -3.0},
        {"box_size": None},
        {"cosmology": -0.3},
        {"halos": {"Position": np.zeros((3, 3)), "Mass": -np.ones(3)}},
    ],
)
def test_bad_input_raises(kwargs):
    args = {"halos": {"Position": np.zeros((3, 3)), "Mass": np.full(3, 1e13)}, "params": MR20, "seed": 0,
            "cosmology": OM, "box_size": BOX} | kwargs
    with pytest.raises(ValueError):
        populate_halos(**args)
