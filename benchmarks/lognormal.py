"""Lognormal density contender: ``delta_LN = exp(G - sigma_G^2 / 2) - 1`` from the simulations' white noise.

Construction (Coles & Jones 1991; on the mesh, as in e.g. Agrawal et al. 2017):

1. The target power ``P_t(k)`` (a binned spectrum: the truth's measurement or an ensemble mean) is interpolated
   log-log onto every mode of the ``n^3`` mesh (power-law extrapolation past the end bins).
2. ``xi_t(x) = V^-1 sum_k P_t(k) exp(i k.x)`` on the mesh (inverse FFT), ``xi_G = ln(1 + xi_t)``.
3. ``P_G = V n^-3 FFT[xi_G]``, negative values clipped to 0 (the clipped fraction is reported).
4. ``G_k = w_k sqrt(P_G n^3 / V)`` with ``w_k`` the ``rfftn`` of :func:`emulator.core.fields.white_noise` of the
   same seed and size as the simulations, so ``G`` shares the truth's initial phases, and
   ``1 + delta_LN = exp(G - sigma_G^2 / 2)`` with ``sigma_G^2 = sum_k P_G / V`` (the expected mesh variance).
5. Finally ``delta_LN`` is taken relative to its realized mean, ``(1 + delta_LN) / mean(1 + delta_LN) - 1``,
   the convention of a particle field (whose mean density is fixed by mass conservation). For ``sigma_G^2 ~ 2``
   (z = 0, 2-4 Mpc/h cells) the realized mean of a small mesh is often ~0.9 (heavy tail), which would otherwise
   lower that realization's P(k) by ~20% at every k.

For mesh points ``x_1, x_2``, ``<(1 + delta_1)(1 + delta_2)> = exp(xi_G(x_12))``, so without clipping the
expected mesh power of ``delta_LN`` (before step 5) is exactly ``P_t`` (aliasing included). The realization
scatter of the lognormal P(k) is large when ``sigma_G`` is (its distribution is skewed: the median realization is
below the mean); compare it over an ensemble. The contender is a density mesh only:
field statistics compare meshes directly; no Poisson sampling of particles is done (so there is no shot noise,
no halo catalogue and no velocities for redshift space).

Removing the seed's cosmic variance from a single measured target: on large scales the truth's binned power is
``P(k) R(k)`` with ``R(k)`` the binned white-noise power of the seed (:func:`realization_factor`, mean 1); the
lognormal of the same seed reproduces that factor, so a single-realization target is divided by ``R(k)`` first
(else the seed's fluctuation would count twice).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from emulator.core.fields import white_noise
from emulator.core.fourier import check_box_size, check_mesh_size, k_magnitude, to_fourier, to_real
from emulator.core.stats import power_spectrum_k

__all__ = ["LognormalField", "power_on_mesh", "gaussian_power", "lognormal_field", "realization_factor"]


class LognormalField(NamedTuple):
    """A lognormal realization.

    Attributes
    ----------
    delta : torch.Tensor
        ``(n, n, n)`` overdensity ``exp(G - sigma_G^2/2) - 1``.
    sigma2_g : float
        Variance of ``G`` used in the mean correction (expected mesh variance).
    mean : float
        Realized mean of ``exp(G - sigma_G^2/2)`` (expectation 1) that ``delta`` was divided by.
    clipped_fraction : float
        Fraction of ``sum |P_G|`` removed by clipping negative ``P_G`` (0 when the target is lognormal-realizable).
    """

    delta: torch.Tensor
    sigma2_g: float
    mean: float
    clipped_fraction: float


def power_on_mesh(k, power, n: int, box_size: float, *, device=None) -> torch.Tensor:
    """Interpolate a binned ``P(k)`` log-log onto the ``rfftn`` grid (``(n, n, n//2+1)`` float64, ``P(0) = 0``).

    Bins with non-finite or non-positive ``k`` or ``P`` are ignored; beyond the first and last valid bins the
    spectrum continues as the power law through the two end bins.
    """
    n, box_size = check_mesh_size(n), check_box_size(box_size)
    k = torch.as_tensor(k, dtype=torch.float64).detach().cpu().reshape(-1)
    p = torch.as_tensor(power, dtype=torch.float64).detach().cpu().reshape(-1)
    if k.shape != p.shape:
        raise ValueError(f"k and power must have the same length, got {k.numel()} and {p.numel()}")
    ok = torch.isfinite(k) & torch.isfinite(p) & (k > 0) & (p > 0)
    if int(ok.sum()) < 2:
        raise ValueError("power: need at least two bins with positive finite k and P(k)")
    lk, lp = k[ok].log(), p[ok].log()
    order = torch.argsort(lk)
    lk, lp = lk[order].to(device), lp[order].to(device)
    kk = k_magnitude(n, box_size, dtype=torch.float64, device=device)
    x = torch.where(kk > 0, kk, torch.ones_like(kk)).log()
    i = (torch.searchsorted(lk, x.contiguous()) - 1).clamp(0, lk.numel() - 2)
    slope = (lp[i + 1] - lp[i]) / (lk[i + 1] - lk[i])
    out = torch.exp(lp[i] + slope * (x - lk[i]))
    return torch.where(kk > 0, out, torch.zeros_like(out))


def gaussian_power(p_mesh: torch.Tensor, n: int, box_size: float) -> tuple[torch.Tensor, float]:
    """``P_G`` on the ``rfftn`` grid whose lognormal transform has power ``p_mesh``; returns ``(P_G, clipped)``."""
    volume = box_size**3
    xi = to_real(p_mesh.to(torch.complex128), n) * (n**3 / volume)
    if bool((xi <= -1.0).any()):
        raise ValueError("target power: 1 + xi <= 0 somewhere on the mesh, not lognormal-realizable")
    xi_g = torch.log1p(xi)
    p_g = to_fourier(xi_g).real * (volume / n**3)
    p_g[0, 0, 0] = 0.0
    negative = p_g.clamp_max(0.0).abs().sum().item()
    total = p_g.abs().sum().item()
    return p_g.clamp_min(0.0), (negative / total if total > 0 else 0.0)


def _weights(n: int, device) -> torch.Tensor:
    w = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=device)
    w[0] = w[n // 2] = 1.0
    return w


def lognormal_field(
    seed: int,
    n: int,
    box_size: float,
    k,
    power,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> LognormalField:
    """Lognormal overdensity on an ``n^3`` mesh with target binned power ``(k, power)`` (h/Mpc, (Mpc/h)^3).

    Parameters
    ----------
    seed : int
        White-noise seed (:func:`emulator.core.fields.white_noise`), the simulations' seed for shared phases.
    n : int
        Mesh size (the simulations' particle grid).
    box_size : float
        Box side, Mpc/h.
    k, power : array_like
        Target power spectrum, e.g. ``PowerSpectrum.k`` and ``.power`` of the truth.
    """
    n, box_size = check_mesh_size(n), check_box_size(box_size)
    p_mesh = power_on_mesh(k, power, n, box_size, device=device)
    p_g, clipped = gaussian_power(p_mesh, n, box_size)
    noise = white_noise(seed, n, dtype=torch.float64, device=device)
    g_k = to_fourier(noise) * torch.sqrt(p_g * (n**3 / box_size**3))
    g_k[0, 0, 0] = 0.0
    g = to_real(g_k, n)
    # expected variance: sum over the full grid of P_G / V (half-space weights count each +-k pair)
    sigma2 = float((p_g * _weights(n, p_g.device)).sum().item() / box_size**3)
    rho = torch.exp(g - 0.5 * sigma2)
    mean = float(rho.mean())
    delta = rho / mean - 1.0
    return LognormalField(delta=delta.to(dtype), sigma2_g=sigma2, mean=mean, clipped_fraction=float(clipped))


def realization_factor(seed: int, n: int, box_size: float, kedges, *, device=None) -> torch.Tensor:
    """Binned white-noise power of a seed, ``R(k) = <|w_k|^2>_bin / n^3`` (expectation 1), float64.

    ``kedges`` as in :func:`emulator.core.stats.power_spectrum_k`.
    """
    n, box_size = check_mesh_size(n), check_box_size(box_size)
    wk = to_fourier(white_noise(seed, n, dtype=torch.float64, device=device))
    pw = power_spectrum_k(wk, box_size, n, kedges=kedges).power
    return pw * (n**3 / box_size**3)

