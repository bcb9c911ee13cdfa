"""The evolving lightcone: the crossing logic against the static cut-sky of the same lattice, the interpolated
crossing against the exact Zel'dovich crossing, no density seam at a ladder redshift, no seam at box-replica faces
deep in the cone (z = 0.3, checked particle by particle against the exact crossing), ladder checks, and the
evolving halo lightcone through ``generate_mocks``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from emulator.core.cosmology import get_preset
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import lagrangian_grid, vector_field_to_particles
from emulator.mocks.cutsky import box_to_sky
from emulator.mocks.distance import DistanceRedshift
from emulator.mocks.lightcone import check_ladder, default_ladder, particle_lightcone
from emulator.model.emulate import emulate_fields

COSMO = get_preset("planck18")
BOX, N = 64.0, 16
ZR = (0.01, 0.03)


def _za(z, seed=3):
    f = emulate_fields(COSMO, z, BOX, seed, method="za", ngrid=N)
    disp = vector_field_to_particles(f.displacement).numpy().astype(np.float64)
    return disp, f.velocities.numpy().astype(np.float64)


@pytest.fixture(scope="module")
def q():
    return lagrangian_grid(N, BOX, dtype=torch.float64).numpy()


def _key(cols):
    return cols["INDEX"] * 10**6 + (cols["REPLICA"] + 50) @ np.array([10**4, 10**2, 1])


def test_static_particles_give_the_static_cut_sky(q):
    """With zero displacement the cone is the replicated lattice: same (particle, replica) set as box_to_sky."""
    ladder = [0.0, 0.02, 0.04]
    zero = np.zeros_like(q)
    with pytest.warns(UserWarning, match="seen more than once"):
        out = particle_lightcone(q, lambda j: (zero, zero), ladder, BOX, COSMO, ZR, observer=[3.1, 7.7, 50.2],
                                 rsd=False)
    cols = out["columns"]
    ref = box_to_sky(q, None, BOX, COSMO, ZR, observer=[3.1, 7.7, 50.2], rsd=False)
    assert len(cols["INDEX"]) == ref.size > 1000
    np.testing.assert_array_equal(np.sort(_key(cols)), np.sort(_key(ref)))
    o1, o2 = np.argsort(_key(cols)), np.argsort(_key(ref))
    np.testing.assert_allclose(cols["DISTANCE_COSMO"][o1], ref["DISTANCE_COSMO"][o2], rtol=1e-9)
    np.testing.assert_allclose(cols["Z_COSMO"][o1], ref["Z_COSMO"][o2], rtol=1e-6)
    assert out["attrs"]["n_replicas"] >= 8 and out["attrs"]["repeats"]


def test_interpolated_crossing_matches_the_exact_zeldovich_crossing(q):
    """ZA displacements scale exactly with D(a): the crossing from a coarse ladder (linear in a) matches the root
    of |q + D(a)/D(a0) psi0 + nL - obs| = chi(a) solved directly."""
    ladder = default_ladder(*ZR)  # [0, 0.04]: one interval
    disp, vel = zip(*[_za(z) for z in ladder])
    with pytest.warns(UserWarning):
        cols = particle_lightcone(q, lambda j: (disp[j], vel[j]), ladder, BOX, COSMO, ZR, rsd=False)["columns"]
    growth, table = GrowthHistory(COSMO), DistanceRedshift(COSMO, 0.1)
    d0 = float(growth.D1(1.0))
    psi0 = disp[0] / d0
    obs = np.full(3, BOX / 2)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(cols["INDEX"]), 40, replace=False):
        base = q[cols["INDEX"][i]] + cols["REPLICA"][i] * BOX - obs

        def f(a):
            return np.linalg.norm(base + float(growth.D1(a)) * psi0[cols["INDEX"][i]]) - table.distance(1 / a - 1)

        a = brentq(f, 1 / 1.05, 1.0, xtol=1e-12)
        assert cols["Z_COSMO"][i] == pytest.approx(1 / a - 1, abs=2e-6)
        assert cols["DISTANCE_COSMO"][i] == pytest.approx(float(table.distance(1 / a - 1)), abs=5e-3)  # Mpc/h


def test_no_density_seam_at_a_ladder_redshift(q):
    """Thin shells on both sides of the ladder point z = 0.02: the coarse-ladder cone has the same counts as a
    fine-ladder cone (no seam), within Poisson noise, and the two sides agree with each other."""
    zr = (0.01, 0.03)
    coarse, fine = [0.0, 0.02, 0.04], [round(z, 3) for z in np.arange(0.0, 0.0401, 0.0025)]
    counts = {}
    table = DistanceRedshift(COSMO, 0.1)
    c_mid = float(table.distance(0.02))
    edges = c_mid + np.array([-6.0, -3.0, 0.0, 3.0, 6.0])
    for name, ladder in (("coarse", coarse), ("fine", fine)):
        disp, vel = zip(*[_za(z) for z in ladder])
        with pytest.warns(UserWarning):
            cols = particle_lightcone(q, lambda j: (disp[j], vel[j]), ladder, BOX, COSMO, zr,
                                      rsd=False)["columns"]
        counts[name] = np.histogram(cols["DISTANCE_COSMO"], bins=edges)[0]
    vol = np.diff(edges**3)
    assert np.all(np.abs(counts["coarse"] - counts["fine"]) <= 4 * np.sqrt(counts["fine"]) * 0.25 + 2)
    density = counts["coarse"] / vol
    below, above = density[:2].mean(), density[2:].mean()
    sigma = np.sqrt(1 / counts["coarse"][:2].sum() + 1 / counts["coarse"][2:].sum())
    assert abs(above / below - 1) < 4 * sigma


@pytest.mark.filterwarnings("ignore:the cone reaches")
def test_ladder_checks():
    lad = default_ladder(0.05, 0.15)
    assert lad[0] == 0.04 and lad[-1] == 0.16 and np.all(np.diff(lad) <= 0.05 + 1e-12) and len(lad) == 4
    with pytest.raises(ValueError, match="must cover the redshift range"):
        check_ladder([0.1, 0.2], 0.05, 0.15)
    with pytest.raises(ValueError, match="distinct"):
        check_ladder([0.1, 0.1], 0.1, 0.1)
    zero = np.zeros((8, 3))
    with pytest.raises(ValueError, match="increasing"):
        particle_lightcone(zero, lambda j: (zero, zero), [0.04, 0.0], BOX, COSMO, ZR)
    with pytest.warns(UserWarning, match="does not extend beyond"):  # 3000 km/s: the edges need a margin
        particle_lightcone(zero + 1.0, lambda j: (zero, zero + 3000.0), [0.01, 0.03], BOX, COSMO, ZR)


@pytest.mark.filterwarnings("ignore:the ladder")
def test_no_seam_at_box_replica_faces_deep_in_the_cone():
    """At z = 0.30-0.31 (chi ~ 840 Mpc/h, ~250 replicas of a 256 Mpc/h box): static particles give exactly the
    replicated cut sky; with ZA motion, every particle near a replica face enters the cone in exactly the replicas
    where its exact Zel'dovich path crosses the light cone inside the range (none lost or doubled at the faces)."""
    box, zr, obs = 256.0, (0.30, 0.31), np.array([17.3, 101.9, 240.4])
    q = lagrangian_grid(N, box, dtype=torch.float64).numpy()
    zero = np.zeros_like(q)
    ladder = default_ladder(*zr)
    with pytest.warns(UserWarning, match="seen more than once"):
        static = particle_lightcone(q, lambda j: (zero, zero), ladder, box, COSMO, zr, observer=obs, rsd=False)
    ref = box_to_sky(q, None, box, COSMO, zr, observer=obs, rsd=False)
    assert static["attrs"]["n_replicas"] > 100 and ref.size > 10_000
    np.testing.assert_array_equal(np.sort(_key(static["columns"])), np.sort(_key(ref)))

    fields = [emulate_fields(COSMO, z, box, 5, method="za", ngrid=N) for z in ladder]
    disp = [vector_field_to_particles(f.displacement).numpy().astype(np.float64) for f in fields]
    vel = [f.velocities.numpy().astype(np.float64) for f in fields]
    with pytest.warns(UserWarning, match="seen more than once"):
        cols = particle_lightcone(q, lambda j: (disp[j], vel[j]), ladder, box, COSMO, zr, observer=obs,
                                  rsd=False)["columns"]
    growth, table = GrowthHistory(COSMO), DistanceRedshift(COSMO, 0.5)
    psi = disp[0] / float(growth.D1(1 / (1 + ladder[0])))
    x = q + disp[0]
    u = np.mod(x, box)
    near = np.flatnonzero(np.minimum(u, box - u).min(1) < 1.5)  # within 1.5 Mpc/h of a face at the late end
    reps = np.unique(np.concatenate([static["columns"]["REPLICA"], cols["REPLICA"]]), axis=0)

    def gap(z):  # |q + D psi + n L - obs| - chi(z), particles x replicas (Mpc/h)
        d = float(growth.D1(1 / (1 + z)))
        r = q[near, None, :] + d * psi[near, None, :] + reps[None] * box - obs
        return np.linalg.norm(r, axis=-1) - float(table.distance(z))

    g0, g1 = gap(zr[0]), gap(zr[1])
    expected = (g0 > 0) & (g1 <= 0)  # outside the cone's sphere at z0, inside at z1: the crossing is in range
    clear = (np.abs(g0) > 0.05) & (np.abs(g1) > 0.05)  # edge cases within the ladder's interpolation error
    got = np.zeros_like(expected)
    where = {int(i): k for k, i in enumerate(near)}
    rep_index = {tuple(r): k for k, r in enumerate(reps.tolist())}
    for i, rep in zip(cols["INDEX"], cols["REPLICA"].tolist()):
        if int(i) in where:
            assert not got[where[int(i)], rep_index[tuple(rep)]], "a particle entered the cone twice in one replica"
            got[where[int(i)], rep_index[tuple(rep)]] = True
    assert near.size > 50 and expected.sum() > 100
    np.testing.assert_array_equal(got[clear], expected[clear])
    assert (~clear).sum() < 0.02 * expected.sum()
