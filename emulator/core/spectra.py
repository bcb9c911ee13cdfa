"""Power spectra of periodic overdensity meshes: binned auto and cross P(k), r(k) and the k binning.

Inputs are real-space overdensity meshes ``(n, n, n)`` (or ``(B, n, n, n)`` where stated) in a periodic box of
side ``L`` (Mpc/h). Transforms follow :mod:`emulator.core.fourier`: ``delta_k = rfftn(delta)`` unnormalised, so
``P(k) = L^3 / n^6 |delta_k|^2`` in (Mpc/h)^3, with ``k`` in h/Mpc.

Mode counting: the ``rfftn`` half space stores one of each ``(k, -k)`` pair, except on the ``kz = 0`` and
``kz = k_Nyq`` planes, which hold both. Each stored mode is weighted 2 off those planes and 1 on them, so
``modes`` counts the wavevectors of the full ``n^3`` grid in each bin (nbodykit's convention), the cosmic
variance of a Gaussian field is ``Var P = 2 P^2 / modes``, and over all ``|k| > 0`` the counts sum to
``n^3 - 1``. The ``k = 0`` mode (the mean) is always excluded. Bins are half-open, ``[lo, hi)``; a bin with no
modes returns ``nan`` for ``k`` and ``power``.

The binning helpers here are shared with :mod:`emulator.core.correlation` (xi(r)); :mod:`emulator.core.stats`
re-exports every statistic.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from .fourier import check_box_size, check_field, check_mesh_size, fundamental, nyquist, to_fourier, wavenumbers
from .window import window_kernel

__all__ = [
    "PowerSpectrum",
    "PowerResult",
    "power_spectrum",
    "power_spectrum_k",
    "cross_correlation",
    "k_edges",
]


class PowerSpectrum(NamedTuple):
    """Binned power spectrum.

    Attributes
    ----------
    k : torch.Tensor
        ``(nbins,)`` mode-weighted mean ``|k|`` in each bin, h/Mpc.
    power : torch.Tensor
        ``(nbins,)`` or ``(B, nbins)`` power in (Mpc/h)^3 (real part of the cross power for two fields).
    modes : torch.Tensor
        ``(nbins,)`` int64 number of full-grid wavevectors in each bin.
    edges : torch.Tensor
        ``(nbins + 1,)`` bin edges, h/Mpc.
    """

    k: torch.Tensor
    power: torch.Tensor
    modes: torch.Tensor
    edges: torch.Tensor


PowerResult = PowerSpectrum


def _check_field_k(field_k: torch.Tensor, n: int, name: str) -> None:
    want = (n, n, n // 2 + 1)
    if not torch.is_tensor(field_k) or not field_k.is_complex() or field_k.ndim not in (3, 4):
        raise ValueError(f"{name} must be a complex rfftn mesh {want} or (B, *{want})")
    if tuple(field_k.shape[-3:]) != want:
        raise ValueError(f"{name} must have rfftn shape {want} for n={n}, got {tuple(field_k.shape)}")


def _check_edges(edges, name: str, upper_limit: float) -> torch.Tensor:
    e = torch.as_tensor(edges, dtype=torch.float64).detach().cpu()
    if e.ndim != 1 or e.numel() < 2 or not torch.isfinite(e).all():
        raise ValueError(f"{name} must be a 1D sequence of at least 2 finite edges")
    if (e[1:] <= e[:-1]).any():
        raise ValueError(f"{name} must be strictly increasing")
    if e[0] < 0.0 or e[0] >= upper_limit:
        raise ValueError(f"{name} out of range: first edge {e[0].item():.4g} not in [0, {upper_limit:.4g})")
    return e


def _regular_edges(lo, hi, nbins, step, log, name, upper_limit) -> torch.Tensor:
    if nbins is not None and (isinstance(nbins, bool) or int(nbins) != nbins or nbins < 1):
        raise ValueError(f"nbins must be a positive integer, got {nbins!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0.0 or hi <= lo or lo >= upper_limit:
        raise ValueError(f"{name} out of range: need 0 <= min < max and min < {upper_limit:.4g}, got ({lo}, {hi})")
    if log:
        if lo <= 0.0:
            raise ValueError(f"{name} minimum must be positive for log bins, got {lo}")
        nb = int(nbins) if nbins is not None else max(1, round(math.log(hi / lo) / math.log(1.5)))
        return torch.logspace(math.log10(lo), math.log10(hi), nb + 1, dtype=torch.float64)
    nb = int(nbins) if nbins is not None else max(1, round((hi - lo) / step))
    return torch.linspace(lo, hi, nb + 1, dtype=torch.float64)


def k_edges(
    n: int,
    box_size: float,
    *,
    kedges: Sequence[float] | torch.Tensor | None = None,
    nbins: int | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    log: bool = False,
) -> torch.Tensor:
    """Wavenumber bin edges (h/Mpc, float64, CPU) used by :func:`power_spectrum`.

    Defaults: linear bins of width ``k_f = 2 pi / L`` centred on ``k_f, 2 k_f, ..., k_Nyq`` (edges at half
    integers of ``k_f``, so no lattice ``|k|`` falls on an edge). With ``log=True``: bins from ``kmin`` (default
    ``k_f``) to ``kmax`` (default ``k_Nyq``), about 1.5 wide in ratio unless ``nbins`` is given; the default end
    points are widened by 1e-9 so the modes at exactly ``k_f`` and ``k_Nyq`` are included.
    """
    n, box_size = check_mesh_size(n), check_box_size(box_size)
    kf, kny = fundamental(box_size), nyquist(n, box_size)
    upper = math.sqrt(3.0) * kny * (1 + 1e-9)  # largest |k| on the grid
    if kedges is not None:
        if nbins is not None or kmin is not None or kmax is not None or log:
            raise ValueError("kedges cannot be combined with nbins, kmin, kmax or log")
        return _check_edges(kedges, "kedges", upper)
    if log:
        lo = float(kmin) if kmin is not None else kf * (1 - 1e-9)
        hi = float(kmax) if kmax is not None else kny * (1 + 1e-9)
    else:
        lo = float(kmin) if kmin is not None else 0.5 * kf
        hi = float(kmax) if kmax is not None else kny + 0.5 * kf
    return _regular_edges(lo, hi, nbins, kf, log, "kmin/kmax", upper)


def _half_space_weights(n: int, dtype, device) -> torch.Tensor:
    w = torch.full((n // 2 + 1,), 2.0, dtype=dtype, device=device)
    w[0] = 1.0
    w[n // 2] = 1.0
    return w.expand(n, n, n // 2 + 1)


def _bin_index(values: torch.Tensor, edges: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Flat bin index per element (``nbins`` for out of range or excluded); ``values`` float64."""
    nb = edges.numel() - 1
    idx = torch.bucketize(values.reshape(-1), edges.to(values.device), right=True) - 1
    bad = (idx < 0) | (idx >= nb)
    if exclude is not None:
        bad = bad | exclude.reshape(-1)
    return torch.where(bad, torch.full_like(idx, nb), idx)


