"""``data-prep simulate`` resumes only what the config still asks for: recorded inputs, ``--force``, the lock,
leftovers of killed runs, an honest progress bar; ``build`` refuses a suite of mixed settings (issue 15, items
2, 3, 6, 7)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

import data_prep.simulate.suite as suite_module
from data_prep.build import build_training_set
from data_prep.cli import main
from data_prep.readers import read_snapshot
from data_prep.simulate import run_simulation
from data_prep.simulate.suite import SuiteConfig, run_suite
from emulator.core.cosmology import Cosmology

try:
    from helpers_dataprep import HOLD_LOCK, killed_writer, start_child, stop_child
except ImportError:  # tests imported as a package
    from tests.helpers_dataprep import HOLD_LOCK, killed_writer, start_child, stop_child

L = 64.0
PRIOR = {"Omega_m": [0.3, 0.3], "Omega_b": [0.048, 0.048], "h": [0.68, 0.68], "n_s": [0.965, 0.965],
         "sigma8": [0.7, 0.9]}
SIM = {"steps": 2, "z_init": 5.0, "output_redshifts": [0.0]}


def config(out, *, n=2, box=L, **simulation) -> SuiteConfig:
    """A tiny suite (8^3 particles); the same design in every test, so CAMB runs once per cosmology."""
    return SuiteConfig(name="t", out_dir=str(out), box_size=box, ngrid=8, n_cosmologies=n, prior=PRIOR,
                       simulation={**SIM, **simulation}, device="cpu")


def test_a_resume_with_other_settings_is_refused_and_redone_with_force(tmp_path, monkeypatch):
    out = tmp_path / "suite"
    run_suite(config(out), progress=False, limit=1)
    manifest = (out / "manifest.json").read_text()
    for cfg, key in [(config(out, steps=3), "simulation.steps"), (config(out, box=2 * L), "box_size")]:
        with pytest.raises(ValueError) as err:
            run_suite(cfg, progress=False)
        msg = str(err.value)
        assert "\n" not in msg and "sim_0000" in msg and f"differing: {key})" in msg and "--force" in msg
        assert not (out / "sim_0001").exists() and (out / "manifest.json").read_text() == manifest
    # what does not change the particles does not invalidate: an explicit default, a new git commit
    monkeypatch.setattr(suite_module, "code_version", lambda: "9.9+gdocsonly")
    run_suite(config(out, force_factor=2, lpt_order=2), progress=False, limit=0)
    monkeypatch.setattr(suite_module, "SIMULATOR_VERSION", suite_module.SIMULATOR_VERSION + 1)
    with pytest.raises(ValueError, match=r"differing: simulator_version\)"):
        run_suite(config(out), progress=False, limit=0)
    monkeypatch.undo()

    meta = json.loads(run_suite(config(out, steps=3), progress=False, force=True).read_text())
    assert [s["inputs"]["simulation"]["steps"] for s in meta["simulations"]] == [3, 3]
    # the redone simulation is the one a direct run with the new settings gives (CPU: bit-identical)
    sim = meta["simulations"][0]
    truth = run_simulation(Cosmology.from_mapping(sim["cosmology"]), sim["seed"], 8, L, **{**SIM, "steps": 3})
    got = read_snapshot(out / sim["snapshots"][0])
    order = np.argsort(got.ids)
    np.testing.assert_array_equal(got.positions[order], truth.outputs[0].positions.numpy().astype(np.float64))
    build_training_set(out / "manifest.json", tmp_path / "train.h5", val_fraction=0, test_fraction=0,
                       progress=False)


def test_a_marker_without_recorded_inputs_is_not_trusted(tmp_path):
    out = tmp_path / "suite"
    run_suite(config(out, n=1), progress=False)
    marker = out / "sim_0000" / "done.json"
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({k: v for k, v in record.items() if not k.startswith("inputs")}))
    with pytest.raises(ValueError, match=r"inputs \(not recorded"):
        run_suite(config(out, n=1), progress=False)


def test_build_refuses_a_suite_of_mixed_steps(tmp_path):
    """What a resume after editing ``steps`` used to produce: sim_0000 at 2 steps, sim_0001 at 3."""
    run_suite(config(tmp_path / "a"), progress=False, limit=1)
    run_suite(config(tmp_path / "b", steps=3), progress=False)
    shutil.rmtree(tmp_path / "b" / "sim_0000")
    shutil.copytree(tmp_path / "a" / "sim_0000", tmp_path / "b" / "sim_0000")
    meta = json.loads((tmp_path / "b" / "manifest.json").read_text())
    meta["simulations"][0] = json.loads((tmp_path / "a" / "manifest.json").read_text())["simulations"][0]
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError) as err:
        build_training_set(tmp_path / "b" / "manifest.json", tmp_path / "train.h5", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "manifest.json" in msg and "simulation.steps" in msg and "sim_0001" in msg
    assert not (tmp_path / "train.h5").exists() and not (tmp_path / "train.h5.partial").exists()


def test_a_second_simulate_on_the_same_suite_stops_with_one_line(tmp_path, capsys):
    out = tmp_path / "suite"
    out.mkdir()
    cfg_path = tmp_path / "suite.yaml"
    cfg_path.write_text(yaml.safe_dump({**vars(config(out)), "prior": PRIOR}))
    holder = start_child(HOLD_LOCK, out / "simulate.lock", ready="locked")  # another run holds the suite
    try:
        assert main(["simulate", "--config", str(cfg_path), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"data-prep simulate: error: another process is using {out} (a data-prep simulate "
                       f"writing it, or a benchmark reading it) (lock {out / 'simulate.lock'})")
        assert sorted(p.name for p in out.iterdir()) == ["simulate.lock"]  # no work done
    finally:
        stop_child(holder)  # killed: the kernel drops its lock, the stale file is harmless
    assert main(["simulate", "--config", str(cfg_path), "--no-progress", "--limit", "0"]) == 0
    assert not (out / "simulate.lock").exists()


def test_simulate_removes_temporaries_left_by_killed_runs(tmp_path):
    out = tmp_path / "suite"
    (out / "sim_0001").mkdir(parents=True)
    temps, _ = killed_writer(out / "manifest.json", out / "sim_0001" / "snap_001.hdf5")
    run_suite(config(out), progress=False, limit=0)
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*")), temps


def test_limit_zero_writes_the_manifest_of_the_finished_simulations(tmp_path):
    """A multi-process suite writes its manifest at its end; after such a run is killed, ``--limit 0`` lists what
    finished (its done markers) without simulating anything more, so a partial suite can be built from."""
    out = tmp_path / "suite"
    run_suite(config(out, n=3), progress=False, limit=2)
    (out / "manifest.json").unlink()  # as a killed torchrun leaves it
    before = sorted(p.name for p in out.iterdir())
    manifest = run_suite(config(out, n=3), progress=False, limit=0)
    assert [s["sim_id"] for s in json.loads(manifest.read_text())["simulations"]] == ["sim_0000", "sim_0001"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "manifest.json"])  # no sim_0002


def test_the_progress_bar_counts_this_runs_simulations(tmp_path, capsys):
    out = tmp_path / "suite"
    run_suite(config(out, n=3), progress=True, limit=1)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "1/1" in bar and "0 of 3 done before" in bar, bar
    run_suite(config(out, n=3), progress=True, limit=1)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "1/1" in bar and "1 of 3 done before" in bar, bar


@pytest.mark.parametrize("option, value, message", [
    ("integrator", "leapfrog", "simulation.integrator must be one of ('fastpm', 'cola'), got 'leapfrog'"),
    ("spacing", "cubic", "simulation.spacing must be one of"),
    ("gradient", "fd3", "simulation.gradient must be one of"),
    ("steps", 0, "simulation.steps must be a positive integer, got 0"),
    ("steps", 2.5, "simulation.steps must be a positive integer, got 2.5"),
    ("force_factor", True, "simulation.force_factor must be a positive integer, got True"),
    ("refine", 0, "simulation.refine must be a positive integer"),
    ("lpt_order", 3, "simulation.lpt_order must be 1 or 2, got 3"),
    ("deconvolve", 3, "simulation.deconvolve must be 0, 1 or 2"),
    ("mesh_shift", "half", "simulation.mesh_shift must be a number of force mesh cells, got 'half'"),
    ("mesh_shift", float("nan"), "simulation.mesh_shift must be finite"),
    ("z_init", -1.0, "simulation.z_init must be positive and finite, got -1.0"),
    ("output_redshifts", [0.0, 7.0], "simulation.output_redshifts must be a non-empty list within [0, z_init=5.0]"),
    ("output_redshifts", 0.5, "simulation.z_init and output_redshifts must be numbers"),
])
def test_a_bad_simulation_option_fails_when_the_config_loads(tmp_path, capsys, option, value, message):
    """Every option's value is checked at load time, by the same checks as run_simulation's: a one-line error
    naming the file and the option, and no suite folder, not a failure at the first simulation."""
    with pytest.raises(ValueError) as err:
        config(tmp_path / "direct", **{option: value})
    assert str(err.value).startswith(message), str(err.value)
    out = tmp_path / "suite"
    cfg_path = tmp_path / "suite.yaml"
    raw = {**vars(config(out)), "prior": PRIOR}
    raw["simulation"] = {**raw["simulation"], option: value}
    cfg_path.write_text(yaml.safe_dump(raw))
    assert main(["simulate", "--config", str(cfg_path), "--no-progress"]) == 2
    err_line = capsys.readouterr().err.strip()
    assert err_line.startswith(f"data-prep simulate: error: {cfg_path}: invalid suite config: {message}"), err_line
    assert "\n" not in err_line and not out.exists()


def test_the_suite_and_run_simulation_share_their_option_checks():
    """run_simulation refuses what a suite refuses, with the same words (one function, check_options)."""
    cosmo = Cosmology(Omega_m=0.3, Omega_b=0.048, h=0.68, n_s=0.965, sigma8=0.8)
    with pytest.raises(ValueError, match=r"^integrator must be one of \('fastpm', 'cola'\), got 'leapfrog'$"):
        run_simulation(cosmo, 1, 8, L, integrator="leapfrog")
    with pytest.raises(ValueError, match=r"^mesh_shift must be finite"):
        run_simulation(cosmo, 1, 8, L, mesh_shift=float("inf"))
