"""Training-set builder and suite runner: ID matching, ZA truth, resumability, splits, bad inputs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from data_prep.build import assign_splits, build_training_set, grid_fields, load_manifest
from data_prep.readers.base import SnapshotError
from data_prep.simulate.suite import SuiteConfig, latin_hypercube, run_suite
from data_prep.writers import write_gadget4_hdf5
from emulator.core.cosmology import Cosmology
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import lagrangian_grid, lpt_velocity, vector_field_to_particles, za_displacement
from emulator.core.power import LinearPower

N, L, SEED = 16, 64.0, 11
COSMO = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)


def za_particles(z: float, seed: int = SEED):
    """Particles moved by the Zel'dovich approximation of the seed's linear field (float64)."""
    g = GrowthHistory(COSMO)
    a = 1 / (1 + z)
    dk = linear_density_k(white_noise(seed, N, dtype=torch.float64), L, LinearPower(COSMO))
    psi = za_displacement(dk, L)
    disp = float(g.D1(a)) * psi
    vel = lpt_velocity(psi, None, a=a, hubble_e=float(g.E(a)), d1=float(g.D1(a)), f1=float(g.f1(a)))
    q = lagrangian_grid(N, L, dtype=torch.float64)
    pos = torch.remainder(q + vector_field_to_particles(disp), L)
    return pos.numpy(), vector_field_to_particles(vel).numpy(), disp.numpy(), vel.numpy()


def write_snapshot(path, z, *, seed=SEED, shuffle=False, id_offset=0, drop=0):
    pos, vel, disp, velf = za_particles(z, seed)
    ids = np.arange(N**3) + id_offset
    if shuffle:
        perm = np.random.default_rng(0).permutation(N**3)
        pos, vel, ids = pos[perm], vel[perm], ids[perm]
    if drop:
        pos, vel, ids = pos[drop:], vel[drop:], ids[drop:]
    write_gadget4_hdf5(path, pos, vel, ids, L, z, COSMO.to_dict(), 1.0e11)
    return disp, velf


def write_manifest(tmp_path, sims):
    manifest = {"box_size": L, "ngrid": N, "simulations": sims}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_grid_fields_maps_shuffled_one_based_ids(tmp_path):
    disp, vel = write_snapshot(tmp_path / "s.hdf5", 0.5, shuffle=True, id_offset=1)
    got_disp, got_vel, z = grid_fields(str(tmp_path / "s.hdf5"), N, L)
    assert z == pytest.approx(0.5)
    np.testing.assert_allclose(got_disp, disp, atol=2e-5 * L)
    np.testing.assert_allclose(got_vel, vel, rtol=1e-5, atol=1e-3)


def test_za_simulation_gives_za_targets_and_seed_and_ic_agree(tmp_path):
    disp, vel = write_snapshot(tmp_path / "snap_001.hdf5", 0.0, shuffle=True)
    write_snapshot(tmp_path / "snap_000.hdf5", 20.0)
    sims = [
        {"sim_id": "from_seed", "cosmology": COSMO.to_dict(), "seed": SEED, "snapshots": ["snap_001.hdf5"]},
        {"sim_id": "from_ic", "cosmology": COSMO.to_dict(), "seed": None, "ic": "snap_000.hdf5",
         "snapshots": ["snap_001.hdf5"]},
    ]
    out = build_training_set(write_manifest(tmp_path, sims), tmp_path / "train.h5", val_fraction=0,
                             test_fraction=0, progress=False)
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "cosmo-emulator-trainingset" and f.attrs["ngrid"] == N
        g = f["sims/from_seed"]
        zg = g["z_0.0000"]
        np.testing.assert_allclose(zg["disp"][...], disp, atol=2e-5 * L)
        np.testing.assert_allclose(zg["vel"][...], vel, rtol=1e-4, atol=1e-2)
        # 2LPT input minus its second-order part equals the ZA truth
        d2 = zg.attrs["D2"]
        assert zg.attrs["D1"] == pytest.approx(1.0)
        resid = zg["lpt_disp"][...] - disp
        assert np.abs(resid).max() < 0.5 * np.abs(disp).max() and d2 < 0
        # density: painted particle overdensity has zero mean (mass conservation)
        assert abs(zg["density"][...].mean()) < 1e-5
        # the linear field read back from the ZA initial conditions equals the seed's (first-order exact)
        lin_seed, lin_ic = g["linear_delta"][...], f["sims/from_ic/linear_delta"][...]
        assert np.abs(lin_ic - lin_seed).max() < 1e-3 * np.abs(lin_seed).max()
        assert json.loads(g.attrs["source_sha256"])[0] != ""
        assert g.attrs["seed"] == SEED and f["sims/from_ic"].attrs["linear_field_from"] == "ic"


def test_build_resumes_and_skips_finished(tmp_path, monkeypatch):
    import data_prep.build as build

    write_snapshot(tmp_path / "a.hdf5", 0.0)
    sims = [{"sim_id": f"s{i}", "cosmology": {**COSMO.to_dict(), "sigma8": 0.7 + 0.05 * i}, "seed": SEED,
             "snapshots": ["a.hdf5"]} for i in range(3)]
    manifest = write_manifest(tmp_path, sims)
    calls = []
    real = build._write_simulation

    def flaky(f, fields, *args):
        calls.append(fields["sim_id"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while writing the second simulation
        return real(f, fields, *args)

    monkeypatch.setattr(build, "_write_simulation", flaky)
    out = tmp_path / "train.h5"
    with pytest.raises(KeyboardInterrupt):
        build_training_set(manifest, out, val_fraction=0, test_fraction=0, progress=False)
    assert not out.exists()  # no partial output under the final name
    calls.clear()
    monkeypatch.setattr(build, "_write_simulation", lambda f, e, *a: (calls.append(e["sim_id"]), real(f, e, *a)))
    build_training_set(manifest, out, val_fraction=0, test_fraction=0, progress=False)
    assert calls == ["s1", "s2"]  # s0 was complete and kept
    calls.clear()
    build_training_set(manifest, out, val_fraction=0, test_fraction=0, progress=False)
    assert calls == []  # up to date
    with h5py.File(out, "r") as f:
        assert sorted(f["sims"]) == ["s0", "s1", "s2"] and all(g.attrs["complete"] for g in f["sims"].values())


def test_parallel_build_writes_the_same_file(tmp_path):
    """Worker processes compute simulations, this one writes them in order: every dataset and attribute equal."""
    write_snapshot(tmp_path / "a.hdf5", 0.0)
    write_snapshot(tmp_path / "b.hdf5", 1.0)
    sims = [{"sim_id": f"s{i}", "cosmology": {**COSMO.to_dict(), "sigma8": 0.7 + 0.05 * i}, "seed": SEED + i,
             "snapshots": ["a.hdf5", "b.hdf5"]} for i in range(3)]
    manifest = write_manifest(tmp_path, sims)
    one = build_training_set(manifest, tmp_path / "one.h5", val_fraction=0, test_fraction=0, progress=False)
    two = build_training_set(manifest, tmp_path / "two.h5", val_fraction=0, test_fraction=0, progress=False,
                             workers=2)
    with h5py.File(one, "r") as f1, h5py.File(two, "r") as f2:
        assert sorted(f1["sims"]) == sorted(f2["sims"]) == ["s0", "s1", "s2"]
        same = lambda a, b: {k: str(v) for k, v in a.items()} == {k: str(v) for k, v in b.items()}  # noqa: E731
        assert same({k: v for k, v in f1.attrs.items() if k != "created"},
                    {k: v for k, v in f2.attrs.items() if k != "created"})
        assert same(f1["splits"].attrs, f2["splits"].attrs) and f1["fingerprint"][()] == f2["fingerprint"][()]
        for sid in f1["sims"]:
            g1, g2 = f1["sims"][sid], f2["sims"][sid]
            assert {k: str(v) for k, v in g1.attrs.items()} == {k: str(v) for k, v in g2.attrs.items()}
            assert sorted(g1) == sorted(g2) == ["linear_delta", "z_0.0000", "z_1.0000"]
            np.testing.assert_array_equal(g1["linear_delta"][...], g2["linear_delta"][...])
            for z in ("z_0.0000", "z_1.0000"):
                assert same(g1[z].attrs, g2[z].attrs)  # redshift, growth factors, source
                for name in ("lpt_disp", "lpt_vel", "disp", "vel", "density"):
                    np.testing.assert_array_equal(g1[z][name][...], g2[z][name][...])
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        build_training_set(manifest, tmp_path / "x.h5", progress=False, workers=0)
    with pytest.raises(ValueError, match="workers must be a positive integer"):  # before an up-to-date answer
        build_training_set(manifest, one, val_fraction=0, test_fraction=0, progress=False, workers=0)
    with pytest.raises(ValueError, match="device must be"):
        build_training_set(manifest, tmp_path / "x.h5", progress=False, device="tpu")
    assert not (tmp_path / "x.h5").exists()


def test_split_is_by_cosmology():
    from data_prep.build import SimulationEntry

    cosmos = [Cosmology(0.25 + 0.01 * i, 0.045, 0.7, 0.96, 0.8) for i in range(10)]
    entries = [SimulationEntry(f"c{i}_s{s}", c, s, ("x",), None) for i, c in enumerate(cosmos) for s in range(2)]
    splits = assign_splits(entries, 0.2, 0.2, seed=3)
    assert sum(map(len, splits.values())) == 20
    assert len(splits["val"]) == 4 and len(splits["test"]) == 4
    for name in ("val", "test"):
        held = {sid.split("_")[0] for sid in splits[name]}
        assert not held & {sid.split("_")[0] for sid in splits["train"]}


def test_bad_inputs(tmp_path):
    write_snapshot(tmp_path / "short.hdf5", 0.0, drop=5)
    with pytest.raises(SnapshotError, match="short.hdf5"):
        grid_fields(str(tmp_path / "short.hdf5"), N, L)
    with pytest.raises(SnapshotError, match="short.hdf5"):
        grid_fields(str(tmp_path / "short.hdf5"), 8, L)
    sims = [{"sim_id": "x", "cosmology": COSMO.to_dict(), "seed": 1, "snapshots": ["missing.hdf5"]}]
    with pytest.raises(FileNotFoundError, match="missing.hdf5"):
        build_training_set(write_manifest(tmp_path, sims), tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_manifest(bad)
    bad.write_text(json.dumps({"box_size": 1, "ngrid": 8, "simulations": [{"sim_id": "a", "cosmology": {}}]}))
    with pytest.raises(ValueError, match="bad.json"):
        load_manifest(bad)


def test_latin_hypercube_is_stratified():
    low, high = np.array([0.1, 0.0, 5.0]), np.array([0.5, 1.0, 6.0])
    pts = latin_hypercube(10, low, high, seed=1)
    assert pts.shape == (10, 3) and np.all(pts >= low) and np.all(pts <= high)
    for d in range(3):
        strata = np.floor((pts[:, d] - low[d]) / (high[d] - low[d]) * 10).astype(int)
        assert sorted(strata) == list(range(10))  # exactly one point per stratum


def test_suite_is_resumable_and_builds(tmp_path):
    prior = {k: [v, v] for k, v in COSMO.to_dict().items()}
    prior["sigma8"] = [0.7, 0.9]
    cfg = SuiteConfig(name="t", out_dir=str(tmp_path / "suite"), box_size=L, ngrid=8, n_cosmologies=2,
                      prior=prior, simulation={"steps": 2, "z_init": 5.0, "output_redshifts": [0.0]}, device="cpu")
    manifest = run_suite(cfg, progress=False, limit=1)
    assert len(json.loads(manifest.read_text())["simulations"]) == 1
    first = (tmp_path / "suite" / "sim_0000" / "snap_001.hdf5").stat().st_mtime_ns
    manifest = run_suite(cfg, progress=False)
    meta = json.loads(manifest.read_text())
    assert [s["sim_id"] for s in meta["simulations"]] == ["sim_0000", "sim_0001"]
    assert (tmp_path / "suite" / "sim_0000" / "snap_001.hdf5").stat().st_mtime_ns == first  # not redone
    s8 = [s["cosmology"]["sigma8"] for s in meta["simulations"]]
    assert s8[0] != s8[1] and all(0.7 <= s <= 0.9 for s in s8)
    with pytest.raises(ValueError, match="prior"):
        SuiteConfig(name="t", out_dir="x", box_size=L, ngrid=8, n_cosmologies=1, prior={"Omega_m": [0.3, 0.2]})
