"""Whole-box and tiled inference of a valid-convolution network on a periodic box.

The box is extended periodically by ``model.halo`` cells per side (by index wrap, so the halo may exceed the box)
and the network is run either on the whole extended box or on tiles of ``tile`` output cells (each read with its
halo straight from the periodic box). Tile origins are multiples of ``model.size_multiple``, so every output cell
is computed from the same inputs with the same alignment to the down-sampling grid as in the whole-box pass, and
the two agree to float rounding. When ``tile`` does not divide the box, the last tile along an axis is shifted
back to end at the box edge (overlapping its neighbour; the overlap is computed twice, identically).

A whole-box pass of a network with a periodic mode (:class:`~emulator.model.unet.StyledUNet`) needs no halo at
all: the box, rolled to align the stride-2 grids, goes through circular-padded convolutions, which equal the
valid ones on the periodic extension, so the pass costs what the unpadded box costs (with it and the allocator
setting of :mod:`emulator.core.allocator`, one generator mock at 128^3 took 2.0 s on one CPU thread, against 4.9
s before, on an idle day of this host: ``python -m benchmarks.scaling``); tiles (bounded memory) still read halos.

Boxes larger than :data:`DEFAULT_TILE` cells per side run by default in the fewest tiles of at most that size,
each as small as that count allows (:func:`balanced_tile`: 96 at 192^3, so no tile is computed twice over; one
192^3 mock on one thread: 17.7 s, against 38.3 s in tiles of 128). Timed once with the embedded model on one CPU
thread at 256^3 (this function on a random input, ``/proc`` peak; whole mocks:
``python -m benchmarks.scaling``): the periodic whole box takes 5.3 GB; tiles of 128 cost 1.13x its time at
2.0 GB, tiles of 64 1.5x at 1.5 GB.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["DEFAULT_TILE", "balanced_tile", "tile_origins", "periodic_crop", "periodic_forward", "predict_box"]

DEFAULT_TILE = 128
"""Output tile (cells per side) for boxes larger than this: the network's memory stays bounded (~2 GB with the
embedded model) at ~1.1x the cost of the unpadded whole box."""


def balanced_tile(n: int, max_tile: int, multiple: int) -> int:
    """The smallest tile (a multiple of ``multiple``) that covers ``n`` cells in as few tiles as ``max_tile`` does.

    Tiles of ``max_tile`` that do not divide ``n`` end with one shifted back over its neighbour, computed twice:
    at ``n = 192`` tiles of 128 compute 2.4x the box's cells (8 tiles of 128^3), tiles of 96 the box once.
    """
    if n <= max_tile:
        return n
    count = -(-n // max_tile)  # tiles per axis that max_tile needs
    return min(max_tile, -(-n // (count * multiple)) * multiple)


def tile_origins(n: int, tile: int, multiple: int) -> list[int]:
    """Origins (cells) of tiles of ``tile`` cells covering ``[0, n)``; all are multiples of ``multiple``."""
    if tile <= 0 or tile % multiple:
        raise ValueError(f"tile must be a positive multiple of size_multiple={multiple}, got {tile!r}")
    if n % multiple:
        raise ValueError(f"box mesh size must be a multiple of size_multiple={multiple}, got {n}")
    if tile > n:
        raise ValueError(f"tile must not exceed the box mesh size {n}, got {tile}")
    origins = list(range(0, n - tile + 1, tile))
    if origins[-1] + tile < n:
        origins.append(n - tile)
    return origins


def periodic_crop(field: torch.Tensor, origin: tuple[int, int, int], size: int) -> torch.Tensor:
    """Cube of ``size`` cells starting at ``origin`` (may be negative or run past the edge) of a periodic box.

    ``field`` has shape ``(..., n, n, n)``; indices wrap modulo ``n``.
    """
    n = field.shape[-1]
    idx = [torch.remainder(torch.arange(o, o + size, device=field.device), n) for o in origin]
    return field[..., idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]]


def periodic_forward(model: nn.Module, box: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The network on whole periodic boxes ``(B, C, n, n, n)``: circular pads, no halo, aligned as the halo path.

    The box is rolled by ``-model.periodic_shift`` so the stride-2 grids line up as in the halo path, run with
    ``periodic=True`` and rolled back: the output ``(B, C_out, n, n, n)`` sits on the input's cells.
    """
    r, dims = int(model.periodic_shift), (2, 3, 4)
    x = torch.roll(box, (-r,) * 3, dims) if r else box
    out = model(x, style, periodic=True)
    return torch.roll(out, (r,) * 3, dims) if r else out


