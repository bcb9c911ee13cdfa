"""``data-prep build`` never keeps or resumes a training set made from other inputs, and one build at a time
writes an output: fingerprints, ``--rebuild``, the lock, leftovers of killed builds (issue 15, items 1, 3, 6)."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from data_prep.build import assign_splits, build_training_set, load_manifest
from data_prep.cli import main

try:
    from helpers_dataprep import HOLD_LOCK, killed_writer, start_child, stop_child
    from test_build import COSMO, L, N, write_snapshot, za_particles
except ImportError:  # tests imported as a package
    from tests.helpers_dataprep import HOLD_LOCK, killed_writer, start_child, stop_child
    from tests.test_build import COSMO, L, N, write_snapshot, za_particles

NO_SPLIT = {"val_fraction": 0, "test_fraction": 0, "progress": False}


def suite(folder, seeds, sigma8s):
    """A suite folder of ZA snapshots (one per simulation, ``sim_000k/snap_001.hdf5``) and its manifest."""
    folder.mkdir(exist_ok=True)
    sims = []
    for k, (seed, s8) in enumerate(zip(seeds, sigma8s)):
        (folder / f"sim_{k:04d}").mkdir(exist_ok=True)
        write_snapshot(folder / f"sim_{k:04d}" / "snap_001.hdf5", 0.0, seed=seed)
        sims.append({"sim_id": f"sim_{k:04d}", "cosmology": {**COSMO.to_dict(), "sigma8": s8}, "seed": seed,
                     "snapshots": [f"sim_{k:04d}/snap_001.hdf5"]})
    path = folder / "manifest.json"
    path.write_text(json.dumps({"box_size": L, "ngrid": N, "simulations": sims}))
    return path


def test_a_training_set_from_another_suite_is_refused_then_rebuilt(tmp_path):
    old = suite(tmp_path / "old", seeds=[11, 12], sigma8s=[0.8, 0.85])
    new = suite(tmp_path / "new", seeds=[21, 22], sigma8s=[0.85, 0.8])  # same sim IDs, other cosmologies
    out = tmp_path / "train.h5"
    build_training_set(old, out, **NO_SPLIT)
    stamp = out.stat().st_mtime_ns
    with pytest.raises(ValueError) as err:
        build_training_set(new, out, **NO_SPLIT)
    msg = str(err.value)
    assert "\n" not in msg and str(out) in msg and "--rebuild" in msg
    assert "simulations.sim_0000.cosmology.sigma8" in msg and "simulations.sim_0001.seed" in msg
    assert out.stat().st_mtime_ns == stamp and sorted(os.listdir(tmp_path)) == ["new", "old", "train.h5"]
    build_training_set(new, out, rebuild=True, **NO_SPLIT)
    with h5py.File(out, "r") as f:
        assert f.attrs["manifest"] == os.path.abspath(new)
        for k, (seed, s8) in enumerate([(21, 0.85), (22, 0.8)]):
            g = f[f"sims/sim_{k:04d}"]
            assert g.attrs["seed"] == seed and g.attrs["sigma8"] == s8
            np.testing.assert_allclose(g["z_0.0000/disp"][...], za_particles(0.0, seed)[2], atol=2e-5 * L)
    build_training_set(new, out, **NO_SPLIT)  # now up to date: accepted as is


def test_other_split_options_or_replaced_snapshots_are_refused(tmp_path):
    manifest = suite(tmp_path, seeds=[11] * 4, sigma8s=[0.7, 0.75, 0.8, 0.85])
    out = tmp_path / "train.h5"
    build_training_set(manifest, out, val_fraction=0.25, test_fraction=0.25, split_seed=0, progress=False)
    base = {"val_fraction": 0.25, "test_fraction": 0.25, "split_seed": 0}
    for key, value in [("val_fraction", 0.5), ("test_fraction", 0.0), ("split_seed", 5)]:
        with pytest.raises(ValueError, match=rf"differing: {key}\);.*--rebuild"):
            build_training_set(manifest, out, **{**base, key: value}, progress=False)
    write_snapshot(tmp_path / "sim_0002" / "snap_001.hdf5", 0.0, seed=99)  # the simulation was redone
    with pytest.raises(ValueError, match=r"sim_0002\.sources\.sim_0002/snap_001\.hdf5"):
        build_training_set(manifest, out, **base, progress=False)
    build_training_set(manifest, out, val_fraction=0.5, test_fraction=0.0, split_seed=5, rebuild=True,
                       progress=False)
    _, entries = load_manifest(manifest)
    truth = assign_splits(entries, 0.5, 0.0, 5)  # the split the new options ask for
    with h5py.File(out, "r") as f:
        assert {k: sorted(json.loads(f["splits"].attrs[k])) for k in truth} == {k: sorted(v) for k, v in truth.items()}
        assert all(f[f"sims/{sid}"].attrs["split"] == name for name, ids in truth.items() for sid in ids)
        np.testing.assert_allclose(f["sims/sim_0002/z_0.0000/disp"][...], za_particles(0.0, 99)[2], atol=2e-5 * L)


def test_an_interrupted_build_from_other_inputs_is_not_resumed(tmp_path, monkeypatch):
    import data_prep.build as build

    manifest = suite(tmp_path, seeds=[11, 12, 13], sigma8s=[0.7, 0.8, 0.85])
    out, partial = tmp_path / "train.h5", tmp_path / "train.h5.partial"
    real = build._write_simulation
    calls = []

    def killed_at_the_second(f, fields, *args):
        calls.append(fields["sim_id"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(f, fields, *args)

    monkeypatch.setattr(build, "_write_simulation", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        build_training_set(manifest, out, **NO_SPLIT)
    assert partial.exists() and not out.exists()
    monkeypatch.setattr(build, "_write_simulation", real)
    stamp = partial.stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"train\.h5\.partial \(an interrupted build\).*split_seed"):
        build_training_set(manifest, out, split_seed=3, **NO_SPLIT)
    assert partial.stat().st_mtime_ns == stamp and not out.exists()
    build_training_set(manifest, out, split_seed=3, rebuild=True, **NO_SPLIT)
    assert not partial.exists()
    with h5py.File(out, "r") as f:
        assert sorted(f["sims"]) == ["sim_0000", "sim_0001", "sim_0002"]
        assert json.loads(f["fingerprint"][()])["split_seed"] == 3


def test_command_line_refuses_in_one_line_and_rebuilds_on_request(tmp_path, capsys):
    old = suite(tmp_path / "old", seeds=[11], sigma8s=[0.8])
    new = suite(tmp_path / "new", seeds=[12], sigma8s=[0.7])
    out = str(tmp_path / "train.h5")
    args = ["build", "--out", out, "--val-fraction", "0", "--test-fraction", "0", "--no-progress"]
    assert main([*args, "--manifest", str(old)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert main([*args, "--manifest", str(old)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main([*args, "--manifest", str(new)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("data-prep build: error:") and "--rebuild" in err
    assert main([*args, "--manifest", str(new), "--rebuild"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    with h5py.File(out, "r") as f:
        assert f["sims/sim_0000"].attrs["seed"] == 12


_SLOW_BUILD = """
import sys, time
import data_prep.build as build
def stuck(*args):
    print("writing", flush=True)
    time.sleep(120)
