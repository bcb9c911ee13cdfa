"""Seeded Gaussian initial conditions on a periodic mesh.

Phase convention
----------------
The white noise of seed ``s`` on an ``n^3`` mesh is ``torch.randn((n, n, n), dtype=float64)`` drawn on the CPU
from ``torch.Generator().manual_seed(s)``, in C order with axes ``(x, y, z)``; it is then cast to the requested
dtype and moved to the requested device. Hence the same ``(seed, n)`` gives the same noise, and so the same
universe, on every device and at every precision (up to the rounding of the cast). The linear density is
``delta_k = w_k sqrt(P(k) n^3 / V)`` with ``w_k`` the unnormalised ``rfftn`` of the noise, so that
``<|delta_k|^2> = P(k) n^6 / V`` and the estimator of :mod:`emulator.core.stats` returns ``P(k)``.
"""

from __future__ import annotations

from typing import Callable

import torch

from .fourier import check_box_size, check_mesh_size, k_magnitude, to_fourier

__all__ = ["white_noise", "linear_density_k", "gaussian_field"]

PowerFn = Callable[[torch.Tensor], torch.Tensor]


def white_noise(
    seed: int,
    n: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Unit-variance real-space white noise, identical for a given ``(seed, n)`` on every device and dtype.

    Parameters
    ----------
    seed : int
        Non-negative integer seed.
    n : int
        Cells per side (even).

    Returns
    -------
    torch.Tensor
        Shape ``(n, n, n)``.
    """
    n = check_mesh_size(n)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn((n, n, n), dtype=torch.float64, generator=gen)
    return noise.to(dtype=dtype, device=device)


def linear_density_k(
    noise: torch.Tensor,
    box_size: float,
    power: PowerFn,
    *,
    fixed_amplitude: bool = False,
    invert_phase: bool = False,
) -> torch.Tensor:
    """Fourier-space linear density contrast from real-space white noise.

    Parameters
    ----------
    noise : torch.Tensor
        White noise, shape ``(n, n, n)`` (see :func:`white_noise`).
    box_size : float
        Box side in Mpc/h.
    power : callable
        ``P(k)`` in (Mpc/h)^3 for a tensor of ``k`` in h/Mpc (same dtype and device as ``noise``).
    fixed_amplitude : bool
        Set ``|w_k|`` to its expectation (Angulo & Pontzen 2016 "fixed" fields) to suppress cosmic variance.
    invert_phase : bool
        Multiply by -1 (the "paired" partner of a fixed field).

    Returns
    -------
    torch.Tensor
        Complex ``rfftn`` layout, shape ``(n, n, n // 2 + 1)``; the ``k = 0`` mode and the Nyquist planes
        (any ``|k_i| = k_Nyq``) are zero.
    """
    if noise.ndim != 3 or len(set(noise.shape)) != 1:
        raise ValueError(f"noise must be a cubic (n, n, n) mesh, got shape {tuple(noise.shape)}")
    n = check_mesh_size(noise.shape[0])
    box_size = check_box_size(box_size)
    wk = to_fourier(noise)
    if fixed_amplitude:
        wk = wk / wk.abs().clamp_min(torch.finfo(noise.dtype).tiny) * n**1.5
    k = k_magnitude(n, box_size, dtype=noise.dtype, device=noise.device)
    k_safe = k.clone()
    k_safe[0, 0, 0] = 1.0
    pk = power(k_safe)
    if not torch.is_tensor(pk):
        pk = torch.as_tensor(pk, dtype=noise.dtype, device=noise.device)
    amp = torch.sqrt(pk.clamp_min(0.0) * n**3 / box_size**3)
    amp[0, 0, 0] = 0.0
    # Zero the Nyquist planes: their modes have no conjugate partner, so spectral gradients (LPT, PM forces)
    # cannot treat them consistently; dropping them makes div(psi1) = -delta exact.
    amp[n // 2] = 0.0
    amp[:, n // 2] = 0.0
    amp[..., n // 2] = 0.0
    delta_k = wk * amp
    return -delta_k if invert_phase else delta_k


def gaussian_field(
    seed: int,
    n: int,
    box_size: float,
    power: PowerFn,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    **kwargs,
) -> torch.Tensor:
    """Real-space Gaussian density contrast with power spectrum ``power`` (see :func:`linear_density_k`)."""
    noise = white_noise(seed, n, dtype=dtype, device=device)
    delta_k = linear_density_k(noise, box_size, power, **kwargs)
    return torch.fft.irfftn(delta_k, s=(n, n, n), dim=(-3, -2, -1))
