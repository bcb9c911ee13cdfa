"""Tiled inference details: the balanced default tile and the input divisor of predict_box."""

from __future__ import annotations

import pytest
import torch

from emulator.model import StyledUNet, predict_box, tile_origins
from emulator.model.tiling import balanced_tile


def _model(depth: int = 1) -> StyledUNet:
    torch.manual_seed(0)
    return StyledUNet(base_channels=4, depth=depth, blocks=1, style_hidden=8, out_init_scale=1.0).eval()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_balanced_tile_is_the_fewest_tiles_with_the_least_overlap():
    for multiple in (2, 4, 8):
        for n in range(multiple, 700, multiple):
            t = balanced_tile(n, 128, multiple)
            if n <= 128:
                assert t == n
                continue
            count = -(-n // 128)
            assert t % multiple == 0 and t <= 128 and len(tile_origins(n, t, multiple)) == count
            assert count * t - n < count * multiple  # the cells computed twice: less than one multiple a tile
    assert balanced_tile(192, 128, 4) == 96 and balanced_tile(160, 128, 4) == 80 and balanced_tile(256, 128, 4) == 128


@pytest.mark.parametrize("tile", [None, 8])
def test_divisor_is_dividing_the_box_first(tile):
    """``divisor`` scales tile by tile (no scaled copy of the box) with the numbers of scaling the box first."""
    model = _model(1)
    field = 3.7 * torch.randn((1, 3, 16, 16, 16), generator=_gen(11))
    style = torch.rand((1, 6), generator=_gen(12)) * 2 - 1
    before = field.clone()
    out = predict_box(model, field, style, tile=tile, divisor=1.9)
    assert torch.equal(out, predict_box(model, field / 1.9, style, tile=tile))
    assert torch.equal(field, before)  # the caller's box is not scaled in place
    assert not torch.equal(out, predict_box(model, field, style, tile=tile))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("tile", [None, 8])
def test_divisor_divides_where_the_box_lives(tile):
    """A CPU box through a CUDA network reads the bits of ``field / divisor`` computed on the CPU (CUDA divides by
    a scalar as a multiplication by its inverse), as the streamed path does."""
    model = _model(1).cuda()
    field = 3.7 * torch.randn((1, 3, 16, 16, 16), generator=_gen(13))
    style = torch.rand((1, 6), generator=_gen(14)) * 2 - 1
    out = predict_box(model, field, style, tile=tile, divisor=1.9)
    assert out.device == field.device
    assert torch.equal(out, predict_box(model, field / 1.9, style, tile=tile))
