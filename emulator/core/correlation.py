"""Two-point correlation function xi(r) of periodic overdensity meshes, from the inverse FFT of ``|delta_k|^2``.

Conventions as in :mod:`emulator.core.spectra`: real-space overdensity meshes ``(n, n, n)`` or ``(B, n, n, n)`` in a
periodic box of side ``L`` (Mpc/h), unnormalised ``rfftn``, the ``k = 0`` mode excluded. Separations are in Mpc/h,
binned in ``|s|`` with half-open bins ``[lo, hi)``; ``xi`` is dimensionless.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .fourier import check_box_size, check_field, to_fourier, to_real
from .spectra import _bin_index, _binned_sum, _check_edges, _regular_edges

__all__ = ["correlation_function"]


def correlation_function(
    field: torch.Tensor,
    box_size: float,
    *,
    redges: Sequence[float] | torch.Tensor | None = None,
    nbins: int | None = None,
    rmax: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-point correlation function from the inverse FFT of ``|delta_k|^2``, binned in separation.

    ``xi(s) = n^-3 sum_x delta(x) delta(x + s)`` for every lattice separation ``s`` (periodic), with the ``k = 0``
    mode removed as in :func:`power_spectrum`, i.e. the discrete transform of the estimated ``P(k)``. Separations
    use the minimum image, ``|s_i| <= L/2``, and are binned in ``|s|``, bins ``[lo, hi)``.

    Parameters
    ----------
    field : torch.Tensor
        Real ``(n, n, n)`` or ``(B, n, n, n)`` overdensity mesh.
    box_size : float
        Box side, Mpc/h.
    redges : sequence, optional
        Separation bin edges, Mpc/h (overrides ``nbins`` and ``rmax``).
    nbins, rmax : optional
        Linear bins from half a cell ``h/2`` (so ``s = 0`` is excluded) to ``rmax`` (default ``L/2 + h/2``);
        ``nbins`` defaults to cells of width about ``h = L/n``, giving bins centred on ``h, 2h, ..., L/2``.

    Returns
    -------
    r, xi, counts : torch.Tensor
        Mean separation per bin (Mpc/h), ``xi`` (``(nbins,)`` or ``(B, nbins)``), and the int64 number of lattice
        separations per bin.
    """
    n = check_field(field, "field")
    box_size = check_box_size(box_size)
    cell = box_size / n
    upper = math.sqrt(3.0) * box_size / 2 * (1 + 1e-9)
    if redges is not None:
        if nbins is not None or rmax is not None:
            raise ValueError("redges cannot be combined with nbins or rmax")
        edges = _check_edges(redges, "redges", upper)
    else:
        hi = float(rmax) if rmax is not None else box_size / 2 + cell / 2
        edges = _regular_edges(cell / 2, hi, nbins, cell, False, "rmax", upper)
    dk = to_fourier(field)
    pk = dk.real.square() + dk.imag.square()
    keep = torch.ones(pk.shape[-3:], dtype=pk.dtype, device=pk.device)
    keep[0, 0, 0] = 0.0
    pk = pk * keep
    xi_grid = to_real(pk, n) / float(n) ** 3
    sep = (torch.arange(n, dtype=torch.float64, device=field.device) + n // 2) % n - n // 2
    sep = sep * cell
    r = (sep.view(n, 1, 1) ** 2 + sep.view(1, n, 1) ** 2 + sep.view(1, 1, n) ** 2).sqrt()
    nb = edges.numel() - 1
    idx = _bin_index(r, edges)
    counts = _binned_sum(torch.ones_like(r).reshape(-1), idx, nb)
    rmean = _binned_sum(r.reshape(-1), idx, nb) / counts
    xi = _binned_sum(xi_grid.flatten(-3), idx, nb) / counts.to(xi_grid.dtype)
    return rmean.to(field.dtype), xi, counts.round().to(torch.int64)
