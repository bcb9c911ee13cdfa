"""Tests for emulator.core.window: window kernels, window compensation and interlacing.

Truths used: the closed form sinc^p of the NGP/CIC/TSC kernels, a closed-form linear-theory prediction (with the
full aliasing sum, evaluated by Poisson summation) for a lattice displaced by a plane wave, and the Jing (2005)
shot-noise aliasing sums for a Poisson catalogue.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core.fourier import to_fourier, wavenumbers
from emulator.core.mesh import paint, to_overdensity
from emulator.core.window import compensate, paint_interlaced, window_kernel

try:
    from mesh_fixtures import WINDOWS, gen as _gen
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.mesh_fixtures import WINDOWS, gen as _gen

ORDER = {"ngp": 1, "cic": 2, "tsc": 3}


def test_window_kernel_values():
    n = 16
    for window, p in ORDER.items():
        w = window_kernel(n, window, dtype=torch.float64)
        assert w.shape == (n, n, n // 2 + 1)
        assert w[0, 0, 0].item() == 1.0
        assert math.isclose(w[n // 2, n // 2, n // 2].item(), (2 / math.pi) ** (3 * p), rel_tol=1e-14)
        x = 3 / n  # k = 3 k_f along y: sin(pi x) / (pi x)
        assert math.isclose(w[0, 3, 0].item(), (math.sin(math.pi * x) / (math.pi * x)) ** p, rel_tol=1e-14)
        assert torch.equal(w[0, 3, 0], w[0, n - 3, 0])


def _linear_response(phi: float, m_per_cell: int, p: int, c: float, lmax: int = 200_000) -> complex:
    """Painted response of a displaced 1D lattice to a displacement ``eps exp(i phi s)`` (linear order).

    Particles sit at ``s_j = (j + c) / M`` (mesh-cell units) and move by ``eps exp(i phi s_j)``. Poisson
    summation of ``delta_i = -(1/M) sum_j W'(i - s_j) psi_j`` gives
    ``delta_i = -i eps exp(i phi i) S`` with ``S = sum_l exp(-2 pi i l c) (phi + 2 pi M l) W(phi + 2 pi M l)``
    and ``W(w) = sinc(w / 2 pi)^p``; the continuum truth is ``S = phi``. For ``M = 1, c = 1/2`` and CIC,
    ``S / phi = sinc(phi / 2 pi)``, the finite difference of neighbouring particles.
    """
    ll = np.arange(-lmax, lmax + 1)
    om = phi + 2 * np.pi * m_per_cell * ll
    return complex(np.sum(np.exp(-2j * np.pi * ll * c) * om * np.sinc(om / (2 * np.pi)) ** p))


def _lattice_offset(window: str, m_per_cell: int) -> float:
    """Lattice offset ``c`` keeping particles off the window kinks (CIC: integers, TSC: half-integers).

    ``c`` in {0, 1/2} keeps the lattice symmetric about the mesh, so the images ``+-l`` cancel at leading order
    and aliasing falls as ``1/M^2`` (an asymmetric offset leaves a ``1/M`` imaginary part).
    """
    return 0.0 if window == "tsc" and m_per_cell % 2 else 0.5


def _displaced_lattice(n, box, m_per_cell, eps_cells, modes, offset):
    """Lattice (M per cell along x, 1 along y, z) displaced along x by ``sum eps sin(2 pi m s / n)``."""
    sx = (torch.arange(n * m_per_cell, dtype=torch.float64) + offset) / m_per_cell
    sy = torch.arange(n, dtype=torch.float64) + 0.5
    s = torch.stack(torch.meshgrid(sx, sy, sy, indexing="ij"), -1).reshape(-1, 3)
    shift = sum(eps * torch.sin(2 * math.pi * m / n * s[:, 0]) for m, eps in zip(modes, eps_cells))
    s[:, 0] = s[:, 0] + shift
    return s * box / n


@pytest.mark.parametrize("window", ["cic", "tsc"])  # NGP is discontinuous: no linear response of a lattice
def test_compensation_recovers_plane_wave_overdensity(window):
    n, box, m, eps = 16, 100.0, 2, 1e-4
    p = ORDER[window]
    theta = 2 * math.pi * m / n
    truth = -eps * theta / 2 * n**3  # rfft coefficient of delta = -d psi / ds = -eps theta cos(theta s)
    for m_per_cell in (1, 2, 8):
        c = _lattice_offset(window, m_per_cell)
        x = _displaced_lattice(n, box, m_per_cell, [eps], [m], c)
        delta_k = to_fourier(to_overdensity(paint(x, n, box, window=window)))
        raw = delta_k[m, 0, 0].item() / truth
        expected = _linear_response(theta, m_per_cell, p, c) / theta
        assert abs(raw - expected) < 1e-9, (m_per_cell, raw, expected)
        comp = compensate(delta_k, window)[m, 0, 0].item() / truth
        assert abs(comp - expected / np.sinc(m / n) ** p) < 1e-9
        if m_per_cell == 8:  # aliasing negligible: compensation recovers the analytic overdensity
            assert abs(raw - 1) > 0.04
            assert abs(comp - 1) < 6e-4, comp
            # Power of the mode, P = L^3 / n^6 |delta_k|^2, against the analytic one.
            assert abs(abs(comp) ** 2 - 1) < 1.2e-3


@pytest.mark.parametrize("window", ["cic", "tsc"])
def test_interlacing_cancels_plane_wave_alias(window):
    """A displacement mode at k' = 2 k_Nyq - k0 aliases onto k0; interlacing removes it, keeps the true mode."""
    n, box, m0, m_per_cell = 16, 100.0, 3, 4
    eps0, eps1 = 1e-4, 1e-4
    p = ORDER[window]
    c = _lattice_offset(window, m_per_cell)
    x = _displaced_lattice(n, box, m_per_cell, [eps0, eps1], [m0, n - m0], c)
    theta0, theta1 = 2 * math.pi * m0 / n, 2 * math.pi * (n - m0) / n
    truth = -eps0 * theta0 / 2 * n**3 * m_per_cell  # mass field: M particles per cell
    plain = compensate(to_fourier(paint(x, n, box, window=window)), window)[m0, 0, 0].item() / truth
    inter = paint_interlaced(x, n, box, window=window)[m0, 0, 0].item() / truth
    w0 = np.sinc(m0 / n) ** p
    # The true mode responds through its even mesh images (M even); the k' mode (its e^{-i theta1 s} part)
    # lands on mesh mode m0 through the odd images only, which interlacing cancels.
    own = _linear_response(theta0, m_per_cell, p, c) / (theta0 * w0)
    alias = -(eps1 / eps0) * _linear_response(-theta1, m_per_cell, p, c) / (theta0 * w0)
    assert abs(plain - (own + alias)) < 1e-9, (plain, own + alias)
    assert abs(inter - own) < 1e-9, (inter, own)
    err_plain, err_inter = abs(plain - 1), abs(inter - 1)
    assert err_plain > 0.01 and err_inter < 0.1 * err_plain, (err_plain, err_inter)


