"""All summary statistics through the re-export module emulator.core.stats: input checks and CUDA against CPU.

Every statistic rejects bad input with a one-line ValueError naming the argument; on a CUDA device every statistic
(and the gradient of P(k)) agrees with the CPU result. The statistics themselves are tested against independent
truths in test_spectra.py, test_correlation.py, test_onepoint.py and test_bispectrum.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emulator.core.fields import gaussian_field
from emulator.core.stats import (
    correlation_function,
    covariance,
    cross_correlation,
    density_pdf,
    hartlap_factor,
    mass_function,
    power_spectrum,
    power_spectrum_k,
)

try:
    from stats_reference import L, N, bbks
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.stats_reference import L, N, bbks


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
