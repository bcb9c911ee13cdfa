"""FFT shell estimator of the bispectrum (Scoccimarro 2015, Sefusatti et al. 2016) on periodic meshes.

For a shell ``S_i = {k : k_i - dk/2 <= |k| < k_i + dk/2}`` (the ``k = 0`` mode excluded) define the real fields
``d_i(x) = IFFT[delta_k 1_{S_i}]`` and ``I_i(x) = IFFT[1_{S_i}]``. Then

    sum_x d_1 d_2 d_3 = n^-6 sum_{k1+k2+k3=0, k_i in S_i} delta_k1 delta_k2 delta_k3,
    sum_x I_1 I_2 I_3 = n^-6 N_tri,

so their ratio is the mean of ``delta_k1 delta_k2 delta_k3`` over the ``N_tri`` closed (ordered) triangles, and

    B = V^2 / n^9 * sum_x d_1 d_2 d_3 / sum_x I_1 I_2 I_3           [(Mpc/h)^6],
    P_i = V / n^6 * sum_x d_i^2 / sum_x I_i^2                       [(Mpc/h)^3, the same shells],
    Q = B / (P_1 P_2 + P_2 P_3 + P_3 P_1).

Conventions as in :mod:`emulator.core.spectra` (unnormalised ``rfftn``, ``P = V |delta_k|^2 / n^6``). The sum over
``x`` closes triangles modulo the grid, so shells with all ``k_i + dk/2 < 2/3 k_Nyq`` are free of aliased
triangles. The estimator is differentiable in ``field``.
"""

from __future__ import annotations

import math

import torch

from .fourier import check_box_size, check_mesh_size, nyquist, to_fourier, to_real, wavenumbers

__all__ = ["bispectrum", "bispectrum_equilateral", "bispectrum_triangles"]


def _check_inputs(field: torch.Tensor, box_size: float, dk: float) -> tuple[int, float, float]:
    if not torch.is_tensor(field) or field.ndim not in (3, 4) or len(set(field.shape[-3:])) != 1:
        shape = tuple(field.shape) if torch.is_tensor(field) else type(field).__name__
        raise ValueError(f"field must be a cubic (n, n, n) or (B, n, n, n) torch mesh, got {shape}")
    if not field.is_floating_point():
        raise ValueError(f"field must be a real floating-point mesh, got dtype {field.dtype}")
    n = check_mesh_size(field.shape[-1], name="field mesh size")
    box_size = check_box_size(box_size)
    dk = float(dk)
    if not math.isfinite(dk) or dk <= 0.0:
        raise ValueError(f"dk must be a positive shell width in h/Mpc, got {dk!r}")
    return n, box_size, dk


def _as_k(values, name: str, upper: float) -> torch.Tensor:
    k = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    if not torch.isfinite(k).all() or (k <= 0).any() or (k >= upper).any():
        raise ValueError(f"{name} must be positive wavenumbers below sqrt(3) k_Nyq = {upper:.4g} h/Mpc")
    return k