def _binned_sum(values: torch.Tensor, idx: torch.Tensor, nbins: int) -> torch.Tensor:
    """Sum ``values (..., M)`` into ``nbins`` bins along the last axis (differentiable)."""
    out = values.new_zeros(values.shape[:-1] + (nbins + 1,))
    return out.index_add(-1, idx, values)[..., :nbins]


def power_spectrum_k(
    field_k: torch.Tensor,
    box_size: float,
    n: int,
    field2_k: torch.Tensor | None = None,
    *,
    kedges=None,
    nbins: int | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    log: bool = False,
    shot_noise: float = 0.0,
    window: str | None = None,
) -> PowerSpectrum:
    """Binned (cross) power spectrum from ``rfftn`` meshes, for callers that already hold ``delta_k``.

    Parameters
    ----------
    field_k, field2_k : torch.Tensor
        Complex ``(n, n, n//2+1)`` or ``(B, n, n, n//2+1)`` unnormalised ``rfftn`` of overdensity meshes.
    box_size : float
        Box side, Mpc/h.
    n : int
        Real-space mesh size.
    kedges, nbins, kmin, kmax, log
        Binning in h/Mpc, see :func:`k_edges`.
    shot_noise : float
        Constant subtracted from the binned power, (Mpc/h)^3 (e.g. ``1/nbar`` for an auto spectrum of tracers).
    window : {None, "ngp", "cic", "tsc"}
        Mass-assignment window to deconvolve from each field (:func:`emulator.core.window.window_kernel`).

    Returns
    -------
    PowerSpectrum
        Differentiable in ``field_k`` and ``field2_k``.
    """
    n, box_size = check_mesh_size(n), check_box_size(box_size)
    _check_field_k(field_k, n, "field_k")
    if field2_k is not None:
        _check_field_k(field2_k, n, "field2_k")
        if field2_k.shape != field_k.shape:
            raise ValueError(f"field2_k shape {tuple(field2_k.shape)} differs from field_k {tuple(field_k.shape)}")
    if not math.isfinite(float(shot_noise)):
        raise ValueError(f"shot_noise must be finite, got {shot_noise!r}")
    edges = k_edges(n, box_size, kedges=kedges, nbins=nbins, kmin=kmin, kmax=kmax, log=log)
    real_dtype, device = field_k.real.dtype, field_k.device
    if window is not None:
        wk = window_kernel(n, window, dtype=real_dtype, device=device)
        field_k = field_k / wk
        field2_k = None if field2_k is None else field2_k / wk
    kx, ky, kz = wavenumbers(n, box_size, dtype=torch.float64, device=device)
    kmag = (kx**2 + ky**2 + kz**2).sqrt()
    zero = torch.zeros_like(kmag, dtype=torch.bool)
    zero[0, 0, 0] = True
    nb = edges.numel() - 1
    idx = _bin_index(kmag, edges, exclude=zero)
    w = _half_space_weights(n, torch.float64, device).reshape(-1)
    modes64 = _binned_sum(w, idx, nb)
    ksum = _binned_sum(w * kmag.reshape(-1), idx, nb)
    if field2_k is None:
        prod = field_k.real.square() + field_k.imag.square()
    else:
        prod = field_k.real * field2_k.real + field_k.imag * field2_k.imag
    wr = w.to(real_dtype)
    sums = _binned_sum(prod.flatten(-3) * wr, idx, nb)
    norm = box_size**3 / float(n) ** 6
    power = sums * norm / modes64.to(real_dtype) - float(shot_noise)
    k = (ksum / modes64).to(real_dtype)
    return PowerSpectrum(k=k, power=power, modes=modes64.round().to(torch.int64), edges=edges.to(real_dtype).to(device))


