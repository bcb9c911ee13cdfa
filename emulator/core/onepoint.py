"""One-point statistics, the halo mass function and covariance matrices over realizations.

Re-exported by :mod:`emulator.core.stats`. Units: lengths Mpc/h, masses Msun/h.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .fourier import check_box_size, check_field, to_fourier, to_real, wavenumbers

__all__ = ["smooth_field", "density_pdf", "mass_function", "covariance", "hartlap_factor"]


def smooth_field(field: torch.Tensor, box_size: float, radius: float, kernel: str = "gaussian") -> torch.Tensor:
    """Convolve a periodic mesh with a Gaussian ``exp(-k^2 R^2 / 2)`` or top-hat ``3 j1(kR)/(kR)`` kernel.

    Parameters
    ----------
    field : torch.Tensor
        Real ``(n, n, n)`` or ``(B, n, n, n)`` mesh.
    box_size : float
        Box side, Mpc/h.
    radius : float
        Smoothing radius ``R`` in Mpc/h (Gaussian rms width per axis, or top-hat sphere radius); 0 returns a copy.
    kernel : {"gaussian", "tophat"}
    """
    n = check_field(field, "field")
    box_size = check_box_size(box_size)
    radius = float(radius)
    if not math.isfinite(radius) or radius < 0.0:
        raise ValueError(f"smoothing_radius must be non-negative and finite (Mpc/h), got {radius!r}")
    if kernel not in ("gaussian", "tophat"):
        raise ValueError(f"kernel must be 'gaussian' or 'tophat', got {kernel!r}")
    if radius == 0.0:
        return field.clone()
    kx, ky, kz = wavenumbers(n, box_size, dtype=torch.float64, device=field.device)
    x = (kx**2 + ky**2 + kz**2).sqrt() * radius
    if kernel == "gaussian":
        w = torch.exp(-0.5 * x**2)
    else:
        xs = x.clamp_min(1e-3)
        w = 3.0 * (torch.sin(xs) - xs * torch.cos(xs)) / xs**3
        w = torch.where(x < 1e-3, 1.0 - x**2 / 10.0, w)  # series, avoids cancellation
    return to_real(to_fourier(field) * w.to(field.dtype), n)


def density_pdf(
    field: torch.Tensor,
    box_size: float,
    smoothing_radius: float,
    bins: int | Sequence[float] | torch.Tensor = 50,
    *,
    kernel: str = "gaussian",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-point PDF of the smoothed density ``1 + delta_R``.

    Parameters
    ----------
    field : torch.Tensor
        Real overdensity ``(n, n, n)``, or ``(B, n, n, n)`` whose cells are pooled.
    box_size : float
        Box side, Mpc/h.
    smoothing_radius : float
        ``R`` in Mpc/h, see :func:`smooth_field`.
    bins : int or sequence
        Number of equal bins spanning the data, or increasing edges in ``1 + delta``.
    kernel : {"gaussian", "tophat"}

    Returns
    -------
    centres, pdf : torch.Tensor
        Bin centres and the density, normalised (as ``numpy.histogram(density=True)``) so that
        ``sum(pdf * widths) = 1`` over the cells inside the bins.
    """
    rho = 1.0 + smooth_field(field, box_size, smoothing_radius, kernel).detach().reshape(-1).to(torch.float64)
    if isinstance(bins, int) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive integer or edges, got {bins!r}")
        lo, hi = rho.min().item(), rho.max().item()
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    else:
        edges = torch.as_tensor(bins, dtype=torch.float64).detach().cpu()
        if edges.ndim != 1 or edges.numel() < 2 or not torch.isfinite(edges).all() or (edges[1:] <= edges[:-1]).any():
            raise ValueError("bins must be a positive integer or a strictly increasing 1D sequence of edges")
    edges = edges.to(rho.device)
    nb = edges.numel() - 1
    idx = torch.bucketize(rho, edges, right=True) - 1
    idx = torch.where(rho == edges[-1], torch.full_like(idx, nb - 1), idx)  # last bin closed, as numpy
    idx = torch.where((idx < 0) | (idx >= nb), torch.full_like(idx, nb), idx)
    counts = torch.bincount(idx, minlength=nb + 1)[:nb].to(torch.float64)
    if counts.sum() == 0:
        raise ValueError("bins: no cell of the smoothed density falls inside the bin edges")
    widths = edges[1:] - edges[:-1]
    pdf = counts / (counts.sum() * widths)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return centres.to(field.dtype), pdf.to(field.dtype)


