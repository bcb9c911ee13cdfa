"""Style-conditioned 3D U-Net with valid convolutions: the field-level emulator network.

Layout (level ``l`` works at resolution ``2^-l`` of the input, with ``C_l = min(base * 2^l, max_channels)``
channels)::

    x ─ enc_0 ──────────────────────────── crop ─┐
          └ down ─ enc_1 ── ... ─ bottom ─ ... ─ up ─ concat ─ dec_0 ─ head (1^3) ─ out

Each ``enc``/``dec``/``bottom`` stage is ``blocks`` :class:`~emulator.model.layers.StyledResBlock` (two modulated
valid 3^3 convolutions each, losing two cells per side); ``down``/``up`` are modulated stride-2 (transposed)
convolutions with kernel 2; skip connections are centre-cropped to the decoder size (as in map2map's V-Net). An
input crop of ``c + 2 halo`` cells gives an output of ``c`` cells for any ``c`` that is a positive multiple of
``m = size_multiple = 2^depth``. To make every such ``c`` valid, the up-sampled map at level ``l`` is cropped by
a few extra cells when needed, so that the decoder's loss at that level is a multiple of ``2^(depth-l-1)`` cells.
With ``b`` blocks per level and ``depth <= 2`` (no extra crop), ``halo = 2 b (3 * 2^depth - 2)``; in general
``halo`` is computed by :meth:`StyledUNet.input_size`.

Locality: because of the stride-2 grid, output cell ``o`` (per axis, in output coordinates) depends exactly on
the input cells ``[m floor(o/m), m floor(o/m) + m + 2 halo)`` (input coordinates), the input window of the
aligned ``m``-block that contains it -- i.e. on inputs up to ``halo + m - 1`` cells away from it, not just
``halo``. The network is equivariant under translations by multiples of ``m`` only. Tiles with origins at
multiples of ``m`` therefore reproduce whole-box inference exactly (see :mod:`emulator.model.tiling`).

The network outputs only the residual over 2LPT (see docs/architecture.md, "Emulator model conventions"): the
caller adds the 2LPT term. The 1^3 output head is initialised with weights scaled by ``out_init_scale``
(default 1e-2) and zero bias, so a fresh network predicts a small residual while gradients reach every layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .header import decoder_extra_crops, unet_input_size
from .layers import ModulatedConv3d, StyledResBlock, StyleMapping, center_crop, make_activation

__all__ = ["StyledUNet"]


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class _Stage(nn.Module):
    """A sequence of residual blocks sharing the latent ``w``."""

    def __init__(self, in_channels: int, channels: int, blocks: int, w_dim: int, activation: str):
        super().__init__()
        self.blocks = nn.ModuleList(
            StyledResBlock(in_channels if i == 0 else channels, channels, w_dim, activation) for i in range(blocks)
        )

    def forward(self, x: torch.Tensor, w: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, w, periodic)
        return x


class _Resample(nn.Module):
    """Modulated stride-2 (transposed) convolution with kernel 2, followed by the activation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, activation: str, up: bool):
        super().__init__()
        self.conv = ModulatedConv3d(in_channels, out_channels, 2, w_dim, stride=2, transpose=up)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x, w))


