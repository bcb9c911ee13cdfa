"""Catalogue files: bitwise round trips (HDF5, FITS), layout seen by h5py/astropy, atomicity, bad inputs."""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from astropy.units import UnitsWarning

from emulator.mocks import io_fits, io_hdf5
from emulator.mocks.cutsky import box_to_sky, random_catalog
from emulator.mocks.io import Catalog, list_catalogs, read_catalog, write_catalog, write_catalogs
from emulator.core.cosmology import get_preset

COSMO = get_preset("planck18")


def make_columns(n: int = 257, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "Position": rng.uniform(0, 500, (n, 3)),
        "Velocity": rng.normal(0, 300, (n, 3)).astype(np.float32),
        "Mass": 10 ** rng.uniform(12, 15, n),
        "ID": rng.integers(0, 2**40, n, dtype=np.int64),
        "central": rng.random(n) < 0.3,
        "gal_type": rng.integers(0, 2, n).astype(np.int32),
        "flags": rng.integers(0, 255, n).astype(np.uint8),
    }


ATTRS = {
    "cosmology": COSMO,  # dataclass -> JSON dict
    "Omega_m": COSMO.Omega_m,
    "redshift": 0.5,
    "BoxSize": 500.0,
    "Nmesh": 64,
    "seed": 12345,
    "hod": {"logMmin": 13.02, "sigma_logM": 0.26, "logM0": 13.27, "logM1": 14.08, "alpha": 0.76},
    "model_name": "unet-style-v1",
    "model_sha256": "0123456789abcdef" * 4,
    "version": "0.1.0+gabcdef",
    "rsd": True,
    "kbins": np.linspace(0.01, 0.5, 7),
    "notes": None,
    "observer": [250.0, 250.0, 250.0],
    "a_rather_long_attribute_name_for_hierarch": "x" * 120,
}


def expected_attrs() -> dict:
    out = dict(ATTRS)
    out["cosmology"] = COSMO.to_dict()
    return out


def assert_attrs_equal(got: dict, want: dict) -> None:
    for key, value in want.items():
        assert key in got, key
        if isinstance(value, np.ndarray):
            assert isinstance(got[key], np.ndarray) and got[key].dtype == value.dtype
            assert got[key].tobytes() == value.tobytes(), key
        else:
            assert got[key] == value and type(got[key]) is type(value), (key, got[key], value)


def assert_columns_bitwise(got: dict, want: dict) -> None:
    assert list(got) == list(want)  # column order kept
    for key, value in want.items():
        value = np.asarray(value)
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert got[key].tobytes() == value.tobytes(), key


@pytest.mark.parametrize("fmt", ["hdf5", "fits"])
def test_single_catalog_round_trip(tmp_path, fmt):
    cols = make_columns()
    path = tmp_path / f"cat.{fmt}"
    write_catalog(path, cols, ATTRS, format=fmt, units={"central": "", "flags": "bitmask"})
    cat = read_catalog(path)
    assert isinstance(cat, Catalog) and cat.size == 257
    assert_columns_bitwise(cat, cols)
    assert cat.units["Position"] == "Mpc/h" and cat.units["Velocity"] == "km/s" and cat.units["Mass"] == "Msun/h"
    assert cat.units["flags"] == "bitmask" and cat.units["ID"] == ""
    assert_attrs_equal(cat.attrs, expected_attrs())
    assert cat.attrs["catalog_format"] == "cosmo-emulator-catalog"
    assert os.listdir(tmp_path) == [path.name]  # no temporary left


def test_hdf5_layout_seen_by_h5py(tmp_path):
    cols = make_columns()
    path = tmp_path / "cat.h5"
    write_catalog(path, cols, ATTRS)
    with h5py.File(path, "r") as fh:
        assert fh["Position"].shape == (257, 3) and fh["Position"].attrs["units"] == "Mpc/h"
        assert fh["Mass"].attrs["units"] == "Msun/h"
        assert fh.attrs["BoxSize"] == 500.0 and fh.attrs["seed"] == 12345
        import json

        assert json.loads(fh.attrs["hod"]) == ATTRS["hod"]
        assert json.loads(fh.attrs["cosmology"])["sigma8"] == COSMO.sigma8


