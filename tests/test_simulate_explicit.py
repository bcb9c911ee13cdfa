"""Explicit cosmologies for ``data-prep simulate`` (YAML list and single-run flags), the refinement's fingerprint,
and the converged suites (issue 11 §1): seeds as ``emulator generate``, disjoint suites, corners in the test suite."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from data_prep.cli import main
from data_prep.simulate import run_simulation
from data_prep.simulate.explicit import parse_cosmologies
from data_prep.simulate.suite import SuiteConfig, suite_design, load_suite_config, simulation_inputs
from emulator.core.cosmology import PARAMETER_NAMES, Cosmology
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import k_magnitude, to_fourier
from emulator.core.lpt import lagrangian_grid, particles_to_vector_field, za_displacement
from emulator.core.growth import GrowthHistory
from emulator.core.power import LinearPower

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
POINT = {"Omega_m": 0.31, "Omega_b": 0.049, "h": 0.67, "n_s": 0.96, "sigma8": 0.81}
PRIOR = {k: [v, v] for k, v in POINT.items()}


def _flags(point=POINT):
    names = {"Omega_m": "--omega-m", "Omega_b": "--omega-b", "h": "--h", "n_s": "--n-s", "sigma8": "--sigma8"}
    return [a for k, v in point.items() for a in (names[k], str(v))]


def test_single_run_flags_reproduce_the_generators_initial_conditions(tmp_path, capsys):
    """`data-prep simulate --omega-m ... --seed 5` (refine 1): the IC snapshot is the ZA+2LPT of white_noise(5, n),
    the 2LPT input of `emulator generate --seed 5`; the recipe is recorded in done.json and the HDF5 attrs."""
    n, box, seed, z_init = 16, 32.0, 5, 12.0
    argv = ["simulate", *_flags(), "--seed", str(seed), "--redshifts", "0", "0.5", "--out", str(tmp_path / "one"),
            "--ngrid", str(n), "--box-size", str(box), "--refine", "1", "--steps", "3", "--pm-factor", "2",
            "--z-init", str(z_init), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    (sim,) = manifest["simulations"]
    assert sim["sim_id"] == "single" and sim["seed"] == seed and sim["cosmology"] == POINT
    assert "refine" not in sim["inputs"]["simulation"]  # refine 1: the fingerprint of pre-refinement suites
    assert sim["inputs"]["simulation"]["steps"] == 3 and sim["inputs"]["simulation"]["output_redshifts"] == [0.5, 0.0]
    with h5py.File(tmp_path / "one" / sim["ic"], "r") as fh:
        pos = np.asarray(fh["PartType1/Coordinates"], dtype=np.float64)
        ids = np.asarray(fh["PartType1/ParticleIDs"])
        recipe = json.loads(fh["Parameters"].attrs["recipe"])
    assert recipe == {"refine": 1, "steps": 3, "force_factor": 2, "z_init": z_init}
    cosmo = Cosmology.from_mapping(POINT)
    delta_k = linear_density_k(white_noise(seed, n, dtype=torch.float64), box, LinearPower(cosmo))
    q = lagrangian_grid(n, box, dtype=torch.float64).numpy()
    za = particles_to_vector_field(torch.as_tensor(pos[np.argsort(ids)] - q), n).numpy()
    za = (za + box / 2) % box - box / 2  # minimum image
    want = GrowthHistory(cosmo).D1(1 / (1 + z_init)) * za_displacement(delta_k, box).numpy()
    # the 2LPT term is ~1% of the ZA one at z = 12 and the positions are float32: 3% of the rms
    assert np.sqrt(np.mean((za - want) ** 2)) < 0.03 * np.sqrt(np.mean(want**2))


def test_refined_single_run_shares_the_generators_large_scales(tmp_path):
    """Refine 2: 16^3 outputs whose IC displacement correlates with the generator's ZA field at k < k_Nyq/2."""
    n, box, seed = 16, 32.0, 8
    argv = ["simulate", *_flags(), "--seed", str(seed), "--redshifts", "12", "--out", str(tmp_path / "r2"),
            "--ngrid", str(n), "--box-size", str(box), "--refine", "2", "--z-init", "12", "--no-progress",
            "--device", "cpu"]
    assert main(argv) == 0
    (sim,) = json.loads((tmp_path / "r2" / "manifest.json").read_text())["simulations"]
    assert sim["inputs"]["simulation"]["refine"] == 2
    with h5py.File(tmp_path / "r2" / sim["ic"], "r") as fh:
        pos = np.asarray(fh["PartType1/Coordinates"], dtype=np.float64)
    assert pos.shape == (n**3, 3)
    s = pos - lagrangian_grid(n, box, dtype=torch.float64).numpy()
    s = torch.as_tensor((s + box / 2) % box - box / 2)
    got = to_fourier(particles_to_vector_field(s, n))
    power = LinearPower(Cosmology.from_mapping(POINT))
    delta_k = linear_density_k(white_noise(seed, n, dtype=torch.float64), box, power)
    want = to_fourier(za_displacement(delta_k, box))
    k = k_magnitude(n, box, dtype=torch.float64)
    low = (k > 0) & (k < 0.5 * np.pi * n / box)
    a, b = got[:, low], want[:, low]
    r = (a * b.conj()).real.sum() / torch.sqrt(a.abs().square().sum() * b.abs().square().sum())
    assert r > 0.99


