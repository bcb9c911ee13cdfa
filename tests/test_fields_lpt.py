"""White noise, linear fields and LPT against analytic truths."""

from __future__ import annotations

import math

import pytest
import torch

from emulator.core.fields import gaussian_field, linear_density_k, white_noise
from emulator.core.fourier import gradient_kernels, to_fourier, to_real
from emulator.core.lpt import (
    lagrangian_grid,
    lpt2_displacement,
    lpt2_source,
    lpt_displacement,
    lpt_velocity,
    particles_to_vector_field,
    vector_field_to_particles,
    za_displacement,
)

L = 100.0


def power_law(k: torch.Tensor) -> torch.Tensor:
    return 2.0e3 * (k / 0.1) ** -1.5


def divergence(field: torch.Tensor, box: float) -> torch.Tensor:
    n = field.shape[-1]
    g = gradient_kernels(n, box, dtype=field.dtype)
    return sum(to_real(1j * gi * to_fourier(field[i]), n) for i, gi in enumerate(g))


def plane_wave_delta(n: int, box: float, terms, dtype=torch.float64) -> torch.Tensor:
    """sum_j A_j cos(2 pi m_j x_axis / L), returned in Fourier space."""
    x = torch.arange(n, dtype=dtype) * box / n
    grids = torch.meshgrid(x, x, x, indexing="ij")
    field = torch.zeros((n, n, n), dtype=dtype)
    for amp, axis, m in terms:
        field = field + amp * torch.cos(2 * math.pi * m * grids[axis] / box)
    return to_fourier(field), grids


def test_white_noise_is_seeded_and_precision_independent():
    a = white_noise(7, 16, dtype=torch.float64)
    b = white_noise(7, 16, dtype=torch.float64)
    c = white_noise(7, 16, dtype=torch.float32)
    d = white_noise(8, 16, dtype=torch.float64)
    assert torch.equal(a, b)
    assert torch.equal(c, a.float())
    assert not torch.allclose(a, d)
    # unit variance, zero mean within sampling error of 4096 draws
    assert abs(a.mean().item()) < 4 / math.sqrt(a.numel())
    assert abs(a.var().item() - 1) < 4 * math.sqrt(2 / a.numel())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_white_noise_same_on_gpu():
    assert torch.equal(white_noise(3, 16, device="cuda").cpu(), white_noise(3, 16))