def test_fits_layout_seen_by_astropy(tmp_path):
    """astropy reads the units as meant: little h as astropy.cosmology.units.littleh, never the hour."""
    from astropy import units as u
    from astropy.cosmology import units as cu

    cols = make_columns()
    path = tmp_path / "cat.fits"
    write_catalog(path, cols, ATTRS, format="fits")
    with warnings.catch_warnings(), u.add_enabled_units(cu):
        warnings.simplefilter("error")  # no UnitsWarning, no other warning
        table = Table.read(path, hdu=1)
    assert table["Position"].shape == (257, 3)
    np.testing.assert_array_equal(np.asarray(table["Position"]), cols["Position"])
    assert table["Position"].unit == u.Mpc / cu.littleh and table["Mass"].unit == u.Msun / cu.littleh
    assert table["Velocity"].unit == u.km / u.s
    with warnings.catch_warnings():  # without the cosmology units astropy warns that littleh is not enabled
        warnings.simplefilter("ignore", UnitsWarning)
        plain = Table.read(path, hdu=1)
    assert str(plain["Position"].unit) == "Mpc / littleh" and plain["Velocity"].unit == u.km / u.s
    for name in plain.colnames:  # ... but no unit is ever read with the hour (Mpc/h as Mpc per hour)
        unit = plain[name].unit
        assert unit is None or isinstance(unit, u.UnrecognizedUnit) or u.hour not in unit.bases, name
    with fits.open(path) as hdul:
        head1 = hdul[1].header
        assert head1["TFORM1"] == "3D" and hdul[1].name == "CATALOG"
        # FITS has no little h: no TUNIT that a FITS reader would parse as per hour; the string is in the comment
        assert "TUNIT1" not in head1 and "TUNIT3" not in head1 and head1["TUNIT2"] == "km/s"
        assert head1.comments["TTYPE1"] == "unit: Mpc/h" and head1.comments["TTYPE3"] == "unit: Msun/h"
        head = hdul[0].header
        assert head["BoxSize"] == 500.0 and head["model_name"] == "unet-style-v1" and head["rsd"] is True
        assert "PROVENAN" in head
    with fits.open(path, mode="update") as hdul:  # a file of the earlier layout: units in TUNITn only
        del hdul[1].header["COLUNITS"]
        hdul[1].header["TUNIT1"] = "Mpc/h"
    old = read_catalog(path)
    assert old.units["Position"] == "Mpc/h" and old.units["Velocity"] == "km/s" and old.units["Mass"] == ""


@pytest.mark.parametrize("fmt", ["hdf5", "fits"])
def test_data_and_randoms_in_one_file(tmp_path, fmt):
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, 300, (3000, 3))
    vel = rng.normal(0, 300, (3000, 3))
    data = box_to_sky(torch.tensor(pos), torch.tensor(vel), 300.0, COSMO, (0.02, 0.05), snapshot_redshift=0.0)
    randoms = random_catalog(redshift_range=(0.02, 0.05), cosmology=COSMO, nz=data["Z"], density_factor=3, seed=1)
    path = tmp_path / f"mock.{fmt}"
    write_catalogs(path, {"data": data, "randoms": randoms}, {"seed": 7, "cosmology": COSMO}, format=fmt)
    assert list_catalogs(path) == ["data", "randoms"]
    d = read_catalog(path, "data")
    r = read_catalog(path, name="randoms")
    assert_columns_bitwise(d, data)
    assert_columns_bitwise(r, randoms)
    assert d.units["RA"] == "deg" and d.units["DISTANCE"] == "Mpc/h" and r.units["Z"] == ""
    assert d.attrs["lightcone"] == "single-snapshot (no evolution)" and d.attrs["seed"] == 7
    assert r.attrs["radial_method"] == "shuffled" and r.attrs["cosmology"] == COSMO.to_dict()
    assert d.attrs["observer"] == [150.0, 150.0, 150.0]
    with pytest.raises(ValueError, match="pass name="):
        read_catalog(path)
    with pytest.raises(ValueError, match="no catalogue 'halos'"):
        read_catalog(path, "halos")


