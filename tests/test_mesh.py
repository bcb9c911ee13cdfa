"""Tests for emulator.core.mesh: painting particles to a mesh and reading a mesh out at particle positions.

Truths used: mass conservation, the partition of unity of B-spline windows, hand-computed NGP/CIC/TSC weights of a
particle on a mesh point, the exact adjointness of paint and readout, Taylor expansion of the interpolation error,
finite differences (gradcheck) for the gradients, and the CPU result for CUDA. Window compensation and
interlacing (emulator.core.window) are tested in test_window.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from emulator.core.mesh import paint, readout, to_overdensity, wrap_positions
from emulator.core.window import compensate, paint_interlaced, window_kernel

try:
    from mesh_fixtures import WINDOWS, gen as _gen
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.mesh_fixtures import WINDOWS, gen as _gen


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


def test_painting_in_whole_batches_into_out_gives_the_bits_of_one_call():
    gen = torch.Generator().manual_seed(5)
    pos = torch.rand(1000, 3, generator=gen) * 50.0
    mass = torch.randn(1000, generator=gen)
    whole = paint(pos, 16, 50.0, mass=mass, chunk_size=128)
    out = torch.zeros(16**3)
    for first in range(0, 1000, 256):  # pieces of two whole batches
        paint(pos[first : first + 256], 16, 50.0, mass=mass[first : first + 256], chunk_size=128, out=out)
    assert torch.equal(out.view(16, 16, 16), whole)
    again = paint(pos, 16, 50.0, mass=mass, chunk_size=128, out=torch.zeros(16, 16, 16))
    assert torch.equal(again, whole)  # an (n, n, n) out works too
    with pytest.raises(ValueError, match="out must be a contiguous mesh of 16"):
        paint(pos, 16, 50.0, out=torch.zeros(15**3))
    with pytest.raises(ValueError, match="out must be"):
        paint(pos, 16, 50.0, out=torch.zeros(16**3, dtype=torch.float64))


def test_wrap_positions_into_the_box_in_place_or_not():
    """Every result lies in [0, L) and differs from the input by a whole number of boxes; ``out=x`` gives the same
    numbers without a temporary, including a tiny negative value that rounds up to L (mapped to 0)."""
    box = 100.0
    x = torch.tensor([[-1e-9, 0.0, 99.99], [100.0, 250.5, -0.25], [-300.0, 37.5, 1e-6]], dtype=torch.float32)
    ref = wrap_positions(x, box)
    assert float(ref.min()) >= 0.0 and float(ref.max()) < box
    shifts = ((x.double() - ref.double()) / box)
    assert torch.allclose(shifts, shifts.round(), atol=1e-6)
    assert float(ref[0, 0]) == 0.0  # -1e-9 mod 100 rounds to 100 in float32: wrapped to 0
    y = x.clone()
    assert wrap_positions(y, box, out=y) is y
    assert torch.equal(y, ref)