def test_yaml_list_and_errors():
    entries = [{**POINT, "seed": 3, "name": "fid"}, {**POINT, "sigma8": 0.7, "seed": 3}]
    cfg = SuiteConfig(name="x", out_dir="x", box_size=32.0, ngrid=8, n_cosmologies=2,
                      prior=load_suite_config(CONFIGS / "suite_default.yaml").prior, cosmologies=entries)
    design = suite_design(cfg)
    assert [d["sim_id"] for d in design] == ["sim_0000", "sim_0001", "fid", "cosmo_0001"]
    assert design[2]["seed"] == design[3]["seed"] == 3 and design[3]["cosmology"]["sigma8"] == 0.7
    bad = [({**POINT}, "seed is required"), ({**POINT, "seed": -1}, "seed"), ({**POINT, "seed": 1, "w0": -1},
           "unknown key"), ({"Omega_m": 0.3, "seed": 1}, "missing parameter"), ({**POINT, "seed": 1, "name": "a/b"},
           "name"), ({**POINT, "seed": 1.5}, "seed")]
    for entry, msg in bad:
        with pytest.raises(ValueError, match=msg):
            parse_cosmologies([entry])
    with pytest.raises(ValueError, match="used twice"):
        parse_cosmologies([{**POINT, "seed": 1, "name": "a"}, {**POINT, "seed": 2, "name": "a"}])


