"""Binned power spectra P(k), cross power, r(k) and k binning (emulator.core.spectra) against independent truths.

Truths used: numpy full-grid mode counts and bin averages, the Gaussian-field ensemble mean and variance of the
binned estimator (BBKS and CAMB linear P(k)), Parseval for a single cosine wave, central finite differences for
the gradient, the Jing (2005) CIC aliasing sum for Poisson shot noise, the Fisher variance of r(k) for a signal
plus independent noise, and the exact r(k) of a one-cell translation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core.fields import gaussian_field
from emulator.core.spectra import cross_correlation, k_edges, power_spectrum, power_spectrum_k

try:
    from stats_reference import KF, L, N, bbks, binned, expected_power, full_grid
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.stats_reference import KF, L, N, bbks, binned, expected_power, full_grid


# ------------------------------------------------------------------------------------------------ power spectrum


def test_mode_counts_match_full_grid_and_sum_to_n3_minus_1():
    _, kk, _ = full_grid(N, L)
    ps = power_spectrum(torch.zeros(N, N, N, dtype=torch.float64), L)  # counts and k only
    cnt, ksum = binned(kk, kk, ps.edges.numpy())
    assert torch.equal(ps.modes, torch.as_tensor(cnt))
    np.testing.assert_allclose(ps.k.numpy(), ksum / cnt, rtol=1e-12)
    # default bins: width k_f centred on k_f, 2 k_f, ..., k_Nyq
    np.testing.assert_allclose(ps.edges.numpy(), (np.arange(N // 2 + 1) + 0.5) * KF, rtol=1e-12)
    full = power_spectrum(torch.zeros(N, N, N), L, kmin=0.0, kmax=math.sqrt(3) * math.pi * N / L * 1.001, nbins=7)
    assert int(full.modes.sum()) == N**3 - 1
    assert ps.modes[0] == 6 + 12 and ps.modes[1] == 8 + 6 + 24 + 24  # |k|/k_f = 1, sqrt2; sqrt3, 2, sqrt5, sqrt6


def test_log_bins_are_geometric_and_counted():
    _, kk, _ = full_grid(N, L)
    ps = power_spectrum(torch.zeros(N, N, N), L, log=True, nbins=6)
    e = ps.edges.double().numpy()
    np.testing.assert_allclose(e[1:] / e[:-1], (e[1] / e[0]) * np.ones(6), rtol=1e-6)
    assert math.isclose(e[0], KF, rel_tol=1e-6) and math.isclose(e[-1], math.pi * N / L, rel_tol=1e-6)
    cnt, _ = binned(kk, kk, np.asarray(k_edges(N, L, log=True, nbins=6)))
    assert torch.equal(ps.modes, torch.as_tensor(cnt))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_field_power_within_cosmic_variance(dtype):
    pulls = []
    for seed in range(10):
        ps = power_spectrum(gaussian_field(seed, N, L, bbks, dtype=dtype), L)
        assert ps.power.dtype == dtype
        cnt, mean, var = expected_power(N, L, bbks, ps.edges.double().numpy())
        assert torch.equal(ps.modes, torch.as_tensor(cnt))
        pulls.append((ps.power.double().numpy() - mean) / np.sqrt(var))
    pulls = np.concatenate(pulls)
    chi2_dof = float(np.mean(pulls**2))  # measured 1.089 for 160 dof (both dtypes)
    assert abs(chi2_dof - 1) < 4 * math.sqrt(2 / pulls.size)
    assert np.abs(pulls).max() < 4.0  # measured 2.67


def test_camb_linear_power_field_within_cosmic_variance():
    from emulator.core.cosmology import get_preset
    from emulator.core.power import LinearPower

    plin = LinearPower(get_preset("quijote"), z=0.0)
    box = 500.0

    def pk_np(k):
        return plin(torch.as_tensor(k, dtype=torch.float64)).numpy()

    pulls = []
    for seed in range(6):
        ps = power_spectrum(gaussian_field(seed, N, box, plin, dtype=torch.float64), box)
        cnt, mean, var = expected_power(N, box, pk_np, ps.edges.numpy())
        pulls.append((ps.power.numpy() - mean) / np.sqrt(var))
    pulls = np.concatenate(pulls)
    assert abs(float(np.mean(pulls**2)) - 1) < 4 * math.sqrt(2 / pulls.size)
    assert np.abs(pulls).max() < 4.0


def test_batch_cross_shot_noise_and_fourier_entry_agree():
    fields = torch.stack([gaussian_field(s, 16, 100.0, bbks, dtype=torch.float64) for s in range(3)])
    batch = power_spectrum(fields, 100.0)
    assert batch.power.shape == (3, 8)
    for i in range(3):
        single = power_spectrum(fields[i], 100.0)
        torch.testing.assert_close(batch.power[i], single.power)
        torch.testing.assert_close(power_spectrum(fields[i], 100.0, fields[i]).power, single.power)
        torch.testing.assert_close(power_spectrum(fields[i], 100.0, -2 * fields[i]).power, -2 * single.power)
        torch.testing.assert_close(power_spectrum(fields[i], 100.0, shot_noise=5.0).power, single.power - 5.0)
    fk = torch.fft.rfftn(fields, dim=(-3, -2, -1))
    torch.testing.assert_close(power_spectrum_k(fk, 100.0, 16).power, batch.power)
    # Parseval: sum_bins P N_modes / V = variance of a single cosine wave A cos(k.x) = A^2 / 2
    x = torch.arange(16, dtype=torch.float64) * 100.0 / 16
    wave = 0.3 * torch.cos(2 * math.pi * 3 * x / 100.0).view(16, 1, 1).expand(16, 16, 16)
    ps = power_spectrum(wave, 100.0)
    var = (ps.power * ps.modes).nansum() / 100.0**3
    assert math.isclose(var.item(), 0.3**2 / 2, rel_tol=1e-12)
    assert ps.power[2] > 0 and torch.all(ps.power[torch.arange(8) != 2] < 1e-20)


def test_power_spectrum_gradcheck():
    gen = torch.Generator().manual_seed(11)
    field = torch.randn(8, 8, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    other = torch.randn(8, 8, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    # fast_mode compares random projections of the analytic and finite-difference Jacobians (much cheaper)
    assert torch.autograd.gradcheck(lambda f: power_spectrum(f, 50.0).power, (field,), fast_mode=True)
    assert torch.autograd.gradcheck(
        lambda a, b: power_spectrum(a, 50.0, b, log=True, nbins=3).power, (field, other), fast_mode=True
    )
    # full gradient of one bin against central differences, which are exact for a quadratic up to rounding
    f0 = field.detach().clone()
    (grad,) = torch.autograd.grad(power_spectrum(field, 50.0).power[2], field)
    step = 1e-2
    for idx in [(0, 0, 0), (1, 2, 3), (7, 5, 4), (4, 4, 4)]:
        e = torch.zeros_like(f0)
        e[idx] = step
        fd = (power_spectrum(f0 + e, 50.0).power[2] - power_spectrum(f0 - e, 50.0).power[2]) / (2 * step)
        assert math.isclose(grad[idx].item(), fd.item(), rel_tol=1e-9, abs_tol=1e-9 * grad.abs().max().item())


def test_window_compensation_poisson_shot_noise_jing2005():
    """Uniform Poisson particles: <|delta_k|^2> V / n^6 = (V/N) sum_images W^2 = (V/N) prod(1 - 2/3 sin^2(pi k_i/2k_N))
    for CIC (Jing 2005); compensating by W^2 leaves (V/N) prod(...) / W^2(k)."""
    from emulator.core.mesh import paint

    n, box, npart = 16, 100.0, 40000
    gen = torch.Generator().manual_seed(5)
    (kx, ky, kz), kk, _ = full_grid(n, box)
    s2 = [np.sin(np.pi * ki / (2 * np.pi * n / box)) ** 2 for ki in (kx, ky, kz)]
    alias_sum = np.prod([1 - 2.0 / 3.0 * s for s in s2], axis=0)
    w2 = np.prod([np.sinc(ki / (2 * np.pi * n / box)) ** 4 for ki in (kx, ky, kz)], axis=0)
    pulls = {None: [], "cic": []}
    for rep in range(4):
        pos = torch.rand(npart, 3, generator=gen, dtype=torch.float64) * box
        mesh = paint(pos, n, box, window="cic")
        delta = mesh / mesh.mean() - 1
        for window in pulls:
            ps = power_spectrum(delta, box, window=window)
            truth = box**3 / npart * (alias_sum if window is None else alias_sum / w2)
            cnt, s1 = binned(truth, kk, ps.edges.numpy())
            _, s2sum = binned(truth**2, kk, ps.edges.numpy())
            pulls[window].append((ps.power.numpy() - s1 / cnt) / np.sqrt(2 * s2sum / cnt**2))
    for window, p in pulls.items():
        p = np.concatenate(p)
        assert abs(np.mean(p**2) - 1) < 4 * math.sqrt(2 / p.size), window
        assert np.abs(p).max() < 4.0, window


# ------------------------------------------------------------------------------------------------ cross-correlation


def test_cross_correlation_limits_and_noise():
    f = gaussian_field(1, N, L, bbks, dtype=torch.float64)
    _, r_self = cross_correlation(f, f, L)
    _, r_neg = cross_correlation(f, -f, L)
    torch.testing.assert_close(r_self, torch.ones_like(r_self))
    torch.testing.assert_close(r_neg, -torch.ones_like(r_neg))

    def noise_pk(k):
        return 3.0e3 * torch.ones_like(k) if torch.is_tensor(k) else 3.0e3 * np.ones_like(k)

    pulls = []
    for seed in range(6):
        g = gaussian_field(10 + seed, N, L, bbks, dtype=torch.float64)
        eps = gaussian_field(1000 + seed, N, L, noise_pk, dtype=torch.float64)
        k, r = cross_correlation(g, g + eps, L)
        edges = k_edges(N, L).numpy()
        cnt, p_sig, _ = expected_power(N, L, bbks, edges)
        _, p_noise, _ = expected_power(N, L, noise_pk, edges)
        r_true = np.sqrt(p_sig / (p_sig + p_noise))
        # Var r_hat ~ (1 - r^2)^2 / N_modes for N_modes real Gaussian degrees of freedom (Fisher)
        pulls.append((r.numpy() - r_true) / ((1 - r_true**2) / np.sqrt(cnt)))
    pulls = np.concatenate(pulls)
    assert np.abs(pulls).max() < 4.0
    assert abs(np.mean(pulls**2) - 1) < 4 * math.sqrt(2 / pulls.size)


def test_cross_correlation_is_real_part_not_modulus():
    # a one-cell translation multiplies delta_k by exp(-i k_x h): with fixed amplitudes r(k) = <P cos(k_x h)> / <P>
    f = gaussian_field(2, N, L, bbks, dtype=torch.float64, fixed_amplitude=True)
    k, r = cross_correlation(f, torch.roll(f, 1, dims=0), L)
    (kx, _, _), kk, nyq = full_grid(N, L)
    p = bbks(kk)
    p[nyq] = 0
    cnt, num = binned(p * np.cos(kx * L / N), kk, k_edges(N, L).numpy())
    _, den = binned(p, kk, k_edges(N, L).numpy())
    np.testing.assert_allclose(r.numpy(), num / den, rtol=0, atol=1e-10)
    # random phases (from the FFT of white noise, Hermitian by construction) decorrelate completely
    wk = torch.fft.rfftn(torch.randn(N, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    g = torch.fft.irfftn(torch.fft.rfftn(f) * wk / wk.abs(), s=(N, N, N))
    _, r_rand = cross_correlation(f, g, L)
    cnt = power_spectrum(f, L).modes.numpy()
    assert np.abs(r_rand.numpy() * np.sqrt(cnt)).max() < 4.0  # Var r = 1 / N_modes at r = 0
    # whereas the modulus |d1 d2*| (the bug this guards against) would report perfect correlation
    fk, gk = torch.fft.rfftn(f), torch.fft.rfftn(g)
    torch.testing.assert_close((fk * gk.conj()).abs(), fk.abs() * gk.abs())
    torch.testing.assert_close(gk.abs(), fk.abs())
