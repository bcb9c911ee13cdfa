"""Snapshot readers: hand-built files with known contents, writer round trips, streaming, and bad input."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_prep.readers import (
    SnapshotError, detect_format, iter_chunks, parse_length_unit, read_header, read_snapshot, validate_ids,
)
from data_prep.writers import write_gadget2_binary, write_gadget4_hdf5

try:
    from gadget_fixtures import MIXED, header_bytes, mixed_gadget_file, record, write_swift_like
except ImportError:  # tests imported as a package
    from tests.gadget_fixtures import MIXED, header_bytes, mixed_gadget_file, record, write_swift_like

COSMO = {"Omega_m": 0.3, "Omega_b": 0.05, "h": 0.7, "n_s": 0.96, "sigma8": 0.8}


def particles(n_side=5, box=50.0, seed=1):
    """A jittered lattice of n_side^3 particles with shuffled contiguous IDs starting at 1."""
    rng = np.random.default_rng(seed)
    q = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * box / n_side
    pos = q + rng.uniform(-0.4, 0.4, q.shape) * box / n_side
    vel = rng.normal(0.0, 300.0, q.shape)
    ids = rng.permutation(len(q)) + 1
    return pos, vel, ids


# ---- hand-built Gadget-2 binary files (independent of the writer) ----------------------------------------
@pytest.mark.parametrize("endian,fmt,double,id_bytes", [("<", 1, False, 4), (">", 2, True, 8), (">", 1, True, 4),
                                                        ("<", 2, False, 8)])
def test_hand_built_gadget_binary(tmp_path, endian, fmt, double, id_bytes):
    path = tmp_path / "mixed"
    path.write_bytes(mixed_gadget_file(endian, fmt, double, id_bytes))
    assert detect_format(path) == "gadget-binary"
    snap = read_snapshot(path, length_unit="kpc/h")
    m = MIXED
    assert snap.format == f"gadget-binary-{fmt}" and snap.source == [str(path)]
    np.testing.assert_array_equal(snap.positions, m["pos"][2:6] / 1000.0)  # kpc/h -> Mpc/h, exact
    np.testing.assert_array_equal(snap.velocities, m["vel"][2:6] * 0.5)  # v_pec = V sqrt(a), a = 1/4
    np.testing.assert_array_equal(snap.ids, [3, 1, 4, 2])
    assert snap.particle_mass == 0.5e10 and snap.box_size == 10.0
    assert snap.scale_factor == 0.25 and snap.redshift == 3.0
    assert snap.cosmology == {"Omega_m": 0.3, "Omega_lambda": 0.7, "h": 0.7}
    assert snap.velocities.dtype == (np.float64 if double else np.float32)
    gas = read_snapshot(path, length_unit="kpc/h", parttype=0)  # masses from the MASS block
    np.testing.assert_array_equal(gas.particle_mass, [0.125e10, 0.25e10])
    np.testing.assert_array_equal(gas.ids, [10, 11])
    star = read_snapshot(path, length_unit="kpc/h", parttype=4)  # MASS offset skips the DM (mass-table) type
    np.testing.assert_array_equal(star.particle_mass, [0.0625e10])
    np.testing.assert_array_equal(star.positions, [[1.234, 5.678, 9.012]])
    with pytest.raises(SnapshotError, match="no particles of type 2"):
        read_snapshot(path, length_unit="kpc/h", parttype=2)


def test_velocity_sqrt_a_against_hand_values(tmp_path):
    """z = 1 -> a = 1/2: stored V = v_pec / sqrt(a) = sqrt(2) v_pec."""
    pos, vel, ids = particles(3)
    write_gadget2_binary(tmp_path / "s", pos, vel, ids, 50.0, 1.0, COSMO, 1e11, double=True)
    with open(tmp_path / "s", "rb") as fh:
        raw = fh.read()
    n = len(ids)
    off = 4 + 256 + 4 + 4 + 3 * n * 8 + 4 + 4  # HEAD record, POS record, VEL leading marker
    stored = np.frombuffer(raw[off:off + 3 * n * 8], "<f8").reshape(n, 3)
    np.testing.assert_allclose(stored, vel * np.sqrt(2.0), rtol=1e-15)
    snap = read_snapshot(tmp_path / "s", length_unit="Mpc/h")
    np.testing.assert_allclose(snap.velocities, vel, rtol=1e-14, atol=1e-12)
    raw_read = read_snapshot(tmp_path / "s", length_unit="Mpc/h", velocity_convention="peculiar")
    np.testing.assert_allclose(raw_read.velocities, stored, rtol=1e-15)


# ---- writer round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [1, 2])
@pytest.mark.parametrize("id_bytes", [4, 8])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("num_files,mass_array", [(1, False), (3, True)])
def test_gadget_binary_round_trip(tmp_path, fmt, id_bytes, double, num_files, mass_array):
    pos, vel, ids = particles()
    if id_bytes == 8:
        ids = ids + 2**33  # needs 8 bytes
    mass = np.linspace(1e11, 2e11, len(ids)) if mass_array else 3e11
    names = write_gadget2_binary(tmp_path / "snap", pos, vel, ids, 50.0, 0.5, COSMO, mass, num_files=num_files,
                                 format=fmt, id_bytes=id_bytes, double=double)
    assert names == ([str(tmp_path / "snap")] if num_files == 1 else [str(tmp_path / f"snap.{k}") for k in range(3)])
    snap = read_snapshot(names[-1], length_unit="Mpc/h")  # any member finds the set
    assert snap.source == names
    rtol = 1e-14 if double else 1e-6
    np.testing.assert_allclose(snap.positions, pos, rtol=rtol)
    np.testing.assert_allclose(snap.velocities, vel, rtol=rtol, atol=1e-12)
    np.testing.assert_array_equal(snap.ids, ids)
    np.testing.assert_allclose(snap.particle_mass, mass, rtol=rtol)
    assert snap.redshift == pytest.approx(0.5) and snap.box_size == 50.0


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


def test_multi_file_resolution(tmp_path):
    pos, vel, ids = particles(3)
    names = write_gadget4_hdf5(tmp_path / "s", pos, vel, ids, 50.0, 0.0, COSMO, 1e11, num_files=3)
    for p in (tmp_path / "s", tmp_path / "s.hdf5", names[0], names[2]):
        assert read_header(p).files == names
    bnames = write_gadget2_binary(tmp_path / "b", pos, vel, ids, 50.0, 0.0, COSMO, 1e11, num_files=2)
    assert read_header(tmp_path / "b", length_unit="Mpc/h").files == bnames


def test_iter_chunks_reassembles(tmp_path):
    pos, vel, ids = particles()  # 125 particles in 3 files: 41, 42, 42
    mass = np.arange(1, 126) * 1e10
    write_gadget4_hdf5(tmp_path / "s", pos, vel, ids, 50.0, 1.0, COSMO, mass, num_files=3)
    chunks = list(iter_chunks(tmp_path / "s", chunk_size=16))
    assert [len(c) for c in chunks] == [16, 16, 9, 16, 16, 10, 16, 16, 10]
    assert all(len(c.source) == 1 for c in chunks)
    full = read_snapshot(tmp_path / "s")
    np.testing.assert_array_equal(np.concatenate([c.positions for c in chunks]), full.positions)
    np.testing.assert_array_equal(np.concatenate([c.velocities for c in chunks]), full.velocities)
    np.testing.assert_array_equal(np.concatenate([c.ids for c in chunks]), ids)
    np.testing.assert_array_equal(np.concatenate([c.particle_mass for c in chunks]), full.particle_mass)
    np.testing.assert_allclose(full.particle_mass, mass, rtol=1e-15)
    bchunks = list(iter_chunks(tmp_path / "s.1.hdf5", chunk_size=1000))
    assert [len(c) for c in bchunks] == [41, 42, 42]
    with pytest.raises(ValueError, match="chunk_size"):
        iter_chunks(tmp_path / "s", chunk_size=0)


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


def test_explicit_format(tmp_path):
    pos, vel, ids = particles(3)
    write_gadget2_binary(tmp_path / "b", pos, vel, ids, 50.0, 0.0, COSMO, 1e11)
    assert len(read_snapshot(tmp_path / "b", format="gadget", length_unit="Mpc/h")) == 27
    with pytest.raises(SnapshotError, match="b: cannot read HDF5"):
        read_snapshot(tmp_path / "b", format="hdf5")
    with pytest.raises(ValueError, match="format must be one of"):
        read_snapshot(tmp_path / "b", format="tipsy")
    with pytest.raises(ValueError, match="parttype"):
        read_snapshot(tmp_path / "b", length_unit="Mpc/h", parttype=6)


def test_length_unit_parsing():
    assert parse_length_unit("Mpc/h") == 1.0 and parse_length_unit("kpc/h") == 1e-3 and parse_length_unit(2.5) == 2.5
    for bad in ("Mpc", "furlong", -1.0, float("nan")):
        with pytest.raises(ValueError, match="length_unit"):
            parse_length_unit(bad)


# ---- IDs ------------------------------------------------------------------------------------------------------
def test_snapshot_error_names_file_and_pickles():
    import pickle

    err = SnapshotError("/data/snap.0", "broken")
    assert isinstance(err, ValueError) and str(err) == "/data/snap.0: broken" and err.path == "/data/snap.0"
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_validate_ids():
    assert validate_ids(np.array([3, 1, 2, 0])) == 0
    assert validate_ids(np.array([7, 5, 6]), 3) == 5
    with pytest.raises(SnapshotError, match=r"1 duplicated \(e.g. \[2\]\); 1 missing .*\[4\]"):
        validate_ids(np.array([1, 2, 2, 3, 5]), source="x")
    with pytest.raises(SnapshotError, match="expected 4 particle IDs, found 3"):
        validate_ids(np.arange(3), 4, source="x")


@pytest.mark.parametrize("kind", ["duplicate", "gap"])
def test_bad_ids_raise_naming_file(tmp_path, kind):
    pos, vel, ids = particles(3)
    ids = ids.copy()
    ids[ids == 5] = 6 if kind == "duplicate" else 100
    write_gadget4_hdf5(tmp_path / "s", pos, vel, ids, 50.0, 0.0, COSMO, 1e11, num_files=2)
    with pytest.raises(SnapshotError, match=r"s\.0\.hdf5.*(duplicated|missing)"):
        read_snapshot(tmp_path / "s")
    assert len(read_snapshot(tmp_path / "s", check_ids=False)) == 27


# ---- bad Gadget binary input ---------------------------------------------------------------------------------
def _binary(tmp_path, name="snap", **kw):
    pos, vel, ids = particles(3)
    return write_gadget2_binary(tmp_path / name, pos, vel, ids, 50.0, 0.0, COSMO, kw.pop("mass", 1e11), **kw)


def _patch(path, offset, data):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


POS_OFFSET = 264  # format 1: POS leading marker


@pytest.mark.parametrize("case,match", [
    ("truncated", "truncated"), ("trailing_marker", "markers disagree"), ("leading_marker", "does not match"),
    ("no_id", "missing block.*ID"), ("garbage", "unrecognised snapshot format"),
])
def test_bad_binary(tmp_path, case, match):
    (path,) = _binary(tmp_path)
    raw = Path(path).read_bytes()
    n = 27
    vel_end = POS_OFFSET + 2 * (8 + 12 * n)
    if case == "truncated":
        Path(path).write_bytes(raw[:POS_OFFSET + 100])
    elif case == "trailing_marker":
        _patch(path, POS_OFFSET + 4 + 12 * n, struct.pack("<I", 12 * n + 4))
    elif case == "leading_marker":
        _patch(path, POS_OFFSET + 8 + 12 * n, struct.pack("<I", 12345))  # VEL's leading marker
    elif case == "no_id":
        Path(path).write_bytes(raw[:vel_end])
    elif case == "garbage":
        _patch(path, 0, struct.pack("<I", 1234))
    with pytest.raises(SnapshotError, match=f"{os.path.basename(path)}.*{match}"):
        read_snapshot(path, length_unit="Mpc/h")


def test_missing_mass_block(tmp_path):
    head = header_bytes("<", [0, 1, 0, 0, 0, 0], [0.0] * 6, 1.0, 0.0, [0, 1, 0, 0, 0, 0], 1, 10.0, 0.3, 0.7, 0.7)
    blocks = [head, b"\0" * 12, b"\0" * 12, struct.pack("<I", 0)]  # HEAD, POS, VEL, ID; Massarr[1] = 0, no MASS
    (tmp_path / "nomass").write_bytes(b"".join(record(b, "<") for b in blocks))
    with pytest.raises(SnapshotError, match="nomass.*missing block.*MASS"):
        read_snapshot(tmp_path / "nomass", length_unit="Mpc/h")


def test_inconsistent_counts_across_files(tmp_path):
    names = _binary(tmp_path, num_files=2)
    nall_offset = 4 + 24 + 48 + 16 + 8  # marker, Npart, Massarr, Time+Redshift, FlagSfr+FlagFeedback
    _patch(names[1], nall_offset + 4, struct.pack("<I", 28))  # Nall[1] in file 1 only
    with pytest.raises(SnapshotError, match=r"snap\.1.*Nall"):
        read_snapshot(tmp_path / "snap", length_unit="Mpc/h")
    _patch(names[0], nall_offset + 4, struct.pack("<I", 28))  # now consistent, but sum of Npart = 27
    with pytest.raises(SnapshotError, match=r"sum of Npart.*differs from Nall"):
        read_snapshot(tmp_path / "snap", length_unit="Mpc/h")


def test_missing_member_file(tmp_path):
    names = _binary(tmp_path, num_files=3)
    os.remove(names[1])
    with pytest.raises(SnapshotError, match=r"snap\.1: missing file of a 3-file snapshot"):
        read_snapshot(names[0], length_unit="Mpc/h")
    with pytest.raises(SnapshotError, match="no such snapshot"):
        read_snapshot(tmp_path / "nothing")


def test_binary_needs_length_unit(tmp_path):
    pos, vel, ids = particles(3, box=1e6)
    write_gadget2_binary(tmp_path / "q", pos, vel, ids, 1e6, 0.0, COSMO, 1e11)
    with pytest.raises(SnapshotError, match=r"q: .*no length-unit metadata.*BoxSize > 5000 suggests kpc/h"):
        read_snapshot(tmp_path / "q")


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


# ---- bigfile ----------------------------------------------------------------------------------------------
def test_bigfile_missing_package_message(tmp_path, monkeypatch):
    (tmp_path / "fpm" / "Header").mkdir(parents=True)
    (tmp_path / "fpm" / "1").mkdir()
    assert detect_format(tmp_path / "fpm") == "bigfile"
    monkeypatch.setitem(sys.modules, "bigfile", None)
    with pytest.raises(ImportError, match="fpm.*pip install bigfile"):
        read_snapshot(tmp_path / "fpm")


def _write_bigfile(path, pos, vel, ids, attrs, root=False, mass=None):
    bigfile = pytest.importorskip("bigfile")
    with bigfile.File(str(path), create=True) as f:
        with f.create("." if root else "Header") as h:
            for k, v in attrs.items():
                h.attrs[k] = v
        prefix = "" if root else "1/"
        f.create_from_array(prefix + "Position", pos)
        f.create_from_array(prefix + "Velocity", vel)
        f.create_from_array(prefix + "ID", ids)
        if mass is not None:
            f.create_from_array(prefix + "Mass", mass)


def test_bigfile_fastpm(tmp_path):
    pos, vel, ids = particles(3)
    pos, vel = pos.astype(np.float32), vel.astype(np.float32)
    attrs = {"BoxSize": np.array([50.0]), "ScalingFactor": 0.5, "Time": 0.5, "OmegaM": 0.3, "Omega0": 0.25,
             "OmegaLambda": 0.7, "HubbleParam": 0.7, "MassTable": np.array([0, 2.5, 0, 0, 0, 0.0]),
             "UsePeculiarVelocity": 1, "UnitLength_in_cm": 3.085678e24}
    _write_bigfile(tmp_path / "fpm", pos, vel, ids, attrs)
    snap = read_snapshot(tmp_path / "fpm", chunk_size=10)
    np.testing.assert_array_equal(snap.positions, pos.astype(np.float64))
    np.testing.assert_array_equal(snap.velocities, vel)  # peculiar km/s as stored
    np.testing.assert_array_equal(snap.ids, ids)
    assert snap.particle_mass == 2.5e10 and snap.redshift == 1.0 and snap.cosmology["Omega_m"] == 0.3


def test_bigfile_mpgadget_internal_velocity_and_old_fastpm(tmp_path):
    pos, vel, ids = particles(3, box=50000.0)
    attrs = {"BoxSize": 50000.0, "Time": 0.25, "Omega0": 0.3, "OmegaLambda": 0.7, "HubbleParam": 0.7,
             "MassTable": np.zeros(6), "UsePeculiarVelocity": 0, "UnitLength_in_cm": 3.085678e21,
             "UnitMass_in_g": 1.989e43, "UnitVelocity_in_cm_per_s": 1e5}
    _write_bigfile(tmp_path / "mpg", pos, vel, ids, attrs, mass=np.full(len(ids), 0.5))
    snap = read_snapshot(tmp_path / "mpg")
    np.testing.assert_array_equal(snap.positions, pos / 1000.0)
    np.testing.assert_allclose(snap.velocities, vel / 0.25, rtol=1e-15)  # internal a^2 dx/dt = a v_pec
    np.testing.assert_array_equal(snap.particle_mass, np.full(len(ids), 0.5e10))
    gad = read_snapshot(tmp_path / "mpg", velocity_convention="gadget")
    np.testing.assert_allclose(gad.velocities, vel * 0.5, rtol=1e-15)
    old = {"BoxSize": 50.0, "ScalingFactor": 0.5, "OmegaM": 0.3, "M0": 3.0, "NC": 3}
    _write_bigfile(tmp_path / "old", pos / 1000, vel, ids, old, root=True)
    snap = read_snapshot(tmp_path / "old")  # FastPM: Mpc/h and peculiar velocities by convention
    np.testing.assert_array_equal(snap.positions, pos / 1000)
    assert snap.particle_mass == 3e10 and snap.cosmology["Omega_lambda"] == pytest.approx(0.7)
    _write_bigfile(tmp_path / "unknown", pos, vel, ids, {"BoxSize": 50.0, "Time": 1.0, "MassTable": np.ones(6)})
    with pytest.raises(SnapshotError, match="unknown.*length_unit"):
        read_snapshot(tmp_path / "unknown")
    with pytest.raises(SnapshotError, match="unknown.*velocity_convention"):
        read_snapshot(tmp_path / "unknown", length_unit="Mpc/h")
