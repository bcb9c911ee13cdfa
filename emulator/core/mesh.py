"""Mass assignment (painting) of particles onto a periodic mesh, and readout of a mesh at particle positions.

Conventions
-----------
* Positions are comoving Mpc/h, shape ``(N, 3)``, any real values: they are wrapped periodically into the box.
* Mesh point ``i`` sits at ``x_i = (i + shift) L / n`` (cell-corner convention of nbodykit / FastPM for
  ``shift = 0``; ``shift = 0.5`` is the half-cell offset grid used for interlacing).
* Windows are the B-splines of order ``p = 1, 2, 3``: ``"ngp"`` (nearest grid point), ``"cic"`` (cloud in cell)
  and ``"tsc"`` (triangular shaped cloud), separable in the three axes. Their Fourier transform per axis is
  ``sinc(pi k_i / (2 k_Nyq))^p``. Under NGP and CIC a particle sitting on a mesh point puts all its weight on
  that point; under TSC it puts ``(3/4)^3`` there and the rest on the 26 neighbours (weights 1/8, 3/4, 1/8 per
  axis).
* :func:`paint` and :func:`readout` are exact adjoints of each other (same stencil, same weights), both
  differentiable with respect to positions (through the CIC / TSC weights; NGP has zero gradient), masses and
  the mesh. Particles are processed in chunks to bound memory.
* The Fourier-space window kernel, its compensation, interlacing and the Fourier overdensity of particles live
  in :mod:`emulator.core.window`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .fourier import check_box_size, check_mesh_size

__all__ = [
    "PAINT_CHUNK",
    "WINDOWS",
    "wrap_positions",
    "paint",
    "readout",
    "to_overdensity",
]

#: Window name -> B-spline order ``p`` (support of ``p`` cells, Fourier window ``sinc^p``).
WINDOWS: dict[str, int] = {"ngp": 1, "cic": 2, "tsc": 3}

_DEFAULT_CHUNK = 2**22
#: Particles per batch of :func:`paint` by default (consecutive pieces of whole batches paint the same bits).
PAINT_CHUNK = _DEFAULT_CHUNK


def _check_window(window: str) -> int:
    if not isinstance(window, str) or window.lower() not in WINDOWS:
        raise ValueError(f"window must be one of {sorted(WINDOWS)}, got {window!r}")
    return WINDOWS[window.lower()]


def _check_positions(positions: torch.Tensor) -> torch.Tensor:
    if not isinstance(positions, torch.Tensor) or positions.ndim != 2 or positions.shape[1] != 3:
        shape = tuple(positions.shape) if isinstance(positions, torch.Tensor) else type(positions).__name__
        raise ValueError(f"positions must be a torch tensor of shape (N, 3) in Mpc/h, got {shape}")
    if not positions.is_floating_point():
        raise ValueError(f"positions must be a floating-point tensor, got dtype {positions.dtype}")
    if not bool(torch.isfinite(positions.detach()).all()):
        raise ValueError("positions must be finite (no NaN or inf)")
    return positions


def _check_shift(shift: float) -> float:
    try:
        value = float(shift)
    except (TypeError, ValueError):
        raise ValueError(f"shift must be a number in units of the cell, got {shift!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"shift must be finite (units of the cell), got {shift!r}")
    return value


def _check_chunk(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return chunk_size


def _stencil(
    pos: torch.Tensor, n: int, box_size: float, order: int, shift: float
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Mesh indices and weights of the ``order`` stencil points per axis.

    Returns two lists of ``order`` tensors of shape ``(N, 3)``: the int64 mesh indices along each axis (wrapped
    into ``[0, n)``) and the matching weights. One contiguous tensor per stencil point, not a stacked
    ``(N, 3, order)`` array: stacking along the last axis costs more than the rest of the stencil.
    """
    cell = box_size / n
    # Wrap into [0, L] first so that the fractional offset keeps full precision for far-away coordinates.
    u = torch.remainder(pos, box_size) / cell - shift
    if order == 1:
        base = torch.floor(u.detach() + 0.5)
        d = u - base
        weights = [1.0 + 0.0 * d]  # keeps the (zero) dependence on positions in the graph
        offsets: tuple[int, ...] = (0,)
    elif order == 2:
        base = torch.floor(u.detach())
        d = u - base
        weights = [1.0 - d, d]
        offsets = (0, 1)
    else:
        base = torch.floor(u.detach() + 0.5)
        d = u - base  # in [-1/2, 1/2)
        weights = [0.5 * (0.5 - d) ** 2, 0.75 - d**2, 0.5 * (0.5 + d) ** 2]
        offsets = (-1, 0, 1)
    # base holds small integers (|base| <= n + |shift| + 1), exact in floating point, so the periodic wrap is
    # exact there and cheaper than an integer remainder.
    base = torch.remainder(base, n)
    index = []
    for o in offsets:
        i = base + o if o else base
        if o > 0:
            i = torch.where(i >= n, i - n, i)
        elif o < 0:
            i = torch.where(i < 0, i + n, i)
        index.append(i.to(torch.int64))
    return index, weights