def test_single_run_needs_every_flag(capsys):
    assert main(["simulate", "--omega-m", "0.3", "--seed", "1", "--out", "x"]) != 0
    err = capsys.readouterr().err
    assert "--omega-b" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value, said", [
    ("--steps", "0", "--steps must be a positive integer, got 0"),
    ("--pm-factor", "0", "--pm-factor must be a positive integer, got 0"),
    ("--refine", "0", "--refine must be a positive integer"),
    ("--z-init", "-1", "--z-init must be positive and finite, got -1.0"),
    ("--redshifts", "20", "--redshifts must be a non-empty list within [0, z_init=12.0], got [20.0]"),
    ("--box-size", "-1", "--box-size must be positive and finite (Mpc/h), got -1.0"),
    ("--ngrid", "0", "--ngrid must be a positive integer"),
])
def test_a_bad_single_run_flag_is_named_as_typed(tmp_path, capsys, flag, value, said):
    out = tmp_path / "out"
    assert main(["simulate", *_flags(), "--seed", "1", "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and "simulation." not in err, err
    assert not out.exists()


def test_refine_enters_the_fingerprint_only_when_used():
    base = dict(name="x", out_dir="x", box_size=32.0, ngrid=8, n_cosmologies=1, prior=PRIOR)
    sim = {"sim_id": "sim_0000", "cosmology": POINT, "seed": 1}
    old = simulation_inputs(SuiteConfig(**base, simulation={"steps": 12}), sim)
    one = simulation_inputs(SuiteConfig(**base, simulation={"steps": 12, "refine": 1}), sim)
    two = simulation_inputs(SuiteConfig(**base, simulation={"steps": 12, "refine": 2}), sim)
    assert old == one and "refine" not in old["simulation"] and two["simulation"]["refine"] == 2


def test_the_integrator_enters_the_fingerprint_only_when_cola():
    """FastPM stepping keeps the fingerprint of suites made before COLA existed; a COLA suite differs; a wrong
    name is refused with the option's name."""
    base = dict(name="x", out_dir="x", box_size=32.0, ngrid=8, n_cosmologies=1, prior=PRIOR)
    sim = {"sim_id": "sim_0000", "cosmology": POINT, "seed": 1}
    old = simulation_inputs(SuiteConfig(**base, simulation={"steps": 12}), sim)
    fastpm = simulation_inputs(SuiteConfig(**base, simulation={"steps": 12, "integrator": "fastpm"}), sim)
    cola = simulation_inputs(SuiteConfig(**base, simulation={"steps": 12, "integrator": "cola"}), sim)
    assert old == fastpm and "integrator" not in old["simulation"] and cola["simulation"]["integrator"] == "cola"
    with pytest.raises(ValueError, match="integrator must be one of"):
        run_simulation(Cosmology(**POINT), 1, 8, 32.0, integrator="leapfrog")


def test_a_single_cola_run_records_its_integrator(tmp_path):
    """`data-prep simulate ... --integrator cola`: the fingerprint and the snapshots' recipe say COLA, and the
    particles are run_simulation's COLA run of the same seed (not the FastPM one)."""
    n, box, seed = 16, 64.0, 5
    argv = ["simulate", *_flags(), "--seed", str(seed), "--redshifts", "0", "--out", str(tmp_path / "c"), "--ngrid",
            str(n), "--box-size", str(box), "--refine", "1", "--steps", "3", "--integrator", "cola", "--no-progress",
            "--device", "cpu"]
    assert main(argv) == 0
    (sim,) = json.loads((tmp_path / "c" / "manifest.json").read_text())["simulations"]
    assert sim["inputs"]["simulation"]["integrator"] == "cola"
    with h5py.File(tmp_path / "c" / sim["snapshots"][-1], "r") as fh:
        pos = torch.as_tensor(np.asarray(fh["PartType1/Coordinates"])[np.argsort(fh["PartType1/ParticleIDs"][...])])
        assert json.loads(fh["Parameters"].attrs["recipe"])["integrator"] == "cola"
    kw = dict(output_redshifts=[0.0], steps=3, z_init=12.0, force_factor=2)
    cola = run_simulation(Cosmology(**POINT), seed, n, box, integrator="cola", **kw)
    assert cola.config["integrator"] == "cola"
    fastpm = run_simulation(Cosmology(**POINT), seed, n, box, **kw)
    assert "integrator" not in fastpm.config
    torch.testing.assert_close(pos, cola.outputs[0].positions.to(pos.dtype), rtol=0, atol=1e-4)
    assert float((fastpm.outputs[0].positions - cola.outputs[0].positions).abs().max()) > 0.01


def _suites():
    return {name: load_suite_config(CONFIGS / f"{name}.yaml")
            for name in ("suite_converged", "suite_converged_val", "suite_converged_test")}


def test_converged_suites_are_disjoint_and_the_test_suite_holds_corners():
    suites = _suites()
    train, val, test = (suite_design(c) for c in suites.values())
    assert len(train) >= 96 and len(val) >= 8 and len(test) >= 8
    for cfg in suites.values():
        assert cfg.simulation["refine"] == 2 and cfg.simulation["steps"] >= 20
        assert {0.0, 0.5, 1.0, 2.0} <= set(cfg.simulation["output_redshifts"])
        assert (cfg.box_size, cfg.ngrid) == (128.0, 64)
    low, high = suites["suite_converged"].low, suites["suite_converged"].high
    for cfg in suites.values():
        assert np.array_equal(cfg.low, low) and np.array_equal(cfg.high, high)
    for a, b in itertools.combinations((train, val, test), 2):
        assert not {d["seed"] for d in a} & {d["seed"] for d in b}
        pa = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in a])
        pb = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in b])
        dist = np.abs((pa[:, None] - pb[None]) / (high - low)).max(axis=-1)
        assert dist.min() > 1e-3  # no cosmology is shared
    points = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in test])
    assert np.all(points >= low - 1e-12) and np.all(points <= high + 1e-12)
    at_bound = np.isclose(points, low) | np.isclose(points, high)
    assert at_bound.all(axis=1).sum() >= 2  # full corners of the 5-d hull
    om, s8 = PARAMETER_NAMES.index("Omega_m"), PARAMETER_NAMES.index("sigma8")
    corners = {(bool(np.isclose(p[om], high[om])), bool(np.isclose(p[s8], high[s8])))
               for p, b in zip(points, at_bound) if b[om] and b[s8]}
    assert len(corners) == 4  # all four (Omega_m, sigma8) corners, high sigma8 with low Omega_m included
    by_cosmology: dict = {}
    for d, p in zip(test, points):
        by_cosmology.setdefault(tuple(np.round(p, 12)), set()).add(d["seed"])
    assert len(by_cosmology) >= 8 and all(len(s) >= 2 for s in by_cosmology.values())  # >= 2 realizations each


