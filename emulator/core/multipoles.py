"""Redshift-space power spectrum multipoles ``P_0, P_2, P_4`` (plane-parallel line of sight along a box axis).

For an overdensity mesh in redshift space with the line of sight along axis ``a`` (0, 1, 2 = x, y, z), each
Fourier mode has ``mu = k_a / |k|`` and the multipole estimator is the Legendre-weighted shell average

    P_l(k) = (2 l + 1) < |delta_k|^2 L_l(mu) >_shell * V / n^6            [(Mpc/h)^3],

with ``L_0 = 1``, ``L_2 = (3 mu^2 - 1) / 2``, ``L_4 = (35 mu^4 - 30 mu^2 + 3) / 8``. Binning, mode weights and
the ``rfftn`` conventions are exactly those of :func:`emulator.core.spectra.power_spectrum_k` (half-space weights 2,
1 on the ``kz = 0`` and ``kz = k_Nyq`` planes; ``k = 0`` excluded; bins ``[lo, hi)`` from
:func:`emulator.core.spectra.k_edges`), so ``P_0`` equals ``power_spectrum_k`` to rounding (tested) and a shot noise
given here is subtracted from the monopole only. Only public names of the core are imported. Because ``L_l`` is
even in ``mu``, the sign convention of the Nyquist plane along the line of sight does not matter.

On a finite grid the ``mu`` values of a shell are not uniformly distributed, so even an exactly Kaiser-distorted
field only approaches ``P_0 = (1 + 2f/3 + f^2/5) P``, ``P_2 = (4f/3 + 4f^2/7) P`` as the shell holds more modes
(the mean of ``mu^2`` over a shell is exactly 1/3 by the cube symmetry, higher moments are not); see
``tests/test_multipoles.py`` for the measured size of that effect.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from .fourier import check_box_size, check_field, check_mesh_size, to_fourier, wavenumbers
from .spectra import k_edges

__all__ = ["Multipoles", "legendre", "power_multipoles_k", "power_multipoles", "kaiser_multipoles"]

_AXES = {"x": 0, "y": 1, "z": 2}


class Multipoles(NamedTuple):
    """Binned power spectrum multipoles.

    Attributes
    ----------
    k : torch.Tensor
        ``(nbins,)`` mode-weighted mean ``|k|`` per bin, h/Mpc.
    poles : torch.Tensor
        ``(len(ells), nbins)`` or ``(B, len(ells), nbins)`` multipoles in (Mpc/h)^3, in the order of ``ells``.
    modes : torch.Tensor
        ``(nbins,)`` int64 number of full-grid wavevectors per bin.
    edges : torch.Tensor
        ``(nbins + 1,)`` bin edges, h/Mpc.
    ells : tuple of int
        The multipole orders.
    """

    k: torch.Tensor
    poles: torch.Tensor
    modes: torch.Tensor
    edges: torch.Tensor
    ells: tuple[int, ...]


def legendre(ell: int, mu: torch.Tensor) -> torch.Tensor:
    """Legendre polynomial ``L_ell(mu)`` for ``ell`` in 0, 2, 4 (elementwise)."""
    if ell == 0:
        return torch.ones_like(mu)
    if ell == 2:
        return 1.5 * mu**2 - 0.5
    if ell == 4:
        mu2 = mu**2
        return (35.0 * mu2 * mu2 - 30.0 * mu2 + 3.0) / 8.0
    raise ValueError(f"ells must be drawn from 0, 2, 4, got {ell!r}")


def _check_field_k(field_k: torch.Tensor, n: int) -> None:
    want = (n, n, n // 2 + 1)
    if not torch.is_tensor(field_k) or not field_k.is_complex() or field_k.ndim not in (3, 4):
        raise ValueError(f"field_k must be a complex rfftn mesh {want} or (B, *{want})")
    if tuple(field_k.shape[-3:]) != want:
        raise ValueError(f"field_k must have rfftn shape {want} for n={n}, got {tuple(field_k.shape)}")


def _mode_weights(n: int, device) -> torch.Tensor:
    """Full-grid wavevectors per stored ``rfftn`` entry: 1 on the ``kz = 0`` and ``kz = k_Nyq`` planes, else 2."""
    w = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=device)
    w[0] = w[n // 2] = 1.0
    return w.expand(n, n, n // 2 + 1).reshape(-1)


def _binned(values: torch.Tensor, idx: torch.Tensor, nbins: int) -> torch.Tensor:
    """Sum ``values (..., M)`` into bins ``idx (M,)`` (``nbins`` collects the discarded entries)."""
    out = values.new_zeros(values.shape[:-1] + (nbins + 1,))
    return out.index_add(-1, idx, values)[..., :nbins]


def _check_los(los: int | str) -> int:
    if isinstance(los, str) and los.lower() in _AXES:
        return _AXES[los.lower()]
    if isinstance(los, int) and not isinstance(los, bool) and los in (0, 1, 2):
        return los
    raise ValueError(f"los must be an axis 0, 1, 2 or 'x', 'y', 'z', got {los!r}")


def _check_ells(ells: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(e) for e in ells)
    except (TypeError, ValueError):
        raise ValueError(f"ells must be a sequence drawn from 0, 2, 4, got {ells!r}") from None
    if not out or any(e not in (0, 2, 4) for e in out) or any(isinstance(e, bool) for e in ells):
        raise ValueError(f"ells must be a non-empty sequence drawn from 0, 2, 4, got {ells!r}")
    return out


def power_multipoles_k(
    field_k: torch.Tensor,
    box_size: float,
    n: int,
    *,
    ells: Sequence[int] = (0, 2),
    los: int | str = 2,
    kedges=None,
    nbins: int | None = None,
    kmin: float | None = None,
    kmax: float | None = None,
    log: bool = False,
    shot_noise: float = 0.0,
) -> Multipoles:
    """Multipoles from an ``rfftn`` overdensity mesh (already window-compensated if painted from particles).

    Parameters
    ----------
    field_k : torch.Tensor
        Complex ``(n, n, n//2+1)`` or ``(B, n, n, n//2+1)`` unnormalised ``rfftn`` of a redshift-space overdensity.
    box_size : float
        Box side, Mpc/h.
    n : int
        Real-space mesh size (even).
    ells : sequence of int
        Multipole orders, from 0, 2, 4.
    los : {0, 1, 2, "x", "y", "z"}
        Line-of-sight axis.
    kedges, nbins, kmin, kmax, log
        Binning in h/Mpc, see :func:`emulator.core.spectra.k_edges`.
    shot_noise : float
        Subtracted from the monopole, (Mpc/h)^3.

    Returns
    -------
    Multipoles
        Differentiable in ``field_k``.
    """
    n, box_size = check_mesh_size(n), check_box_size(box_size)
    _check_field_k(field_k, n)
    axis, ells = _check_los(los), _check_ells(ells)
    if not math.isfinite(float(shot_noise)):
        raise ValueError(f"shot_noise must be finite, got {shot_noise!r}")
    edges = k_edges(n, box_size, kedges=kedges, nbins=nbins, kmin=kmin, kmax=kmax, log=log)
    real_dtype, device = field_k.real.dtype, field_k.device
    kvec = wavenumbers(n, box_size, dtype=torch.float64, device=device)
    kx, ky, kz = torch.broadcast_tensors(*kvec)
    kmag = (kx**2 + ky**2 + kz**2).sqrt()
    zero = kmag == 0
    mu = (kx, ky, kz)[axis] / torch.where(zero, torch.ones_like(kmag), kmag)
    nb = edges.numel() - 1
    idx = torch.bucketize(kmag.reshape(-1), edges.to(device), right=True) - 1  # bins [lo, hi)
    idx = torch.where((idx < 0) | (idx >= nb) | zero.reshape(-1), torch.full_like(idx, nb), idx)
    w = _mode_weights(n, device)
    modes64 = _binned(w, idx, nb)
    ksum = _binned(w * kmag.reshape(-1), idx, nb)
    prod = (field_k.real.square() + field_k.imag.square()).flatten(-3)
    norm = box_size**3 / float(n) ** 6
    poles = []
    for ell in ells:
        weight = (w * (2 * ell + 1) * legendre(ell, mu.reshape(-1))).to(real_dtype)
        p = _binned(prod * weight, idx, nb) * norm / modes64.to(real_dtype)
        poles.append(p - float(shot_noise) if ell == 0 else p)
    return Multipoles(
        k=(ksum / modes64).to(real_dtype),
        poles=torch.stack(poles, dim=-2),
        modes=modes64.round().to(torch.int64),
        edges=edges.to(real_dtype).to(device),
        ells=ells,
    )


def power_multipoles(field: torch.Tensor, box_size: float, **kwargs) -> Multipoles:
    """Multipoles of a real ``(n, n, n)`` or ``(B, n, n, n)`` redshift-space overdensity mesh.

    Keyword arguments as in :func:`power_multipoles_k`.
    """
    n = check_field(field, "field")
    return power_multipoles_k(to_fourier(field), box_size, n, **kwargs)


def kaiser_multipoles(power: torch.Tensor, f: float, ells: Sequence[int] = (0, 2)) -> torch.Tensor:
    """Linear (Kaiser 1987) multipoles of ``(1 + f mu^2)^2 P`` for bias 1: ``(len(ells), ...)`` in units of ``P``.

    ``P_0 = (1 + 2f/3 + f^2/5) P``, ``P_2 = (4f/3 + 4f^2/7) P``, ``P_4 = 8 f^2/35 P``.
    """
    coeffs = {0: 1.0 + 2.0 * f / 3.0 + f * f / 5.0, 2: 4.0 * f / 3.0 + 4.0 * f * f / 7.0, 4: 8.0 * f * f / 35.0}
    return torch.stack([coeffs[e] * power for e in _check_ells(ells)], dim=0)
