"""Tests for the 48 cube symmetries (emulator.training.symmetry) against independent truths: group axioms, lattice
geometry of particles, the Zel'dovich displacement, and Fourier-space mode relabelling."""

from __future__ import annotations

import itertools

import pytest
import torch

from emulator.core.fourier import to_fourier
from emulator.core.lpt import za_displacement
from emulator.training.symmetry import (
    NUM_SYMMETRIES,
    SYMMETRIES,
    apply_symmetry,
    compose,
    inverse,
    random_symmetry,
    symmetry_index,
    symmetry_matrix,
)

ALL = range(NUM_SYMMETRIES)


def _rand(shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _matrix(i: int) -> torch.Tensor:
    return torch.tensor(symmetry_matrix(i), dtype=torch.float64)


def test_48_distinct_orthogonal_elements():
    assert NUM_SYMMETRIES == 48 and len(set(SYMMETRIES)) == 48
    assert SYMMETRIES[0] == ((0, 1, 2), (False, False, False))
    mats = {symmetry_matrix(i) for i in ALL}
    assert len(mats) == 48
    dets = []
    for i in ALL:
        r = _matrix(i)
        assert torch.equal(r @ r.T, torch.eye(3, dtype=torch.float64))
        dets.append(round(float(torch.linalg.det(r))))
        assert symmetry_index(symmetry_matrix(i)) == i
    assert dets.count(1) == 24 and dets.count(-1) == 24  # O (proper rotations) has 24 elements
    # Distinct as actions on a generic field with a vector part: 48 different outputs.
    f = _rand((4, 6, 6, 6))
    outs = [apply_symmetry(f, i, vector_channels=(1,)) for i in ALL]
    for a, b in itertools.combinations(range(48), 2):
        assert not torch.allclose(outs[a], outs[b])


def test_group_closure_inverse_identity_on_fields():
    f = _rand((2, 4, 6, 6, 6), seed=1)  # batch of (vector + scalar) fields
    vc = (0,)
    g = [apply_symmetry(f, j, vector_channels=vc) for j in ALL]
    assert torch.equal(g[0], f)
    for i in ALL:
        for j in ALL:
            k = compose(i, j)
            assert torch.equal(apply_symmetry(g[j], i, vector_channels=vc), g[k]), (i, j)
        assert torch.equal(apply_symmetry(g[i], inverse(i), vector_channels=vc), f)
        assert compose(i, inverse(i)) == 0 and compose(inverse(i), i) == 0
    # Composition table is a Latin square (each row/column a permutation) -- group closure + cancellation.
    table = [[compose(i, j) for j in ALL] for i in ALL]
    for i in ALL:
        assert sorted(table[i]) == list(ALL)
        assert sorted(row[i] for row in table) == list(ALL)
    # Associativity on a sample of triples.
    for i, j, k in itertools.product((1, 7, 13, 30, 47), repeat=3):
        assert compose(compose(i, j), k) == compose(i, compose(j, k))


def _by_lattice_site(pos: torch.Tensor, cell: float, n: int) -> torch.Tensor:
    """Sort particles (N,3) by their nearest lattice site (unique when |psi| < cell/2)."""
    site = torch.remainder(torch.round(pos / cell).long(), n)
    key = (site[:, 0] * n + site[:, 1]) * n + site[:, 2]
    assert len(torch.unique(key)) == len(key)
    return pos[torch.argsort(key)]


@pytest.mark.parametrize("periodic", [True, False])
def test_particles_map_to_rotated_particles(periodic):
    """Particles x = q + psi(q): transforming psi must give exactly the particles R x (mod L).

    With psi = 0 this is the statement that lattice reflections x_i -> L - x_i (mod L) map mesh points onto mesh
    points; the cell-centre flip (periodic=False) is off by one cell and must fail it.
    """
    n, box = 8, 100.0
    cell = box / n
    ax = torch.arange(n, dtype=torch.float64) * cell
    q = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"))  # (3, n, n, n), x_i = i L / n
    psi = 0.2 * cell * (2 * torch.rand((3, n, n, n), generator=torch.Generator().manual_seed(3),
                                       dtype=torch.float64) - 1)
    x = (q + psi).reshape(3, -1).T
    for i in ALL:
        r = _matrix(i)
        expected = torch.remainder(x @ r.T, box)
        psi_t = apply_symmetry(psi, i, vector_channels=(0,), periodic=periodic)
        got = torch.remainder((q + psi_t).reshape(3, -1).T, box)
        # Lattice points alone (psi = 0) must map onto lattice points.
        q_t = torch.remainder(q.reshape(3, -1).T @ r.T, box)
        frac = q_t / cell
        assert torch.allclose(frac, torch.round(frac), atol=1e-12)
        d = _by_lattice_site(got, cell, n) - _by_lattice_site(expected, cell, n)
        err = float((d - box * torch.round(d / box)).abs().max())
        if periodic or not any(SYMMETRIES[i][1]):
            assert err < 1e-10, i
        else:
            # The cell-centre flip shifts the lattice by one cell: each site then holds a neighbour's particle,
            # whose random displacement (|psi_i| < 0.2 cell) differs by O(0.1-0.4) cell.
            assert err > 0.1 * cell


def test_lattice_reflection_index_map():
    n = 8
    f = torch.zeros(1, n, n, n)
    f[0, 1, 2, 3] = 1.0
    # Reflect x only: perm identity, flips (True, False, False) -> point (1,2,3) goes to (-1 mod 8, 2, 3).
    i = SYMMETRIES.index(((0, 1, 2), (True, False, False)))
    out = apply_symmetry(f, i, vector_channels=())
    assert out[0, 7, 2, 3] == 1.0 and out.sum() == 1.0
    out = apply_symmetry(f, i, vector_channels=(), periodic=False)  # cell-centre flip: n-1-i
    assert out[0, 6, 2, 3] == 1.0


def test_za_displacement_commutes_with_symmetry():
    """psi_ZA[g delta] = g psi_ZA[delta]: the displacement is a vector that rotates with the grid."""
    n, box = 16, 64.0
    delta = _rand((n, n, n), seed=5)
    psi = za_displacement(to_fourier(delta), box)
    scale = psi.abs().max()
    for i in ALL:
        delta_t = apply_symmetry(delta, i, vector_channels=())
        lhs = za_displacement(to_fourier(delta_t), box)
        rhs = apply_symmetry(psi, i, vector_channels=(0,))
        assert float((lhs - rhs).abs().max() / scale) < 1e-12, i


def test_power_invariant_and_fourier_modes_relabelled():
    n = 16
    delta = _rand((n, n, n), seed=6)
    fk = torch.fft.fftn(delta)
    sorted_power = torch.sort((fk.abs() ** 2).flatten()).values
    # Parseval on the rfft half grid: the kz = 0 and Nyquist planes once, every other plane twice.
    weight = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0
    total = float(((to_fourier(delta).abs() ** 2) * weight).sum())
    assert abs(total - n**3 * float((delta**2).sum())) < 1e-10 * total
    for i in ALL:
        d_t = apply_symmetry(delta, i, vector_channels=())
        fk_t = torch.fft.fftn(d_t)
        assert torch.allclose(torch.sort((fk_t.abs() ** 2).flatten()).values, sorted_power, rtol=1e-10)
        assert abs(float(((to_fourier(d_t).abs() ** 2) * weight).sum()) - total) < 1e-10 * total
        # Exact lattice action: F[g f](k) = F[f](R^-1 k), i.e. the same index map on the k grid, phases included.
        expected = apply_symmetry(fk, i, vector_channels=())
        assert torch.allclose(fk_t, expected, rtol=1e-10, atol=1e-9), i


def test_crop_mode_keeps_centred_crops_aligned():
    """periodic=False: the transformed target crop is the centre of the transformed input crop."""
    h, m = 3, 6
    x = _rand((6, m + 2 * h, m + 2 * h, m + 2 * h), seed=7)
    target = x[:, h:-h, h:-h, h:-h]
    for i in ALL:
        xt = apply_symmetry(x, i, vector_channels=(0, 3), periodic=False)
        tt = apply_symmetry(target, i, vector_channels=(0, 3), periodic=False)
        assert torch.equal(tt, xt[:, h:-h, h:-h, h:-h])


def test_dtype_device_grad_and_random():
    f = _rand((3, 4, 4, 4), dtype=torch.float32).requires_grad_()
    out = apply_symmetry(f, 17, vector_channels=(0,))
    assert out.dtype == torch.float32 and out.shape == f.shape
    out.sum().backward()
    assert f.grad is not None
    gen = torch.Generator().manual_seed(0)
    draws = {random_symmetry(gen) for _ in range(2000)}
    assert draws == set(ALL)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({"index": 48, "vector_channels": ()}, (3, 4, 4, 4)),
        ({"index": -1, "vector_channels": ()}, (3, 4, 4, 4)),
        ({"index": 1.5, "vector_channels": ()}, (3, 4, 4, 4)),
        ({"index": 0, "vector_channels": (1,)}, (3, 4, 4, 4)),
        ({"index": 0, "vector_channels": (0, 2)}, (6, 4, 4, 4)),
        ({"index": 0, "vector_channels": (0,)}, (4, 4, 4)),
        ({"index": 0, "vector_channels": ()}, (3, 4, 4, 5)),
    ],
)
def test_bad_input_raises(kwargs, shape):
    with pytest.raises(ValueError):
        apply_symmetry(torch.zeros(shape), **kwargs)