def power_spectrum(
    field: torch.Tensor,
    box_size: float,
    field2: torch.Tensor | None = None,
    *,
    kedges=None,
    nbins: int | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    log: bool = False,
    shot_noise: float = 0.0,
    window: str | None = None,
) -> PowerSpectrum:
    """Binned auto (or cross, real part) power spectrum of real-space overdensity meshes.

    Parameters
    ----------
    field, field2 : torch.Tensor
        Real ``(n, n, n)`` or batched ``(B, n, n, n)`` overdensity meshes of the same shape; ``n`` even.
    box_size : float
        Box side, Mpc/h.
    kedges, nbins, kmin, kmax, log, shot_noise, window
        See :func:`power_spectrum_k` and :func:`k_edges`.

    Returns
    -------
    PowerSpectrum
        ``k`` (h/Mpc), ``power`` ((Mpc/h)^3, shape ``(nbins,)`` or ``(B, nbins)``), ``modes``, ``edges``.
        Differentiable in the input fields.
    """
    n = check_field(field, "field")
    box_size = check_box_size(box_size)
    f2k = None
    if field2 is not None:
        check_field(field2, "field2")
        if field2.shape != field.shape:
            raise ValueError(f"field2 shape {tuple(field2.shape)} differs from field {tuple(field.shape)}")
        f2k = to_fourier(field2)
    return power_spectrum_k(
        to_fourier(field), box_size, n, f2k, kedges=kedges, nbins=nbins, kmin=kmin, kmax=kmax, log=log,
        shot_noise=shot_noise, window=window,
    )


def cross_correlation(
    field1: torch.Tensor,
    field2: torch.Tensor,
    box_size: float,
    *,
    shot_noise: tuple[float, float] = (0.0, 0.0),
    **binning,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-correlation coefficient ``r(k) = Re<d1 d2*> / sqrt(P1 P2)`` (the real part, never ``|d1 d2*|``).

    Parameters
    ----------
    field1, field2 : torch.Tensor
        Real overdensity meshes of equal shape ``(n, n, n)`` or ``(B, n, n, n)``.
    box_size : float
        Box side, Mpc/h.
    shot_noise : (float, float)
        Shot noise subtracted from the two auto spectra only, (Mpc/h)^3.
    **binning
        ``kedges, nbins, kmin, kmax, log, window`` as in :func:`power_spectrum`.

    Returns
    -------
    k, r : torch.Tensor
        Mean ``|k|`` per bin (h/Mpc) and ``r`` in [-1, 1] (per batch element if batched).
    """
    if "shot_noise" in binning or "field2" in binning:
        raise ValueError("binning may only hold kedges, nbins, kmin, kmax, log, window")
    n = check_field(field1, "field1")
    check_field(field2, "field2")
    if field2.shape != field1.shape:
        raise ValueError(f"field2 shape {tuple(field2.shape)} differs from field1 {tuple(field1.shape)}")
    if len(shot_noise) != 2:
        raise ValueError(f"shot_noise must be a pair (N1, N2), got {shot_noise!r}")
    d1, d2 = to_fourier(field1), to_fourier(field2)
    p12 = power_spectrum_k(d1, box_size, n, d2, **binning)
    p11 = power_spectrum_k(d1, box_size, n, shot_noise=shot_noise[0], **binning).power
    p22 = power_spectrum_k(d2, box_size, n, shot_noise=shot_noise[1], **binning).power
    return p12.k, p12.power / torch.sqrt(p11 * p22)
