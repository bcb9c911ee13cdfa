"""Two-point correlation function xi(r) (emulator.core.correlation) against independent truths.

Truths used: a direct pair sum over all lattice separations of a small mesh, the discrete ensemble expectation
V^-1 sum_k P(k) e^{ik.s} with its Gaussian-field variance, and the continuum Hankel transform by scipy quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import integrate

from emulator.core.correlation import correlation_function
from emulator.core.fields import gaussian_field

try:
    from stats_reference import L, N, bbks, full_grid
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.stats_reference import L, N, bbks, full_grid


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