def test_torch_and_empty_columns(tmp_path):
    cols = {"Position": torch.rand(10, 3, dtype=torch.float64) * 100, "Mass": torch.ones(10)}
    write_catalog(tmp_path / "t.h5", cols)
    back = read_catalog(tmp_path / "t.h5")
    assert back["Position"].tobytes() == cols["Position"].numpy().tobytes()
    assert back["Mass"].dtype == np.float32
    empty = {"Position": np.zeros((0, 3)), "Mass": np.zeros(0)}
    for fmt in ("hdf5", "fits"):
        write_catalog(tmp_path / f"e.{fmt}", empty, format=fmt)
        got = read_catalog(tmp_path / f"e.{fmt}")
        assert got["Position"].shape == (0, 3) and got.size == 0


@pytest.mark.parametrize("fmt, module, target", [("hdf5", io_hdf5, "_write_columns"), ("fits", io_fits, "_table_hdu")])
def test_failure_mid_write_leaves_no_file(tmp_path, monkeypatch, fmt, module, target):
    calls = {"n": 0}
    original = getattr(module, target)

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the first catalogue is already written
            raise RuntimeError("disk on fire")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, target, flaky)
    path = tmp_path / f"mock.{fmt}"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_catalogs(path, {"data": make_columns(), "randoms": make_columns(seed=1)}, ATTRS, format=fmt)
    assert os.listdir(tmp_path) == []
    # an existing file is left untouched by a failed overwrite
    path.write_bytes(b"old contents")
    calls["n"] = 0
    with pytest.raises(RuntimeError):
        write_catalogs(path, {"data": make_columns(), "randoms": make_columns(seed=1)}, ATTRS, format=fmt)
    assert os.listdir(tmp_path) == [path.name] and path.read_bytes() == b"old contents"


def test_interrupt_mid_write_leaves_no_file(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io_hdf5, "_write_columns", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_catalog(tmp_path / "x.h5", make_columns())
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "columns, kwargs, match",
    [
        ({"Mass": np.ones(7)}, {}, "inconsistent lengths"),
        ({"Position": np.full((8, 3), np.nan)}, {}, "non-finite"),
        ({"Velocity": np.full((8, 3), np.inf)}, {}, "non-finite"),
        ({}, {"format": "csv"}, "format must be one of"),
        ({"name": np.array(["a"] * 8)}, {}, "numeric or boolean"),
        ({"cube": np.zeros((8, 2, 2))}, {}, r"shape \(N,\) or \(N, k\)"),
        ({"bad/name": np.zeros(8)}, {}, "column name"),
        ({"small": np.zeros(8, dtype=np.int8)}, {"format": "fits"}, "not supported in FITS"),
        ({"mass": np.zeros(8)}, {"format": "fits"}, "differ only in case"),
        ({}, {"attrs": {"thing": object()}}, r"attrs\['thing'\]"),
        ({}, {"units": {"Mass": 3}}, "units of column"),
    ],
)
def test_bad_inputs_raise_and_leave_nothing(tmp_path, columns, kwargs, match):
    cols = make_columns(8)
    cols.update(columns)
    with pytest.raises(ValueError, match=match) as err:
        write_catalog(tmp_path / "bad.out", cols, **kwargs)
    assert "\n" not in str(err.value)
    assert os.listdir(tmp_path) == []


def test_bad_paths_and_catalog_sets(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        write_catalog(tmp_path / "missing" / "x.h5", make_columns(4))
    with pytest.raises(ValueError, match="non-empty mapping"):
        write_catalog(tmp_path / "x.h5", {})
    with pytest.raises(ValueError, match="clashes"):
        write_catalogs(tmp_path / "x.fits", {"data": make_columns(4), "DATA": make_columns(4)}, format="fits")
    with pytest.raises(ValueError, match="does not exist"):
        read_catalog(tmp_path / "nothing.h5")
    (tmp_path / "junk.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither HDF5 nor FITS"):
        read_catalog(tmp_path / "junk.txt")
    assert sorted(os.listdir(tmp_path)) == ["junk.txt"]
