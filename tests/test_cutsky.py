"""Cut-sky catalogues: sky coordinates and redshifts against astropy, box replication, footprints, randoms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import cartesian_to_spherical
from astropy.cosmology import z_at_value
from scipy import integrate, stats

from emulator.mocks.cutsky import box_to_sky, random_catalog, replicas
from emulator.mocks.distance import C_KMS, DistanceRedshift
from emulator.mocks.footprint import footprint_fraction, in_footprint
from emulator.mocks.rsd import velocity_to_displacement
from emulator.core.cosmology import get_preset

COSMO = get_preset("planck18")
ASTRO = COSMO.to_astropy()
H = COSMO.h


def chi_astropy(z) -> np.ndarray:
    """Comoving distance in Mpc/h straight from astropy."""
    return ASTRO.comoving_distance(z).to_value(u.Mpc) * H


def z_astropy(chi: float) -> float:
    return float(z_at_value(ASTRO.comoving_distance, (chi / H) * u.Mpc, zmax=5.0, ztol=1e-12))


def sky_astropy(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d, lat, lon = cartesian_to_spherical(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    return np.asarray(d), np.asarray(lon.to_value(u.deg)), np.asarray(lat.to_value(u.deg))


# ---------------------------------------------------------------------------------------------------------------
def test_distance_table_against_astropy_and_round_trip():
    table = DistanceRedshift(COSMO, 2.0)
    z = np.random.default_rng(0).uniform(0.0, 2.0, 2000)
    ref = chi_astropy(z)
    np.testing.assert_allclose(table.distance(z), ref, rtol=1e-9)
    chi = np.random.default_rng(1).uniform(1.0, chi_astropy(2.0), 2000)
    back = table.distance(table.redshift(chi))
    assert np.max(np.abs(back / chi - 1)) < 1e-6
    for c in (10.0, 1000.0, 3000.0):
        assert float(table.redshift(c)) == pytest.approx(z_astropy(c), rel=1e-8)
    with pytest.raises(ValueError, match="z must lie"):
        table.distance(5.0)


def test_axis_particles_sky_coordinates_and_redshifts():
    box = 1000.0
    obs = np.full(3, box / 2)
    d = 300.0
    axes = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
    pos = obs + d * axes
    vel = np.zeros_like(pos)
    vel[0] = [600.0, 0, 0]  # receding along +x: v_los = +600
    vel[1] = [600.0, 0, 0]  # transverse for the +y particle: v_los = 0
    vel[2] = [600.0, 0, 0]  # -x particle moving towards the observer: v_los = -600
    vel[4] = [0, 0, -250.0]  # +z particle approaching: v_los = -250
    cat = box_to_sky(pos, vel, box, COSMO, (0.05, 0.2), snapshot_redshift=0.1)
    assert cat.size == 6
    order = np.argsort(cat["INDEX"])
    ra, dec, z, zc = (cat[k][order] for k in ("RA", "DEC", "Z", "Z_COSMO"))
    np.testing.assert_allclose(cat["DISTANCE_COSMO"][order], d, rtol=1e-12)  # real space: |r|
    np.testing.assert_allclose(cat["DISTANCE"][order], chi_astropy(cat["Z"][order]), rtol=1e-8)  # chi(Z observed)
    assert cat.attrs["DISTCONV"].startswith("DISTANCE=chi(Z) observed")
    np.testing.assert_allclose(ra[:4], [0.0, 90.0, 180.0, 270.0], atol=1e-12)
    np.testing.assert_allclose(dec, [0, 0, 0, 0, 90.0, -90.0], atol=1e-12)
    np.testing.assert_array_equal(cat["REPLICA"], 0)
    z_true = z_astropy(d)
    np.testing.assert_allclose(zc, z_true, rtol=1e-8)
    vlos = np.array([600.0, 0.0, -600.0, 0.0, -250.0, 0.0])
    np.testing.assert_allclose(z, (1 + z_true) * (1 + vlos / C_KMS) - 1, rtol=1e-8)
    np.testing.assert_allclose(cat["VLOS"][order], vlos, atol=1e-9)
    assert cat.attrs["lightcone"].startswith("single-snapshot") and cat.attrs["redshift"] == 0.1
    # consistency with the plane-parallel mapping of emulator.mocks.rsd: chi(Z_obs) - chi(Z_cos) equals
    # v_los (1+z)/(100 E(z)) to first order in v/c
    table = DistanceRedshift(COSMO, 0.3)
    shift = table.distance(z[0]) - d
    assert shift == pytest.approx(600 * velocity_to_displacement(z_true, COSMO), rel=5e-3)
    # without RSD the observed redshift is the cosmological one
    cat0 = box_to_sky(pos, None, box, COSMO, (0.05, 0.2), rsd=False)
    np.testing.assert_allclose(cat0["Z"], z_true, rtol=1e-8)
    np.testing.assert_array_equal(cat0["VLOS"], 0.0)


def test_ra_stays_below_360_for_tiny_negative_angles():
    box = 1000.0
    obs = np.full(3, box / 2)
    pos = obs + np.array([[300.0, -1e-13, 0.0]])
    cat = box_to_sky(pos, None, box, COSMO, (0.05, 0.2), rsd=False)
    assert cat.size == 1 and 0.0 <= cat["RA"][0] < 360.0
    assert in_footprint(cat["RA"], cat["DEC"], {"ra": (350.0, 10.0), "dec": (-5.0, 5.0)}).all()


def test_redshift_cut_is_on_observed_redshift():
    box = 2000.0
    obs = np.full(3, box / 2)
    zmax = 0.1
    d_in, d_out = chi_astropy(zmax - 5e-4), chi_astropy(zmax + 5e-4)
    pos = obs + np.array([[d_in, 0, 0], [-d_out, 0, 0], [0, d_in, 0]])
    # particle 0 inside in real space but receding fast enough to leave; particle 1 outside but approaching
    vel = np.array([[900.0, 0, 0], [900.0, 0, 0], [0.0, 0, 0]])
    cat = box_to_sky(pos, vel, box, COSMO, (0.01, zmax))
    assert sorted(cat["INDEX"].tolist()) == [1, 2]
    assert np.all(cat["Z"] < zmax) and cat["Z_COSMO"][cat["INDEX"] == 1][0] > zmax


def test_uniform_box_count_in_shell_binomial():
    """Objects in a shell and footprint = N V_shell f_sky / L^3 within binomial scatter (no replication)."""
    box, npart = 1000.0, 200_000
    rng = np.random.default_rng(3)
    pos = rng.uniform(0, box, (npart, 3))
    zr = (0.05, 0.15)
    fp = {"ra": (300.0, 60.0), "dec": (-30.0, 45.0)}
    cat = box_to_sky(pos, None, box, COSMO, zr, footprint=fp, rsd=False)
    c0, c1 = chi_astropy(zr[0]), chi_astropy(zr[1])
    assert c1 < box / 2  # the whole shell lies in the central box
    fsky = math.radians(120.0) * (math.sin(math.radians(45)) - math.sin(math.radians(-30))) / (4 * math.pi)
    p = 4 * math.pi / 3 * (c1**3 - c0**3) * fsky / box**3
    pull = (cat.size - npart * p) / math.sqrt(npart * p * (1 - p))
    print(f"count {cat.size} expected {npart * p:.1f} pull {pull:.2f}")
    assert abs(pull) < 4
    assert np.all(in_footprint(cat["RA"], cat["DEC"], fp))
    assert cat.attrs["n_replicas"] == 1 or np.all(cat["REPLICA"] == 0)


def test_replication_covers_shell_exactly_once_lattice():
    """A replicated lattice is the infinite lattice: compare with brute-force enumeration, point by point."""
    box, ngrid = 100.0, 10
    cell = box / ngrid
    offset = np.array([0.37, 0.61, 0.13]) * cell
    g = np.arange(ngrid) * cell
    pos = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + offset
    obs = np.array([12.3, 45.6, 178.9])  # any point, even outside the box
    zr = (0.04, 0.085)
    fp = {"ra": (200.0, 20.0), "dec": (-60.0, 75.0)}
    cat = box_to_sky(pos, None, box, COSMO, zr, observer=obs, footprint=fp, rsd=False)
    c0, c1 = chi_astropy(zr[0]), chi_astropy(zr[1])
    assert c1 > 2 * box  # needs replicas in every direction

    # brute force over the infinite lattice
    lo = np.floor((obs - c1 - offset) / cell).astype(int)
    hi = np.ceil((obs + c1 - offset) / cell).astype(int)
    axes = [np.arange(a, b + 1) * cell + o for a, b, o in zip(lo, hi, offset)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3) - obs
    dist, ra, dec = sky_astropy(pts)
    inside = (dist >= c0) & (dist < c1) & in_footprint(ra, dec, fp)
    assert cat.size == int(inside.sum()) > 1000
    np.testing.assert_allclose(np.sort(cat["DISTANCE"]), np.sort(dist[inside]), rtol=1e-12)
    # each (particle, replica) at most once, hence every placed position distinct (the lattice's symmetry makes
    # many distances equal, so distinct distances are checked with random particles below)
    pairs = np.column_stack([cat["INDEX"], cat["REPLICA"]])
    assert np.unique(pairs, axis=0).shape[0] == cat.size
    placed = pos[cat["INDEX"]] + cat["REPLICA"] * box - obs
    assert np.unique(np.round(placed, 6), axis=0).shape[0] == cat.size
    # INDEX and REPLICA reproduce the placed position; its spherical coordinates match astropy's
    d2, ra2, dec2 = sky_astropy(placed)
    np.testing.assert_allclose(d2, cat["DISTANCE"], rtol=1e-12)
    np.testing.assert_allclose(dec2, cat["DEC"], atol=1e-9)
    dra = (ra2 - cat["RA"] + 180.0) % 360.0 - 180.0
    assert np.abs(dra).max() < 1e-9
    # the replica list contains every cube that meets the shell and none that does not
    reps = replicas(box, obs, c0, c1)
    used = {tuple(r) for r in cat["REPLICA"]}
    assert used <= {tuple(r) for r in reps}


def test_replicated_random_particles_have_distinct_distances():
    box = 100.0
    pos = np.random.default_rng(9).uniform(0, box, (5000, 3))
    vel = np.random.default_rng(10).normal(0, 300, (5000, 3))
    cat = box_to_sky(pos, vel, box, COSMO, (0.04, 0.085))
    assert cat.attrs["n_replicas"] > 100 and cat.size > 200_000
    assert np.unique(cat["DISTANCE"]).size == cat.size
    # expected number: each point of space is covered exactly once, so <count> = N V_shell / L^3 (RSD moves
    # objects across the shell edges symmetrically); over 30 seeds the count scatters by 0.07% about it
    c0, c1 = chi_astropy(0.04), chi_astropy(0.085)
    expected = pos.shape[0] * 4 * math.pi / 3 * (c1**3 - c0**3) / box**3
    assert cat.size == pytest.approx(expected, rel=0.005)


def test_footprint_fraction_formula_and_monte_carlo():
    fp = {"ra": (350.0, 10.0), "dec": (-20.0, 30.0)}
    # independent: integrate cos(dec) over the rectangle
    area, _ = integrate.dblquad(lambda dec, ra: math.cos(dec), 0, math.radians(20), math.radians(-20), math.radians(30))
    assert footprint_fraction(fp) == pytest.approx(area / (4 * math.pi), rel=1e-10)
    assert footprint_fraction({"ra": (-10, 10), "dec": (-20, 30)}) == pytest.approx(footprint_fraction(fp), rel=1e-14)
    assert footprint_fraction(None) == 1.0
    assert footprint_fraction({"ra": (0, 360), "dec": (-90, 90)}) == pytest.approx(1.0, rel=1e-15)
    # isotropic directions
    rng = np.random.default_rng(5)
    v = rng.normal(size=(400_000, 3))
    _, ra, dec = sky_astropy(v)
    inside = in_footprint(ra, dec, fp)
    p = footprint_fraction(fp)
    pull = (inside.sum() - v.shape[0] * p) / math.sqrt(v.shape[0] * p * (1 - p))
    assert abs(pull) < 4


@pytest.mark.parametrize(
    "footprint, match",
    [
        ({"ra": (0, 10)}, "keys"),
        ({"ra": (0, 10), "dec": (10, 0)}, "dec"),
        ({"ra": (0, 10), "dec": (-100, 0)}, "dec"),
        ({"ra": (5, 5), "dec": (0, 10)}, "width"),
        ({"ra": "abc", "dec": (0, 10)}, "ra"),
    ],
)
def test_bad_footprints(footprint, match):
    with pytest.raises(ValueError, match=match):
        footprint_fraction(footprint)


def test_randoms_uniform_on_sky_and_in_volume():
    fp = {"ra": (330.0, 30.0), "dec": (-10.0, 50.0)}
    zr = (0.2, 0.6)
    r = random_catalog(100_000, redshift_range=zr, cosmology=COSMO, footprint=fp, seed=11)
    assert r.size == 100_000 and r.attrs["radial_method"] == "uniform-volume"
    assert np.all(in_footprint(r["RA"], r["DEC"], fp))
    assert np.all((r["Z"] >= zr[0]) & (r["Z"] < zr[1]))
    np.testing.assert_allclose(r["DISTANCE"], chi_astropy(r["Z"]), rtol=1e-9)
    c0, c1 = chi_astropy(zr[0]), chi_astropy(zr[1])
    ks = stats.kstest(r["DISTANCE"], lambda c: (np.clip(c, c0, c1) ** 3 - c0**3) / (c1**3 - c0**3))
    assert ks.pvalue > 0.01, ks
    # uniform on the sphere inside the footprint: sin(dec) and RA uniform
    s0, s1 = math.sin(math.radians(-10)), math.sin(math.radians(50))
    assert stats.kstest(np.sin(np.radians(r["DEC"])), stats.uniform(s0, s1 - s0).cdf).pvalue > 0.01
    assert stats.kstest((r["RA"] - 330.0) % 360.0, stats.uniform(0, 60).cdf).pvalue > 0.01
    # area fraction: full-sky randoms falling in the footprint
    full = random_catalog(200_000, redshift_range=zr, cosmology=COSMO, seed=12)
    p = footprint_fraction(fp)
    k = in_footprint(full["RA"], full["DEC"], fp).sum()
    assert abs(k - full.size * p) < 4 * math.sqrt(full.size * p * (1 - p))
    # reproducible and seed-dependent
    again = random_catalog(100_000, redshift_range=zr, cosmology=COSMO, footprint=fp, seed=11)
    np.testing.assert_array_equal(again["RA"], r["RA"])
    np.testing.assert_array_equal(again["Z"], r["Z"])
    other = random_catalog(100_000, redshift_range=zr, cosmology=COSMO, footprint=fp, seed=13)
    assert not np.array_equal(other["RA"], r["RA"])


def test_shuffled_randoms_follow_data_nz():
    rng = np.random.default_rng(8)
    data_z = np.concatenate([rng.normal(0.4, 0.05, 5000), [0.05, 0.95, np.nan]])  # a few out of range
    zr = (0.2, 0.6)
    in_range = data_z[(data_z >= zr[0]) & (data_z < zr[1])]
    r = random_catalog(redshift_range=zr, cosmology=COSMO, nz=data_z, density_factor=10, seed=4)
    assert r.size == 10 * in_range.size and r.attrs["radial_method"] == "shuffled"
    assert np.all(np.isin(r["Z"], in_range))
    assert stats.ks_2samp(r["Z"], in_range).pvalue > 0.01
    np.testing.assert_allclose(r["DISTANCE"], chi_astropy(r["Z"]), rtol=1e-9)
    n2 = random_catalog(redshift_range=zr, cosmology=COSMO, density_factor=2.5, n_data=1000, seed=4)
    assert n2.size == 2500


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"redshift_range": (0.5, 0.2)}, "redshift_range"),
        ({"redshift_range": (-0.1, 0.2)}, "redshift_range"),
        ({"velocity": None}, "velocity"),
        ({"observer": [1.0, 2.0]}, "observer"),
        ({"position": np.full((4, 3), np.inf)}, "position"),
        ({"box_size": -1.0}, "box_size"),
    ],
)
def test_box_to_sky_bad_inputs(kwargs, match):
    args = dict(position=np.ones((4, 3)), velocity=np.zeros((4, 3)), box_size=100.0, cosmology=COSMO,
                redshift_range=(0.01, 0.1))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        box_to_sky(**args)


def test_random_catalog_bad_inputs():
    with pytest.raises(ValueError, match="exactly one"):
        random_catalog(10, redshift_range=(0.1, 0.2), cosmology=COSMO, density_factor=2.0, n_data=5)
    with pytest.raises(ValueError, match="n_data"):
        random_catalog(redshift_range=(0.1, 0.2), cosmology=COSMO, density_factor=2.0)
    with pytest.raises(ValueError, match="nz"):
        random_catalog(10, redshift_range=(0.1, 0.2), cosmology=COSMO, nz=[0.5, 0.7])
    with pytest.raises(ValueError, match="seed"):
        random_catalog(10, redshift_range=(0.1, 0.2), cosmology=COSMO, seed=-1)
