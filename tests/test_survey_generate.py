"""The documented survey command (DESI-like LRG mock + randoms in FITS for a HEALPix mask and an n(z) file), at
64 Mpc/h: files, columns, header keys, the DISTANCE convention, independent HOD and randoms seeds, and the
evolving halo lightcone through ``generate_mocks``."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest

from emulator.api import generate_mocks
from emulator.cli import main
from emulator.mocks.io import read_catalog

import healpy as hp  # a dependency: a missing install must fail, not skip
ROOT = Path(__file__).resolve().parent.parent
SURVEY = ["generate", "--preset", "planck18", "--redshift", "0.1", "--box-size", "64", "--seed", "1",
          "--tracer", "galaxies", "--hod", "lrg_desi_like", "--min-members", "10",
          "--cutsky-zrange", "0.05", "0.15", "--footprint-mask", str(ROOT / "configs/survey/mask_ngc_nside16.fits"),
          "--nz-file", str(ROOT / "configs/survey/lrg_like_nz.txt"), "--randoms-factor", "20", "--format", "fits",
          "--no-progress"]
HEADER_KEYS = ("OMEGA_M", "OMEGA_B", "HUBBLE", "N_S", "SIGMA8", "SEED_IC", "SEED_HOD", "SEED_RAN", "SEED_SEL",
               "ZSNAP", "OBS_X", "OBS_Y", "OBS_Z", "ZMIN", "ZMAX", "FOOTPRNT", "NZSOURCE", "MODELSHA", "CODEVER",
               "DISTCONV", "FKP_P0", "NREPLIC", "AREA")


def _run(tmp_path, name, *extra):
    assert main([*SURVEY, "--out", str(tmp_path / name), *extra]) == 0
    return tmp_path / name


def test_documented_survey_command(tmp_path, one_thread):
    from astropy.io import fits

    out = _run(tmp_path, "a")
    data = read_catalog(out / "mock_000001.fits", "data")
    rand = read_catalog(out / "mock_000001_randoms_0.fits", "randoms")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "mock_000001.fits", "mock_000001_nz.txt", "mock_000001_randoms_0.fits"]
    for col in ("RA", "DEC", "Z", "Z_COSMO", "DISTANCE", "DISTANCE_COSMO", "NZ", "WEIGHT", "WEIGHT_FKP", "STATUS",
                "SEL_RANDOM", "ID", "Central", "HaloIndex", "HaloMass"):
        assert col in data, col
    assert set(rand) <= set(data) and rand.size == round(20 * data.size) and data.size > 50
    # footprint and n(z): every object in the mask, NZ the target, FKP weights with P0 = 1e4
    mask = hp.read_map(str(ROOT / "configs/survey/mask_ngc_nside16.fits"))
    for cat in (data, rand):
        assert mask[hp.ang2pix(16, cat["RA"], cat["DEC"], lonlat=True)].min() > 0
        np.testing.assert_allclose(cat["NZ"], 1.2e-4, rtol=1e-12)
        np.testing.assert_allclose(cat["WEIGHT_FKP"], 1 / (1 + 1.2e-4 * 1e4), rtol=1e-12)
        assert cat["Z"].min() >= 0.05 and cat["Z"].max() < 0.15
    nz = np.loadtxt(out / "mock_000001_nz.txt")
    assert nz[:, 4].sum() == data.size
    # one DISTANCE convention: chi(Z) for data and randoms, the real-space distance apart
    from emulator.core.cosmology import get_preset
    from emulator.mocks.distance import DistanceRedshift

    table = DistanceRedshift(get_preset("planck18"), 0.2)
    np.testing.assert_allclose(data["DISTANCE"], table.distance(data["Z"]), rtol=1e-9)
    np.testing.assert_allclose(rand["DISTANCE"], table.distance(rand["Z"]), rtol=1e-9)
    np.testing.assert_allclose(data["DISTANCE_COSMO"], table.distance(data["Z_COSMO"]), rtol=1e-6)
    # galaxies keep their host: HaloMass above the resolved mass, centrals flagged, unique IDs
    assert data["HaloMass"].min() >= 10 * 6.9e11 * 0.99 and data["Central"].any() and not data["Central"].all()
    assert np.unique(data["ID"]).size == data.size
    # header keys as plain FITS cards, in the data file and (with its own seed) the random file
    head, rhead = fits.getheader(out / "mock_000001.fits", 0), fits.getheader(out / "mock_000001_randoms_0.fits", 0)
    for key in HEADER_KEYS:
        assert key in head, key
    assert head["SEED_IC"] == 1 and head["ZSNAP"] == 0.1 and len(head["MODELSHA"]) == 64
    assert head["FOOTPRNT"].startswith("healpix: ") and head["NZSOURCE"].endswith("lrg_like_nz.txt")
    assert rhead["SEED_RAN"] == head["SEED_RAN"] and rhead["RANINDEX"] == 0
    assert fits.getheader(out / "mock_000001.fits", "DATA")["DISTCONV"].startswith("DISTANCE=chi(Z)")


def test_hod_and_randoms_seeds_are_independent(tmp_path, one_thread, monkeypatch):
    from emulator.mocks import survey_files

    drawn, alive_at_draw, draw = [], [], survey_files.make_randoms

    def tracked(*args, **kwargs):  # random files are drawn when written: one held at a time
        alive_at_draw.append(sum(ref() is not None for ref in drawn))
        cat = draw(*args, **kwargs)
        drawn.append(weakref.ref(cat))
        return cat

    monkeypatch.setattr(survey_files, "make_randoms", tracked)
    base = _run(tmp_path, "base", "--n-random-files", "2")
    assert alive_at_draw == [0, 0]
    other = _run(tmp_path, "other", "--hod-seed", "5", "--randoms-seed", "9", "--n-random-files", "2")
    b0, o0 = (read_catalog(p / "mock_000001.fits", "data") for p in (base, other))
    # another HOD draw on the same density field: the same hosts are available, other galaxies
    assert b0.size != o0.size or not np.array_equal(b0["RA"], o0["RA"])
    key = {name: c["HaloIndex"] * 10**9 + (c["REPLICA"] + 500) @ np.array([10**6, 10**3, 1])
           for name, c in (("b", b0), ("o", o0))}
    both, ib, io = np.intersect1d(key["b"][b0["Central"]], key["o"][o0["Central"]], return_indices=True)
    assert both.size > 10  # centrals of the same hosts sit at the same place: one density field
    np.testing.assert_array_equal(b0["RA"][b0["Central"]][ib], o0["RA"][o0["Central"]][io])
    assert b0.attrs["SEED_HOD"] != o0.attrs["SEED_HOD"] == 5 and b0.attrs["SEED_IC"] == o0.attrs["SEED_IC"]
    r = {k: read_catalog(base / f"mock_000001_randoms_{k}.fits", "randoms") for k in (0, 1)}
    ro = read_catalog(other / "mock_000001_randoms_0.fits", "randoms")
    assert r[0].attrs["SEED_RAN"] != r[1].attrs["SEED_RAN"] and ro.attrs["SEED_RAN"] == 9
    assert not np.array_equal(r[0]["RA"][:100], r[1]["RA"][:100])


def test_evolving_halo_lightcone(tmp_path, one_thread):
    with pytest.warns(UserWarning, match="seen more than once"):
        (path,) = generate_mocks("planck18", box_size=64.0, base_seed=7, out_dir=tmp_path, progress=False,
                                 tracer="halos", min_members=10, format="fits",
                                 cutsky={"redshift_range": [0.005, 0.06], "lightcone": [0.0, 0.03, 0.06]})
    d = read_catalog(path, "data")
    assert d.attrs["ZLADDER"] == "0 0.03 0.06" and "ZSNAP" not in d.attrs
    # shells [0.005, 0.015), [0.015, 0.045), [0.045, 0.06) come from snapshots 0, 1, 2 (observed Z)
    for j, (lo, hi) in enumerate([(0.005, 0.015), (0.015, 0.045), (0.045, 0.06)]):
        z = d["Z"][d["SNAPSHOT"] == j]
        assert z.size > 0 and z.min() >= lo and z.max() < hi
    assert np.unique(d["ID"]).size == d.size


def test_particle_lightcone_through_generate(tmp_path, one_thread):
    """Subsampled particles crossing the cone (interpolated between the two snapshots of the default ladder)."""
    with pytest.warns(UserWarning, match="seen more than once"):
        (path,) = generate_mocks("planck18", box_size=64.0, base_seed=7, out_dir=tmp_path, progress=False,
                                 tracer="particles", number_density=0.01,
                                 cutsky={"redshift_range": [0.005, 0.03], "lightcone": True})
    d = read_catalog(path, "data")
    assert d.attrs["ZLADDER"] == "0 0.04" and len(d.attrs["lightcone_step_seconds"]) == 2
    assert np.unique(d["ID"]).size == d.size and d["INDEX"].max() < round(0.01 * 64.0**3)
    # the full-sky cone holds the mean density of the box: N = nbar V within Poisson and clustering noise
    from emulator.core.cosmology import get_preset
    from emulator.mocks.distance import DistanceRedshift

    table = DistanceRedshift(get_preset("planck18"), 0.1)
    vol = 4 * np.pi / 3 * (table.distance(0.03) ** 3 - table.distance(0.005) ** 3)
    assert abs(d.size / (round(0.01 * 64.0**3) / 64.0**3 * vol) - 1) < 0.03
