"""Tests for the style-conditioned U-Net (emulator.model): sizes, locality, equivariance, tiling, modulation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emulator.model import ModulatedConv3d, StyledUNet, periodic_crop, predict_box, tile_origins


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(depth=1, blocks=1, base=4, dtype=torch.float32, **kw) -> StyledUNet:
    torch.manual_seed(1234 + 10 * depth + blocks)
    return StyledUNet(base_channels=base, depth=depth, blocks=blocks, **kw).to(dtype)


def _inputs(model, c, batch=1, seed=0, dtype=torch.float32):
    n = c + 2 * model.halo
    x = torch.randn((batch, model.in_channels, n, n, n), generator=_gen(seed), dtype=dtype)
    s = torch.rand((batch, model.style_dim), generator=_gen(seed + 1), dtype=dtype) * 2 - 1
    return x, s


# Halo derived by hand: each residual block loses 2 cells per side at its level; levels are walked top-down
# through the decoder (up-sampling halves), then bottom-up through the encoder (down-sampling doubles).
# depth 0, b=1: 2.  depth 1, b=1: c -> c+4 -> c/2+2 -> (bottom) c/2+6 -> c+12 -> c+16: 8.
# depth 1, b=2: 16.  depth 2, b=1: c/4+3 -> c/4+7 -> c/2+14 -> c/2+18 -> c+36 -> c+40: 20.
# depth 3, b=1 (c mult. of 8; level-0 up-sample cropped 2 extra): c+8 -> c/2+4 -> c/2+8 -> c/4+4 -> c/4+8
#   -> c/8+4 -> c/8+8 -> c/4+20 -> c/2+44 -> c+92: 46.
@pytest.mark.parametrize(
    "depth, blocks, halo, base",
    [(0, 1, 2, 4), (1, 1, 8, 4), (1, 2, 16, 4), (2, 1, 20, 4), (3, 1, 46, 2)],
)
def test_halo_and_output_shape(depth, blocks, halo, base):
    model = _model(depth, blocks, base=base)
    assert model.halo == halo and model.size_multiple == 2**depth
    sizes = [model.size_multiple] if depth == 3 else sorted({model.size_multiple, 2 * model.size_multiple, 8})
    with torch.no_grad():
        for c in sizes:
            batch = 2 if c == model.size_multiple and depth < 3 else 1
            x, s = _inputs(model, c, batch=batch)
            assert model.input_size(c) == c + 2 * halo and model.output_size(c + 2 * halo) == c
            assert model(x, s).shape == (batch, 6, c, c, c)
    n = model.input_size(model.size_multiple)
    m = model.size_multiple
    bad = [2 * halo, 2 * halo - 1] + ([n + 1] if m > 1 else []) + ([n + 2] if m > 2 else [])
    for nb in bad:
        with pytest.raises(ValueError):
            model(torch.zeros(1, 3, nb, nb, nb), torch.zeros(1, 6))


@pytest.mark.parametrize("depth", [1, 2])
def test_locality_exact_dependence_window(depth):
    """Output cell o depends exactly on inputs [m*floor(o/m), m*floor(o/m) + m + 2h): zero change outside,
    non-zero change at the window's extreme cells (so the halo is tight)."""
    model = _model(depth, dtype=torch.float64)
    m, h = model.size_multiple, model.halo
    c = 3 * m
    x, s = _inputs(model, c, dtype=torch.float64)
    n = x.shape[-1]
    # Depth 1: every plane (axes cycled). Depth 2: the planes at the window edges.
    if depth == 1:
        cases = [(p, 2 + p % 3) for p in range(n)]
    else:
        planes = [0, m - 1, m, 2 * h + m - 1, 2 * h + m, n - 1]
        cases = [(p, 2 + i % 3) for i, p in enumerate(planes)]
    with torch.no_grad():
        y0 = model(x, s)
        for p, axis in cases:
            x1 = x.clone()
            x1.select(axis, p).add_(1.0)
            dims = tuple(d for d in range(5) if d != axis)
            change = (model(x1, s) - y0).abs().amax(dim=dims)
            window = [m * (o // m) <= p < m * (o // m) + m + 2 * h for o in range(c)]
            for o in range(c):
                if window[o]:
                    assert change[o] > 1e-12, (p, axis, o)
                else:
                    assert change[o] == 0.0, (p, axis, o)


def test_predict_box_equals_explicit_circular_padding():
    """Whole-box inference == the model on a box padded with torch's own circular padding."""
    model = _model(1)
    n = 16
    field = torch.randn((2, 3, n, n, n), generator=_gen(3))
    style = torch.rand((2, 6), generator=_gen(4))
    h = model.halo
    with torch.no_grad():
        expected = model(F.pad(field, (h,) * 6, mode="circular"), style)
    got = predict_box(model, field, style)
    assert got.shape == (2, 6, n, n, n)
    assert float((got - expected).abs().max()) < 1e-6 * float(expected.abs().max())


def test_periodic_crop_wraps():
    n = 4
    field = torch.arange(n**3, dtype=torch.float32).reshape(1, n, n, n)
    crop = periodic_crop(field, (-1, 2, 5), 6)  # halo larger than the box is fine
    for i in range(6):
        for j in range(6):
            for k in range(6):
                assert crop[0, i, j, k] == field[0, (i - 1) % n, (j + 2) % n, (k + 5) % n]


@pytest.mark.parametrize("depth", [1, 2])
def test_translation_equivariance_by_size_multiple(depth):
    model = _model(depth)
    m, n = model.size_multiple, 16
    field = torch.randn((1, 3, n, n, n), generator=_gen(5))
    style = torch.rand((1, 6), generator=_gen(6))
    out = predict_box(model, field, style)
    scale = float(out.abs().max())
    for shift in [(m, 0, 0), (0, 2 * m, -m), (n - m, m, 3 * m)]:
        dims = (2, 3, 4)
        shifted = predict_box(model, torch.roll(field, shift, dims), style)
        assert float((shifted - torch.roll(out, shift, dims)).abs().max()) < 1e-5 * scale


@pytest.mark.parametrize(
    "depth, tile, tile_batch, batch", [(1, 4, 16, 2), (1, 6, 3, 2), (1, 8, 1, 2), (2, 8, 3, 1), (2, 12, 8, 1)]
)
def test_tiled_equals_whole_box(depth, tile, tile_batch, batch):
    model = _model(depth)
    n = 16
    field = torch.randn((batch, 3, n, n, n), generator=_gen(7))
    style = torch.rand((batch, 6), generator=_gen(8)) * 2 - 1
    whole = predict_box(model, field, style)
    tiled = predict_box(model, field, style, tile=tile, tile_batch=tile_batch)
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) < 1e-5 * max(1.0, float(whole.abs().max()))
    starts = tile_origins(n, tile, model.size_multiple)
    covered = torch.zeros(n, dtype=torch.bool)
    for o in starts:
        assert o % model.size_multiple == 0
        covered[o : o + tile] = True
    assert bool(covered.all())


def test_style_dependence_and_sample_independence():
    model = _model(1)
    c = 4
    x, s = _inputs(model, c, batch=3, seed=11)
    with torch.no_grad():
        y = model(x, s)
        # Same input, different styles -> clearly different outputs.
        y_same = model(x[:1].expand(3, -1, -1, -1, -1), s)
        for i in (1, 2):
            rel = float((y_same[i] - y_same[0]).norm() / y_same[0].norm())
            assert rel > 1e-2
        # Sample i's output depends only on its own input and style.
        for i in range(3):
            yi = model(x[i : i + 1], s[i : i + 1])
            assert float((yi[0] - y[i]).abs().max()) < 1e-5 * float(y[i].abs().max())
        x2, s2 = x.clone(), s.clone()
        x2[1] = torch.randn(x2[1].shape, generator=_gen(12))
        s2[2] = -s2[2]
        y2 = model(x2, s2)
        assert float((y2[0] - y[0]).abs().max()) < 1e-5 * float(y[0].abs().max())
        assert not torch.allclose(y2[1], y[1]) and not torch.allclose(y2[2], y[2])


def test_gradients_reach_every_parameter_and_style():
    model = _model(2, base=4, max_channels=6, activation="gelu")
    assert model.channels == [4, 6, 6]
    x, s = _inputs(model, 4, batch=1, seed=13)
    s.requires_grad_(True)
    model(x, s).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and float(p.grad.abs().max()) > 0.0, name
    assert float(s.grad.abs().max()) > 0.0


def test_small_initial_residual():
    model = _model(1)
    x, s = _inputs(model, 8, seed=14)
    with torch.no_grad():
        y = model(x, s)
    assert float(y.std()) < 0.05 * float(x.std())  # starts near zero (residual over 2LPT)


def test_float64_matches_float32_under_no_grad():
    m32 = _model(1)
    m64 = _model(1, dtype=torch.float64)
    m64.load_state_dict(m32.state_dict())
    assert all(p.dtype == torch.float64 for p in m64.parameters())
    x, s = _inputs(m32, 4, batch=2, seed=15)
    with torch.no_grad():
        y32 = m32(x, s)
        y64 = m64(x.double(), s.double())
    assert y64.dtype == torch.float64
    assert float((y64 - y32.double()).abs().max() / y64.abs().max()) < 1e-4


@pytest.mark.parametrize("transpose", [False, True])
def test_modulated_conv_against_per_sample_reference(transpose):
    """Grouped implementation == explicit per-sample modulated, demodulated weights; output variance ~ 1.

    Demodulation is w / sqrt(sum w^2 + eps) with eps = 1e-8 (StyleGAN2), included in the reference.
    """
    eps = 1e-8
    torch.manual_seed(0)
    cin, cout, wdim = 5, 4, 7
    k, stride = (2, 2) if transpose else (3, 1)
    conv = ModulatedConv3d(cin, cout, k, wdim, stride=stride, transpose=transpose).double()
    with torch.no_grad():
        conv.affine.weight.normal_()  # strong modulation
        conv.bias.zero_()
    x = torch.randn((3, cin, 12, 12, 12), generator=_gen(16), dtype=torch.float64)
    w = torch.randn((3, wdim), generator=_gen(17), dtype=torch.float64)
    with torch.no_grad():
        out = conv(x, w)
        for b in range(3):
            scale = conv.affine(w[b : b + 1])[0]  # (cin,)
            if transpose:
                wt = conv.weight * scale[:, None, None, None, None]
                wt = wt / (wt.square().sum(dim=0, keepdim=True) + eps).sqrt()
                ref = F.conv_transpose3d(x[b : b + 1], wt, stride=2)
            else:
                wt = conv.weight * scale[None, :, None, None, None]
                wt = wt / (wt.square().sum(dim=(1, 2, 3, 4), keepdim=True) + eps).sqrt()
                ref = F.conv3d(x[b : b + 1], wt)
            assert float((out[b] - ref[0]).abs().max()) < 1e-10
        # Demodulation: unit-variance white input -> unit-variance output per channel (weights of unit norm).
        big = torch.randn((1, cin, 24, 24, 24), generator=_gen(18), dtype=torch.float64)
        var = conv(big, w[:1]).var(dim=(0, 2, 3, 4))
        n_out = conv(big, w[:1])[0, 0].numel()
        assert torch.allclose(var, torch.ones_like(var), atol=5 * (2.0 / n_out) ** 0.5)
        # Demodulated output is invariant to an overall rescaling of the style scales. (Scales are made large so
        # that eps / sum(w^2) ~ 1e-16 is negligible in both.)
        big1, big2 = [ModulatedConv3d(cin, cout, k, wdim, stride=stride, transpose=transpose).double() for _ in "ab"]
        for conv_b, factor in ((big1, 1e4), (big2, 3e4)):
            conv_b.load_state_dict(conv.state_dict())
            conv_b.affine.weight.mul_(factor)
            conv_b.affine.bias.mul_(factor)
        y1, y2 = big1(x, w), big2(x, w)
        assert float((y1 - y2).abs().max()) < 1e-12 * float(y1.abs().max())
        assert float((y1 - out).abs().max()) < 1e-6 * float(y1.abs().max())  # eps effect at unit scale


@pytest.mark.parametrize(
    "kwargs",
    [{"depth": -1}, {"blocks": 0}, {"base_channels": 0}, {"activation": "tanh"}, {"out_init_scale": 0.0},
     {"in_channels": 2.5}],
)
def test_bad_constructor_args(kwargs):
    with pytest.raises(ValueError):
        StyledUNet(**kwargs)


def test_bad_call_args():
    model = _model(1)
    x, s = _inputs(model, 2)
    with pytest.raises(ValueError):
        model(x[:, :2], s)
    with pytest.raises(ValueError):
        model(x, s[:, :5])
    with pytest.raises(ValueError):
        model(x, torch.cat([s, s]))
    with pytest.raises(ValueError):
        predict_box(model, torch.zeros(1, 3, 15, 15, 15), torch.zeros(1, 6))  # n not a multiple of 2
    with pytest.raises(ValueError):
        predict_box(model, torch.zeros(1, 3, 16, 16, 16), torch.zeros(1, 6), tile=5)
    with pytest.raises(ValueError):
        predict_box(model, torch.zeros(1, 3, 16, 16, 16), torch.zeros(1, 6), tile=32)
    with pytest.raises(ValueError):
        predict_box(model, torch.zeros(1, 3, 16, 16, 16), torch.zeros(1, 6), tile_batch=0)


def test_predict_box_grad_mode():
    model = _model(1)
    field = torch.randn((1, 3, 8, 8, 8), generator=_gen(19))
    style = torch.zeros(1, 6)
    assert not predict_box(model, field, style, tile=4).requires_grad
    out = predict_box(model, field, style, tile=4, enable_grad=True)
    assert out.requires_grad
    out.sum().backward()
    assert model.head.weight.grad is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_cpu_box():
    model = _model(2)
    field = torch.randn((1, 3, 16, 16, 16), generator=_gen(20))
    style = torch.rand((1, 6), generator=_gen(21))
    cpu = predict_box(model, field, style)
    gpu_model = _model(2).cuda()
    gpu_model.load_state_dict(model.state_dict())
    torch.backends.cudnn.allow_tf32 = False
    gpu = predict_box(gpu_model, field, style, tile=8, tile_batch=4)  # box stays on the CPU
    assert gpu.device.type == "cpu"
    assert float((gpu - cpu).abs().max()) < 1e-4 * float(cpu.abs().max())


@pytest.mark.parametrize("depth, blocks", [(0, 1), (1, 1), (2, 1), (2, 2), (3, 1), (1, 3)])
def test_periodic_mode_equals_the_halo_path(depth, blocks):
    """A whole periodic box through circular-padded convolutions (no halo) gives the halo path's output: exactly
    in float64 on this CPU, to rounding in general; any other roll than ``periodic_shift`` breaks it for depth 2."""
    torch.manual_seed(depth * 10 + blocks)
    net = StyledUNet(base_channels=4, depth=depth, blocks=blocks, style_hidden=8, out_init_scale=1.0).double().eval()
    n = 24 if depth == 3 else 16
    x = torch.randn(2, 3, n, n, n, dtype=torch.float64)
    style = torch.randn(2, 6, dtype=torch.float64)
    ref = predict_box(net, x, style, periodic=False)
    out = predict_box(net, x, style)  # whole box: the periodic mode
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    if depth == 2 and blocks == 1:
        r = net.periodic_shift
        assert r == 2
        with torch.no_grad():
            wrong = torch.roll(net(torch.roll(x, (1 - r,) * 3, (2, 3, 4)), style, periodic=True), (r - 1,) * 3,
                               (2, 3, 4))
        assert float((wrong - ref).abs().max()) > 1e-3  # the grid alignment is what makes it exact


def test_periodic_mode_refuses_a_box_off_the_size_multiple():
    net = StyledUNet(base_channels=4, depth=2, blocks=1, style_hidden=8)
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.zeros(1, 3, 18, 18, 18), torch.zeros(1, 6), periodic=True)