def _bispectra(field: torch.Tensor, box_size: float, ks: torch.Tensor, dk: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``B`` and ``Q``, shape ``(..., T)``, for a ``(T, 3)`` float64 tensor of shell centres."""
    n = field.shape[-1]
    dtype, device = field.dtype, field.device
    delta_k = to_fourier(field)
    kx, ky, kz = wavenumbers(n, box_size, dtype=torch.float64, device=device)
    kmag = (kx**2 + ky**2 + kz**2).sqrt()
    kmag[0, 0, 0] = -1.0  # never in a shell
    cache: dict[float, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def shell(k: float):
        if k not in cache:
            mask = (kmag >= k - dk / 2) & (kmag < k + dk / 2)
            d = to_real(delta_k * mask.to(dtype), n)
            ind = to_real(mask.to(torch.float64), n)
            nmodes = (ind.square().sum() * n**3).item()
            if nmodes < 0.5:
                raise ValueError(f"k={k:.4g} h/Mpc: the shell of width dk={dk:.4g} holds no modes")
            power = box_size**3 / float(n) ** 6 * d.square().sum(dim=(-3, -2, -1)) / (nmodes / n**3)
            cache[k] = (d, ind, power)
        return cache[k]

    b_out, q_out = [], []
    for k1, k2, k3 in ks.tolist():
        (d1, i1, p1), (d2, i2, p2), (d3, i3, p3) = shell(k1), shell(k2), shell(k3)
        ntri = (i1 * i2 * i3).sum().item() * float(n) ** 6
        if ntri < 0.5:
            raise ValueError(f"k1, k2, k3 = ({k1:.4g}, {k2:.4g}, {k3:.4g}): no closed triangles in shells dk={dk:.4g}")
        b = (d1 * d2 * d3).sum(dim=(-3, -2, -1)) * (box_size**6 / float(n) ** 3 / ntri)
        b_out.append(b)
        q_out.append(b / (p1 * p2 + p2 * p3 + p3 * p1))
    return torch.stack(b_out, dim=-1), torch.stack(q_out, dim=-1)


def bispectrum(
    field: torch.Tensor, box_size: float, k1, k2, k3, dk: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bispectrum ``B(k1, k2, k3)`` and reduced bispectrum ``Q`` of a real overdensity mesh.

    Parameters
    ----------
    field : torch.Tensor
        Real ``(n, n, n)`` overdensity mesh, or a batch ``(B, n, n, n)`` (the shells are then built once).
    box_size : float
        Box side, Mpc/h.
    k1, k2, k3 : float or array_like
        Shell centres in h/Mpc; broadcast against each other.
    dk : float
        Shell width, h/Mpc (``k_f = 2 pi / L`` or a small multiple is typical).

    Returns
    -------
    B, Q : torch.Tensor
        ``B`` in (Mpc/h)^6 and ``Q = B / (P1 P2 + P2 P3 + P3 P1)`` (``P`` from the same shells), with the broadcast
        shape of ``k1, k2, k3`` (preceded by ``B`` for a batch). Raises ``ValueError`` when a shell is empty or
        no triangle closes.
    """
    n, box_size, dk = _check_inputs(field, box_size, dk)
    upper = math.sqrt(3.0) * nyquist(n, box_size) + dk / 2
    kk = torch.broadcast_tensors(_as_k(k1, "k1", upper), _as_k(k2, "k2", upper), _as_k(k3, "k3", upper))
    shape = kk[0].shape
    ks = torch.stack([k.reshape(-1) for k in kk], dim=-1)
    b, q = _bispectra(field, box_size, ks, dk)
    lead = field.shape[:-3]
    return b.reshape(lead + shape), q.reshape(lead + shape)


def bispectrum_equilateral(field: torch.Tensor, box_size: float, kvals, dk: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Equilateral ``B(k, k, k)`` and ``Q`` for each ``k`` in ``kvals`` (h/Mpc); see :func:`bispectrum`."""
    return bispectrum(field, box_size, kvals, kvals, kvals, dk)


def bispectrum_triangles(
    field: torch.Tensor, box_size: float, k1: float, k2: float, thetas, dk: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bispectrum as a function of the angle ``theta`` between the wavevectors ``k1`` and ``k2``.

    The third side closes the triangle, ``k3 = -(k1 + k2)``, so ``k3^2 = k1^2 + k2^2 + 2 k1 k2 cos(theta)``:
    ``theta = 0`` is the collinear (folded) configuration ``k3 = k1 + k2``, ``theta = 2 pi / 3`` with ``k1 = k2`` is
    equilateral, and ``theta -> pi`` squeezes ``k3 -> |k1 - k2|``.

    Returns
    -------
    k3, B, Q : torch.Tensor
        Third side (h/Mpc) and :func:`bispectrum` results, one per ``theta`` (radians).
    """
    th = torch.as_tensor(thetas, dtype=torch.float64).detach().cpu()
    if not torch.isfinite(th).all() or (th < 0).any() or (th > math.pi).any():
        raise ValueError("thetas must be angles in [0, pi] radians")
    a, b = float(k1), float(k2)
    k3 = (a * a + b * b + 2 * a * b * torch.cos(th)).clamp_min(0.0).sqrt()
    bk, qk = bispectrum(field, box_size, torch.full_like(k3, a), torch.full_like(k3, b), k3, dk)
    return k3.to(field.dtype), bk, qk
