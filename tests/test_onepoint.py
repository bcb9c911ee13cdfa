"""Smoothing, one-point PDF, mass function and covariance (emulator.core.onepoint) against independent truths.

Truths used: scipy.ndimage Gaussian filtering, the discrete sigma^2(R) = V^-1 sum_k P W^2 (exact for fixed-amplitude
fields, within cosmic variance otherwise), the Gaussian PDF of a smoothed Gaussian field (scipy.stats), hand counts
and numpy.histogram for the mass function, numpy.cov / corrcoef and the Hartlap factor (n - p - 2) / (n - 1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from emulator.core.fields import gaussian_field
from emulator.core.onepoint import covariance, density_pdf, hartlap_factor, mass_function, smooth_field

try:
    from stats_reference import L, N, bbks, full_grid
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.stats_reference import L, N, bbks, full_grid


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
