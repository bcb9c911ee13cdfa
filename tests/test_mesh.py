"""Tests for emulator.core.mesh and emulator.core.window: painting, readout, window compensation, interlacing.

Truths used: mass conservation, the partition of unity of B-spline windows, the exact adjointness of paint and
readout, Taylor expansion of the interpolation error, a closed-form linear-theory prediction (with the full
aliasing sum, evaluated by Poisson summation) for a lattice displaced by a plane wave, and the Jing (2005)
shot-noise aliasing sums for a Poisson catalogue.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core.fourier import to_fourier, wavenumbers
from emulator.core.mesh import paint, readout, to_overdensity
from emulator.core.window import compensate, paint_interlaced, window_kernel

WINDOWS = ["ngp", "cic", "tsc"]
ORDER = {"ngp": 1, "cic": 2, "tsc": 3}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _awkward_positions(box: float, dtype=torch.float64) -> torch.Tensor:
    """Random positions over several box periods plus edge cases (exact edges, tiny negatives)."""
    g = _gen(1)
    x = (torch.rand(500, 3, generator=g, dtype=torch.float64) * 4.0 - 1.5) * box
    edge = torch.tensor(
        [[0.0, 0.0, 0.0], [box, box, box], [-box, 2 * box, -3 * box], [-1e-9, box - 1e-9, 1e-9],
         [-1e-300, box * (1 - 1e-16), 0.5 * box], [-0.5 * box, 1.5 * box, -2.5 * box]],
        dtype=torch.float64,
    )
    return torch.cat([x, edge]).to(dtype)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_mass_conservation(window, dtype, rtol):
    box, n = 100.0, 16
    x = _awkward_positions(box, dtype)
    mass = torch.rand(x.shape[0], generator=_gen(2), dtype=torch.float64).to(dtype) + 0.5
    mesh = paint(x, n, box, mass=mass, window=window)
    assert mesh.shape == (n, n, n) and mesh.dtype == dtype
    assert torch.isfinite(mesh).all() and (mesh >= 0).all()
    total = mass.double().sum().item()
    assert abs(mesh.double().sum().item() - total) <= rtol * total
    unit = paint(x, n, box, window=window, shift=0.5)
    assert abs(unit.double().sum().item() - x.shape[0]) <= rtol * x.shape[0]


@pytest.mark.parametrize("window", WINDOWS)
def test_uniform_lattice_gives_uniform_mesh(window):
    """Partition of unity: one particle per cell at any common offset paints exactly 1 everywhere."""
    box, n = 50.0, 8
    ax = torch.arange(n, dtype=torch.float64)
    q = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    for offset in (0.0, 0.137, 0.5, 0.81):
        x = (q + torch.tensor([offset, 0.3, 0.9], dtype=torch.float64)) * box / n
        mesh = paint(x, n, box, window=window)
        assert torch.allclose(mesh, torch.ones_like(mesh), rtol=0, atol=1e-12)
        assert to_overdensity(mesh).abs().max() < 1e-12


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_particle_on_mesh_point(shift):
    box, n = 100.0, 16  # cell = 6.25, exactly representable
    cell = box / n
    ijk = (3, 15, 0)
    x = torch.tensor([[(i + shift) * cell for i in ijk]], dtype=torch.float64)
    for window in ("ngp", "cic"):
        mesh = paint(x, n, box, mass=torch.tensor([2.5], dtype=torch.float64), window=window, shift=shift)
        assert mesh[ijk].item() == 2.5 and mesh.sum().item() == 2.5
    # TSC: 1/8, 3/4, 1/8 along each axis, centred on the mesh point.
    mesh = paint(x, n, box, window="tsc", shift=shift)
    w1 = torch.tensor([0.125, 0.75, 0.125], dtype=torch.float64)
    expect = w1[:, None, None] * w1[None, :, None] * w1[None, None, :]
    idx = [torch.tensor([(i - 1) % n, i, (i + 1) % n]) for i in ijk]
    block = mesh[idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]]
    assert torch.allclose(block, expect, rtol=0, atol=1e-15)
    assert abs(mesh.sum().item() - 1.0) < 1e-15
    # Same particle, shifted by whole boxes, lands in the same place.
    moved = paint(x + torch.tensor([[-box, 3 * box, box]], dtype=torch.float64), n, box, window="tsc", shift=shift)
    assert torch.allclose(moved, mesh, rtol=0, atol=1e-13)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("shift", [0.0, 0.5, 0.3])
def test_paint_readout_adjoint(window, shift):
    box, n = 80.0, 12
    x = _awkward_positions(box)
    m = torch.randn(x.shape[0], generator=_gen(3), dtype=torch.float64)
    field = torch.randn(2, n, n, n, generator=_gen(4), dtype=torch.float64)
    lhs = (paint(x, n, box, mass=m, window=window, shift=shift) * field[0]).sum()
    rhs = (m * readout(field[0], x, box, window=window, shift=shift)).sum()
    assert abs(lhs - rhs).item() <= 1e-10 * max(1.0, abs(lhs).item())
    multi = readout(field, x, box, window=window, shift=shift)
    assert multi.shape == (x.shape[0], 2)
    assert torch.allclose(multi[:, 0], readout(field[0], x, box, window=window, shift=shift), atol=1e-14)
    lhs1 = (paint(x, n, box, mass=m, window=window, shift=shift) * field[1]).sum()
    assert abs(lhs1 - (m * multi[:, 1]).sum()).item() <= 1e-10 * max(1.0, abs(lhs1).item())


def test_chunking_matches_single_pass():
    box, n = 60.0, 10
    x = _awkward_positions(box)
    m = torch.rand(x.shape[0], generator=_gen(5), dtype=torch.float64)
    for window in WINDOWS:
        full = paint(x, n, box, m, window)
        chunked = paint(x, n, box, m, window, chunk_size=37)
        assert torch.allclose(full, chunked, rtol=0, atol=1e-13)
        assert torch.allclose(readout(full, x, box, window), readout(full, x, box, window, chunk_size=37),
                              rtol=0, atol=1e-13)


def _plane_wave_readout_errors(window: str, scale: int, n: int = 32, box: float = 64.0):
    """Readout error of ``cos(k.x + phi)`` sampled on the mesh, and its leading-order Taylor prediction."""
    kf = 2 * math.pi / box
    kvec = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64) * kf * scale
    phi = 0.7
    kx, ky, kz = kvec.tolist()
    ax = torch.arange(n, dtype=torch.float64) * box / n
    gx, gy, gz = torch.meshgrid(ax, ax, ax, indexing="ij")
    mesh = torch.cos(kx * gx + ky * gy + kz * gz + phi)
    x = torch.rand(4000, 3, generator=_gen(6), dtype=torch.float64) * box
    phase = x @ kvec + phi
    truth = torch.cos(phase)
    err = readout(mesh, x, box, window=window) - truth
    cell = box / n
    u = x / cell
    if window == "ngp":  # f(x_nearest) - f(x) ~ -grad f . (x - x_nearest)
        d = u - torch.floor(u + 0.5)
        pred = torch.sin(phase) * (d * cell * kvec).sum(1)
    else:  # f_read - f ~ 1/2 sum_i d_i^2 f * M2_i, M2 = sum_j W(t_j) t_j^2
        d = u - torch.floor(u)
        m2 = d * (1 - d) if window == "cic" else torch.full_like(d, 0.25)
        pred = -0.5 * truth * (m2 * (kvec * cell) ** 2).sum(1)
    return err, pred


@pytest.mark.parametrize("window", WINDOWS)
def test_readout_of_smooth_field(window):
    """NGP error is first order in k dx, CIC and TSC second order, with the Taylor-predicted coefficient."""
    err1, pred1 = _plane_wave_readout_errors(window, 1)
    err2, pred2 = _plane_wave_readout_errors(window, 2)
    rms1, rms2 = err1.pow(2).mean().sqrt().item(), err2.pow(2).mean().sqrt().item()
    slope = math.log2(rms2 / rms1)
    expected_slope = 1.0 if window == "ngp" else 2.0
    assert abs(slope - expected_slope) < 0.1, (window, rms1, rms2, slope)
    # The leading-order Taylor term explains the error: residual a small fraction of it.
    resid = (err1 - pred1).pow(2).mean().sqrt().item()
    assert resid < 0.15 * rms1, (window, resid, rms1)
    k_dx = math.sqrt(6.0) * 2 * math.pi / 32
    assert rms1 < (0.5 * k_dx if window == "ngp" else 0.25 * k_dx**2)


def test_ngp_error_exceeds_cic():
    err_ngp, _ = _plane_wave_readout_errors("ngp", 1)
    err_cic, _ = _plane_wave_readout_errors("cic", 1)
    assert err_cic.abs().max() < 0.3 * err_ngp.abs().max()


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


@pytest.mark.parametrize("window", ["cic", "tsc"])
def test_gradcheck_paint(window):
    box, n = 10.0, 5
    g = _gen(8)
    cells = torch.tensor([[0, 0, 0], [1, 3, 4], [2, 2, 1], [4, 1, 3]], dtype=torch.float64)
    frac = 0.25 + 0.5 * torch.rand(4, 3, generator=g, dtype=torch.float64)  # away from kinks at d = 0, 1/2
    x = ((cells + frac) * box / n).requires_grad_()
    m = (torch.rand(4, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: paint(a, n, box, b, window), (x, m), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("window", ["cic", "tsc"])
def test_gradcheck_readout(window):
    box, n = 10.0, 4
    g = _gen(9)
    x = ((torch.rand(5, 3, generator=g, dtype=torch.float64) * 0.5 + 0.25
          + torch.randint(0, n, (5, 3), generator=g)) * box / n).requires_grad_()
    field = torch.randn(2, n, n, n, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, f: readout(f, a, box, window), (x, field), eps=1e-6, atol=1e-7)


def test_ngp_gradient_is_zero_and_mass_gradient():
    x = torch.tensor([[1.3, 2.2, 7.7]], dtype=torch.float64, requires_grad=True)
    m = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    paint(x, 8, 10.0, m, "ngp").pow(2).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x)) and m.grad.item() == pytest.approx(4.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    box, n = 100.0, 16
    x = _awkward_positions(box)
    m = torch.rand(x.shape[0], generator=_gen(10), dtype=torch.float64)
    for window in WINDOWS:
        cpu = paint(x, n, box, m, window)
        gpu = paint(x.cuda(), n, box, m.cuda(), window)
        assert torch.allclose(cpu, gpu.cpu(), atol=1e-12)
        assert torch.allclose(readout(cpu, x, box, window), readout(gpu, x.cuda(), box, window).cpu(), atol=1e-12)
        fk = paint_interlaced(x.float().cuda(), n, box, m.float().cuda(), window)
        assert torch.allclose(fk.cpu(), paint_interlaced(x.float(), n, box, m.float(), window), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda x: paint(x, 8, -1.0), "box_size"),
        (lambda x: paint(x, 8, float("nan")), "box_size"),
        (lambda x: paint(x, 0, 10.0), "nmesh"),
        (lambda x: paint(x, 8.5, 10.0), "nmesh"),
        (lambda x: paint(x, 8, 10.0, window="pcs"), "window"),
        (lambda x: paint(x[:, :2], 8, 10.0), "positions"),
        (lambda x: paint(x.long(), 8, 10.0), "positions"),
        (lambda x: paint(torch.full_like(x, float("nan")), 8, 10.0), "positions"),
        (lambda x: paint(x, 8, 10.0, mass=torch.ones(3, dtype=x.dtype)), "mass"),
        (lambda x: paint(x, 8, 10.0, mass=torch.full((x.shape[0],), float("inf"), dtype=x.dtype)), "mass"),
        (lambda x: paint(x, 8, 10.0, shift=float("nan")), "shift"),
        (lambda x: paint(x, 8, 10.0, chunk_size=0), "chunk_size"),
        (lambda x: readout(torch.zeros(4, 4, 5, dtype=x.dtype), x, 10.0), "mesh"),
        (lambda x: readout(torch.zeros(4, 4, dtype=x.dtype), x, 10.0), "mesh"),
        (lambda x: readout(torch.zeros(4, 4, 4, dtype=x.dtype), x, 10.0, window="x"), "window"),
        (lambda x: window_kernel(7, "cic"), "nmesh"),
        (lambda x: window_kernel(8, "lanczos"), "window"),
        (lambda x: compensate(torch.zeros(8, 8, 5), "cic"), "field_k"),
        (lambda x: compensate(torch.zeros(8, 8, 4, dtype=torch.complex64), "cic"), "field_k"),
        (lambda x: paint_interlaced(x, 9, 10.0), "nmesh"),
        (lambda x: to_overdensity(torch.zeros(4, 4, 4)), "mesh"),
    ],
)
def test_bad_inputs(call, name):
    x = torch.rand(6, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=name) as info:
        call(x)
    assert "\n" not in str(info.value)