def _alias_sums(x: np.ndarray, p: int, lmax: int = 100_000):
    """Per-axis ``sum_l sinc^(2p)(x + l)`` and ``sum_l (-1)^l sinc^(2p)(x + l)`` for a 1D array ``x``."""
    ll = np.arange(-lmax, lmax + 1)
    s = np.sinc(x[:, None] + ll) ** (2 * p)
    return s.sum(-1), (s * (-1.0) ** ll).sum(-1)


@pytest.mark.parametrize("window", WINDOWS)
def test_poisson_shot_noise_aliasing(window):
    """Compensated shot noise of a Poisson catalogue matches the aliasing sums; interlacing is closer to 1/nbar."""
    n, box, npart = 32, 200.0, 50_000
    p = ORDER[window]
    x = torch.rand(npart, 3, generator=_gen(7), dtype=torch.float64) * box
    shot = box**3 / npart
    norm = box**3 / n**6 * (n**3 / npart) ** 2
    p_plain = (norm * compensate(to_fourier(paint(x, n, box, window=window)), window).abs() ** 2).numpy()
    p_inter = (norm * paint_interlaced(x, n, box, window=window).abs() ** 2).numpy()
    # k / (2 k_Nyq) per axis on the rfft grid (a box of 2 pi n has k_f = 1 / n).
    axes = [t.flatten().numpy() for t in wavenumbers(n, 2 * math.pi * n, dtype=torch.float64)]
    sums = [_alias_sums(t, p, lmax=100_000 if p == 1 else 1000) for t in axes]
    for t, (a, _) in zip(axes, sums):  # Jing (2005) closed forms of sum_l W^2
        s2 = np.sin(np.pi * t) ** 2
        jing = {1: np.ones_like(s2), 2: 1 - 2 / 3 * s2, 3: 1 - s2 + 2 / 15 * s2**2}[p]
        assert np.allclose(a, jing, rtol=0, atol=1e-5 if p == 1 else 1e-8)

    def grid(values):
        return values[0][:, None, None] * values[1][None, :, None] * values[2][None, None, :]

    w2 = grid([np.sinc(t) ** (2 * p) for t in axes])
    pred_plain = grid([a for a, _ in sums]) / w2
    pred_inter = 0.5 * (grid([a for a, _ in sums]) + grid([b for _, b in sums])) / w2
    ax, ay, az = axes
    knorm = 2 * np.sqrt(ax[:, None, None] ** 2 + ay[None, :, None] ** 2 + az[None, None, :] ** 2)  # k / k_Nyq
    sel = (knorm > 0.5) & (knorm < 1.0)
    sigma = 1 / math.sqrt(sel.sum())
    ratio_plain = (p_plain[sel] / (shot * pred_plain[sel])).mean()
    ratio_inter = (p_inter[sel] / (shot * pred_inter[sel])).mean()
    assert abs(ratio_plain - 1) < 5 * sigma and abs(ratio_inter - 1) < 5 * sigma, (ratio_plain, ratio_inter)
    # The two predictions differ measurably, and interlacing brings the shell-averaged shot noise closer to
    # its true value 1/nbar for k_Nyq/2 < k < k_Nyq.
    assert abs((pred_plain[sel] / pred_inter[sel]).mean() - 1) > 5 * sigma
    dev_plain = abs(p_plain[sel].mean() / shot - 1)
    dev_inter = abs(p_inter[sel].mean() / shot - 1)
    assert abs(pred_inter[sel].mean() - 1) < 0.5 * abs(pred_plain[sel].mean() - 1)
    assert dev_inter < dev_plain, (dev_plain, dev_inter)
