"""Lagrangian perturbation theory: Zel'dovich (1LPT) and second-order (2LPT) displacements and velocities.

Conventions (Scoccimarro 1998; as in 2LPTic and FastPM)
-------------------------------------------------------
A particle starting at the Lagrangian grid point ``q`` moves to

    x(q, a) = q + D1(a) psi1(q) + D2(a) psi2(q),

with ``psi1 = -grad phi1``, ``laplacian phi1 = delta_L`` (the linear density at unit growth), and
``psi2 = grad phi2``, ``laplacian phi2 = sum_{i<j} (phi1_ii phi1_jj - phi1_ij^2)``. ``D2`` is the
second-order growth factor, negative, ``D2 ~ -3/7 D1^2`` (see :mod:`emulator.core.growth`). Hence
``div psi1 = -delta_L``. The peculiar velocity in km/s is
``v = a H(a) (f1 D1 psi1 + f2 D2 psi2)`` with ``a H(a) = 100 a E(a)`` km/s/(Mpc/h).

Vector fields are channels-first, shape ``(3, n, n, n)``, in Mpc/h; particle arrays are ``(N, 3)`` in C order
of the Lagrangian grid, so ``vector_field_to_particles`` and ``lagrangian_grid`` agree index for index.
"""

from __future__ import annotations

import torch

from .fourier import check_box_size, check_mesh_size, gradient_kernels, to_fourier, to_real, wavenumbers

__all__ = [
    "lagrangian_grid",
    "vector_field_to_particles",
    "particles_to_vector_field",
    "za_displacement",
    "lpt2_source",
    "lpt_potentials",
    "lpt2_potential",
    "gradient_component",
    "lpt2_displacement",
    "lpt_displacement",
    "lpt_velocity",
]


def lagrangian_grid(
    n: int, box_size: float, *, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """Positions ``q_ijk = (i, j, k) L / n`` of the ``n^3`` Lagrangian grid, shape ``(n^3, 3)``, Mpc/h."""
    n = check_mesh_size(n, even=False)
    cell = check_box_size(box_size) / n
    ax = torch.arange(n, dtype=dtype, device=device) * cell
    q = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), dim=-1)
    return q.reshape(-1, 3)


def vector_field_to_particles(field: torch.Tensor) -> torch.Tensor:
    """``(..., 3, n, n, n)`` channels-first field to ``(..., n^3, 3)`` per-particle vectors (C order)."""
    return field.flatten(-3).transpose(-1, -2)