def predict_box(
    model: nn.Module,
    field: torch.Tensor,
    style: torch.Tensor,
    *,
    tile: int | None = None,
    tile_batch: int = 1,
    enable_grad: bool = False,
    periodic: bool | None = None,
    divisor: float | None = None,
) -> torch.Tensor:
    """Run ``model`` over a whole periodic box.

    Parameters
    ----------
    model : nn.Module
        A network with integer attributes ``halo`` and ``size_multiple`` mapping ``(B, C_in, c + 2 halo, ...)``
        and a style ``(B, S)`` to ``(B, C_out, c, ...)`` (e.g. :class:`~emulator.model.unet.StyledUNet`).
    field : torch.Tensor
        ``(B, C_in, n, n, n)`` periodic input box; ``n`` a multiple of ``model.size_multiple``. It may live on
        another device than the model (e.g. a large box on the CPU): tiles are moved to the model's device and
        the results back to ``field.device``.
    style : torch.Tensor
        ``(B, S)`` conditioning vectors.
    tile : int or None
        Output tile size (a multiple of ``model.size_multiple``, at most ``n``); ``None`` runs the whole box.
    tile_batch : int
        Number of tiles stacked into one forward pass (each repeats its sample's style).
    enable_grad : bool
        Keep the autograd graph (default: run under ``torch.no_grad``).
    periodic : bool or None
        For a whole-box pass (``tile`` ``None`` or ``n``): run the network in its periodic mode (circular pads, no
        halo: the cost of the unpadded box; same output to float rounding) when it has one
        (``model.periodic_shift``). ``None``: whenever possible; ``False``: always the halo path.
    divisor : float or None
        The network reads ``field / divisor`` (e.g. a displacement in Mpc/h over the cell size), divided tile by
        tile, so a tiled pass holds no scaled copy of the whole box (the same numbers as dividing first).

    Returns
    -------
    torch.Tensor
        ``(B, C_out, n, n, n)`` on ``field.device`` in the model's output dtype.
    """
    if field.ndim != 5 or not (field.shape[-1] == field.shape[-2] == field.shape[-3]):
        raise ValueError(f"field must have shape (B, C, n, n, n), got {tuple(field.shape)}")
    if style.ndim != 2 or style.shape[0] != field.shape[0]:
        raise ValueError(f"style must have shape ({field.shape[0]}, S), got {tuple(style.shape)}")
    if isinstance(tile_batch, bool) or not isinstance(tile_batch, int) or tile_batch < 1:
        raise ValueError(f"tile_batch must be a positive integer, got {tile_batch!r}")
    halo, multiple = int(model.halo), int(model.size_multiple)
    b, n = field.shape[0], field.shape[-1]
    tile = n if tile is None else tile
    starts = tile_origins(n, tile, multiple)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = field.device
    style = style.to(device)
    origins = list(itertools.product(starts, repeat=3))
    if len(origins) == 1 and periodic is not False and hasattr(model, "periodic_shift"):
        with torch.set_grad_enabled(enable_grad and torch.is_grad_enabled()):
            x = (field / divisor if divisor is not None else field).to(device)  # divided where the box lives
            return periodic_forward(model, x, style).to(field.device)

    with torch.set_grad_enabled(enable_grad and torch.is_grad_enabled()):
        out: torch.Tensor | None = None
        for i in range(0, len(origins), tile_batch):
            chunk = origins[i : i + tile_batch]
            x = torch.cat(
                [periodic_crop(field, (ox - halo, oy - halo, oz - halo), tile + 2 * halo) for ox, oy, oz in chunk]
            )
            if divisor is not None:  # on the box's device: CUDA divides by a scalar as a * (1/b), not a / b
                x /= divisor
            x = x.to(device)
            y = model(x, style.repeat(len(chunk), 1)).to(field.device)
            if len(origins) == 1:
                return y
            if out is None:
                out = field.new_zeros((b, y.shape[1], n, n, n), dtype=y.dtype)
            for j, (ox, oy, oz) in enumerate(chunk):
                out[..., ox : ox + tile, oy : oy + tile, oz : oz + tile] = y[j * b : (j + 1) * b]
        assert out is not None
        return out