def test_the_corner_validation_suite_is_disjoint_and_near_every_corner():
    """configs/suite_converged_val_corners.yaml: model selection near the hull's corners, never on the test suite's
    points: seeds and cosmologies disjoint from the training, validation and test suites, every point at 7/8 of the
    way to the faces, and each of the four (Omega_m, sigma8) corners held by four points."""
    corners = load_suite_config(CONFIGS / "suite_converged_val_corners.yaml")
    design = suite_design(corners)
    assert len(design) == 16 and corners.simulation == _suites()["suite_converged"].simulation
    low, high = corners.low, corners.high
    pts = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in design])
    assert np.allclose(np.abs(2 * (pts - (low + high) / 2) / (high - low)), 0.875)
    om, s8 = PARAMETER_NAMES.index("Omega_m"), PARAMETER_NAMES.index("sigma8")
    quads = [(bool(p[om] > (low[om] + high[om]) / 2), bool(p[s8] > (low[s8] + high[s8]) / 2)) for p in pts]
    assert sorted(quads.count(q) for q in set(quads)) == [4, 4, 4, 4]
    for other in (suite_design(c) for c in _suites().values()):
        assert not {d["seed"] for d in design} & {d["seed"] for d in other}
        po = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in other])
        assert np.abs((pts[:, None] - po[None]) / (high - low)).max(axis=-1).min() > 1e-3


def test_the_corner_training_suite_reaches_the_corners_without_touching_a_held_out_point():
    """configs/suite_converged_corners.yaml (training points near the corners): Omega_m and sigma8 on the hull's
    faces, Omega_b, h, n_s at 3/4 of the way to theirs, four points per (Omega_m, sigma8) corner, the half-fraction
    complementary to the corner validation suite's (no sign pattern shared), and seeds and cosmologies disjoint from
    every other converged suite, so no test or model-selection point is trained on."""
    cfg = load_suite_config(CONFIGS / "suite_converged_corners.yaml")
    design = suite_design(cfg)
    assert len(design) == 16 and cfg.simulation == _suites()["suite_converged"].simulation
    low, high = cfg.low, cfg.high
    pts = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in design])
    unit = 2 * (pts - (low + high) / 2) / (high - low)
    om, s8 = PARAMETER_NAMES.index("Omega_m"), PARAMETER_NAMES.index("sigma8")
    rest = [i for i in range(len(PARAMETER_NAMES)) if i not in (om, s8)]
    assert np.allclose(np.abs(unit[:, [om, s8]]), 1.0) and np.allclose(np.abs(unit[:, rest]), 0.75)
    quads = [tuple(np.sign(u[[om, s8]])) for u in unit]
    assert sorted(quads.count(q) for q in set(quads)) == [4, 4, 4, 4]
    val_corners = suite_design(load_suite_config(CONFIGS / "suite_converged_val_corners.yaml"))
    pv = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in val_corners])
    assert not {tuple(np.sign(u)) for u in unit} & {tuple(np.sign(u)) for u in (pv - (low + high) / 2)}
    others = [load_suite_config(p) for p in sorted(CONFIGS.glob("suite_converged*.yaml"))
              if p.name != "suite_converged_corners.yaml"]
    assert len(others) >= 9  # training, validation (two), test (two sizes), response (two), 1 Mpc/h (two)
    for other in (suite_design(c) for c in others):
        assert not {d["seed"] for d in design} & {d["seed"] for d in other}
        po = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in other])
        assert np.abs((pts[:, None] - po[None]) / (high - low)).max(axis=-1).min() > 1e-3


def test_the_1mpc_suites_share_the_recipe_at_half_the_spacing_and_are_disjoint():
    """configs/suite_converged_1mpc*.yaml (the 1 Mpc/h model, issue 13): the converged recipe of the 2 Mpc/h
    suites in a 64 Mpc/h box; training and test suites disjoint in seeds and cosmologies, and from every other
    converged suite in seeds; the test suite holds the 2 Mpc/h test cosmologies, two seeds each."""
    ref = load_suite_config(CONFIGS / "suite_converged.yaml")
    train, test = (load_suite_config(CONFIGS / f"suite_converged_1mpc{s}.yaml") for s in ("", "_test"))
    for cfg in (train, test):
        assert (cfg.box_size, cfg.ngrid) == (64.0, 64) and cfg.simulation == ref.simulation
        assert np.array_equal(cfg.low, ref.low) and np.array_equal(cfg.high, ref.high)
    a, b = suite_design(train), suite_design(test)
    assert len(a) >= 96 and len(b) == 20
    others = {d["seed"] for name in ("suite_converged", "suite_converged_val", "suite_converged_test")
              for d in suite_design(load_suite_config(CONFIGS / f"{name}.yaml"))}
    seeds_a, seeds_b = {d["seed"] for d in a}, {d["seed"] for d in b}
    assert not seeds_a & seeds_b and not (seeds_a | seeds_b) & others and len(seeds_b) == 20
    pa = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in a])
    pb = np.array([Cosmology.from_mapping(d["cosmology"]).to_array() for d in b])
    assert np.abs((pa[:, None] - pb[None]) / (ref.high - ref.low)).max(axis=-1).min() > 1e-3
    ref_test = {tuple(Cosmology.from_mapping(d["cosmology"]).to_array())
                for d in suite_design(load_suite_config(CONFIGS / "suite_converged_test.yaml"))}
    assert {tuple(p) for p in pb} == ref_test