def particles_to_vector_field(values: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`vector_field_to_particles`: ``(..., n^3, 3)`` to ``(..., 3, n, n, n)``."""
    return values.transpose(-1, -2).reshape(*values.shape[:-2], 3, n, n, n)


def _check_delta_k(delta_k: torch.Tensor) -> int:
    if delta_k.ndim != 3 or not delta_k.is_complex() or delta_k.shape[-1] != delta_k.shape[0] // 2 + 1:
        raise ValueError(f"delta_k must be a complex rfftn mesh (n, n, n//2+1), got shape {tuple(delta_k.shape)}")
    return check_mesh_size(delta_k.shape[0])


def _inverse_laplacian(n: int, box_size: float, dtype, device) -> torch.Tensor:
    kx, ky, kz = wavenumbers(n, box_size, dtype=dtype, device=device)
    k2 = kx**2 + ky**2 + kz**2
    k2[0, 0, 0] = 1.0
    inv = -1.0 / k2
    inv[0, 0, 0] = 0.0
    return inv


def gradient_component(phi_k: torch.Tensor, box_size: float, axis: int) -> torch.Tensor:
    """One component ``d phi / d x_axis`` (real space, ``(n, n, n)``) of a potential given in the ``rfftn`` layout.

    The gradients of :func:`za_displacement` and :func:`lpt2_displacement` are stacks of these, so a caller short
    of memory (:mod:`emulator.model.streaming`) can take one component at a time and get the same numbers.
    """
    n = _check_delta_k(phi_k)
    g = gradient_kernels(n, check_box_size(box_size), dtype=phi_k.real.dtype, device=phi_k.device)[axis]
    return to_real(1j * g * phi_k, n)


def _grad(phi_k: torch.Tensor, n: int, box_size: float) -> torch.Tensor:
    return torch.stack([gradient_component(phi_k, box_size, axis) for axis in range(3)])


def lpt_potentials(delta_k: torch.Tensor, box_size: float, second_order: bool = True):
    """Fourier potentials ``(phi1_k, phi2_k)`` of the LPT displacements, ``rfftn`` layout.

    ``psi1 = -grad phi1`` and ``psi2 = grad phi2`` (:func:`gradient_component`); ``phi2_k`` is ``None`` when
    ``second_order`` is false. The same arithmetic as :func:`za_displacement` and :func:`lpt2_displacement`.
    """
    n = _check_delta_k(delta_k)
    box_size = check_box_size(box_size)
    phi1_k = _inverse_laplacian(n, box_size, delta_k.real.dtype, delta_k.device) * delta_k
    return phi1_k, (lpt2_potential(phi1_k, box_size) if second_order else None)


def lpt2_potential(phi1_k: torch.Tensor, box_size: float) -> torch.Tensor:
    """Second-order potential ``phi2_k = laplacian^-1 S`` from the first-order one (``laplacian phi1 = delta``).

    A caller short of memory can drop ``delta_k`` once it has ``phi1_k`` (:func:`lpt_potentials` keeps both).
    """
    n = _check_delta_k(phi1_k)
    box_size = check_box_size(box_size)
    source_k = to_fourier(_lpt2_source_from_potential(phi1_k, n, box_size))
    return _inverse_laplacian(n, box_size, phi1_k.real.dtype, phi1_k.device) * source_k


def za_displacement(delta_k: torch.Tensor, box_size: float) -> torch.Tensor:
    """First-order displacement ``psi1 = -grad laplacian^-1 delta`` (Mpc/h), shape ``(3, n, n, n)``.

    Parameters
    ----------
    delta_k : torch.Tensor
        Linear density contrast in the ``rfftn`` layout (see :func:`emulator.core.fields.linear_density_k`).
    box_size : float
        Box side in Mpc/h.
    """
    n = _check_delta_k(delta_k)
    box_size = check_box_size(box_size)
    return -_grad(lpt_potentials(delta_k, box_size, second_order=False)[0], n, box_size)


def _lpt2_source_from_potential(phi_k: torch.Tensor, n: int, box_size: float) -> torch.Tensor:
    kx, ky, kz = gradient_kernels(n, box_size, dtype=phi_k.real.dtype, device=phi_k.device)
    k = (kx, ky, kz)

    def hess(i: int, j: int) -> torch.Tensor:
        return to_real(-k[i] * k[j] * phi_k, n)

    # in place, in the order of the sum below, so at most four real meshes and one product live at once (the same
    # numbers as hxx * hyy + hxx * hzz + hyy * hzz - hxy^2 - hxz^2 - hyz^2 evaluated left to right)
    hxx, hyy = hess(0, 0), hess(1, 1)
    source = hxx * hyy
    hzz = hess(2, 2)
    source += hxx * hzz
    del hxx
    source += hyy * hzz
    del hyy, hzz
    for i, j in ((0, 1), (0, 2), (1, 2)):
        source -= hess(i, j) ** 2
    return source


def lpt2_source(delta_k: torch.Tensor, box_size: float) -> torch.Tensor:
    """Second-order source ``sum_{i<j} (phi_ii phi_jj - phi_ij^2)`` with ``laplacian phi = delta``, real space."""
    n = _check_delta_k(delta_k)
    box_size = check_box_size(box_size)
    return _lpt2_source_from_potential(lpt_potentials(delta_k, box_size, second_order=False)[0], n, box_size)


def lpt2_displacement(delta_k: torch.Tensor, box_size: float) -> torch.Tensor:
    """Second-order displacement ``psi2 = grad laplacian^-1 S`` (Mpc/h), to be multiplied by ``D2 < 0``."""
    n = _check_delta_k(delta_k)
    return _grad(lpt_potentials(delta_k, box_size)[1], n, check_box_size(box_size))


def lpt_displacement(
    psi1: torch.Tensor, psi2: torch.Tensor | None, d1: float, d2: float = 0.0
) -> torch.Tensor:
    """Total LPT displacement ``D1 psi1 + D2 psi2`` (Mpc/h); ``psi2=None`` gives the Zel'dovich result."""
    out = d1 * psi1
    if psi2 is not None:
        out = out + d2 * psi2
    return out


def lpt_velocity(
    psi1: torch.Tensor,
    psi2: torch.Tensor | None,
    *,
    a: float,
    hubble_e: float,
    d1: float,
    f1: float,
    d2: float = 0.0,
    f2: float = 0.0,
) -> torch.Tensor:
    """Peculiar velocity ``100 a E(a) (f1 D1 psi1 + f2 D2 psi2)`` in km/s.

    Parameters
    ----------
    a : float
        Scale factor.
    hubble_e : float
        ``E(a) = H(a) / H0``.
    d1, f1, d2, f2 : float
        Growth factors and logarithmic growth rates at ``a`` (see :mod:`emulator.core.growth`).
    """
    scale = 100.0 * a * hubble_e
    out = (scale * f1 * d1) * psi1
    if psi2 is not None:
        out = out + (scale * f2 * d2) * psi2
    return out
