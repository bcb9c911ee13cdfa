"""Snapshot readers, across formats: multi-file sets, streaming, explicit format, length units and particle IDs.

Truths used: the file names returned by the writers, chunked reads reassembled against a full read, hand-written
ID sets with known duplicates and gaps, and the documented errors (which name the file and pickle).
"""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.readers import SnapshotError, iter_chunks, parse_length_unit, read_header, read_snapshot, validate_ids
from data_prep.writers import write_gadget2_binary, write_gadget4_hdf5

try:
    from reader_fixtures import COSMO, particles
except ImportError:  # tests imported as a package
    from tests.reader_fixtures import COSMO, particles


# ---- multi-file sets and streaming --------------------------------------------------------------------------
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


# ---- format and units ----------------------------------------------------------------------------------------
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
