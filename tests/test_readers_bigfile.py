"""bigfile snapshots (data_prep.readers): FastPM (current and old layouts) and MP-Gadget.

Truths used: files written with the bigfile package with known contents and units (Mpc/h or kpc/h; peculiar,
Gadget or internal a^2 dx/dt velocities), and the install hint when the package is missing. The round-trip tests
skip without the optional bigfile package.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from data_prep.readers import SnapshotError, detect_format, read_snapshot

try:
    from reader_fixtures import particles
except ImportError:  # tests imported as a package
    from tests.reader_fixtures import particles


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
