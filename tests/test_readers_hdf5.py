"""HDF5 snapshots (data_prep.readers): Gadget-4, Gadget-2/3 (Quijote-like) and SWIFT layouts.

Truths used: writer round trips, files laid out by hand with h5py (unit metadata in Parameters or none, cosmology
in Header, SWIFT units in Mpc and 1e10 Msun) with exactly known contents in Mpc/h, km/s and Msun/h, and files
corrupted attribute by attribute, which must fail naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_prep.readers import SnapshotError, read_snapshot
from data_prep.writers import write_gadget4_hdf5

try:
    from gadget_fixtures import write_swift_like
    from reader_fixtures import COSMO, particles
except ImportError:  # tests imported as a package
    from tests.gadget_fixtures import write_swift_like
    from tests.reader_fixtures import COSMO, particles


# ---- writer round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_files", [1, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hdf5_round_trip(tmp_path, num_files, dtype):
    pos, vel, ids = particles()
    pos, vel = pos.astype(dtype), vel.astype(dtype)
    names = write_gadget4_hdf5(tmp_path / "snap_003", pos, vel, ids, 50.0, 2.0, COSMO, 2.5e11, num_files=num_files)
    snap = read_snapshot(tmp_path / "snap_003")  # base name resolves to .hdf5 or .0.hdf5
    assert snap.source == names and snap.format == "hdf5-gadget"
    np.testing.assert_array_equal(snap.positions, pos.astype(np.float64))
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(snap.velocities, vel, rtol=rtol, atol=1e-10)
    assert snap.velocities.dtype == dtype
    np.testing.assert_array_equal(snap.ids, ids)
    assert snap.particle_mass == pytest.approx(2.5e11, rel=1e-15)
    assert snap.scale_factor == pytest.approx(1 / 3) and snap.length_unit_mpc_h == 1.0
    assert snap.cosmology == {**COSMO, "Omega_lambda": pytest.approx(0.7)}


# ---- units and flavours -------------------------------------------------------------------------------------
def test_kpc_hdf5_with_unit_metadata_is_exact(tmp_path):
    """Gadget-4 layout built by hand, UnitLength_in_cm = 1 kpc/h, 64-bit NumPart_Total and no HighWord."""
    pos_kpc = np.array([[1500.0, 2.0, 999999.0], [125000.0, 5.0, 7.0]])
    with h5py.File(tmp_path / "k.hdf5", "w") as f:
        h = f.create_group("Header").attrs
        h.update({"BoxSize": 1e6, "Time": 0.5, "Redshift": 1.0, "NumFilesPerSnapshot": 1,
                  "NumPart_ThisFile": np.array([0, 2, 0, 0, 0, 0]), "NumPart_Total": np.array([0, 2, 0, 0, 0, 0],
                                                                                          np.uint64),
                  "MassTable": np.array([0, 8.0, 0, 0, 0, 0])})
        f.create_group("Parameters").attrs.update({"UnitLength_in_cm": 3.085678e21, "UnitMass_in_g": 1.989e43,
                                                   "UnitVelocity_in_cm_per_s": 1e5, "Omega0": 0.25,
                                                   "OmegaLambda": 0.75, "HubbleParam": 0.6, "ComovingIntegrationOn": 1})
        g = f.create_group("PartType1")
        g["Coordinates"], g["Velocities"], g["ParticleIDs"] = pos_kpc, np.ones((2, 3)), np.array([0, 1], np.uint64)
    snap = read_snapshot(tmp_path / "k.hdf5")
    np.testing.assert_array_equal(snap.positions, [[1.5, 0.002, 999.999], [125.0, 0.005, 0.007]])
    assert snap.box_size == 1000.0 and snap.length_unit_mpc_h == 1e-3
    np.testing.assert_allclose(snap.velocities, np.sqrt(0.5), rtol=1e-15)
    assert snap.particle_mass == 8e10
    assert snap.cosmology == {"Omega_m": 0.25, "Omega_lambda": 0.75, "h": 0.6}
    with pytest.warns(UserWarning, match="overrides"):
        forced = read_snapshot(tmp_path / "k.hdf5", length_unit="Mpc/h")
    np.testing.assert_array_equal(forced.positions, pos_kpc)


def test_kpc_writer_round_trip_exact(tmp_path):
    pos = np.array([[0.5, 1.25, 49.0], [12.375, 0.0, 3.0]])
    write_gadget4_hdf5(tmp_path / "k", pos, np.zeros((2, 3)), [5, 6], 50.0, 0.0, COSMO, 1e10, length_unit="kpc/h")
    with h5py.File(tmp_path / "k.hdf5") as f:
        assert f["Parameters"].attrs["UnitLength_in_cm"] == 3.085678e21
        np.testing.assert_array_equal(f["PartType1/Coordinates"][:], pos * 1000)
        assert f["Header"].attrs["BoxSize"] == 50000.0
    np.testing.assert_array_equal(read_snapshot(tmp_path / "k.hdf5").positions, pos)


def test_gadget2_hdf5_layout_cosmology_in_header(tmp_path):
    """Gadget-2/3 HDF5: cosmology in Header, no unit metadata (Quijote-like, kpc/h)."""
    pos, vel, ids = particles(3, box=1e6)
    with h5py.File(tmp_path / "q.0.hdf5", "w") as f:
        f.create_group("Header").attrs.update({
            "BoxSize": 1e6, "Time": 0.25, "Redshift": 3.0, "NumFilesPerSnapshot": 1, "Omega0": 0.3175,
            "OmegaLambda": 0.6825, "HubbleParam": 0.6711, "NumPart_ThisFile": np.array([0, 27, 0, 0, 0, 0], np.int32),
            "NumPart_Total": np.array([0, 27, 0, 0, 0, 0], np.uint32),
            "NumPart_Total_HighWord": np.zeros(6, np.uint32), "MassTable": np.array([0, 65.6, 0, 0, 0, 0])})
        g = f.create_group("PartType1")
        g["Coordinates"], g["Velocities"] = pos.astype(np.float32), vel.astype(np.float32)
        g["ParticleIDs"] = ids.astype(np.uint32)
    with pytest.raises(SnapshotError, match=r"q\.0\.hdf5.*length_unit.*kpc/h"):
        read_snapshot(tmp_path / "q")
    snap = read_snapshot(tmp_path / "q", length_unit="kpc/h")
    np.testing.assert_array_equal(snap.positions, pos.astype(np.float32).astype(np.float64) / 1000)
    np.testing.assert_array_equal(snap.velocities, vel.astype(np.float32) * np.float32(0.5))
    assert snap.cosmology == {"Omega_m": 0.3175, "Omega_lambda": 0.6825, "h": 0.6711}
    assert snap.particle_mass == pytest.approx(65.6e10, rel=1e-15) and snap.box_size == 1000.0


def test_swift_layout(tmp_path):
    pos, vel, ids = particles(3, box=100.0)
    mass = np.full(len(ids), 2.0)
    write_swift_like(tmp_path / "sw.hdf5", pos, vel, ids, mass, box_mpc=100.0, h=0.7, scale_factor=0.5)
    snap = read_snapshot(tmp_path / "sw.hdf5")
    assert snap.format == "hdf5-swift"
    np.testing.assert_allclose(snap.positions, pos * 0.7, rtol=1e-15)  # Mpc -> Mpc/h
    np.testing.assert_allclose(snap.velocities, vel, rtol=1e-15)  # already peculiar: no sqrt(a)
    np.testing.assert_allclose(snap.particle_mass, 2.0e10 * 0.7, rtol=1e-15)  # 1e10 Msun -> Msun/h
    assert snap.box_size == pytest.approx(70.0, rel=1e-15)
    assert snap.scale_factor == 0.5 and snap.redshift == 1.0  # from Scale-factor, not SWIFT's Time
    assert snap.cosmology["Omega_m"] == 0.3 and snap.cosmology["h"] == 0.7 and snap.cosmology["Omega_b"] == 0.05
    write_swift_like(tmp_path / "bad.hdf5", pos, vel, ids, mass, box_mpc=100.0, h=0.7, scale_factor=0.5)
    with h5py.File(tmp_path / "bad.hdf5", "a") as f:
        f["Header"].attrs["BoxSize"] = [100.0, 100.0, 50.0]
    with pytest.raises(SnapshotError, match="bad.hdf5.*cubic"):
        read_snapshot(tmp_path / "bad.hdf5")


# ---- bad HDF5 input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case,match", [
    ("no_velocities", "PartType1/Velocities is missing"), ("shape", "has shape"), ("total", "NumPart_Total"),
    ("truncated", "cannot read HDF5"), ("no_header", "no 'Header'"), ("time_z", "disagree"),
    ("not_comoving", "ComovingIntegrationOn"),
])
def test_bad_hdf5(tmp_path, case, match):
    pos, vel, ids = particles(3)
    names = write_gadget4_hdf5(tmp_path / "s", pos, vel, ids, 50.0, 0.0, COSMO, 1e11, num_files=2)
    target = names[0] if case in ("time_z", "not_comoving") else names[1]
    if case == "truncated":
        raw = Path(target).read_bytes()
        Path(target).write_bytes(raw[: len(raw) // 2])
    else:
        with h5py.File(target, "a") as f:
            if case == "no_velocities":
                del f["PartType1/Velocities"]
            elif case == "shape":
                f["Header"].attrs["NumPart_ThisFile"] = np.array([0, 10, 0, 0, 0, 0], np.uint32)
            elif case == "total":
                f["Header"].attrs["NumPart_Total"] = np.array([0, 28, 0, 0, 0, 0], np.uint32)
            elif case == "no_header":
                del f["Header"]
            elif case == "time_z":
                f["Header"].attrs["Redshift"] = 0.5
            elif case == "not_comoving":
                f["Parameters"].attrs["ComovingIntegrationOn"] = 0
    with pytest.raises(SnapshotError, match=f"{os.path.basename(target)}.*{match}"):
        read_snapshot(tmp_path / "s")