def _corners(
    index: list[torch.Tensor], weights: list[torch.Tensor], n: int, mass: torch.Tensor | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Flat mesh index and weight ``w_x w_y w_z`` (times ``mass``) of each of the ``order^3`` stencil points.

    Sums and products shared between points are formed once (row offsets ``(i_x n + i_y) n``, weights
    ``w_x w_y``); the values are those of the per-point expressions, bit for bit.
    """
    wx = [w[:, 0] if mass is None else w[:, 0] * mass for w in weights]
    cols = [i[:, 2] for i in index]
    for ix, wa in zip(index, wx):
        for iy, wb in zip(index, weights):
            row = (ix[:, 0] * n + iy[:, 1]) * n
            wab = wa * wb[:, 1]
            for iz, wc in zip(cols, weights):
                yield row + iz, wab * wc[:, 2]


def paint(
    positions: torch.Tensor,
    nmesh: int,
    box_size: float,
    mass: torch.Tensor | float | None = None,
    window: str = "cic",
    shift: float = 0.0,
    *,
    chunk_size: int = _DEFAULT_CHUNK,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Assign particle masses to a periodic mesh.

    Parameters
    ----------
    positions : torch.Tensor
        Particle positions, shape ``(N, 3)``, Mpc/h; any finite values (wrapped periodically).
    nmesh : int
        Mesh points per side ``n`` (any positive integer; the Fourier helpers need it even).
    box_size : float
        Box side ``L`` in Mpc/h.
    mass : torch.Tensor or float, optional
        Per-particle mass ``(N,)`` or a scalar (e.g. Msun/h); default 1 per particle. Cast to the dtype of
        ``positions``.
    window : {"ngp", "cic", "tsc"}
        Mass-assignment window.
    shift : float
        Offset of the mesh in units of the cell: mesh point ``i`` sits at ``(i + shift) L / n``.
    chunk_size : int
        Particles processed per batch (bounds the temporary memory to ``O(chunk_size)``).
    out : torch.Tensor, optional
        A contiguous mesh of ``n^3`` values (dtype and device of ``positions``) to add into instead of a new
        zero mesh. Painting the particles in consecutive pieces of whole ``chunk_size`` batches into one ``out``
        gives the same bits as painting them all at once.

    Returns
    -------
    torch.Tensor
        Shape ``(n, n, n)``, dtype and device of ``positions``: the sum of window-weighted masses at each mesh
        point (mass per mesh point, not a density); its total equals the total mass. With ``out``, a view of it.
    """
    positions = _check_positions(positions)
    n = check_mesh_size(nmesh, even=False)
    box = check_box_size(box_size)
    order = _check_window(window)
    shift = _check_shift(shift)
    chunk_size = _check_chunk(chunk_size)
    npart = positions.shape[0]
    dtype, device = positions.dtype, positions.device
    if mass is not None:
        if not isinstance(mass, torch.Tensor):
            try:
                mass = torch.tensor(float(mass), dtype=dtype, device=device)
            except (TypeError, ValueError):
                raise ValueError(f"mass must be a tensor of shape (N,) or a number, got {mass!r}") from None
        if mass.device != device:
            raise ValueError(f"mass must be on the device of positions ({device}), got {mass.device}")
        if mass.ndim == 0:
            mass = mass.expand(npart)
        if mass.shape != (npart,):
            raise ValueError(f"mass must have shape ({npart},) to match positions, got {tuple(mass.shape)}")
        if not bool(torch.isfinite(mass.detach()).all()):
            raise ValueError("mass must be finite (no NaN or inf)")
        mass = mass.to(dtype)
    if out is None:
        out = torch.zeros(n**3, dtype=dtype, device=device)
    elif out.numel() != n**3 or out.dtype != dtype or out.device != device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous mesh of {n}^3 {dtype} values on {device}, got "
                         f"{tuple(out.shape)} {out.dtype} on {out.device}")
    else:
        out = out.view(-1)
    for start in range(0, npart, chunk_size):
        pos = positions[start : start + chunk_size]
        index, weights = _stencil(pos, n, box, order, shift)
        chunk_mass = None if mass is None else mass[start : start + chunk_size]  # folded into the x weights
        for flat, w in _corners(index, weights, n, chunk_mass):
            out.scatter_add_(0, flat, w)  # same sums as index_add_, in the same order, ~1.5x faster
    return out.view(n, n, n)


