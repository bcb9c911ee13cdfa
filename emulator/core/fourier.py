"""Fourier-grid helpers and input validation shared by the whole physics core.

The forward transform is ``torch.fft.rfftn`` over the last three axes with no normalisation, so for a mesh of
``n^3`` cells in a periodic box of side ``L`` (Mpc/h), ``P(k) = L^3 / n^6 |delta_k|^2`` in (Mpc/h)^3.
Wavenumbers are in h/Mpc.
"""

from __future__ import annotations

import math

import torch

from .checks import check_box_size, check_positive

__all__ = [
    "check_positive",
    "check_box_size",
    "check_mesh_size",
    "check_field",
    "wavenumbers",
    "k_squared",
    "k_magnitude",
    "gradient_kernels",
    "nyquist",
    "fundamental",
    "to_fourier",
    "to_real",
]


def check_mesh_size(n: int, name: str = "nmesh", even: bool = True) -> int:
    """Return the mesh size ``n`` as an int, or raise ``ValueError`` unless it is a positive (even) integer."""
    if isinstance(n, bool) or not isinstance(n, (int,)) and not (hasattr(n, "__index__")):
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    value = int(n)
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    if even and value % 2:
        raise ValueError(f"{name} must be even (FFT Nyquist plane), got {n!r}")
    return value


def check_field(field: torch.Tensor, name: str = "field", batch: bool = True) -> int:
    """Validate a real cubic mesh ``(n, n, n)`` (or ``(B, n, n, n)`` with ``batch``); return ``n``."""
    ok_ndim = (3, 4) if batch else (3,)
    if not torch.is_tensor(field) or field.ndim not in ok_ndim or len(set(field.shape[-3:])) != 1:
        want = "(n, n, n) or (B, n, n, n)" if batch else "(n, n, n)"
        shape = tuple(field.shape) if torch.is_tensor(field) else type(field).__name__
        raise ValueError(f"{name} must be a cubic {want} torch mesh, got {shape}")
    if not field.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point mesh, got dtype {field.dtype}")
    return check_mesh_size(field.shape[-1], name=f"{name} mesh size")


def fundamental(box_size: float) -> float:
    """Fundamental wavenumber ``2 pi / L`` in h/Mpc."""
    return 2.0 * math.pi / check_box_size(box_size)


def nyquist(n: int, box_size: float) -> float:
    """Nyquist wavenumber ``pi n / L`` in h/Mpc."""
    return math.pi * check_mesh_size(n) / check_box_size(box_size)


def wavenumbers(
    n: int,
    box_size: float,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Broadcastable wavevector components (h/Mpc) for the ``rfftn`` layout of an ``n^3`` mesh.

    Returns
    -------
    kx, ky, kz : torch.Tensor
        Shapes ``(n, 1, 1)``, ``(1, n, 1)`` and ``(1, 1, n // 2 + 1)``.
    """
    n = check_mesh_size(n)
    kf = fundamental(box_size)
    full = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device) * kf
    half = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=device) * kf
    return full.view(n, 1, 1), full.view(1, n, 1), half.view(1, 1, -1)


def k_squared(n: int, box_size: float, **kw) -> torch.Tensor:
    """``|k|^2`` on the ``rfftn`` grid, shape ``(n, n, n // 2 + 1)``, in (h/Mpc)^2."""
    kx, ky, kz = wavenumbers(n, box_size, **kw)
    return kx**2 + ky**2 + kz**2


def k_magnitude(n: int, box_size: float, **kw) -> torch.Tensor:
    """``|k|`` on the ``rfftn`` grid, shape ``(n, n, n // 2 + 1)``, in h/Mpc."""
    return k_squared(n, box_size, **kw).sqrt()


def gradient_kernels(
    n: int, box_size: float, **kw
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wavevector components for the spectral gradient ``d/dx_i -> i k_i``, with the Nyquist planes zeroed.

    Zeroing the Nyquist component keeps the gradient of a real field real (its Nyquist mode has no partner of
    opposite sign), the standard choice in PM codes.
    """
    n = check_mesh_size(n)
    kx, ky, kz = wavenumbers(n, box_size, **kw)
    kx, ky, kz = kx.clone(), ky.clone(), kz.clone()
    kx[n // 2] = 0.0
    ky[:, n // 2] = 0.0
    kz[..., n // 2] = 0.0
    return kx, ky, kz


def to_fourier(field: torch.Tensor) -> torch.Tensor:
    """Unnormalised forward real FFT over the last three axes."""
    return torch.fft.rfftn(field, dim=(-3, -2, -1))


def to_real(field_k: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`to_fourier` for an ``n^3`` mesh."""
    return torch.fft.irfftn(field_k, s=(n, n, n), dim=(-3, -2, -1))
