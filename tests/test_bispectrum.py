"""FFT shell bispectrum against a brute-force triangle sum, Gaussian null, local non-Gaussianity and tree-level PT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core.bispectrum import bispectrum, bispectrum_equilateral, bispectrum_triangles
from emulator.core.fields import gaussian_field
from emulator.core.fourier import gradient_kernels, k_squared, to_fourier, to_real

N = 32
L = 400.0
KF = 2 * math.pi / L


def bbks(k, amp=2.0e5, gamma=0.2):
    """BBKS-shaped P(k) = A k T(k/Gamma)^2 in (Mpc/h)^3, numpy or torch."""
    lib = torch if torch.is_tensor(k) else np
    q = (k.clamp_min(1e-12) if torch.is_tensor(k) else np.maximum(k, 1e-12)) / gamma
    poly = 1 + 3.89 * q + (16.1 * q) ** 2 + (5.46 * q) ** 3 + (6.71 * q) ** 4
    t = lib.log(1 + 2.34 * q) / (2.34 * q) * poly**-0.25
    return amp * k * t**2


def full_grid(n: int, box: float):
    """Full numpy FFT grid: wavevector components (integers, units of k_f) and |k| in h/Mpc."""
    m = np.fft.fftfreq(n, 1.0 / n)
    ix, iy, iz = np.meshgrid(m, m, m, indexing="ij")
    return np.stack([ix, iy, iz]), np.sqrt(ix**2 + iy**2 + iz**2) * 2 * np.pi / box


def triangles(kk, n, k1, k2, k3, dk):
    """Brute-force list of the ordered closed triangles (full-grid indices) with k_i in shell i."""

    def shell(k):
        m = (kk >= k - dk / 2) & (kk < k + dk / 2)
        m.flat[0] = False
        return np.argwhere(m)

    s1, s2 = shell(k1), shell(k2)
    i3 = (-(s1[:, None, :] + s2[None, :, :])) % n
    k3m = kk[i3[..., 0], i3[..., 1], i3[..., 2]]
    ok = (k3m >= k3 - dk / 2) & (k3m < k3 + dk / 2)
    a = np.broadcast_to(s1[:, None, :], i3.shape)[ok]
    b = np.broadcast_to(s2[None, :, :], i3.shape)[ok]
    return a, b, i3[ok], shell


def test_fft_estimator_equals_brute_force_triangle_sum():
    n, box = 16, 200.0
    kf = 2 * math.pi / box
    g = gaussian_field(3, n, box, bbks, dtype=torch.float64)
    f = g + 0.3 * (g**2 - g.pow(2).mean()) / g.std()
    fk = np.fft.fftn(f.numpy())  # full complex grid, independent of the rfft half space
    _, kk = full_grid(n, box)
    # shell edges at non-lattice radii; the last includes an isosceles and a k3 = k1 + k2 (folded) case
    for a, b, c, dk in [(3, 3, 3, 1), (2, 3, 4, 1), (2, 4, 5, 1.5), (1, 2, 2, 1), (2, 2, 4, 1)]:
        bk, qk = bispectrum(f, box, a * kf, b * kf, c * kf, dk * kf)
        t1, t2, t3, shell = triangles(kk, n, a * kf, b * kf, c * kf, dk * kf)
        prod = fk[tuple(t1.T)] * fk[tuple(t2.T)] * fk[tuple(t3.T)]
        b_ref = prod.mean().real * box**6 / n**9
        p_ref = [np.mean(np.abs(fk[tuple(shell(x * kf).T)]) ** 2) * box**3 / n**6 for x in (a, b, c)]
        q_ref = b_ref / (p_ref[0] * p_ref[1] + p_ref[1] * p_ref[2] + p_ref[2] * p_ref[0])
        assert abs(prod.mean().imag) < 1e-9 * abs(prod.mean())
        assert math.isclose(bk.item(), b_ref, rel_tol=1e-10)
        assert math.isclose(qk.item(), q_ref, rel_tol=1e-10)


def test_symmetries_batching_and_convenience_wrappers():
    f = gaussian_field(5, 16, 200.0, bbks, dtype=torch.float64)
    f = f + 2.0 * f**2
    kf = 2 * math.pi / 200.0
    ks = torch.tensor([2.0, 3.0, 4.0]) * kf
    b, q = bispectrum(f, 200.0, ks, ks, ks, kf)
    assert b.shape == (3,)
    # translation, axis permutation and reflection leave B unchanged (isotropic shells)
    for g in (torch.roll(f, (3, -2, 5), dims=(0, 1, 2)), f.permute(2, 0, 1), torch.flip(f, dims=(1,))):
        torch.testing.assert_close(bispectrum(g, 200.0, ks, ks, ks, kf)[0], b, rtol=1e-9, atol=0)
    be, qe = bispectrum_equilateral(f, 200.0, ks, kf)
    torch.testing.assert_close(be, b)
    # theta is the angle between k1 and k2: theta = 2 pi / 3 with k1 = k2 is equilateral
    k3, bt, qt = bispectrum_triangles(f, 200.0, 3 * kf, 3 * kf, [2 * math.pi / 3, math.pi / 2, 0.0], kf)
    np.testing.assert_allclose(k3.numpy(), [3 * kf, 3 * math.sqrt(2) * kf, 6 * kf], rtol=1e-12)
    torch.testing.assert_close(bt[0], b[1])
    torch.testing.assert_close(bt[1], bispectrum(f, 200.0, 3 * kf, 3 * kf, 3 * math.sqrt(2) * kf, kf)[0])
    # a batch gives the per-field results
    bb, qb = bispectrum(torch.stack([f, -f, 2 * f]), 200.0, ks, ks, ks, kf)
    assert bb.shape == (3, 3)
    torch.testing.assert_close(bb, torch.stack([b, -b, 8 * b]))
    torch.testing.assert_close(qb, torch.stack([q, -q, q / 2]))
    # float32 agrees with float64
    b32, _ = bispectrum(f.float(), 200.0, ks, ks, ks, kf)
    torch.testing.assert_close(b32.double(), b, rtol=2e-5, atol=0)


def test_bispectrum_is_differentiable():
    f = torch.randn(8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    kf = 2 * math.pi / 50.0
    assert torch.autograd.gradcheck(lambda x: bispectrum(x, 50.0, 2 * kf, 2 * kf, 2 * kf, kf)[0], (f,), fast_mode=True)


# Shell centres on half-integer multiples of k_f with dk = 2 k_f: edges at odd half-integers never touch a
# lattice |k|. All k_i + dk/2 < 2/3 k_Nyq = 10.7 k_f, so no aliased triangles close.
CONFIGS = [(4.5, 4.5, 4.5), (3.5, 5.5, 7.5), (5.5, 5.5, 5.5), (4.5, 6.5, 8.5), (6.5, 6.5, 3.5)]
DK = 2.0


def expected_tree(weight, configs=CONFIGS, dk=DK, pk=bbks):
    """Mean over the shell triangles of weight(k1, k2, k3 vectors, P1, P2, P3), and sum of shell-mean P products."""
    vec, kk = full_grid(N, L)
    p = pk(kk)
    p.flat[0] = 0.0
    out = []
    for a, b, c in configs:
        t1, t2, t3, shell = triangles(kk, N, a * KF, b * KF, c * KF, dk * KF)
        v = [vec[:, t[:, 0], t[:, 1], t[:, 2]].T for t in (t1, t2, t3)]
        pp = [p[tuple(t.T)] for t in (t1, t2, t3)]
        pbar = [p[tuple(shell(x * KF).T)].mean() for x in (a, b, c)]
        out.append((weight(*v, *pp).mean(), pbar[0] * pbar[1] + pbar[1] * pbar[2] + pbar[2] * pbar[0]))
    return np.array(out)


def measure(make_field, seeds, configs=CONFIGS, dk=DK):
    """B and Q for the configurations (units of k_f) on make_field(seed) (a mesh or a batch), one row per seed."""
    ks = torch.tensor(configs, dtype=torch.float64) * KF
    rows = [bispectrum(make_field(s), L, ks[:, 0], ks[:, 1], ks[:, 2], dk * KF) for s in seeds]
    return np.array([r[0].numpy() for r in rows]), np.array([r[1].numpy() for r in rows])


def test_gaussian_field_bispectrum_consistent_with_zero():
    b, _ = measure(lambda s: gaussian_field(s, N, L, bbks, dtype=torch.float64), range(12))
    t = b.mean(0) / (b.std(0, ddof=1) / math.sqrt(len(b)))
    assert np.abs(t).max() < 4.0  # measured max |t| = 2.0 (Student t, 11 dof)


def test_local_non_gaussianity_tree_level():
    """delta = delta_G + f (delta_G^2 - <delta_G^2>): <B> = 2 f (P1 P2 + P2 P3 + P3 P1) + O(f^3), Q -> 2 f.

    Each seed is used with +delta_G and -delta_G (paired fields): the average cancels the terms odd in delta_G,
    i.e. the Gaussian noise <delta_G^3> and the O(f^2) noise, leaving the O(f) tree term plus the O(f^3) loop.
    """
    f_nl = 0.1

    def paired(seed):
        g = gaussian_field(10 + seed, N, L, bbks, dtype=torch.float64)
        x = f_nl * (g**2 - g.pow(2).mean())
        return torch.stack([g + x, -g + x])

    b, q = measure(paired, range(16))  # (seed, sign, config)
    b, q = b.mean(axis=1), q.mean(axis=1)
    exp = expected_tree(lambda v1, v2, v3, p1, p2, p3: p1 * p2 + p2 * p3 + p3 * p1)
    b_exp = 2 * f_nl * exp[:, 0]
    q_exp = 2 * f_nl * exp[:, 0] / exp[:, 1]
    assert np.allclose(q_exp, 2 * f_nl, rtol=0.05)  # shell averaging moves Q by 2-4% from 2f
    sem = b.std(0, ddof=1) / math.sqrt(len(b))
    assert np.abs((b.mean(0) - b_exp) / sem).max() < 4.0  # measured max |t| = 2.8, rel. sem 2-7%
    assert np.abs(q.mean(0) / q_exp - 1).max() < 0.25  # 4 x the largest relative sem
    assert abs(np.mean(q.mean(0) / q_exp) - 1) < 0.08  # configuration average (about 4 sem), measured -4.9%


def second_order_density(delta1: torch.Tensor, box: float) -> torch.Tensor:
    """delta2 = 17/21 delta^2 + grad(delta).grad(nabla^-2 delta) + 2/7 s_ij s_ij (the F2 kernel in real space).

    With phi_ij = d_i d_j nabla^-2 delta: s_ij = phi_ij - delta_ij delta / 3 and s_ij s_ij = sum phi_ij^2 - delta^2/3.
    """
    n = delta1.shape[0]
    dk = to_fourier(delta1)
    k2 = k_squared(n, box, dtype=delta1.dtype)
    k2[0, 0, 0] = 1.0
    kv = gradient_kernels(n, box, dtype=delta1.dtype)
    shift = sum(to_real(1j * kv[i] * dk, n) * to_real(-1j * kv[i] / k2 * dk, n) for i in range(3))
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]
    phi2 = sum((1.0 if i == j else 2.0) * to_real(kv[i] * kv[j] / k2 * dk, n) ** 2 for i, j in pairs)
    return 17.0 / 21.0 * delta1**2 + shift + 2.0 / 7.0 * (phi2 - delta1**2 / 3.0)


def test_second_order_pt_reduced_bispectrum():
    """Tree-level SPT in EdS: B = 2 F2(k1,k2) P1 P2 + cyc., so equilateral Q = 4/7.

    The input spectrum is cut at k_Nyq / 2 so the quadratic field is free of aliasing; for each seed the paired
    fields +-delta1 + delta2 cancel the terms odd in delta1 (the Gaussian noise), and the small amplitude
    (sigma ~ 0.02) makes the one-loop terms negligible.
    """

    def pk(k):
        return bbks(k) * (k < 0.5 * math.pi * N / L)

    configs = [(4.5, 4.5, 4.5), (5.5, 5.5, 5.5), (6.5, 6.5, 6.5), (3.5, 5.5, 7.5)]
    def paired(seed):
        d1 = 0.05 * gaussian_field(40 + seed, N, L, pk, dtype=torch.float64)
        d2 = second_order_density(d1, L)
        return torch.stack([d1 + d2, -d1 + d2])

    _, q = measure(paired, range(16), configs)  # (seed, sign, config)
    q = q.mean(axis=1)

    def f2(va, vb):
        ka, kb = np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1)
        mu = np.sum(va * vb, axis=1) / (ka * kb)
        return 17 / 21 + 0.5 * mu * (ka / kb + kb / ka) + 2 / 7 * (mu**2 - 1 / 3)

    def tree(v1, v2, v3, p1, p2, p3):
        return 2 * (f2(v1, v2) * p1 * p2 + f2(v2, v3) * p2 * p3 + f2(v3, v1) * p3 * p1)

    exp = expected_tree(tree, configs, DK, pk)
    q_exp = exp[:, 0] / exp[:, 1]
    # the shell-averaged tree level tends to 4/7 for thin shells (measured 0.5792 at k = 7 k_f, dk = k_f) ...
    thin = expected_tree(tree, [(7.0, 7.0, 7.0)], 1.0, pk)
    assert abs(thin[0, 0] / thin[0, 1] / (4 / 7) - 1) < 0.02
    # ... and is 5-10% above it for these wide shells (triangle shapes near-equilateral, F2 convex)
    assert np.all((q_exp[:3] > 4 / 7) & (q_exp[:3] < 1.12 * 4 / 7))
    sem = q.std(0, ddof=1) / math.sqrt(len(q))
    assert np.abs((q.mean(0) - q_exp) / sem).max() < 4.0
    assert np.abs(q.mean(0) / q_exp - 1).max() < 0.2  # relative sem 4-8%


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda f: bispectrum(f[:, :, :8], 100.0, 0.2, 0.2, 0.2, 0.07), "field"),
        (lambda f: bispectrum(f, 0.0, 0.2, 0.2, 0.2, 0.07), "box_size"),
        (lambda f: bispectrum(f, 100.0, 0.2, 0.2, 0.2, -0.1), "dk"),
        (lambda f: bispectrum(f, 100.0, -0.2, 0.2, 0.2, 0.07), "k1"),
        (lambda f: bispectrum(f, 100.0, 0.2, 0.2, 5.0, 0.07), "k3"),
        (lambda f: bispectrum(f, 100.0, 0.2, 0.2, 0.6, 0.07), "triangles"),
        (lambda f: bispectrum(f, 100.0, 0.2, 0.2, 0.2, 0.001), "shell"),
        (lambda f: bispectrum_triangles(f, 100.0, 0.2, 0.2, [4.0], 0.07), "thetas"),
    ],
)
def test_bad_inputs_raise_one_line_value_error(call, match):
    f = torch.randn(16, 16, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=match) as err:
        call(f)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    g = gaussian_field(3, N, L, bbks, dtype=torch.float32)
    f = g + 5.0 * g**2
    ks = torch.tensor(CONFIGS, dtype=torch.float64) * KF
    b_cpu, q_cpu = bispectrum(f, L, ks[:, 0], ks[:, 1], ks[:, 2], DK * KF)
    b_gpu, q_gpu = bispectrum(f.cuda(), L, ks[:, 0], ks[:, 1], ks[:, 2], DK * KF)
    assert b_gpu.is_cuda
    torch.testing.assert_close(b_gpu.cpu(), b_cpu, rtol=1e-3, atol=0)
    torch.testing.assert_close(q_gpu.cpu(), q_cpu, rtol=1e-3, atol=0)
