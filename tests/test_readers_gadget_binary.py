"""Gadget-1/2 binary snapshots (data_prep.readers): hand-built files, writer round trips and bad input.

Truths used: files built byte by byte with struct from the Gadget-2 user guide (tests/gadget_fixtures.py),
independently of data_prep.writers; the stored velocity V = v_pec / sqrt(a) read back from the raw bytes; round
trips through data_prep.writers; and files corrupted at known offsets, which must fail naming the file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from data_prep.readers import SnapshotError, detect_format, read_snapshot
from data_prep.writers import write_gadget2_binary

try:
    from gadget_fixtures import MIXED, header_bytes, mixed_gadget_file, record
    from reader_fixtures import COSMO, particles
except ImportError:  # tests imported as a package
    from tests.gadget_fixtures import MIXED, header_bytes, mixed_gadget_file, record
    from tests.reader_fixtures import COSMO, particles


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
