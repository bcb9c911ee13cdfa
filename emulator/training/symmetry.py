"""The 48 symmetries of the cube (the octahedral group O_h) acting on periodic meshes and vector fields.

Definitions
-----------
An element ``g = (perm, flips)`` is the signed permutation matrix ``R`` with

    (R x)_a = s_a x_{perm[a]},   s_a = -1 if flips[a] else +1,   a = 0, 1, 2,

i.e. output axis ``a`` is input axis ``perm[a]``, then reflected if ``flips[a]``. It acts on a scalar field
``f`` and a vector field ``v`` (x, y, z components in three consecutive channels) by

    (g f)(y) = f(R^-1 y),        (g v)(y) = R v(R^-1 y),

so components are permuted and sign-flipped exactly as the grid is (a displacement field stays the displacement
field of the transformed particles). This is a left action: ``g1 (g2 f) = (g1 g2) f`` with ``R = R1 R2``; see
:func:`compose` and :func:`inverse`.

Reflections on the periodic lattice
-----------------------------------
Mesh point ``i`` sits at ``x_i = i L / n`` (architecture conventions). The reflection ``x -> -x (mod L)`` maps
``x_i`` to ``x_{(-i) mod n}``: index 0 is fixed and ``i <-> n - i``. ``torch.flip`` instead maps ``i`` to
``n - 1 - i``, which is the reflection about the *cell centre* ``L/2 - L/(2n)`` and equals the lattice reflection
followed by a translation of one cell. With ``periodic=True`` (the default) :func:`apply_symmetry` performs the
lattice reflection (``flip`` then ``roll`` by one cell), so the group acts on the box exactly, point for point.

For a *non-periodic crop* (e.g. an input crop with a halo and its target crop, which share a centre) pass
``periodic=False``: the reflection is then about the crop's own centre (plain ``flip``), which keeps the input
and target crops aligned; a roll would wrap a crop edge around, which is meaningless for a crop.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import torch

__all__ = [
    "SYMMETRIES",
    "NUM_SYMMETRIES",
    "symmetry_matrix",
    "symmetry_index",
    "compose",
    "inverse",
    "apply_symmetry",
    "random_symmetry",
]

Perm = tuple[int, int, int]
Flips = tuple[bool, bool, bool]

#: The 48 elements as ``(perm, flips)``; index 0 is the identity.
SYMMETRIES: tuple[tuple[Perm, Flips], ...] = tuple(
    (perm, flips)  # type: ignore[misc]
    for perm in itertools.permutations((0, 1, 2))
    for flips in itertools.product((False, True), repeat=3)
)
NUM_SYMMETRIES = len(SYMMETRIES)


def _check_index(index: int) -> int:
    if isinstance(index, bool) or not hasattr(index, "__index__"):
        raise ValueError(f"index must be an integer in [0, {NUM_SYMMETRIES}), got {index!r}")
    i = int(index)
    if not 0 <= i < NUM_SYMMETRIES:
        raise ValueError(f"index must be an integer in [0, {NUM_SYMMETRIES}), got {index!r}")
    return i


def symmetry_matrix(index: int) -> tuple[tuple[int, int, int], ...]:
    """The signed permutation matrix ``R`` of element ``index`` as a nested tuple, ``R[a][perm[a]] = s_a``."""
    perm, flips = SYMMETRIES[_check_index(index)]
    rows = []
    for a in range(3):
        row = [0, 0, 0]
        row[perm[a]] = -1 if flips[a] else 1
        rows.append(tuple(row))
    return tuple(rows)


_INDEX_OF_MATRIX = {symmetry_matrix(i): i for i in range(NUM_SYMMETRIES)}


def symmetry_index(matrix: Sequence[Sequence[int]]) -> int:
    """Index of the element whose signed permutation matrix is ``matrix`` (3x3 integers)."""
    key = tuple(tuple(int(v) for v in row) for row in matrix)
    if key not in _INDEX_OF_MATRIX:
        raise ValueError(f"matrix is not a signed 3x3 permutation matrix: {key!r}")
    return _INDEX_OF_MATRIX[key]


def _matmul(r1, r2):
    return tuple(tuple(sum(r1[a][k] * r2[k][b] for k in range(3)) for b in range(3)) for a in range(3))


def compose(i: int, j: int) -> int:
    """Index of ``g_i g_j`` (apply ``g_j`` first): ``apply(apply(f, j), i) == apply(f, compose(i, j))``."""
    return _INDEX_OF_MATRIX[_matmul(symmetry_matrix(i), symmetry_matrix(j))]


def inverse(i: int) -> int:
    """Index of ``g_i^-1`` (the transpose of ``R_i``)."""
    r = symmetry_matrix(i)
    return _INDEX_OF_MATRIX[tuple(tuple(r[b][a] for b in range(3)) for a in range(3))]


def _check_vector_channels(vector_channels: Sequence[int], n_channels: int | None) -> tuple[int, ...]:
    try:
        starts = tuple(int(c) for c in vector_channels)
    except TypeError:
        raise ValueError(
            f"vector_channels must be a sequence of channel start indices, got {vector_channels!r}"
        ) from None
    if starts and n_channels is None:
        raise ValueError("vector_channels given but field has no channel axis (need shape (..., C, n, n, n))")
    used: set[int] = set()
    for c in starts:
        group = {c, c + 1, c + 2}
        if c < 0 or c + 3 > (n_channels or 0) or used & group:
            raise ValueError(
                f"vector_channels must name disjoint groups of 3 channels within C={n_channels}, got {starts!r}"
            )
        used |= group
    return starts


def apply_symmetry(
    field: torch.Tensor,
    index: int,
    *,
    vector_channels: Sequence[int],
    periodic: bool = True,
) -> torch.Tensor:
    """Apply cube symmetry ``index`` to a mesh, rotating vector components with the grid.

    Parameters
    ----------
    field : torch.Tensor
        Shape ``(..., C, n, n, n)`` (or ``(..., n, n, n)`` when there are no vector channels); the last three
        axes are x, y, z. Any dtype and device; differentiable.
    index : int
        Element of :data:`SYMMETRIES`, in ``[0, 48)``.
    vector_channels : sequence of int
        Required. Start indices (along axis ``-4``) of groups of three channels holding the x, y, z components
        of a vector field (displacement, velocity); pass ``()`` for purely scalar fields. E.g. ``(0, 3)`` for
        the 6 output channels (displacement, velocity) of the emulator.
    periodic : bool
        ``True``: the field is a whole periodic box and reflections are the exact lattice reflections
        ``i -> (-i) mod n`` (see module docstring). ``False``: reflections about the array centre
        (``i -> n - 1 - i``), for non-periodic crops that share a centre with their targets.

    Returns
    -------
    torch.Tensor
        The transformed field, same shape, dtype and device (a new tensor).
    """
    i = _check_index(index)
    if field.ndim < 3 or not (field.shape[-1] == field.shape[-2] == field.shape[-3]):
        raise ValueError(f"field must be a cubic mesh (..., n, n, n), got shape {tuple(field.shape)}")
    n_channels = field.shape[-4] if field.ndim >= 4 else None
    starts = _check_vector_channels(vector_channels, n_channels)
    perm, flips = SYMMETRIES[i]
    nd = field.ndim
    spatial = [nd - 3 + p for p in perm]
    out = field.permute(*range(nd - 3), *spatial)
    flip_dims = [nd - 3 + a for a in range(3) if flips[a]]
    if flip_dims:
        out = torch.flip(out, flip_dims)
        if periodic:
            # torch.flip maps i -> n-1-i; rolling by +1 gives i -> (-i) mod n, the lattice reflection.
            out = torch.roll(out, shifts=[1] * len(flip_dims), dims=flip_dims)
    if starts:
        signs = [(-1.0 if flips[a] else 1.0) for a in range(3)]
        channels = out.unbind(dim=-4)
        new = list(channels)
        for c in starts:
            for a in range(3):
                comp = channels[c + perm[a]]
                new[c + a] = -comp if signs[a] < 0 else comp
        out = torch.stack(new, dim=-4)
    return out.contiguous()


def random_symmetry(generator: torch.Generator | None = None) -> int:
    """A uniformly random element index in ``[0, 48)`` drawn from ``generator`` (CPU)."""
    return int(torch.randint(NUM_SYMMETRIES, (1,), generator=generator).item())
