"""Redshift-space multipoles against the Kaiser prediction, a numpy full-grid sum, and Gaussian cosmic variance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.mocks.rsd import redshift_space_positions
from emulator.core.cosmology import Cosmology
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import nyquist, wavenumbers
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import lagrangian_grid
from emulator.core.multipoles import kaiser_multipoles, legendre, power_multipoles, power_multipoles_k
from emulator.core.stats import power_spectrum_k
from emulator.core.window import paint_interlaced

N, L, F = 48, 480.0, 0.7


def pk_model(k):
    """Smooth power-law-with-cutoff P(k) in (Mpc/h)^3 (no CAMB needed)."""
    return 2.0e4 * (k.clamp_min(1e-6) / 0.1) ** -1.0 * torch.exp(-((k / 0.6) ** 2))


def kaiser_field(seed: int, fixed: bool, f: float = F, los: int = 2):
    """Linear delta_k and its redshift-space version (1 + f mu^2) delta_k, exact in Fourier space."""
    dk = linear_density_k(white_noise(seed, N, dtype=torch.float64), L, pk_model, fixed_amplitude=fixed)
    kvec = torch.broadcast_tensors(*wavenumbers(N, L))
    kk = (kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2).sqrt()
    mu = kvec[los] / torch.where(kk == 0, torch.ones_like(kk), kk)
    return dk, dk * (1 + f * mu**2)


def full_grid_multipoles(field: np.ndarray, box: float, edges: np.ndarray, ells, axis: int):
    """Independent numpy estimator: full complex FFT grid, every wavevector once, no half-space weights."""
    n = field.shape[0]
    fk = np.fft.fftn(field)
    freq = np.fft.fftfreq(n, 1.0 / n) * 2 * np.pi / box
    kv = np.meshgrid(freq, freq, freq, indexing="ij")
    kk = np.sqrt(kv[0] ** 2 + kv[1] ** 2 + kv[2] ** 2)
    mu = np.where(kk > 0, kv[axis] / np.where(kk > 0, kk, 1.0), 0.0)
    p = np.abs(fk) ** 2 * box**3 / n**6
    out = []
    for ell in ells:
        leg = legendre(ell, torch.as_tensor(mu)).numpy()
        num, _ = np.histogram(kk[kk > 0], bins=edges, weights=((2 * ell + 1) * p * leg)[kk > 0])
        cnt, _ = np.histogram(kk[kk > 0], bins=edges)
        out.append(num / cnt)
    return np.array(out)


def test_isotropic_fixed_field_has_no_quadrupole_exactly():
    """By the cube symmetry, sum of L_2(mu) over any shell vanishes, so an isotropic |delta_k|^2 gives P_2 = 0."""
    dk, _ = kaiser_field(1, fixed=True, f=0.0)
    m = power_multipoles_k(dk, L, N, ells=(0, 2))
    p = power_spectrum_k(dk, L, N)
    assert torch.equal(m.modes, p.modes)
    torch.testing.assert_close(m.poles[0], p.power, rtol=1e-12, atol=0)
    assert (m.poles[1].abs() / m.poles[0]).max() < 1e-12


@pytest.mark.parametrize("los", [0, 1, 2])
def test_matches_full_grid_numpy_sum(los):
    """Half-space weights and binning agree with a brute-force numpy sum over the full complex FFT grid."""
    _, ds = kaiser_field(2, fixed=False, los=los)
    field = torch.fft.irfftn(ds, s=(N, N, N))
    m = power_multipoles(field, L, ells=(0, 2, 4), los="xyz"[los])
    ref = full_grid_multipoles(field.numpy(), L, m.edges.numpy(), (0, 2, 4), los)
    np.testing.assert_allclose(m.poles.numpy(), ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_kaiser_fixed_amplitude():
    """An exactly Kaiser-distorted fixed-amplitude field gives (1 + 2f/3 + f^2/5) P and (4f/3 + 4f^2/7) P.

    Per shell the residual is the lattice anisotropy of mu^4, mu^6 (a few % of P_0 in P_2 at ~1000 modes); summed
    over all shells between 4 k_f and 0.8 k_Nyq it averages out.
    """
    dk, ds = kaiser_field(3, fixed=True)
    p = power_spectrum_k(dk, L, N)
    m = power_multipoles_k(ds, L, N, ells=(0, 2))
    kai = kaiser_multipoles(p.power, F, (0, 2))
    kf = 2 * math.pi / L
    sel = (p.k > 4 * kf) & (p.k < 0.8 * nyquist(N, L))
    rel = (m.poles - kai)[:, sel] / kai[0, sel]
    assert rel[0].abs().max() < 0.01  # monopole: only mu^4 enters, with weight f^2/5
    assert rel[1].abs().max() < 0.05
    w = m.modes[sel].to(torch.float64)
    for ell in range(2):  # mode-weighted over the wide shell: the lattice anisotropy cancels
        total = ((m.poles[ell, sel] - kai[ell, sel]) * w).sum() / (kai[0, sel] * w).sum()
        assert abs(total) < 2e-3, (ell, total)


def test_kaiser_random_field_within_cosmic_variance():
    """Random Gaussian amplitudes: pulls against Kaiser with Var P_l = 2 (2l+1)^2 <P(mu)^2 L_l^2> / N_modes."""
    dk, ds = kaiser_field(4, fixed=False)
    m = power_multipoles_k(ds, L, N, ells=(0, 2))
    kf = 2 * math.pi / L
    k = m.k
    sel = (k > 2 * kf) & (k < nyquist(N, L) - kf)
    mu = torch.linspace(0, 1, 2001, dtype=torch.float64)
    chi2 = 0.0
    for i, ell in enumerate((0, 2)):
        pk = pk_model(k[sel])  # the shell average of the model is close enough to the model at mean k
        # <P(mu)^2 L_l(mu)^2> over mu in [0, 1] (trapezoid), then Gaussian variance of the estimator
        integrand = ((1 + F * mu**2) ** 4 * legendre(ell, mu) ** 2)
        avg = torch.trapezoid(integrand, mu)
        var = 2 * (2 * ell + 1) ** 2 * avg * pk**2 / m.modes[sel]
        expect = kaiser_multipoles(pk, F, (ell,))[0]
        pull = (m.poles[i, sel] - expect) / var.sqrt()
        chi2 += float((pull**2).sum())
        assert pull.abs().max() < 4.0
    dof = 2 * int(sel.sum())
    assert abs(chi2 / dof - 1) < 4 * math.sqrt(2 / dof), (chi2, dof)


@pytest.mark.parametrize("wave_axis", [0, 2])
def test_particle_plane_wave_through_rsd(wave_axis):
    """Particles on the grid displaced by a plane wave ``A sin(k q)`` along one axis, moved by
    :func:`emulator.mocks.rsd.redshift_space_positions` with line of sight z.

    All power sits on modes along the wave axis, so ``mu = 1`` (wave along z) or ``mu = 0`` (along x) exactly:
    ``P_2 / P_0 = 5 L_2(mu)`` = 5 or -5/2. Along z the redshift-space shift is ``f A sin(k z)``, and for
    ``|A| (1 + f) < h/2`` the interlaced CIC density is exactly linear in the displacement (each particle's
    weights are linear in its offset and their signs are fixed by the wave), so ``P_0^s = (1 + f)^2 P^real``;
    along x nothing moves, ``P_0^s = P^real``.
    """
    cosmo = Cosmology(0.3, 0.048, 0.68, 0.965, 0.8)
    n, box, z = 16, 128.0, 0.5
    g = GrowthHistory(cosmo)
    a = 1 / (1 + z)
    f1, e = float(g.f1(a)), float(g.E(a))
    h = box / n
    kw = 3 * 2 * math.pi / box
    q = lagrangian_grid(n, box, dtype=torch.float64)
    psi = torch.zeros_like(q)
    psi[:, wave_axis] = 0.2 * h * torch.sin(kw * q[:, wave_axis])
    pos = torch.remainder(q + psi, box)
    vel = 100.0 * a * e * f1 * psi
    s = redshift_space_positions(pos, vel, z, cosmo, box, los="z")

    def delta_k(x):
        fk = paint_interlaced(x, n, box)
        out = fk * n**3 / fk[0, 0, 0].real
        out[0, 0, 0] = 0
        return out

    p_real = power_spectrum_k(delta_k(pos), box, n)
    m = power_multipoles_k(delta_k(s), box, n, ells=(0, 2), los=2)
    i = int(torch.argmin((p_real.k - kw).abs()))
    assert p_real.power[i] > 1e3 * p_real.power.abs().median()  # the wave's bin dominates
    if wave_axis == 2:
        assert m.poles[0, i] / p_real.power[i] == pytest.approx((1 + f1) ** 2, rel=1e-9)
        assert m.poles[1, i] / m.poles[0, i] == pytest.approx(5.0, rel=1e-9)
    else:
        assert m.poles[0, i] / p_real.power[i] == pytest.approx(1.0, rel=1e-9)
        assert m.poles[1, i] / m.poles[0, i] == pytest.approx(-2.5, rel=1e-9)


def test_bad_inputs():
    dk, _ = kaiser_field(1, fixed=True)
    with pytest.raises(ValueError, match="los"):
        power_multipoles_k(dk, L, N, los=3)
    with pytest.raises(ValueError, match="ells"):
        power_multipoles_k(dk, L, N, ells=(1,))
    with pytest.raises(ValueError, match="field_k"):
        power_multipoles_k(dk[:4], L, N)
