"""Potential gradient descent (PGD): a short-range pull of particles towards their density peaks.

A simulation that under-resolves the cores of halos (a few-step particle mesh, or a network correcting one) leaves
its particles too spread inside halos: too little power at high ``k`` and FoF halos a little too light. Dai, Feng
& Seljak (2018, JCAP 11, 009; arXiv 1804.00671) move every particle along the gradient of a potential made from
its own density field, band-passed to the scales that are missing::

    dx = alpha * IFFT[ i k / k^2 * exp(-(k_l / k)^2) * exp(-(k / k_s)^4) * delta(k) ]

read out at the particles (``alpha`` dimensionless; ``k_l``, ``k_s`` in h/Mpc). ``exp(-(k_l / k)^2)`` leaves the
large scales, which the generator already has, untouched; ``exp(-(k / k_s)^4)`` keeps the pull off the mesh's
noise. The shift points towards overdensities (``alpha > 0`` sharpens, like gravity), needs one paint, one
forward FFT and per component one inverse FFT and one readout, and conserves momentum: paint and readout use the
same window and the kernel is odd, so the shifts of equal-mass particles sum to zero (to rounding). Pure torch,
any device.
"""

from __future__ import annotations

import math

import torch

from .fourier import check_mesh_size, gradient_kernels, k_squared, to_fourier, to_real
from .mesh import paint, readout

__all__ = ["pgd_kernel", "pgd_shift"]


def pgd_kernel(n: int, box_size: float, k_long: float, k_short: float, *, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> torch.Tensor:
    """``exp(-(k_l/k)^2) exp(-(k/k_s)^4) / k^2`` on the ``rfftn`` grid of an ``n^3`` mesh, (Mpc/h)^2; zero at
    ``k = 0``.

    Parameters
    ----------
    n : int
        Mesh points per side (even).
    box_size : float
        Box side, Mpc/h.
    k_long, k_short : float
        High-pass and low-pass scales, h/Mpc (``k_long >= 0``, ``k_short > 0``).
    """
    if not (math.isfinite(k_long) and k_long >= 0.0):
        raise ValueError(f"pgd: k_long must be finite and >= 0 h/Mpc, got {k_long}")
    if not (math.isfinite(k_short) and k_short > 0.0):
        raise ValueError(f"pgd: k_short must be finite and > 0 h/Mpc, got {k_short}")
    k2 = k_squared(n, box_size, dtype=torch.float64, device=device)
    k2[0, 0, 0] = 1.0
    kern = torch.exp(-(k_long**2) / k2 - (k2 / k_short**2) ** 2) / k2
    kern[0, 0, 0] = 0.0
    return kern.to(dtype)


def pgd_shift(positions: torch.Tensor, n: int, box_size: float, alpha: float, k_long: float,
              k_short: float) -> torch.Tensor:
    """The PGD displacement of every particle, ``(N, 3)`` Mpc/h, in the dtype of ``positions``.

    Parameters
    ----------
    positions : torch.Tensor
        ``(N, 3)`` particle positions, Mpc/h (equal masses; wrapped periodically).
    n : int
        Mesh points per side for the density (even; the particle grid's ``n`` is the natural choice).
    box_size : float
        Box side, Mpc/h.
    alpha : float
        Strength (dimensionless; 0 gives zero shifts).
    k_long, k_short : float
        Band of the pull, h/Mpc (see :func:`pgd_kernel`).
    """
    n = check_mesh_size(n)
    if not math.isfinite(alpha):
        raise ValueError(f"pgd: alpha must be finite, got {alpha}")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"pgd: positions must be (N, 3), got {tuple(positions.shape)}")
    mesh = paint(positions, n, box_size)
    mesh /= mesh.mean()
    delta_k = to_fourier(mesh)
    del mesh
    delta_k *= pgd_kernel(n, box_size, k_long, k_short, dtype=positions.dtype, device=positions.device)
    shift = torch.empty_like(positions)
    for axis, k_axis in enumerate(gradient_kernels(n, box_size, dtype=positions.dtype, device=positions.device)):
        component = to_real(delta_k * (1j * k_axis), n)  # i k / k^2 O(k) delta: points towards overdensities
        shift[:, axis] = readout(component, positions, box_size) * alpha
    return shift
