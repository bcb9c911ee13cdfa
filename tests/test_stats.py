"""Two-point and one-point statistics against independent truths (numpy full-grid sums, scipy, Jing 2005)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, ndimage, stats

from emulator.core.fields import gaussian_field
from emulator.core.stats import (
    correlation_function,
    covariance,
    cross_correlation,
    density_pdf,
    hartlap_factor,
    k_edges,
    mass_function,
    power_spectrum,
    power_spectrum_k,
    smooth_field,
)

N = 32
L = 400.0
KF = 2 * math.pi / L


def bbks(k, amp=2.0e5, gamma=0.2, kcut=None):
    """BBKS-shaped P(k) = A k T(k/Gamma)^2 [exp(-(k/kcut)^2)], (Mpc/h)^3; numpy or torch."""
    lib = torch if torch.is_tensor(k) else np
    q = (k.clamp_min(1e-12) if torch.is_tensor(k) else np.maximum(k, 1e-12)) / gamma
    poly = 1 + 3.89 * q + (16.1 * q) ** 2 + (5.46 * q) ** 3 + (6.71 * q) ** 4
    t = lib.log(1 + 2.34 * q) / (2.34 * q) * poly**-0.25
    p = amp * k * t**2
    return p * lib.exp(-((k / kcut) ** 2)) if kcut else p


def full_grid(n: int, box: float):
    """|k| on the full (not rfft) numpy FFT grid and the mask of modes on a Nyquist plane."""
    f = np.fft.fftfreq(n, 1.0 / n) * 2 * np.pi / box
    kx, ky, kz = np.meshgrid(f, f, f, indexing="ij")
    nyq = np.isclose(np.abs(kx), np.pi * n / box) | np.isclose(np.abs(ky), np.pi * n / box)
    nyq |= np.isclose(np.abs(kz), np.pi * n / box)
    return (kx, ky, kz), np.sqrt(kx**2 + ky**2 + kz**2), nyq


def binned(values: np.ndarray, coord: np.ndarray, edges: np.ndarray, weights=None):
    """numpy reference binning, bins [lo, hi), the zero mode excluded: (counts, sum of values)."""
    idx = np.digitize(coord.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1) & (coord.ravel() > 0)
    nb = len(edges) - 1
    return np.bincount(idx[ok], minlength=nb), np.bincount(idx[ok], weights=values.ravel()[ok], minlength=nb)


def expected_power(n, box, pk, edges):
    """Ensemble mean and variance of the binned estimator for a field from ``gaussian_field`` (Nyquist zeroed)."""
    _, kk, nyq = full_grid(n, box)
    p = pk(kk)
    p[nyq] = 0.0
    cnt, s1 = binned(p, kk, edges)
    _, s2 = binned(p**2, kk, edges)
    # each full-grid mode and its partner -k carry the same |delta_k|^2: Var(sum) = 2 sum P^2
    return cnt, s1 / cnt, 2 * s2 / cnt**2


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


# ------------------------------------------------------------------------------------------------ correlation function


def test_correlation_function_matches_direct_pair_sum():
    f = torch.randn(8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r, xi, counts = correlation_function(f, 16.0, redges=[0.5, 2.5, 4.5, 7.0, 14.0])
    d = (f - f.mean()).numpy()
    sep = (np.arange(8) + 4) % 8 - 4
    sums, num = np.zeros(4), np.zeros(4)
    for i in range(8):
        for j in range(8):
            for k in range(8):
                s = 2.0 * math.sqrt(sep[i] ** 2 + sep[j] ** 2 + sep[k] ** 2)
                b = np.searchsorted([0.5, 2.5, 4.5, 7.0, 14.0], s, side="right") - 1
                if 0 <= b < 4:
                    shifted = np.roll(d, (-i, -j, -k), axis=(0, 1, 2))
                    sums[b] += (d * shifted).mean()
                    num[b] += 1
    np.testing.assert_allclose(xi.numpy(), sums / num, rtol=1e-10, atol=1e-14)
    assert counts.tolist() == num.astype(int).tolist() and int(counts.sum()) < 8**3


def test_correlation_function_matches_hankel_transform():
    kcut = 0.08

    def pk(k):
        return bbks(k, kcut=kcut)

    h = L / N
    fields = [gaussian_field(100 + s, N, L, pk, dtype=torch.float64) for s in range(8)]
    xis = np.array([correlation_function(f, L)[1].numpy() for f in fields])
    # discrete ensemble expectation: xi(s) = V^-1 sum_k P(k) e^{i k.s} (Nyquist planes zeroed as in gaussian_field)
    _, kk, nyq = full_grid(N, L)
    p = pk(kk)
    p[nyq] = 0
    p.flat[0] = 0
    xi_grid = np.real(np.fft.ifftn(p)) * N**3 / L**3
    sep = ((np.arange(N) + N // 2) % N - N // 2) * h
    sx, sy, sz = np.meshgrid(sep, sep, sep, indexing="ij")
    rr = np.sqrt(sx**2 + sy**2 + sz**2)
    edges = (np.arange(N // 2 + 1) + 0.5) * h
    idx = np.digitize(rr.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < N // 2)
    cnt = np.bincount(idx[ok], minlength=N // 2)
    expect = np.bincount(idx[ok], weights=xi_grid.ravel()[ok], minlength=N // 2) / cnt
    # Gaussian-field variance of each binned xi: (2 / V^2) sum_k P^2 Wbin(k)^2, Wbin = bin-averaged e^{ik.s}
    sigma = np.empty(N // 2)
    for b in range(N // 2):
        wbin = np.real(np.fft.fftn((idx == b).reshape(N, N, N))) / cnt[b]
        sigma[b] = math.sqrt(2 * np.sum(p**2 * wbin**2)) / L**3
    pull = (xis.mean(0) - expect) / (sigma / math.sqrt(len(xis)))
    assert np.abs(pull).max() < 4.0
    # continuum Hankel transform xi(r) = 1/(2 pi^2) int k^2 P(k) sin(kr)/(kr) dk at each lattice separation
    ru, inv = np.unique(np.round(rr.ravel()[ok], 9), return_inverse=True)

    def hankel(r):
        val, _ = integrate.quad(lambda k: k * pk(k), 0, 8 * kcut, weight="sin", wvar=r, limit=400)
        return val / (2 * np.pi**2 * r)

    cont = np.bincount(idx[ok], weights=np.array([hankel(x) for x in ru])[inv], minlength=N // 2) / cnt
    inner = (edges[1:] < L / 8)  # well inside the box, where the k-space sampling error is small
    rel = np.abs(expect[inner] / cont[inner] - 1)
    assert rel.max() < 0.03  # measured 0.2%, 0.4%, 0.8% at r = 16, 28, 39 Mpc/h (1.9% at 51)


# ------------------------------------------------------------------------------------------------ one-point PDF


def test_gaussian_smoothing_matches_scipy():
    radius = 2.5 * L / N
    f = gaussian_field(4, N, L, bbks, dtype=torch.float64)
    ref = ndimage.gaussian_filter(f.numpy(), sigma=radius / (L / N), mode="wrap", truncate=8.0)
    np.testing.assert_allclose(smooth_field(f, L, radius).numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def _smoothing_setup(radius):
    box = 100.0

    def pk(k):
        return 50.0 * (k.clamp_min(1e-9) if torch.is_tensor(k) else np.maximum(k, 1e-9)) ** -1.0

    _, kk, nyq = full_grid(N, box)
    p = pk(kk)
    p[nyq] = 0.0
    p.flat[0] = 0.0
    x = np.maximum(kk * radius, 1e-8)
    kernels = {"gaussian": np.exp(-0.5 * x**2), "tophat": 3 * (np.sin(x) - x * np.cos(x)) / x**3}
    return box, pk, p, kernels


@pytest.mark.parametrize("kernel", ["gaussian", "tophat"])
def test_smoothed_variance_is_discrete_sigma2(kernel):
    box, pk, p, kernels = _smoothing_setup(radius := 1.5 * 100.0 / N)
    sigma2 = np.sum(p * kernels[kernel] ** 2) / box**3  # sigma^2(R) = V^-1 sum_k P W^2
    # fixed-amplitude fields have |delta_k|^2 = P exactly: the sample variance is sigma^2(R) to rounding
    fixed = torch.stack([gaussian_field(s, N, box, pk, dtype=torch.float64, fixed_amplitude=True) for s in range(2)])
    var_fixed = smooth_field(fixed, box, radius, kernel).var(dim=(-3, -2, -1), unbiased=False).numpy()
    np.testing.assert_allclose(var_fixed, sigma2, rtol=1e-10)
    # Gaussian fields: within cosmic variance, Var(sigma_hat^2) = 2 V^-2 sum_k P^2 W^4
    sd = math.sqrt(2 * np.sum(p**2 * kernels[kernel] ** 4)) / box**3
    fields = torch.stack([gaussian_field(50 + s, N, box, pk, dtype=torch.float64) for s in range(4)])
    var_hat = smooth_field(fields, box, radius, kernel).var(dim=(-3, -2, -1), unbiased=False).numpy()
    assert np.all(np.abs(var_hat - sigma2) < 4 * sd)


@pytest.mark.parametrize("kernel", ["gaussian", "tophat"])
def test_smoothed_gaussian_field_pdf_is_gaussian_with_sigma2(kernel):
    box, pk, p, kernels = _smoothing_setup(radius := 1.5 * 100.0 / N)
    sigma = math.sqrt(np.sum(p * kernels[kernel] ** 2) / box**3)
    edges = 1 + np.linspace(-3, 3, 17) * sigma
    pdfs = []
    for seed in range(12):
        f = gaussian_field(70 + seed, N, box, pk, dtype=torch.float64)
        centres, pdf = density_pdf(f, box, radius, edges, kernel=kernel)
        assert math.isclose(float(np.sum(pdf.numpy() * np.diff(edges))), 1.0, rel_tol=1e-12)
        rho = 1 + smooth_field(f, box, radius, kernel)
        inside = ((rho >= edges[0]) & (rho <= edges[-1])).double().mean().item()
        pdfs.append(pdf.numpy() * inside)  # renormalised to all cells, to compare with the Gaussian on [-3, 3] sigma
    pdfs = np.array(pdfs)
    truth = np.diff(stats.norm.cdf(edges, loc=1.0, scale=sigma)) / np.diff(edges)
    np.testing.assert_allclose(centres.numpy(), 0.5 * (edges[1:] + edges[:-1]))
    # the scatter between the 12 independent fields measures the sampling noise of each bin (Student t, 11 dof)
    t = (pdfs.mean(0) - truth) / (pdfs.std(0, ddof=1) / math.sqrt(len(pdfs)))
    assert np.abs(t).max() < 4.0
    assert np.abs(pdfs.mean(0) / truth - 1).max() < 0.1


def test_density_pdf_integer_bins_integrates_to_one():
    f = gaussian_field(4, 16, 100.0, bbks)
    centres, pdf = density_pdf(f, 100.0, 10.0, bins=20, kernel="tophat")
    width = (centres[1] - centres[0]).item()
    assert math.isclose(pdf.sum().item() * width, 1.0, rel_tol=1e-5)


# ----------------------------------------------------------------------------------------- mass function, covariance


def test_mass_function_hand_count_and_numpy():
    m = np.array([1e12, 2e12, 5e12, 9.99e12, 1e13, 3e13, 1e14, 5e11, 2e14])
    centres, dn, counts = mass_function(m, 1.0e6, [1e12, 1e13, 1e14])
    assert counts.tolist() == [4, 3]  # [1e12, 1e13) and [1e13, 1e14] (last bin closed), 5e11 and 2e14 outside
    np.testing.assert_allclose(dn.numpy(), [4e-6, 3e-6])
    np.testing.assert_allclose(centres.numpy(), [10**12.5, 10**13.5])
    rng = np.random.default_rng(0)
    m = 10 ** rng.uniform(12, 15, 5000)
    centres, dn, counts = mass_function(torch.as_tensor(m), 8.0e6, 12)
    ref, e = np.histogram(np.log10(m), bins=12)
    assert counts.tolist() == ref.tolist()
    np.testing.assert_allclose(dn.numpy(), ref / 8.0e6 / np.diff(e))


def test_covariance_matches_numpy_and_hartlap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    cov, corr = covariance(x)
    assert isinstance(cov, np.ndarray)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(corr, np.corrcoef(x, rowvar=False), rtol=1e-12)
    tcov, tcorr = covariance(torch.as_tensor(x))
    assert torch.is_tensor(tcov)
    np.testing.assert_allclose(tcov.numpy(), cov, rtol=1e-12)
    assert hartlap_factor(50, 6) == pytest.approx(42 / 49)


# ------------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: power_spectrum(torch.zeros(8, 8, 6), 10.0), "field"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), -1.0), "box_size"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, torch.zeros(2, 8, 8, 8)), "field2"),
        (lambda: power_spectrum(torch.zeros(7, 7, 7), 10.0), "even"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8, dtype=torch.int64), 10.0), "field"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, kmin=5.0, kmax=1.0), "kmin"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, kmin=100.0, kmax=200.0), "kmin"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, kedges=[1.0, 0.5]), "kedges"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, kedges=[0.5, 1.0], nbins=3), "kedges"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, nbins=0), "nbins"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, log=True, kmin=0.0), "log"),
        (lambda: power_spectrum(torch.zeros(8, 8, 8), 10.0, window="sph"), "window"),
        (lambda: power_spectrum_k(torch.zeros(8, 8, 8, dtype=torch.complex64), 10.0, 8), "field_k"),
        (lambda: cross_correlation(torch.zeros(8, 8, 8), torch.zeros(16, 16, 16), 10.0), "field2"),
        (lambda: correlation_function(torch.zeros(8, 8, 8), 10.0, redges=[3.0, 2.0]), "redges"),
        (lambda: correlation_function(torch.zeros(8, 8, 8), 10.0, rmax=-1.0), "rmax"),
        (lambda: density_pdf(torch.zeros(8, 8, 8), 10.0, -1.0), "smoothing_radius"),
        (lambda: density_pdf(torch.zeros(8, 8, 8), 10.0, 1.0, kernel="box"), "kernel"),
        (lambda: density_pdf(torch.zeros(8, 8, 8), 10.0, 1.0, bins=[5.0, 6.0]), "bins"),
        (lambda: mass_function(np.array([1e12, -1.0]), 1.0, 3), "masses"),
        (lambda: mass_function(np.array([1e12]), 0.0, 3), "volume"),
        (lambda: covariance(np.zeros(5)), "samples"),
        (lambda: hartlap_factor(5, 4), "n_realizations"),
    ],
)
def test_bad_inputs_raise_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    f = gaussian_field(1, N, L, bbks, dtype=torch.float32)
    g = gaussian_field(2, N, L, bbks, dtype=torch.float32)
    for field in (f, torch.stack([f, g])):
        cpu, gpu = power_spectrum(field, L, window="cic"), power_spectrum(field.cuda(), L, window="cic")
        assert gpu.power.is_cuda and torch.equal(gpu.modes.cpu(), cpu.modes)
        torch.testing.assert_close(gpu.power.cpu(), cpu.power, rtol=1e-4, atol=0)
        torch.testing.assert_close(gpu.k.cpu(), cpu.k)
    r_gpu = cross_correlation(f.cuda(), g.cuda(), L)[1].cpu()
    torch.testing.assert_close(r_gpu, cross_correlation(f, g, L)[1], rtol=1e-4, atol=1e-5)
    rc, xc, cc = correlation_function(f, L)
    rg, xg, cg = correlation_function(f.cuda(), L)
    assert torch.equal(cg.cpu(), cc)
    torch.testing.assert_close(xg.cpu(), xc, rtol=1e-4, atol=1e-6 * xc.abs().max().item())
    cpdf, ppdf = density_pdf(f, L, 30.0, 20)
    gc, gp = density_pdf(f.cuda(), L, 30.0, 20)
    torch.testing.assert_close(gp.cpu(), ppdf, rtol=1e-3, atol=1e-3 * ppdf.max().item())
    m = 10 ** (12 + 3 * torch.rand(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(mass_function(m.cuda(), 1e6, 10)[2].cpu(), mass_function(m, 1e6, 10)[2])
    field = f.cuda().requires_grad_(True)
    power_spectrum(field, L).power.sum().backward()
    assert field.grad is not None and torch.isfinite(field.grad).all()
