"""Catalog contents from the embedded model (64 Mpc/h, 32^3 particles): galaxies in FITS (bool ``Central``), units
astropy reads as meant, astropy's Planck18 accepted, the biased-tracer count bound, reproducibility per thread
count, and halo ``HaloID``/``Radius`` with galaxies' ``HaloIndex`` pointing at them."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from emulator.api import generate_mocks
from emulator.cli import main
from emulator.core.cosmology import get_preset
from emulator.mocks import api
from emulator.mocks.io import read_catalog
from emulator.model.emulate import emulate_fields
from emulator.model.portable import load_model

BOX = 64.0
README_GALAXIES = ["generate", "--omega-m", "0.3", "--omega-b", "0.048", "--h", "0.68", "--n-s", "0.965",
                   "--sigma8", "0.8", "--tracer", "galaxies", "--hod", "lrg_desi_like", "--min-members", "10",
                   "--rsd-axis", "z", "--format", "fits"]


@pytest.fixture
def no_compute(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a mock was computed")

    monkeypatch.setattr(api, "emulate_fields", refuse)


def _astropy_read(path, hdu):
    from astropy import units as u
    from astropy.cosmology import units as cu
    from astropy.table import Table

    with warnings.catch_warnings(), u.add_enabled_units(cu):
        warnings.simplefilter("error")
        return Table.read(path, hdu=hdu)


def test_readme_galaxies_rsd_fits_example(tmp_path, one_thread):
    """The README's galaxies + RSD + FITS command (at 64 Mpc/h) writes a file both readers read."""
    from astropy import units as u
    from astropy.cosmology import units as cu

    assert main([*README_GALAXIES, "--box-size", "64", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("mock_*.fits")
    gal = read_catalog(path, "data")
    assert gal.size > 0 and gal["Central"].dtype == np.bool_ and gal["Central"].any()
    assert gal.units["Position"] == "Mpc/h" and gal.units["RSDPosition"] == "Mpc/h" and gal.units["Velocity"] == "km/s"
    table = _astropy_read(path, "DATA")
    assert table["Central"].dtype == np.bool_ and np.array_equal(np.asarray(table["Central"]), gal["Central"])
    assert table["Position"].unit == u.Mpc / cu.littleh and table["RSDPosition"].unit == u.Mpc / cu.littleh
    assert table["Velocity"].unit == u.km / u.s
    np.testing.assert_array_equal(np.asarray(table["Position"]), gal["Position"])
    (h5,) = generate_mocks("planck18", box_size=BOX, out_dir=tmp_path / "h5", progress=False, tracer="galaxies",
                           min_members=10)
    assert read_catalog(h5, "data")["Central"].dtype == np.bool_  # HDF5 reads back bool as well


def test_astropy_planck18_is_accepted_with_its_own_values(tmp_path, one_thread):
    from astropy.cosmology import Planck18

    with pytest.warns(UserWarning, match="radiation or massive neutrinos"):
        (path,) = generate_mocks(Planck18, box_size=BOX, out_dir=tmp_path, progress=False)
    attrs = read_catalog(path, "data").attrs
    assert attrs["Omega_m"] == float(Planck18.Om0) and attrs["Omega_b"] == float(Planck18.Ob0)
    assert attrs["h"] == float(Planck18.H0.value) / 100.0
    assert attrs["n_s"] == Planck18.meta["n"] == 0.9665 and attrs["sigma8"] == Planck18.meta["sigma8"] == 0.8102


@pytest.mark.parametrize("box, density, want, npart", [(128.0, 10.0, "2.1e+07", 262144), (BOX, 0.2, "5.24e+04",
                                                                                            32768)])
def test_tracer_count_above_the_particles_is_refused(tmp_path, no_compute, box, density, want, npart):
    for tracer in ("biased", "particles"):
        with pytest.raises(ValueError) as info:
            generate_mocks("planck18", box_size=box, out_dir=tmp_path / "o", progress=False, tracer=tracer,
                           number_density=density)
        msg = str(info.value)
        assert "number_density" in msg and want in msg and str(npart) in msg and "\n" not in msg
        assert f"<= {npart / box**3:.4g}" in msg
    assert not (tmp_path / "o").exists()


def test_same_thread_count_is_bitwise_reproducible_and_thread_counts_differ_by_rounding(tmp_path):
    """The reproducibility claimed in emulator/mocks/catalogs.py: bit for bit at a fixed torch thread count; across
    1 and 2 threads, differences at float32 rounding level (< 1e-6 of the box, < 1e-5 of the largest speed)."""
    from emulator.mocks import catalogs

    doc = " ".join(catalogs.__doc__.split())
    assert "bit for bit on the CPU" not in doc and "same number of torch threads" in doc
    old = torch.get_num_threads()
    model, cosmo = load_model(), get_preset("planck18")
    try:
        torch.set_num_threads(2)
        a, b = (generate_mocks(cosmo, box_size=BOX, seeds=[3], out_dir=tmp_path / name, progress=False,
                               tracer="halos", min_members=10, rsd_axis="z")[0] for name in ("a", "b"))
        ca, cb = read_catalog(a, "data"), read_catalog(b, "data")
        assert list(ca) == list(cb) and all(ca[k].tobytes() == cb[k].tobytes() for k in ca)
        fields = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fields[threads] = emulate_fields(cosmo, 0.0, BOX, 3, model=model)
    finally:
        torch.set_num_threads(old)
    d = (fields[1].positions.double() - fields[2].positions.double()).abs()
    d = torch.minimum(d, BOX - d)  # periodic
    dv = (fields[1].velocities - fields[2].velocities).abs().max()
    assert float(d.max()) < 1e-6 * BOX
    assert float(dv) < 1e-5 * float(fields[2].velocities.abs().max())


def _rho_crit_astropy() -> float:
    """Critical density for H0 = 100 km/s/Mpc, in Msun / Mpc^3 (= (Msun/h) / (Mpc/h)^3), from astropy's G."""
    from astropy import units as u
    from astropy.cosmology import FlatLambdaCDM

    return float(FlatLambdaCDM(H0=100.0, Om0=0.3).critical_density0.to(u.Msun / u.Mpc**3).value)


def test_halo_ids_radii_and_galaxy_host_ids(tmp_path, one_thread):
    cosmo = get_preset("planck18")
    kw = {"box_size": BOX, "base_seed": 7, "progress": False, "min_members": 10}
    (hp,) = generate_mocks(cosmo, out_dir=tmp_path / "h", tracer="halos", **kw)
    halos = read_catalog(hp, "data")
    n = halos.size
    assert n > 10 and halos["HaloID"].dtype == np.int64 and np.array_equal(halos["HaloID"], np.arange(n))
    assert halos.units["Radius"] == "Mpc/h" and halos.units["HaloID"] == ""
    r200m = (3 * halos["Mass"] / (4 * math.pi * 200 * cosmo.Omega_m * _rho_crit_astropy())) ** (1 / 3)
    np.testing.assert_allclose(halos["Radius"], r200m, rtol=1e-5)
    assert 0.3 < halos["Radius"].min() and halos["Radius"].max() < 3.0  # 1e13-1e14 Msun/h halos: ~0.4-1.6 Mpc/h
    # the halo ID does not depend on the cuts applied to the tail of the mass function
    (cut,) = generate_mocks(cosmo, out_dir=tmp_path / "c", tracer="halos", min_mass=float(halos["Mass"][9]), **kw)
    cut = read_catalog(cut, "data")
    assert np.array_equal(cut["HaloID"], halos["HaloID"][: cut.size]) and cut.size >= 10
    assert np.array_equal(cut["Position"], halos["Position"][: cut.size])
    # galaxies of the same seed and FoF options: HaloIndex is the host's HaloID
    (gp,) = generate_mocks(cosmo, out_dir=tmp_path / "g", tracer="galaxies", **kw)
    gal = read_catalog(gp, "data")
    host = gal["HaloIndex"]
    assert gal.size > 0 and np.isin(host, halos["HaloID"]).all()
    cen = gal["Central"]
    np.testing.assert_array_equal(gal["Position"][cen], halos["Position"][host[cen]])  # centrals at the centre
    d = np.abs(gal["Position"][~cen] - halos["Position"][host[~cen]])
    d = np.minimum(d, BOX - d)
    assert np.all(np.linalg.norm(d, axis=1) <= halos["Radius"][host[~cen]] * (1 + 1e-9))  # satellites inside