def readout(
    mesh: torch.Tensor,
    positions: torch.Tensor,
    box_size: float,
    window: str = "cic",
    shift: float = 0.0,
    *,
    chunk_size: int = _DEFAULT_CHUNK,
) -> torch.Tensor:
    """Interpolate a periodic mesh at particle positions with a mass-assignment window (adjoint of :func:`paint`).

    Parameters
    ----------
    mesh : torch.Tensor
        Scalar mesh ``(n, n, n)`` or channels-first ``(C, n, n, n)``, values at ``x_i = (i + shift) L / n``.
    positions : torch.Tensor
        Shape ``(N, 3)``, Mpc/h (wrapped periodically).
    box_size : float
        Box side in Mpc/h.
    window : {"ngp", "cic", "tsc"}
        Interpolation window (NGP and CIC interpolate exactly through the mesh values; TSC also smooths).
    shift : float
        Mesh offset in units of the cell (as in :func:`paint`).
    chunk_size : int
        Particles processed per batch.

    Returns
    -------
    torch.Tensor
        ``(N,)`` for a scalar mesh or ``(N, C)`` for a channel mesh, in the units of ``mesh``; dtype is the
        promotion of the mesh and position dtypes.
    """
    if not isinstance(mesh, torch.Tensor) or mesh.ndim not in (3, 4) or not mesh.is_floating_point():
        desc = f"{tuple(mesh.shape)} {mesh.dtype}" if isinstance(mesh, torch.Tensor) else type(mesh).__name__
        raise ValueError(f"mesh must be a real floating tensor of shape (n, n, n) or (C, n, n, n), got {desc}")
    n = mesh.shape[-1]
    if mesh.shape[-3:] != (n, n, n) or n == 0:
        raise ValueError(f"mesh must be cubic in its last three axes, got shape {tuple(mesh.shape)}")
    positions = _check_positions(positions)
    if positions.device != mesh.device:
        raise ValueError(f"positions must be on the device of mesh ({mesh.device}), got {positions.device}")
    box = check_box_size(box_size)
    order = _check_window(window)
    shift = _check_shift(shift)
    chunk_size = _check_chunk(chunk_size)
    dtype = torch.promote_types(mesh.dtype, positions.dtype)
    scalar = mesh.ndim == 3
    flat_mesh = mesh.reshape(-1, n**3).to(dtype)
    positions = positions.to(dtype)
    pieces = []
    for start in range(0, positions.shape[0], chunk_size):
        index, weights = _stencil(positions[start : start + chunk_size], n, box, order, shift)
        value = torch.zeros(flat_mesh.shape[0], index[0].shape[0], dtype=dtype, device=mesh.device)
        for flat, w in _corners(index, weights, n):
            value = value.add_(flat_mesh.index_select(1, flat) * w)  # ~4x faster than advanced indexing
        pieces.append(value)
    if pieces:
        result = torch.cat(pieces, dim=1).T
    else:
        result = torch.zeros(0, flat_mesh.shape[0], dtype=dtype, device=mesh.device)
    return result[:, 0] if scalar else result


def wrap_positions(x: torch.Tensor, box_size: float, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Periodic wrap into ``[0, L)`` (Mpc/h); a value that rounds up to ``L`` (a tiny negative input) becomes 0.

    ``out`` (may be ``x`` itself) receives the result without a temporary of ``x``'s size (same numbers).
    """
    x = torch.remainder(x, box_size, out=out)
    if out is not None:
        out[out >= box_size] -= box_size
        return out
    return torch.where(x >= box_size, x - box_size, x)


def to_overdensity(mesh: torch.Tensor) -> torch.Tensor:
    """Overdensity ``mesh / mean(mesh) - 1`` over the last three axes (each channel separately).

    Raises ``ValueError`` unless every mean is positive.
    """
    if not isinstance(mesh, torch.Tensor) or mesh.ndim < 3 or not mesh.is_floating_point():
        raise ValueError("mesh must be a real floating tensor with at least 3 dimensions (..., n, n, n)")
    mean = mesh.mean(dim=(-3, -2, -1), keepdim=True)
    if not bool((mean.detach() > 0).all()):
        raise ValueError("mesh must have a positive mean to define an overdensity")
    return mesh / mean - 1.0