def mass_function(
    masses, volume: float, bins: int | Sequence[float] | torch.Tensor = 20
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Halo mass function ``dn/dlog10 M`` in (Mpc/h)^-3 per dex.

    Parameters
    ----------
    masses : torch.Tensor or array_like
        ``(N,)`` positive masses, Msun/h.
    volume : float
        Survey or box volume, (Mpc/h)^3.
    bins : int or sequence
        Number of log10-spaced bins spanning the masses, or increasing mass edges in Msun/h. Bins are
        ``[lo, hi)`` except the last, which includes its upper edge (as ``numpy.histogram``).

    Returns
    -------
    centres, dndlog10m, counts : torch.Tensor
        Log-midpoint masses (Msun/h), ``counts / (volume * dlog10 M)``, and the int64 counts.
    """
    m = torch.as_tensor(masses).detach()
    if m.is_complex() or m.dtype == torch.bool:
        raise ValueError(f"masses must be real (Msun/h), got dtype {m.dtype}")
    m = m.to(torch.float64)
    if m.ndim != 1 or m.numel() == 0 or not torch.isfinite(m).all() or (m <= 0).any():
        raise ValueError("masses must be a non-empty 1D array of positive finite masses (Msun/h)")
    vol = float(volume)
    if not math.isfinite(vol) or vol <= 0.0:
        raise ValueError(f"volume must be positive and finite ((Mpc/h)^3), got {volume!r}")
    logm = torch.log10(m)
    if isinstance(bins, int) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive integer or mass edges, got {bins!r}")
        lo, hi = logm.min().item(), logm.max().item()
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        ledges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64, device=m.device)
    else:
        edges = torch.as_tensor(bins, dtype=torch.float64).detach()
        if edges.ndim != 1 or edges.numel() < 2 or (edges <= 0).any() or (edges[1:] <= edges[:-1]).any():
            raise ValueError("bins must be a positive integer or strictly increasing positive mass edges")
        ledges = torch.log10(edges).to(m.device)
    nb = ledges.numel() - 1
    idx = torch.bucketize(logm, ledges, right=True) - 1
    idx = torch.where(logm == ledges[-1], torch.full_like(idx, nb - 1), idx)
    idx = torch.where((idx < 0) | (idx >= nb), torch.full_like(idx, nb), idx)
    counts = torch.bincount(idx, minlength=nb + 1)[:nb]
    dlog = ledges[1:] - ledges[:-1]
    centres = 10.0 ** (0.5 * (ledges[1:] + ledges[:-1]))
    return centres, counts.to(torch.float64) / (vol * dlog), counts


def covariance(samples, *, ddof: int = 1):
    """Sample covariance and correlation matrices of ``(n_realizations, n_bins)`` measurements.

    Accepts and returns torch tensors or numpy arrays (the type of ``samples``); ``ddof=1`` matches
    ``numpy.cov(samples, rowvar=False)``. Bins with zero variance get ``nan`` correlations.
    """
    is_numpy = not torch.is_tensor(samples)
    x = torch.as_tensor(samples)
    if x.ndim != 2 or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"samples must be a real 2D (n_realizations, n_bins) array, got shape {tuple(x.shape)}")
    if x.shape[0] <= ddof:
        raise ValueError(f"samples needs more than ddof={ddof} realizations, got {x.shape[0]}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    xc = x - x.mean(dim=0, keepdim=True)
    cov = xc.T @ xc / (x.shape[0] - ddof)
    sd = cov.diagonal().sqrt()
    corr = cov / (sd[:, None] * sd[None, :])
    if is_numpy:
        return cov.cpu().numpy(), corr.cpu().numpy()
    return cov, corr


def hartlap_factor(n_realizations: int, n_bins: int) -> float:
    """Hartlap et al. (2007) factor ``(N - p - 2) / (N - 1)`` that unbiases an inverse sample covariance."""
    n, p = int(n_realizations), int(n_bins)
    if p < 1 or n <= p + 2:
        raise ValueError(f"n_realizations must exceed n_bins + 2 (got N={n_realizations}, p={n_bins})")
    return (n - p - 2) / (n - 1)