def test_fixed_amplitude_and_paired_fields():
    n = 16
    noise = white_noise(1, n, dtype=torch.float64)
    dk = linear_density_k(noise, L, power_law, fixed_amplitude=True)
    from emulator.core.fourier import k_magnitude

    k = k_magnitude(n, L, dtype=torch.float64)
    expect = power_law(k.clamp_min(1e-3)) * n**6 / L**3
    live = dk.abs() > 0
    assert live.sum() == (n - 1) ** 2 * (n // 2) - 1  # all but k=0 and the Nyquist planes
    torch.testing.assert_close((dk.abs() ** 2)[live], expect[live], rtol=1e-10, atol=0)
    paired = linear_density_k(noise, L, power_law, fixed_amplitude=True, invert_phase=True)
    torch.testing.assert_close(paired, -dk)


def test_mean_and_nyquist_modes_are_zero():
    n = 16
    dk = linear_density_k(white_noise(2, n, dtype=torch.float64), L, power_law)
    assert dk[0, 0, 0] == 0
    assert dk[n // 2].abs().max() == 0 and dk[:, n // 2].abs().max() == 0 and dk[..., n // 2].abs().max() == 0


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_za_divergence_is_minus_delta(dtype, tol):
    n = 32
    dk = linear_density_k(white_noise(5, n, dtype=dtype), L, power_law)
    psi = za_displacement(dk, L)
    delta = to_real(dk, n)
    err = (divergence(psi, L) + delta).abs().max() / delta.abs().max()
    assert err < tol


def test_za_plane_wave_analytic():
    n, amp, m = 16, 0.3, 2
    dk, grids = plane_wave_delta(n, L, [(amp, 0, m)])
    psi = za_displacement(dk, L)
    k = 2 * math.pi * m / L
    torch.testing.assert_close(psi[0], -amp / k * torch.sin(k * grids[0]), atol=1e-12, rtol=0)
    assert psi[1].abs().max() < 1e-12 and psi[2].abs().max() < 1e-12


def test_lpt2_source_two_plane_waves():
    # phi = -A/k1^2 cos(k1 x) - B/k2^2 cos(k2 y)  =>  phi_xx phi_yy = A B cos(k1 x) cos(k2 y), no mixed terms.
    n, a_amp, b_amp = 16, 0.4, 0.7
    dk, grids = plane_wave_delta(n, L, [(a_amp, 0, 1), (b_amp, 1, 3)])
    expect = a_amp * b_amp * torch.cos(2 * math.pi * grids[0] / L) * torch.cos(2 * math.pi * 3 * grids[1] / L)
    torch.testing.assert_close(lpt2_source(dk, L), expect, atol=1e-12, rtol=0)
    # a single plane wave is one-dimensional: no second-order source
    dk1, _ = plane_wave_delta(n, L, [(a_amp, 2, 2)])
    assert lpt2_source(dk1, L).abs().max() < 1e-12


def test_lpt2_displacement_divergence_is_source():
    n = 16
    dk, _ = plane_wave_delta(n, L, [(0.4, 0, 1), (0.7, 1, 2), (0.2, 2, 1)])
    psi2 = lpt2_displacement(dk, L)
    torch.testing.assert_close(divergence(psi2, L), lpt2_source(dk, L), atol=1e-12, rtol=0)


def test_displacement_and_velocity_combination():
    psi1 = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    psi2 = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(lpt_displacement(psi1, psi2, 0.5, -0.1), 0.5 * psi1 - 0.1 * psi2)
    v = lpt_velocity(psi1, psi2, a=0.5, hubble_e=2.0, d1=0.5, f1=0.9, d2=-0.1, f2=1.8)
    torch.testing.assert_close(v, 100 * 0.5 * 2.0 * (0.9 * 0.5 * psi1 + 1.8 * -0.1 * psi2))


def test_particle_layout_round_trip():
    n = 4
    q = lagrangian_grid(n, 8.0, dtype=torch.float64)
    assert q.shape == (n**3, 3)
    field = particles_to_vector_field(q, n)
    # mesh point (i, j, k) holds q = (i, j, k) * L / n
    assert field[0, 1, 2, 3] == 2.0 and field[1, 1, 2, 3] == 4.0 and field[2, 1, 2, 3] == 6.0
    torch.testing.assert_close(vector_field_to_particles(field), q)


def test_gaussian_field_variance_matches_mode_sum():
    n = 32
    from emulator.core.fourier import k_magnitude

    fields = torch.stack([gaussian_field(s, n, L, power_law, dtype=torch.float64) for s in range(4)])
    k = k_magnitude(n, L, dtype=torch.float64)
    pk = power_law(k.clamp_min(1e-3))
    pk[0, 0, 0] = 0
    for axis in (0, 1, 2):
        sel = [slice(None)] * 3
        sel[axis] = n // 2
        pk[tuple(sel)] = 0
    weight = torch.full_like(pk, 2.0)
    weight[..., 0] = 1.0
    expect = (weight * pk).sum() / L**3  # sigma^2 = (1/V) sum_k P(k) over all non-zero modes
    measured = fields.var(dim=(1, 2, 3), unbiased=False).mean()
    assert abs(measured / expect - 1) < 0.05


@pytest.mark.parametrize(
    "call",
    [
        lambda: white_noise(-1, 8),
        lambda: white_noise(1, 9),
        lambda: white_noise(1, 0),
        lambda: linear_density_k(torch.zeros(8, 8, 8), -1.0, power_law),
        lambda: linear_density_k(torch.zeros(8, 8, 8), float("nan"), power_law),
        lambda: linear_density_k(torch.zeros(8, 8, 4), 10.0, power_law),
        lambda: za_displacement(torch.zeros(8, 8, 8), 10.0),
    ],
)
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
