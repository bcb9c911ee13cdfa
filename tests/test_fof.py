"""Friends-of-friends halo finder against planted clumps, exact geometry, percolation and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core.cosmology import RHO_CRIT, particle_mass_from_cosmology
from emulator.mocks.fof import Halos, friends_of_friends

L = 100.0


def min_image(d: np.ndarray, box: float = L) -> np.ndarray:
    return d - box * np.round(d / box)


def lattice_clump(centre, side: int, spacing: float) -> np.ndarray:
    """``side^3`` points on a cubic lattice of the given spacing around ``centre`` (Mpc/h)."""
    g = (np.arange(side) - (side - 1) / 2) * spacing
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    return pts + np.asarray(centre, dtype=np.float64)


def ll_for(b: float, n: int, box: float = L) -> float:
    """Linking length (units of the mean separation) that gives a physical linking length ``b``."""
    return b * n ** (1.0 / 3.0) / box


def partition(labels: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == h).tolist()) for h in np.unique(labels[labels >= 0])}


# ---------------------------------------------------------------------------------------------------------------
def planted():
    rng = np.random.default_rng(42)
    counts = [300, 150, 80, 40, 25]
    centres = np.array([[20, 20, 20], [50, 70, 30], [80, 30, 60], [30, 80, 80], [L - 0.05, 45, 0.03]], float)
    bulk = rng.normal(0, 300, (5, 3))
    b_est = 0.2 * L / 3500 ** (1 / 3)
    sigma = 0.1 * b_est
    bg = rng.random((3000, 3)) * L
    dist = np.linalg.norm(min_image(bg[:, None, :] - centres[None]), axis=-1)
    bg = bg[(dist > 5 * sigma + 3 * b_est).all(axis=1)]
    blobs = [c + rng.normal(0, sigma, (n, 3)) for c, n in zip(centres, counts)]
    pos = np.concatenate(blobs + [bg])
    vel = np.concatenate([v + rng.normal(0, 50, (n, 3)) for v, n in zip(bulk, counts)] + [rng.normal(0, 50, bg.shape)])
    truth = np.concatenate([np.full(n, i) for i, n in enumerate(counts)] + [np.full(len(bg), -1)])
    perm = rng.permutation(len(pos))  # blobs are not contiguous in memory
    return np.mod(pos[perm], L), vel[perm], truth[perm], counts, centres, sigma


def test_planted_clumps_recovered_exactly():
    pos, vel, truth, counts, centres, sigma = planted()
    mp = 1.5e11
    halos = friends_of_friends(pos, L, 0.2, 20, mp, velocities=vel)
    assert isinstance(halos, Halos) and len(halos) == 5
    assert halos.linking_length == pytest.approx(0.2 * L / len(pos) ** (1 / 3), rel=1e-12)
    assert halos.n_members.tolist() == counts  # sorted by mass, descending
    np.testing.assert_allclose(halos.mass, np.array(counts) * mp, rtol=1e-12)
    np.testing.assert_array_equal(halos.labels, truth)  # members exactly, background unassigned
    for i, (c, n) in enumerate(zip(centres, counts)):
        members = pos[truth == i]
        mean = np.mod(c + min_image(members - c).mean(axis=0), L)  # independent unwrapping about the true centre
        np.testing.assert_allclose(min_image(halos.position[i] - mean), 0.0, atol=1e-9)
        assert np.all(np.abs(min_image(halos.position[i] - c)) < 4 * sigma / math.sqrt(n))
        np.testing.assert_allclose(halos.velocity[i], vel[truth == i].mean(axis=0), rtol=1e-12, atol=1e-9)
    assert np.all((halos.position >= 0) & (halos.position < L))
    # the boundary blob straddles x = L and z = 0: its centre stays next to the true one, not in mid-box
    assert halos.position[4, 0] > L - 1 or halos.position[4, 0] < 1


@pytest.mark.parametrize("gap, merged", [(1.01, False), (0.99, True)])
@pytest.mark.parametrize("across_boundary", [False, True])
def test_linking_threshold_between_clumps(gap, merged, across_boundary):
    b = 1.0
    a = lattice_clump([0.0, 50, 50], 3, 0.5 * b)  # spans x in [-b/2, b/2]
    c = lattice_clump([(1.0 + gap) * b, 50, 50], 3, 0.5 * b)  # nearest faces are gap * b apart
    shift = L - (0.5 + 0.5 * gap) * b if across_boundary else 40.0  # the gap straddles x = L, or not
    pos = np.mod(np.concatenate([a, c]) + [shift, 0, 0], L)
    halos = friends_of_friends(pos, L, ll_for(b, 54), min_members=20)
    assert halos.linking_length == pytest.approx(b, rel=1e-12)
    assert halos.n_members.tolist() == ([54] if merged else [27, 27])


def test_chain_is_transitive_and_periodic():
    b = 1.0
    chain = np.stack([L - 10.0 + 0.9 * b * np.arange(30), np.full(30, 5.0), np.full(30, 7.0)], 1)  # wraps at x=L
    loner = chain[-1] + [1.1 * b, 0, 0]
    pos = np.mod(np.concatenate([chain, [loner]]), L)
    halos = friends_of_friends(pos, L, ll_for(b, 31), min_members=20)
    assert halos.n_members.tolist() == [30]
    assert np.all(halos.labels[:30] == 0) and halos.labels[30] == -1
    expected_x = np.mod(L - 10.0 + 0.9 * b * 14.5, L)  # mean of the unwrapped chain
    assert halos.position[0, 0] == pytest.approx(expected_x, abs=1e-9)


def test_min_members_filter():
    b = 1.0
    g19 = lattice_clump([20, 20, 20], 3, 0.5)[:19]
    g20 = lattice_clump([60, 60, 60], 3, 0.5)[:20]
    pos = np.concatenate([g19, g20])
    ll = ll_for(b, 39)
    h20 = friends_of_friends(pos, L, ll, min_members=20)
    assert h20.n_members.tolist() == [20]
    assert np.all(h20.labels[:19] == -1) and np.all(h20.labels[19:] == 0)
    h19 = friends_of_friends(pos, L, ll, min_members=19)
    assert h19.n_members.tolist() == [20, 19]


def test_uniform_poisson_has_no_halos_and_right_singleton_fraction():
    rng = np.random.default_rng(7)
    n = 30000
    pos = rng.random((n, 3)) * L
    assert len(friends_of_friends(pos, L)) == 0  # groups of >= 20 at b = 0.2 have vanishing probability
    groups = friends_of_friends(pos, L, min_members=1)
    assert groups.n_members.sum() == n  # min_members=1 partitions every particle
    single = (groups.n_members == 1).sum() / n
    vb = 4.0 / 3.0 * math.pi * groups.linking_length**3 / L**3
    p = (1.0 - vb) ** (n - 1)  # exact probability that a binomial point has no friend
    assert abs(single - p) < 5 * math.sqrt(2 * p * (1 - p) / n)


def union_find_groups(pos: np.ndarray, b: float, box: float = L) -> list[set[int]]:
    n = len(pos)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    d = np.linalg.norm(min_image(pos[:, None, :] - pos[None, :, :], box), axis=-1)
    for i, j in zip(*np.nonzero(np.triu(d <= b, 1))):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[ri] = rj
    groups: dict[int, set[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), set()).add(i)
    return list(groups.values())


@pytest.mark.parametrize("min_members", [1, 5])
def test_matches_brute_force_union_find(min_members):
    rng = np.random.default_rng(3)
    blobs = [rng.normal(c, 3.0, (40, 3)) for c in ([10, 10, 10], [50, 50, 99], [80, 20, 50])]
    pos = np.mod(np.concatenate(blobs + [rng.random((180, 3)) * L]), L)
    halos = friends_of_friends(torch.from_numpy(pos), L, 0.4, min_members=min_members)
    truth = {frozenset(g) for g in union_find_groups(pos, halos.linking_length) if len(g) >= min_members}
    assert partition(halos.labels) == truth
    sizes = sorted(len(g) for g in union_find_groups(pos, halos.linking_length))
    assert sizes[0] == 1 and 2 <= sizes[-4] < 20 and sizes[-3] >= 20  # singles, small groups, three big ones
    assert np.all(np.diff(halos.n_members) <= 0)


def test_torch_input_equals_numpy_input():
    pos, vel, *_ = planted()
    ref = friends_of_friends(pos, L, min_members=5, velocities=vel)
    alt = friends_of_friends(torch.tensor(pos, dtype=torch.float64), L, min_members=5, velocities=torch.tensor(vel))
    np.testing.assert_array_equal(alt.labels, ref.labels)
    np.testing.assert_array_equal(alt.position, ref.position)


def test_float32_input_equals_float64_and_the_callers_arrays_are_untouched():
    """Catalogs pass float32 particles (converted and wrapped once, in a private copy; velocities read at members
    only): the same halos as float64 input; a float64 array outside the box is read, never wrapped in place."""
    pos, vel, *_ = planted()
    pos32, vel32 = (pos + 3.0 * L).astype(np.float32), vel.astype(np.float32)  # unwrapped: needs the wrap
    ref = friends_of_friends(pos32.astype(np.float64), L, min_members=5, velocities=vel32.astype(np.float64))
    alt = friends_of_friends(pos32, L, min_members=5, velocities=vel32)
    np.testing.assert_array_equal(alt.labels, ref.labels)
    np.testing.assert_array_equal(alt.position, ref.position)
    np.testing.assert_array_equal(alt.velocity, ref.velocity)
    shifted = pos + 3.0 * L
    before = shifted.copy()
    friends_of_friends(shifted, L, min_members=5)
    np.testing.assert_array_equal(shifted, before)


def test_particle_mass_matches_astropy_critical_density():
    from astropy import units as u
    from astropy.cosmology import FlatLambdaCDM

    rho = FlatLambdaCDM(H0=100.0, Om0=0.3, Tcmb0=0.0).critical_density0.to(u.Msun / u.Mpc**3).value
    assert RHO_CRIT == pytest.approx(rho, rel=2e-5)  # (Msun/h) / (Mpc/h)^3 when h = 1
    assert particle_mass_from_cosmology(0.3, 1000.0, 512**3) == pytest.approx(0.3 * rho * 1e9 / 512**3, rel=2e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"positions": np.zeros((5, 2))},
        {"positions": np.full((5, 3), np.nan)},
        {"box_size": -1.0},
        {"linking_length": 0.0},
        {"min_members": 0},
        {"particle_mass": -1.0},
        {"velocities": np.zeros((4, 3))},
        {"linking_length": 5.0},
    ],
)
def test_bad_input_raises(kwargs):
    args = {"positions": np.random.default_rng(0).random((5, 3)), "box_size": 1.0} | kwargs
    with pytest.raises(ValueError):
        friends_of_friends(**args)
    with pytest.raises(ValueError):
        particle_mass_from_cosmology(0.3, 100.0, 0)