class StyledUNet(nn.Module):
    """Style-modulated 3D U-Net mapping an input crop with halo to an output crop without.

    Parameters
    ----------
    in_channels : int
        Input channels ``C_in`` (default 3: 2LPT displacement in cell units).
    out_channels : int
        Output channels ``C_out`` (default 6: residual displacement and velocity, both in cell units).
    style_dim : int
        Length ``S`` of the conditioning vector (default 6: five normalised parameters and a redshift feature).
    base_channels : int
        Channels at full resolution.
    depth : int
        Number of down-sampling steps (0 gives a plain stack of residual blocks).
    blocks : int
        Residual blocks per level (encoder, bottom and decoder each).
    max_channels : int or None
        Cap on the channel count at coarse levels.
    style_hidden, mapping_layers : int
        Width and depth of the style mapping MLP.
    activation : {"leaky_relu", "gelu"}
    out_init_scale : float
        Scale of the initial head weights (small: the network starts near zero residual).

    Attributes
    ----------
    halo : int
        Cells lost per side: input ``(B, C_in, c + 2 halo, ...)`` gives output ``(B, C_out, c, ...)``.
    size_multiple : int
        ``2^depth``; the output crop ``c`` must be a positive multiple of it, and translations of the input by
        multiples of it translate the output identically.
    config : dict
        Constructor arguments (for checkpoints and YAML configs).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 6,
        style_dim: int = 6,
        base_channels: int = 32,
        depth: int = 2,
        blocks: int = 1,
        max_channels: int | None = None,
        style_hidden: int = 64,
        mapping_layers: int = 2,
        activation: str = "leaky_relu",
        out_init_scale: float = 1e-2,
    ):
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("out_channels", out_channels)
        _positive_int("style_dim", style_dim)
        _positive_int("base_channels", base_channels)
        _positive_int("depth", depth, minimum=0)
        _positive_int("blocks", blocks)
        if max_channels is not None:
            _positive_int("max_channels", max_channels)
        make_activation(activation)  # validates the name
        if not float(out_init_scale) > 0.0:
            raise ValueError(f"out_init_scale must be positive, got {out_init_scale!r}")
        self.config = dict(
            in_channels=in_channels, out_channels=out_channels, style_dim=style_dim, base_channels=base_channels,
            depth=depth, blocks=blocks, max_channels=max_channels, style_hidden=style_hidden,
            mapping_layers=mapping_layers, activation=activation, out_init_scale=float(out_init_scale),
        )
        self.in_channels, self.out_channels, self.style_dim = in_channels, out_channels, style_dim
        self.depth, self.blocks = depth, blocks
        ch = [min(base_channels * 2**l, max_channels or base_channels * 2**l) for l in range(depth + 1)]
        self.channels = ch

        self.mapping = StyleMapping(style_dim, style_hidden, mapping_layers, activation)
        wd = self.mapping.out_dim
        self.enc = nn.ModuleList(
            _Stage(in_channels if l == 0 else ch[l], ch[l], blocks, wd, activation) for l in range(depth)
        )
        self.down = nn.ModuleList(_Resample(ch[l], ch[l + 1], wd, activation, up=False) for l in range(depth))
        self.bottom = _Stage(in_channels if depth == 0 else ch[depth], ch[depth], blocks, wd, activation)
        self.up = nn.ModuleList(_Resample(ch[l + 1], ch[l], wd, activation, up=True) for l in range(depth))
        self.dec = nn.ModuleList(_Stage(2 * ch[l], ch[l], blocks, wd, activation) for l in range(depth))
        self.head = nn.Conv3d(ch[0], out_channels, 1)
        with torch.no_grad():
            self.head.weight.mul_(float(out_init_scale))
            self.head.bias.zero_()

        # Extra crop (cells per side) right after each up-sampling, so that the decoder loss at level l is a
        # multiple of 2^(depth-l-1): then every output size c that is a multiple of 2^depth is valid.
        loss = self._level_loss
        self._dec_extra = decoder_extra_crops(depth, loss)
        self.size_multiple = 2**depth
        self.halo = (self.input_size(self.size_multiple) - self.size_multiple) // 2
        self.periodic_shift = self._periodic_shift()

    # -- size bookkeeping -------------------------------------------------------------------------------------
    @property
    def _level_loss(self) -> int:
        return self.blocks * StyledResBlock.halo

    def _periodic_shift(self) -> int:
        """Roll ``r`` (cells) that aligns the stride-2 grids of a whole periodic box with those of the halo path.

        With an output origin at 0 the halo path's input starts at ``-halo``, and its level-``l`` stride-2 blocks
        (``2^(l+1)`` input cells wide) start at ``s_l = -halo + L (2^(l+1) - 1)`` (``L`` cells lost per level).
        Rolling the box by ``-r`` with ``r = s_l mod 2^(l+1)`` for every ``l`` puts them at index 0.
        """
        start, r = -self.halo, 0
        for level in range(self.depth):
            start += self._level_loss * 2**level
            width = 2 ** (level + 1)
            if (start - r) % width:
                r += (start - r) % width  # keeps r mod the finer widths: they divide the step taken
            assert (start - r) % width == 0
        return r % self.size_multiple

    def input_size(self, output_size: int) -> int:
        """Input crop size (cells per side) that yields an output of ``output_size`` cells per side."""
        c = _positive_int("output_size", output_size)
        if c % (2**self.depth):
            raise ValueError(f"output_size must be a multiple of size_multiple={2**self.depth}, got {c}")
        return unet_input_size(c, self.depth, self._level_loss)

    def output_size(self, input_size: int) -> int:
        """Output size for an input crop of ``input_size`` cells per side (``ValueError`` if not valid)."""
        n = _positive_int("input_size", input_size)
        c = n - 2 * self.halo
        if c <= 0 or c % self.size_multiple:
            raise ValueError(
                f"input_size must be c + 2*halo = c + {2 * self.halo} with c a positive multiple of "
                f"{self.size_multiple}, got {n}"
            )
        return c

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, style: torch.Tensor, *, periodic: bool = False) -> torch.Tensor:
        """Residual prediction for a batch of crops, or (``periodic``) of whole periodic boxes.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C_in, c + 2 halo, c + 2 halo, c + 2 halo)`` input crops (2LPT displacement in cell units).
        style : torch.Tensor
            ``(B, S)`` conditioning vectors (dimensionless, normalised).
        periodic : bool
            ``x`` is ``(B, C_in, n, n, n)``, a whole periodic box (``n`` a multiple of ``size_multiple``) already
            rolled by ``-periodic_shift`` cells per axis; every 3^3 convolution reads a circular pad instead of a
            halo and nothing is cropped, so the output is ``(B, C_out, n, n, n)`` (roll it back by
            ``+periodic_shift``) and equals the halo path's to float rounding, at the cost of the unpadded box
            (see :func:`emulator.model.tiling.predict_box`).

        Returns
        -------
        torch.Tensor
            ``(B, C_out, c, c, c)``.
        """
        if x.ndim != 5 or x.shape[1] != self.in_channels or not (x.shape[2] == x.shape[3] == x.shape[4]):
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, N, N, N), got {tuple(x.shape)}"
            )
        if style.ndim != 2 or style.shape[0] != x.shape[0] or style.shape[1] != self.style_dim:
            raise ValueError(f"style must have shape ({x.shape[0]}, {self.style_dim}), got {tuple(style.shape)}")
        if periodic and x.shape[-1] % self.size_multiple:
            raise ValueError(f"a periodic box must be a multiple of {self.size_multiple} cells, got {x.shape[-1]}")
        c = x.shape[-1] if periodic else self.output_size(x.shape[-1])
        w = self.mapping(style)
        skips = []
        for enc, down in zip(self.enc, self.down):
            x = enc(x, w, periodic)
            skips.append(x)
            x = down(x, w)
        x = self.bottom(x, w, periodic)
        for level in reversed(range(self.depth)):
            x = self.up[level](x, w)
            if not periodic:
                x = center_crop(x, x.shape[-1] - 2 * self._dec_extra[level])
            x = torch.cat([center_crop(skips[level], x.shape[-1]), x], dim=1)
            x = self.dec[level](x, w, periodic)
        out = self.head(x)
        assert out.shape[-1] == c
        return out

    def extra_repr(self) -> str:
        return f"halo={self.halo}, size_multiple={self.size_multiple}, channels={self.channels}"
