"""Survey selection on a Poisson box: a HEALPix completeness mask and a target n(z) are met within Poisson noise,
randoms share footprint and n(z), weights follow their formulas, and bad inputs fail with one line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from scipy import stats

from emulator.core.cosmology import Cosmology
from emulator.mocks.cutsky import box_to_sky
from emulator.mocks.mask import load_footprint
from emulator.mocks.nz import TargetNZ, read_nz
from emulator.mocks.survey import make_randoms, select_survey

import healpy as hp  # a dependency: a missing install must fail, not skip

COSMO = Cosmology(Omega_m=0.31, Omega_b=0.049, h=0.68, n_s=0.965, sigma8=0.81)
ASTRO = FlatLambdaCDM(H0=68.0, Om0=0.31)
ZR = (0.02, 0.06)
BOX, NPTS = 200.0, 100_000  # n = 0.0125 (h/Mpc)^3


def chi(z):
    return ASTRO.comoving_distance(z).to_value(u.Mpc) * 0.68


def _mask(nside=16):
    """Completeness 1 at dec > 20, 0.6 at 0 < dec <= 20, 0 south of the equator (pixel centres)."""
    _, dec = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    return np.where(dec > 20, 1.0, np.where(dec > 0, 0.6, 0.0))


def _sky(seed=1, rsd=False):
    rng = np.random.default_rng(seed)
    pos = rng.random((NPTS, 3)) * BOX
    vel = rng.normal(0, 300.0, (NPTS, 3))
    return box_to_sky(pos, vel, BOX, COSMO, ZR, rsd=rsd)


TARGET = TargetNZ([0.02, 0.04, 0.06], [0.008, 0.006, 0.004], source="test")


def test_target_nz_and_mask_completeness_are_met_within_poisson_noise():
    hmap = _mask()
    cs = {"redshift_range": ZR, "footprint": {"healpix": hmap}, "nz": TARGET, "nz_dz": 0.005, "fkp_p0": 5e3}
    data, nzf, text = select_survey(_sky(rsd=True), {}, NPTS, cs, COSMO, selection_seed=3)
    fp = load_footprint(cs["footprint"])
    # expected counts per bin: target x completeness-weighted volume (independent quadrature with astropy)
    rows = np.loadtxt(text.splitlines())
    assert rows.shape == (8, 6) and rows[:, 4].sum() == data.size
    for zmid, zlo, zhi, n, count, vol in rows:
        z = np.linspace(zlo, zhi, 201)
        dvdz = ASTRO.differential_comoving_volume(z).to_value(u.Mpc**3 / u.sr) * 0.68**3 * 4 * math.pi
        expect = np.trapezoid(TARGET(z) * dvdz, z) * fp.effective_fraction
        assert abs(count - expect) < 4 * math.sqrt(expect), (zmid, count, expect)
        assert vol == pytest.approx(4 * math.pi / 3 * (chi(zhi) ** 3 - chi(zlo) ** 3) * fp.effective_fraction,
                                    rel=1e-6)
    # the mask: nothing where the completeness is 0, 0.6 relative density in the partial band (binomial)
    comp = hmap[hp.ang2pix(16, data["RA"], data["DEC"], lonlat=True)]
    assert comp.min() > 0
    n_full, n_part = (comp == 1.0).sum(), (comp == 0.6).sum()
    a_full, a_part = (hmap == 1.0).sum(), (hmap == 0.6).sum()
    frac = 0.6 * a_part / (0.6 * a_part + a_full)
    assert abs(n_part / (n_full + n_part) - frac) < 4 * math.sqrt(frac * (1 - frac) / (n_full + n_part))
    # columns: NZ is the target at Z, FKP weights, DISTANCE convention, status bits, the stored random
    np.testing.assert_allclose(data["NZ"], TARGET(data["Z"]), rtol=1e-12)
    np.testing.assert_allclose(data["WEIGHT_FKP"], 1 / (1 + data["NZ"] * 5e3), rtol=1e-12)
    np.testing.assert_allclose(data["DISTANCE"], chi(data["Z"]), rtol=1e-7)
    np.testing.assert_allclose(data["DISTANCE_COSMO"], chi(data["Z_COSMO"]), rtol=1e-7)
    assert np.all(data["STATUS"] == 7) and np.all(data["SEL_RANDOM"] < comp)
    assert np.unique(data["ID"]).size == data.size


@pytest.mark.parametrize("method", ["nz", "shuffle"])
def test_randoms_share_footprint_and_nz(method):
    hmap = _mask()
    cs = {"redshift_range": ZR, "footprint": {"healpix": hmap}, "nz": TARGET, "randoms_z": method}
    data, nzf, _ = select_survey(_sky(), {}, NPTS, cs, COSMO, selection_seed=5)
    rand = make_randoms(0, 10 * data.size, data["Z"], nzf, cs, COSMO, randoms_seed=11)
    assert stats.ks_2samp(data["Z"], rand["Z"]).pvalue > 1e-3
    comp = hmap[hp.ang2pix(16, rand["RA"], rand["DEC"], lonlat=True)]
    assert comp.min() > 0
    a_full, a_part = (hmap == 1.0).sum(), (hmap == 0.6).sum()
    frac = 0.6 * a_part / (0.6 * a_part + a_full)
    got = (comp == 0.6).mean()
    assert abs(got - frac) < 4 * math.sqrt(frac * (1 - frac) / rand.size)
    np.testing.assert_allclose(rand["DISTANCE"], chi(rand["Z"]), rtol=1e-7)
    np.testing.assert_array_equal(rand["DISTANCE_COSMO"], rand["DISTANCE"])
    np.testing.assert_allclose(rand["NZ"], TARGET(rand["Z"]), rtol=1e-12)
    assert set(data) >= set(rand) and rand.attrs["SEED_RAN"] == 11 and rand.attrs["RANZMETH"] == method
    other = make_randoms(1, 1000, data["Z"], nzf, cs, COSMO, randoms_seed=11)  # file 1: its own seed
    assert other.attrs["SEED_RAN"] != 11 and not np.array_equal(other["RA"], rand["RA"][:1000])


def test_randoms_fill_one_pixel_uniformly():
    nside, pix = 8, 300
    hmap = np.zeros(hp.nside2npix(nside))
    hmap[pix] = 1.0
    fp = load_footprint({"healpix": hmap})
    ra, dec = fp.sample(20000, np.random.default_rng(0))
    assert np.all(hp.ang2pix(nside, ra, dec, lonlat=True) == pix)
    # the mean direction of points uniform in a pixel is its centre to within the noise of 20000 points
    vec = np.stack(hp.ang2vec(ra, dec, lonlat=True), 0).reshape(-1, 3).mean(0)
    centre = np.asarray(hp.pix2vec(nside, pix))
    assert np.degrees(np.arccos(np.dot(vec / np.linalg.norm(vec), centre))) < 0.05
    assert fp.area_deg2 == pytest.approx(hp.nside2pixarea(nside, degrees=True))


def test_fits_map_any_nside_and_ordering(tmp_path):
    nside = 4
    npix = hp.nside2npix(nside)
    ring = np.where(np.arange(npix) % 3 == 0, 1.0, 0.25)
    path = tmp_path / "mask.fits"
    hp.write_map(str(path), hp.reorder(ring, r2n=True), nest=True, dtype=np.float64)
    fp = load_footprint({"healpix": str(path)})
    ra, dec = hp.pix2ang(nside, np.arange(npix), lonlat=True)
    np.testing.assert_array_equal(fp.completeness(ra, dec), ring)
    assert fp.sky_fraction == 1.0 and fp.effective_fraction == pytest.approx(ring.mean())


def test_polygon_footprint_area():
    fp = load_footprint({"polygons": [[[0, 0], [90, 0], [0, 90]]], "nside": 256})  # one octant: 4 pi / 8
    assert fp.sky_fraction == pytest.approx(1 / 8, abs=2e-3)
    assert fp.completeness([45.0, 200.0], [30.0, 30.0]).tolist() == [1.0, 0.0]


def test_too_sparse_mock_names_the_redshifts():
    dense = TargetNZ([0.02, 0.045, 0.05, 0.06], [0.005, 0.005, 0.05, 0.05], source="dense.txt")
    with pytest.raises(ValueError, match=r"too sparse .*dense.txt.* z in \[0.04, 0.05\) .*, \[0.05, 0.06\) ") as exc:
        select_survey(_sky(), {}, NPTS, {"redshift_range": ZR, "nz": dense}, COSMO, selection_seed=1)
    assert "[0.02" not in str(exc.value) and "[0.03" not in str(exc.value)  # n = 0.0125 > 0.005 there


def test_bad_survey_inputs(tmp_path):
    with pytest.raises(ValueError, match="completeness must lie in"):
        load_footprint({"healpix": np.full(12, 2.0)})
    with pytest.raises(ValueError, match="not a HEALPix map"):
        load_footprint({"healpix": np.ones(13)})
    with pytest.raises(ValueError, match="does not exist"):
        load_footprint({"healpix": str(tmp_path / "none.fits")})
    (tmp_path / "nz.txt").write_text("0.1 1e-4 3\n0.2 1e-4 3\n")
    with pytest.raises(ValueError, match="two columns"):
        read_nz(tmp_path / "nz.txt")
    (tmp_path / "nz.txt").write_text("0.2 1e-4\n0.1 1e-4\n")
    with pytest.raises(ValueError, match="strictly increasing"):
        read_nz(tmp_path / "nz.txt")


def test_ids_are_unique_and_an_overflowing_packing_is_refused():
    from emulator.mocks.survey import _ids

    rng = np.random.default_rng(0)
    n_box = 1000
    index = rng.integers(0, n_box, 5000)
    replica = rng.integers(-3, 4, (5000, 3))
    snapshot = rng.integers(0, 5, 5000)
    ids = _ids(index, replica, n_box, snapshot)
    key = {(int(i), *map(int, r), int(s)) for i, r, s in zip(index, replica, snapshot)}
    assert len(np.unique(ids)) == len(key)  # one ID per (row, replica, snapshot), none shared
    assert ids.min() >= 0
    # 2^27 objects per box (512^3 particles) and a ladder of 64 snapshots use IDs up to exactly 2^63 - 1 ...
    big = 2**27
    top = _ids(np.array([big - 1]), np.array([[511, 511, 511]]), big, np.array([63]))
    assert top[0] == np.iinfo(np.int64).max
    # ... one object more, or a 65th snapshot, would wrap around: refused
    with pytest.raises(ValueError, match="overflow int64"):
        _ids(np.array([0]), np.array([[0, 0, 0]]), big + 1, np.array([63]))
    with pytest.raises(ValueError, match="overflow int64"):
        _ids(np.array([0]), np.array([[0, 0, 0]]), big, np.array([64]))
    with pytest.raises(ValueError, match="replica offsets"):
        _ids(np.array([0]), np.array([[512, 0, 0]]), 10)