build._write_simulation = stuck
build.build_training_set(sys.argv[1], sys.argv[2], val_fraction=0, test_fraction=0, progress=False)
"""


def test_a_second_build_on_the_same_out_stops_with_one_line(tmp_path, capsys):
    manifest = suite(tmp_path, seeds=[11], sigma8s=[0.8])
    out = tmp_path / "train.h5"
    first = start_child(_SLOW_BUILD, manifest, out, ready="writing")  # another build, busy writing
    try:
        assert main(["build", "--manifest", str(manifest), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"data-prep build: error: another data-prep build is writing {out} "
                       f"(lock {tmp_path / 'train.h5.lock'})")
    finally:
        stop_child(first)  # killed: the kernel drops its lock
    build_training_set(manifest, out, **NO_SPLIT)  # resumes the killed build's partial file
    assert out.exists() and not (tmp_path / "train.h5.partial").exists()
    assert not (tmp_path / "train.h5.lock").exists()


def test_a_held_lock_refuses_before_any_work(tmp_path):
    manifest = suite(tmp_path, seeds=[11], sigma8s=[0.8])
    out = tmp_path / "train.h5"
    holder = start_child(HOLD_LOCK, tmp_path / "train.h5.lock", ready="locked")
    try:
        with pytest.raises(FileExistsError, match="another data-prep build is writing"):
            build_training_set(manifest, out, **NO_SPLIT)
        assert not out.exists() and not (tmp_path / "train.h5.partial").exists()
    finally:
        stop_child(holder)


def test_build_removes_temporaries_left_by_killed_writers(tmp_path):
    manifest = suite(tmp_path, seeds=[11], sigma8s=[0.8])
    (dead_out, dead_other), _ = killed_writer(tmp_path / "train.h5", tmp_path / "notes.txt")
    with h5py.File(dead_out, "w"):
        pass  # as much as a killed writer may have written
    build_training_set(manifest, tmp_path / "train.h5", **NO_SPLIT)
    assert not os.path.exists(dead_out) and not os.path.exists(dead_other)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
