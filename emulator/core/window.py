"""Fourier-space side of mass assignment: window kernel, compensation, interlacing and particle overdensity.

The B-spline windows of :mod:`emulator.core.mesh` (``"ngp"``, ``"cic"``, ``"tsc"``, order ``p = 1, 2, 3``) have the
separable Fourier transform ``W(k) = prod_i sinc(pi k_i / (2 k_Nyq))^p``. :func:`compensate` divides it out,
:func:`paint_interlaced` also cancels the odd aliased images with a second, half-cell shifted grid (Sefusatti et
al. 2016), and :func:`particle_overdensity_k` turns the result into a Fourier overdensity. Positions are in Mpc/h,
box sizes in Mpc/h; Fourier quantities use the ``rfftn`` layout ``(n, n, n // 2 + 1)`` of
:mod:`emulator.core.fourier`.
"""

from __future__ import annotations

import torch

from .fourier import check_box_size, check_mesh_size, nyquist, to_fourier, wavenumbers
from .mesh import _DEFAULT_CHUNK, _check_window, paint

__all__ = [
    "window_kernel",
    "compensate",
    "paint_interlaced",
    "particle_overdensity_k",
]


def window_kernel(
    n: int,
    window: str,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fourier transform of the mass-assignment window on the ``rfftn`` grid.

    ``W(k) = prod_i sinc(pi k_i / (2 k_Nyq))^p`` with ``p = 1, 2, 3`` for NGP, CIC, TSC and
    ``sinc(x) = sin(x) / x``. Dimensionless, independent of the box size.

    Parameters
    ----------
    n : int
        Real-space mesh size (even).
    window : {"ngp", "cic", "tsc"}
        Mass-assignment window.
    dtype, device
        Of the returned kernel.

    Returns
    -------
    torch.Tensor
        Shape ``(n, n, n // 2 + 1)``, real, positive (its minimum, at the Nyquist corner, is ``(2/pi)^(3p)``).
    """
    n = check_mesh_size(n)
    order = _check_window(window)
    # Any box size gives the same k / k_Nyq; torch.sinc(y) = sin(pi y) / (pi y) with y = k / (2 k_Nyq).
    k_nyq = nyquist(n, 1.0)
    kx, ky, kz = wavenumbers(n, 1.0, dtype=dtype, device=device)
    w = torch.sinc(kx / (2 * k_nyq)) * torch.sinc(ky / (2 * k_nyq)) * torch.sinc(kz / (2 * k_nyq))
    return w**order


def _check_field_k(field_k: torch.Tensor) -> int:
    if (
        not isinstance(field_k, torch.Tensor)
        or not field_k.is_complex()
        or field_k.ndim < 3
        or field_k.shape[-3] != field_k.shape[-2]
        or field_k.shape[-1] != field_k.shape[-3] // 2 + 1
    ):
        desc = tuple(field_k.shape) if isinstance(field_k, torch.Tensor) else type(field_k).__name__
        raise ValueError(f"field_k must be a complex rfftn mesh (..., n, n, n//2+1), got {desc}")
    return check_mesh_size(field_k.shape[-3])


def compensate(field_k: torch.Tensor, window: str) -> torch.Tensor:
    """Deconvolve the mass-assignment window: ``field_k / W(k)`` (Jing 2005, without the aliasing sum).

    Parameters
    ----------
    field_k : torch.Tensor
        Complex ``rfftn`` field ``(..., n, n, n // 2 + 1)``.
    window : {"ngp", "cic", "tsc"}
        Window the field was painted with.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``field_k``, in its units.
    """
    n = _check_field_k(field_k)
    return field_k / window_kernel(n, window, dtype=field_k.real.dtype, device=field_k.device)


def paint_interlaced(
    positions: torch.Tensor,
    nmesh: int,
    box_size: float,
    mass: torch.Tensor | float | None = None,
    window: str = "cic",
    *,
    chunk_size: int = _DEFAULT_CHUNK,
) -> torch.Tensor:
    """Two-grid interlaced, window-compensated Fourier mass field (Sefusatti et al. 2016).

    Paints on the mesh at ``i L / n`` (``F1``) and on the one at ``(i + 1/2) L / n`` (``F2``), and returns
    ``[F1 + F2 exp(-i (k_x + k_y + k_z) L / (2 n))] / (2 W(k))``: the phase re-centres ``F2`` on ``x_i``, which
    cancels the aliased images ``k + 2 k_Nyq l`` with odd ``l_x + l_y + l_z``.

    Parameters
    ----------
    positions, nmesh, box_size, mass, window, chunk_size
        As in :func:`emulator.core.mesh.paint` (positions and ``box_size`` in Mpc/h); ``nmesh`` must be even.

    Returns
    -------
    torch.Tensor
        Complex ``(n, n, n // 2 + 1)`` (``n`` even), in units of ``mass``; the ``k = 0`` entry is the total mass,
        so ``delta_k = field_k * n^3 / field_k[0, 0, 0]`` for ``k != 0``. The Nyquist planes are not real-valued
        after the phase shift (as in nbodykit); power spectra use ``|field_k|^2`` there.
    """
    n = check_mesh_size(nmesh)
    box = check_box_size(box_size)
    _check_window(window)
    f1 = to_fourier(paint(positions, n, box, mass, window, 0.0, chunk_size=chunk_size))
    f2 = to_fourier(paint(positions, n, box, mass, window, 0.5, chunk_size=chunk_size))
    kx, ky, kz = wavenumbers(n, box, dtype=positions.dtype, device=positions.device)
    half_cell = 0.5 * box / n
    phase = torch.polar(torch.ones_like(kx + ky + kz), -(kx + ky + kz) * half_cell)
    return compensate(0.5 * (f1 + f2 * phase), window)


def particle_overdensity_k(
    positions: torch.Tensor, nmesh: int, box_size: float, *, window: str = "cic", interlace: bool = True
) -> torch.Tensor:
    """Window-compensated (by default interlaced) Fourier overdensity of equal-mass particles.

    The ``k = 0`` mode of the painted mass field holds the total mass ``n^3 * mean``, so dividing by it and
    multiplying by ``n^3`` turns mass into overdensity; the ``k = 0`` mode of the result is set to zero.
    Computed in the dtype of ``positions``; ``rfftn`` layout ``(n, n, n//2+1)``.

    Parameters
    ----------
    positions : torch.Tensor
        Particle positions ``(N, 3)``, Mpc/h (wrapped periodically).
    nmesh : int
        Mesh points per side ``n`` (even).
    box_size : float
        Box side, Mpc/h.
    window : {"ngp", "cic", "tsc"}
        Mass-assignment window, compensated in the result.
    interlace : bool
        Use :func:`paint_interlaced` (default) instead of a single compensated grid.

    Returns
    -------
    torch.Tensor
        Complex, dimensionless overdensity ``delta_k`` (unnormalised ``rfftn``), ``delta_k[0, 0, 0] = 0``.
    """
    if interlace:
        fk = paint_interlaced(positions, nmesh, box_size, window=window)
    else:
        fk = compensate(to_fourier(paint(positions, nmesh, box_size, window=window)), window)
    out = fk * (nmesh**3 / fk[0, 0, 0].real)
    out[0, 0, 0] = 0.0
    return out
