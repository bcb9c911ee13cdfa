"""Redshift-space positions: hand-computed shifts, periodic wrapping, and the Kaiser (1987) monopole."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.mocks.rsd import redshift_space_positions, velocity_to_displacement
from emulator.core.cosmology import Cosmology, get_preset

COSMO = get_preset("planck18")
L = 100.0


def hand_factor(z: float, cosmo: Cosmology) -> float:
    """(1+z)/(100 E(z)) with E written out independently of Cosmology.efunc."""
    e = math.sqrt(cosmo.Omega_m * (1 + z) ** 3 + 1 - cosmo.Omega_m)
    return (1 + z) / (100 * e)


def test_factor_matches_hand_formula():
    for z in (0.0, 0.5, 2.0):
        assert velocity_to_displacement(z, COSMO) == pytest.approx(hand_factor(z, COSMO), rel=1e-14)
    # at z = 0, E = 1: 100 km/s moves a tracer by exactly 1 Mpc/h
    assert velocity_to_displacement(0.0, COSMO) == pytest.approx(0.01, rel=1e-15)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_hand_computed_shifts_and_wrap_numpy(axis):
    z = 0.5
    fac = hand_factor(z, COSMO)
    pos = np.array([[10.0, 20.0, 30.0], [99.0, 1.0, 99.5], [0.5, 50.0, 0.2], [42.0, 42.0, 42.0]])
    vel = np.zeros_like(pos)
    v = np.array([300.0, 500.0, -400.0, 0.0])  # km/s along the line of sight
    vel[:, axis] = v
    vel[:, (axis + 1) % 3] = 1234.0  # transverse velocity must not matter
    s = redshift_space_positions(pos, vel, z, COSMO, L, los="xyz"[axis])
    expected = pos.copy()
    expected[:, axis] = (pos[:, axis] + v * fac) % L
    np.testing.assert_allclose(s, expected, rtol=0, atol=1e-12)
    others = [i for i in range(3) if i != axis]
    np.testing.assert_array_equal(s[:, others], pos[:, others])  # bit-identical transverse coordinates
    assert np.all((s >= 0) & (s < L))
    # particle 1 (x=99 or 99.5 along some axes) crosses the upper boundary: hand value
    if axis == 0:
        assert s[1, 0] == pytest.approx(99.0 + 500 * fac - L, abs=1e-12)
        assert s[2, 0] == pytest.approx(0.5 - 400 * fac + L, abs=1e-12)


def test_unit_vector_los_equals_axis_and_general_direction():
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, L, (50, 3))
    vel = rng.normal(0, 400, (50, 3))
    z = 1.0
    a = redshift_space_positions(pos, vel, z, COSMO, L, los="y")
    b = redshift_space_positions(pos, vel, z, COSMO, L, los=[0.0, 1.0, 0.0])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    n = np.array([1.0, 2.0, 2.0]) / 3.0
    c = redshift_space_positions(pos, vel, z, COSMO, L, los=n)
    fac = hand_factor(z, COSMO)
    expected = (pos + np.outer(vel @ n, n) * fac) % L
    d = (c - expected + L / 2) % L - L / 2  # periodic difference
    assert np.abs(d).max() < 1e-10
    # the displacement is parallel to n: its cross product with n vanishes (minimum image)
    shift = (c - pos + L / 2) % L - L / 2
    assert np.abs(np.cross(shift, n)).max() < 1e-10


def test_torch_matches_numpy_and_keeps_type_dtype_grad():
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, L, (64, 3))
    vel = rng.normal(0, 500, (64, 3))
    ref = redshift_space_positions(pos, vel, 0.3, COSMO, L, los="z")
    pt = torch.tensor(pos, requires_grad=True)
    vt = torch.tensor(vel, requires_grad=True)
    out = redshift_space_positions(pt, vt, 0.3, COSMO, L, los="z")
    assert torch.is_tensor(out) and out.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=0, atol=1e-12)
    out[:, 2].sum().backward()
    # d s_z / d v_z = (1+z)/(100 E); d s_z / d v_x = 0
    np.testing.assert_allclose(vt.grad[:, 2].numpy(), hand_factor(0.3, COSMO), rtol=1e-12)
    assert float(vt.grad[:, :2].abs().max()) == 0.0
    out32 = redshift_space_positions(pt.detach().float(), vt.detach().float(), 0.3, COSMO, L, los="z")
    assert out32.dtype == torch.float32
    assert bool(((out32 >= 0) & (out32 < L)).all())
    np32 = redshift_space_positions(pos.astype(np.float32), vel.astype(np.float32), 0.3, COSMO, L)
    assert np32.dtype == np.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(3)
    pos = torch.rand(1000, 3, generator=gen, dtype=torch.float64) * L
    vel = torch.randn(1000, 3, generator=gen, dtype=torch.float64) * 500
    cpu = redshift_space_positions(pos, vel, 0.7, COSMO, L, los=[0.6, 0.0, 0.8])
    gpu = redshift_space_positions(pos.cuda(), vel.cuda(), 0.7, COSMO, L, los=[0.6, 0.0, 0.8])
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-12)


def test_wrap_never_returns_box_size_in_float32():
    # -1e-9 rounds to L in float32 after a naive remainder; the result must stay in [0, L)
    pos = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float32)
    vel = torch.tensor([[0.0, 0.0, -1e-7]], dtype=torch.float32)
    out = redshift_space_positions(pos, vel, 0.0, COSMO, L)
    assert 0.0 <= float(out[0, 2]) < L
    out_np = redshift_space_positions(pos.numpy(), vel.numpy(), 0.0, COSMO, L)
    assert 0.0 <= float(out_np[0, 2]) < L


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"los": "w"}, "los"),
        ({"los": [1.0, 1.0, 0.0]}, "unit vector"),
        ({"redshift": -1.0}, "redshift"),
        ({"box_size": 0.0}, "box_size"),
        ({"velocity": np.zeros((3, 3))}, "velocity"),
        ({"position": np.full((4, 3), np.nan)}, "finite"),
        ({"cosmology": {"Omega_m": 0.3}}, "cosmology"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = dict(position=np.zeros((4, 3)), velocity=np.zeros((4, 3)), redshift=0.0, cosmology=COSMO, box_size=L)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        redshift_space_positions(**args)


def bbks_power(k: torch.Tensor) -> torch.Tensor:
    """z = 0 linear P(k) in (Mpc/h)^3 with the BBKS (1986) transfer function, Gamma = Omega_m h, n_s = 0.9665,
    normalised to P(0.1 h/Mpc) = 5500 (Mpc/h)^3, close to Planck 2018. The Kaiser factor does not depend on the
    shape, so this analytic spectrum replaces CAMB here and keeps the test fast."""
    gamma = COSMO.Omega_m * COSMO.h

    def shape(kk):
        q = kk / gamma
        t = (torch.log1p(2.34 * q) / (2.34 * q)
             * (1 + 3.89 * q + (16.1 * q) ** 2 + (5.46 * q) ** 3 + (6.71 * q) ** 4) ** -0.25)
        return kk**COSMO.n_s * t**2

    k = torch.as_tensor(k, dtype=torch.float64) if not torch.is_tensor(k) else k
    safe = torch.where(k > 0, k, torch.ones_like(k))
    ref = shape(torch.tensor(0.1, dtype=k.dtype))
    return torch.where(k > 0, 5500.0 * shape(safe) / ref, torch.zeros_like(k))


def _lattice_kaiser(n: int, box: float, f: float, kmax: float, power) -> tuple[float, float, int]:
    """Expected monopole ratio and its cosmic-variance sigma for the lattice modes 0 < |k| < kmax.

    The ratio estimator is R = sum_k P_k e_k g_k / sum_k P_k e_k with g = (1 + f mu^2)^2 and e_k ~ Exp(1);
    (k, -k) pairs are identical, so with N full-grid modes Var R = 2 sum P^2 (g - <g>)^2 / (sum P)^2.
    """
    kf = 2 * math.pi / box
    m = np.fft.fftfreq(n, 1.0 / n) * kf
    kx, ky, kz = np.meshgrid(m, m, m, indexing="ij")
    k = np.sqrt(kx**2 + ky**2 + kz**2)
    sel = (k > 0) & (k < kmax)
    mu2 = kz[sel] ** 2 / k[sel] ** 2
    g = (1 + f * mu2) ** 2
    p = power(torch.as_tensor(k[sel])).numpy()
    gbar = float((p * g).sum() / p.sum())
    var = 2 * float((p**2 * (g - gbar) ** 2).sum()) / float(p.sum()) ** 2
    return gbar, math.sqrt(var), int(sel.sum())


def test_kaiser_monopole_from_2lpt_particles():
    """P_s / P_r on large scales = 1 + 2f/3 + f^2/5 (Kaiser 1987) for 2LPT particles at z = 1."""
    growth = pytest.importorskip("emulator.core.growth")
    from emulator.core.fields import linear_density_k, white_noise
    from emulator.core.lpt import (
        lagrangian_grid,
        lpt2_displacement,
        lpt_velocity,
        vector_field_to_particles,
        za_displacement,
    )
    from emulator.core.mesh import paint, to_overdensity
    from emulator.core.stats import power_spectrum, power_spectrum_k
    from emulator.core.fourier import wavenumbers

    n, box, z = 32, 1000.0, 1.0
    a = 1 / (1 + z)
    hist = growth.GrowthHistory(COSMO)
    d1, f1, d2, f2, e = hist.D1(a), hist.f1(a), hist.D2(a), hist.f2(a), hist.E(a)
    plin = bbks_power
    kmax = 0.5 * math.pi * n / box  # half the Nyquist frequency
    edges = [0.5 * 2 * math.pi / box, kmax]
    kaiser = 1 + 2 * f1 / 3 + f1**2 / 5
    gbar, sigma, modes = _lattice_kaiser(n, box, f1, kmax, plin)
    # the lattice average of the Kaiser factor differs from the isotropic one by much less than cosmic variance
    assert abs(gbar - kaiser) < 0.2 * sigma

    kx, ky, kz = wavenumbers(n, box)
    k2 = kx**2 + ky**2 + kz**2
    mu2 = kz**2 / torch.where(k2 > 0, k2, torch.ones_like(k2))
    q = lagrangian_grid(n, box, dtype=torch.float64)
    ratios, rel_dev = [], []
    nseeds = 4
    for seed in range(nseeds):
        delta_k = linear_density_k(white_noise(seed, n, dtype=torch.float64), box, plin)
        psi1 = vector_field_to_particles(za_displacement(delta_k, box))
        psi2 = vector_field_to_particles(lpt2_displacement(delta_k, box))
        x = q + d1 * psi1 + d2 * psi2
        v = lpt_velocity(psi1, psi2, a=a, hubble_e=e, d1=d1, f1=f1, d2=d2, f2=f2)
        s = redshift_space_positions(x, v, z, COSMO, box, los="z")
        # The particle lattice coincides with mesh points for shift=0, where the CIC weight has a kink and the
        # painted density responds non-linearly to small displacements (a -0.8% bias in the ratio); painting on
        # the half-cell-shifted mesh avoids that.
        dr = to_overdensity(paint(x, n, box, shift=0.5))
        ds = to_overdensity(paint(s, n, box, shift=0.5))
        r = float(power_spectrum(ds, box, kedges=edges).power[0] / power_spectrum(dr, box, kedges=edges).power[0])
        # linear-theory prediction for this very realization: delta_s = delta (1 + f mu^2) mode by mode
        lin = d1 * delta_k
        r_lin = float(
            power_spectrum_k(lin * (1 + f1 * mu2), box, n, kedges=edges).power[0]
            / power_spectrum_k(lin, box, n, kedges=edges).power[0]
        )
        ratios.append(r)
        rel_dev.append(r / r_lin - 1)
    mean_ratio = float(np.mean(ratios))
    pull = (mean_ratio - kaiser) / (sigma / math.sqrt(nseeds))
    print(f"Kaiser {kaiser:.4f} lattice {gbar:.4f} measured {mean_ratio:.4f} sigma {sigma / 2:.4f} pull {pull:.2f}")
    print("ratio / per-realization linear prediction - 1:", np.round(rel_dev, 4))
    assert abs(pull) < 3.0
    # mode by mode, the particles follow linear theory to better than 1% on these scales
    assert max(abs(d) for d in rel_dev) < 0.01
