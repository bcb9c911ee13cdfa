"""Snapshot writers and atomic writes: exact file contents, Gadget conventions, failure leaves nothing behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import data_prep.writers as writers
from emulator.core.atomic import atomic_file_set, atomic_open, atomic_path
from data_prep.writers import write_gadget2_binary, write_gadget4_hdf5

try:
    from gadget_fixtures import floats, gadget_file, header_bytes, ints
    from helpers_dataprep import killed_writer
except ImportError:  # tests imported as a package
    from tests.gadget_fixtures import floats, gadget_file, header_bytes, ints
    from tests.helpers_dataprep import killed_writer

COSMO = {"Omega_m": 0.3, "Omega_b": 0.05, "h": 0.7, "n_s": 0.96, "sigma8": 0.8}


def small(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 50, (n, 3)), rng.normal(0, 300, (n, 3)), np.arange(n) + 7


def test_gadget4_hdf5_contents(tmp_path):
    pos, vel, ids = small()
    (name,) = write_gadget4_hdf5(tmp_path / "snap", pos, vel, ids, 50.0, 3.0, COSMO, 4e10,
                                 extra_attrs={"seed": 42, "model": "pm-v1", "config": {"steps": 20}})
    assert name == str(tmp_path / "snap.hdf5")
    with h5py.File(name) as f:
        h, p = f["Header"].attrs, f["Parameters"].attrs
        assert h["Time"] == 0.25 and h["Redshift"] == 3.0 and h["BoxSize"] == 50.0
        assert h["NumFilesPerSnapshot"] == 1
        np.testing.assert_array_equal(h["NumPart_ThisFile"], [0, 10, 0, 0, 0, 0])
        np.testing.assert_array_equal(h["NumPart_Total"], [0, 10, 0, 0, 0, 0])
        np.testing.assert_array_equal(h["NumPart_Total_HighWord"], np.zeros(6))
        np.testing.assert_array_equal(h["MassTable"], [0, 4.0, 0, 0, 0, 0])  # 1e10 Msun/h units
        assert p["UnitLength_in_cm"] == 3.085678e24 and p["UnitVelocity_in_cm_per_s"] == 1e5
        assert p["UnitMass_in_g"] == 1.989e43 and p["ComovingIntegrationOn"] == 1
        assert (p["Omega0"], p["OmegaLambda"], p["OmegaBaryon"], p["HubbleParam"]) == (0.3, 0.7, 0.05, 0.7)
        assert (p["n_s"], p["sigma8"], p["seed"], p["model"]) == (0.96, 0.8, 42, "pm-v1")
        assert json.loads(p["config"]) == {"steps": 20}
        g = f["PartType1"]
        np.testing.assert_array_equal(g["Coordinates"][:], pos)
        np.testing.assert_array_equal(g["Velocities"][:], vel * 2.0)  # v_pec / sqrt(1/4), exact
        np.testing.assert_array_equal(g["ParticleIDs"][:], ids)
        assert "Masses" not in g and g["Velocities"].attrs["a_scaling"] == 0.5


def test_gadget4_hdf5_multi_file_split_and_masses(tmp_path):
    pos, vel, ids = small()
    mass = np.linspace(1e10, 2e10, 10)
    names = write_gadget4_hdf5(tmp_path / "snap_001.hdf5", pos, vel, ids, 50.0, 0.0, COSMO, mass, num_files=3)
    assert names == [str(tmp_path / f"snap_001.{k}.hdf5") for k in range(3)]
    bounds = [0, 3, 6, 10]  # contiguous, floor(k N / n)
    for k, name in enumerate(names):
        with h5py.File(name) as f:
            lo, hi = bounds[k], bounds[k + 1]
            np.testing.assert_array_equal(f["Header"].attrs["NumPart_ThisFile"], [0, hi - lo, 0, 0, 0, 0])
            np.testing.assert_array_equal(f["Header"].attrs["NumPart_Total"], [0, 10, 0, 0, 0, 0])
            assert f["Header"].attrs["NumFilesPerSnapshot"] == 3 and f["Header"].attrs["MassTable"][1] == 0
            np.testing.assert_array_equal(f["PartType1/ParticleIDs"][:], ids[lo:hi])
            np.testing.assert_allclose(f["PartType1/Masses"][:], mass[lo:hi] / 1e10, rtol=1e-15)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(n) for n in names]  # no temporaries left


@pytest.mark.parametrize("fmt", [1, 2])
def test_gadget2_binary_bytes_match_hand_built_layout(tmp_path, fmt):
    """Byte-for-byte against a file spelled out with struct (Gadget-2 header and record framing)."""
    pos = np.array([[1.0, 2.0, 3.0], [4.5, 5.5, 6.5], [0.0, 49.0, 25.0]])
    vel = np.array([[10.0, -20.0, 30.0], [0.5, 0.25, -0.125], [100.0, 0.0, -100.0]])
    ids = np.array([2, 0, 1])
    write_gadget2_binary(tmp_path / "w", pos, vel, ids, 50.0, 3.0, COSMO, 2e10, format=fmt)
    head = header_bytes("<", [0, 3, 0, 0, 0, 0], [0, 2.0, 0, 0, 0, 0], 0.25, 3.0, [0, 3, 0, 0, 0, 0], 1, 50.0,
                        0.3, 0.7, 0.7)
    expected = gadget_file([("HEAD", head), ("POS", floats(pos, "<")), ("VEL", floats(vel * 2.0, "<")),
                            ("ID", ints(ids, "<"))], "<", fmt)
    assert (tmp_path / "w").read_bytes() == expected


def test_gadget2_binary_mass_block_big_endian_double(tmp_path):
    pos, vel, ids = small(4)
    mass = np.array([1e10, 2e10, 3e10, 4e10])
    write_gadget2_binary(tmp_path / "w", pos, vel, ids, 50.0, 3.0, COSMO, mass, double=True, id_bytes=8, endian=">")
    head = header_bytes(">", [0, 4, 0, 0, 0, 0], [0.0] * 6, 0.25, 3.0, [0, 4, 0, 0, 0, 0], 1, 50.0, 0.3, 0.7, 0.7)
    expected = gadget_file([("HEAD", head), ("POS", floats(pos, ">", True)), ("VEL", floats(vel * 2.0, ">", True)),
                            ("ID", ints(ids, ">", 8)), ("MASS", floats(mass / 1e10, ">", True))], ">", 1)
    assert (tmp_path / "w").read_bytes() == expected


@pytest.mark.parametrize("writer", ["hdf5", "binary"])
def test_failed_writer_leaves_no_files(tmp_path, monkeypatch, writer):
    pos, vel, ids = small(12)
    (tmp_path / "keep").write_text("unrelated")
    calls = {"n": 0}
    if writer == "hdf5":
        original = h5py.Group.create_dataset

        def flaky(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 5:  # inside the second file (3 datasets per file)
                raise OSError("disk full")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    else:
        original = writers._record

        def flaky(payload, endian):
            calls["n"] += 1
            if calls["n"] == 6:  # inside the second file
                raise OSError("disk full")
            return original(payload, endian)

        monkeypatch.setattr(writers, "_record", flaky)
    write = write_gadget4_hdf5 if writer == "hdf5" else write_gadget2_binary
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path / "s", pos, vel, ids, 50.0, 0.0, COSMO, 1e10, num_files=3)
    assert os.listdir(tmp_path) == ["keep"]


def test_failed_overwrite_keeps_old_file(tmp_path, monkeypatch):
    pos, vel, ids = small()
    (name,) = write_gadget4_hdf5(tmp_path / "s", pos, vel, ids, 50.0, 0.0, COSMO, 1e10)
    before = Path(name).read_bytes()
    monkeypatch.setattr(h5py.Group, "create_dataset", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        write_gadget4_hdf5(tmp_path / "s", pos * 0.5, vel, ids, 50.0, 0.0, COSMO, 1e10)
    assert Path(name).read_bytes() == before and os.listdir(tmp_path) == ["s.hdf5"]
    with pytest.raises(FileExistsError):
        write_gadget4_hdf5(tmp_path / "s", pos, vel, ids, 50.0, 0.0, COSMO, 1e10, overwrite=False)


@pytest.mark.parametrize("kwargs,match", [
    ({"positions": np.zeros((10, 2))}, "positions"), ({"velocities": np.zeros((9, 3))}, "velocities"),
    ({"ids": np.zeros(10)}, "ids"), ({"ids": -np.arange(10)}, "non-negative"),
    ({"positions": np.full((10, 3), 60.0)}, r"\[0, box_size"), ({"box_size": 0.0}, "box_size"),
    ({"redshift": -1.0}, "redshift"), ({"particle_mass": -1.0}, "particle_mass"),
    ({"particle_mass": np.ones(3)}, "particle_mass"), ({"num_files": 11}, "num_files"),
    ({"cosmology": {"h": 0.7}}, "cosmology"), ({"length_unit": "Mpc"}, "length_unit"),
    ({"extra_attrs": {"UnitLength_in_cm": 1.0}}, "extra_attrs"), ({"velocities": np.full((10, 3), np.nan)}, "finite"),
])
def test_writer_input_validation(tmp_path, kwargs, match):
    pos, vel, ids = small()
    args = {"positions": pos, "velocities": vel, "ids": ids, "box_size": 50.0, "redshift": 0.0,
            "cosmology": COSMO, "particle_mass": 1e10, **kwargs}
    with pytest.raises(ValueError, match=match):
        write_gadget4_hdf5(tmp_path / "s", **args)
    assert os.listdir(tmp_path) == []


def test_binary_writer_option_validation(tmp_path):
    pos, vel, ids = small()
    for kw, match in (({"format": 3}, "format"), ({"id_bytes": 2}, "id_bytes"), ({"endian": "="}, "endian")):
        with pytest.raises(ValueError, match=match):
            write_gadget2_binary(tmp_path / "s", pos, vel, ids, 50.0, 0.0, COSMO, 1e10, **kw)
    with pytest.raises(ValueError, match="id_bytes=8"):
        write_gadget2_binary(tmp_path / "s", pos, vel, ids + 2**32, 50.0, 0.0, COSMO, 1e10)
    assert os.listdir(tmp_path) == []


def test_writer_accepts_cosmology_object(tmp_path):
    from data_prep.readers import read_snapshot
    from emulator.core.cosmology import get_preset

    pos, vel, ids = small()
    write_gadget4_hdf5(tmp_path / "s", pos, vel, ids, 50.0, 0.0, get_preset("quijote"), 1e10)
    cosmo = read_snapshot(tmp_path / "s").cosmology
    assert cosmo == {"Omega_m": 0.3175, "Omega_b": 0.049, "h": 0.6711, "n_s": 0.9624, "sigma8": 0.834,
                     "Omega_lambda": pytest.approx(0.6825)}


# ---- atomic helpers ---------------------------------------------------------------------------------------
def test_atomic_path_and_open(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and not target.exists()
        Path(tmp).write_text("one")
    assert target.read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write("two")
            raise RuntimeError
    assert target.read_text() == "one" and os.listdir(tmp_path) == ["a.txt"]
    with atomic_open(target, "w") as fh:
        fh.write("three")
    assert target.read_text() == "three"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(target, "a"):
            pass


def test_atomic_file_set_rollback_on_rename_failure(tmp_path, monkeypatch):
    targets = [tmp_path / f"f{k}" for k in range(3)]
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="rename failed"):
        with atomic_file_set(targets) as temps:
            for t in temps:
                Path(t).write_text("x")
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(os, "replace", real_replace)
    with atomic_file_set(targets) as temps:
        for k, t in enumerate(temps):
            Path(t).write_text(str(k))
    assert [p.read_text() for p in targets] == ["0", "1", "2"] and len(os.listdir(tmp_path)) == 3


def test_stale_temporaries_of_dead_owners_on_this_host_are_removed(tmp_path):
    from emulator.core.atomic import remove_stale_temporaries

    (dead,), dead_pid = killed_writer(tmp_path / "a.txt")  # a real writer, SIGKILLed mid-write and reaped
    name = os.path.basename(dead)
    assert os.path.exists(dead) and name.startswith(".a.txt.") and f".{dead_pid}@" in name
    head, _, tail = name.partition(f".{dead_pid}@")
    other_host = tmp_path / f"{head}.{dead_pid}@elsewhere-host.{tail.split('.', 1)[1]}"
    other_host.write_text("another machine's writer, on a shared file system")
    older_scheme = tmp_path / ".a.txt.k2j4x9qz.tmp"  # no owner recorded: never ours to judge
    older_scheme.write_text("x")
    plain = tmp_path / "data.tmp"
    plain.write_text("a user's file")
    with atomic_path(tmp_path / "b.txt") as live:  # a live owner: this process
        assert f".{os.getpid()}@" in os.path.basename(live)
        removed = remove_stale_temporaries(tmp_path)
        assert [os.path.basename(p) for p in removed] == [name]
        assert os.path.exists(live)
    assert not os.path.exists(dead)
    assert other_host.exists() and older_scheme.exists() and plain.exists()
    assert remove_stale_temporaries(tmp_path) == [] and remove_stale_temporaries(tmp_path / "missing") == []


def test_atomic_path_removes_dead_temporaries_of_its_own_target_only(tmp_path):
    (a_tmp, b_tmp), _ = killed_writer(tmp_path / "a.txt", tmp_path / "b.txt")
    assert os.path.exists(a_tmp) and os.path.exists(b_tmp)
    with atomic_open(tmp_path / "a.txt", "w") as fh:
        fh.write("new")
    assert (tmp_path / "a.txt").read_text() == "new"
    assert not os.path.exists(a_tmp) and os.path.exists(b_tmp)
