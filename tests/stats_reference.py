"""numpy references shared by the tests of the summary statistics (spectra, correlation, one-point).

A BBKS-shaped power spectrum, the full (not rfft) numpy FFT grid with its Nyquist-plane mask, a numpy binning of
full-grid modes and the ensemble mean and variance of the binned power of a ``gaussian_field`` realization. The
grid sums are numpy's, independent of the rfft half-space bookkeeping of :mod:`emulator.core.spectra`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

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
