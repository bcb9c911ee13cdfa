"""Building blocks of the style-conditioned U-Net: mapping network, modulated 3D convolutions, residual blocks.

Style modulation follows StyleGAN2 (Karras et al. 2020, "modulated convolution with weight demodulation"): a
mapping MLP turns the conditioning vector (normalised cosmological parameters and a redshift feature) into a
latent ``w``; every modulated convolution has its own affine map ``w -> s`` of per-input-channel scales (bias
initialised to 1), multiplies its weight by ``s`` per sample and, unless disabled, rescales each output filter to
unit L2 norm ("demodulation"), so unit-variance inputs give roughly unit-variance outputs without batch
statistics. Per-sample weights are applied in one grouped convolution (``groups = batch``), so the samples of a
batch never mix.

All convolutions are *valid* (no padding): a 3^3 convolution loses one cell per side. Every function works on
CPU or CUDA in float32 or float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "make_activation",
    "center_crop",
    "StyleMapping",
    "ModulatedConv3d",
    "StyledResBlock",
]

_DEMOD_EPS = 1e-8


def make_activation(name: str) -> nn.Module:
    """``"leaky_relu"`` (slope 0.2) or ``"gelu"``."""
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"activation must be 'leaky_relu' or 'gelu', got {name!r}")


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Crop the last three (cubic) axes of ``x`` symmetrically to ``size``; the excess must be even."""
    excess = x.shape[-1] - size
    if excess < 0 or excess % 2:
        raise ValueError(f"size must leave an even, non-negative excess of {x.shape[-1]}, got {size}")
    c = excess // 2
    if c == 0:
        return x
    return x[..., c:-c, c:-c, c:-c]


class StyleMapping(nn.Module):
    """MLP ``style (B, S) -> latent w (B, hidden)`` shared by all modulated layers.

    Parameters
    ----------
    style_dim : int
        Length ``S`` of the conditioning vector (dimensionless; already normalised by the caller).
    hidden : int
        Width of the hidden layers and of ``w``.
    layers : int
        Number of linear layers (>= 1), each followed by the activation.
    """

    def __init__(self, style_dim: int, hidden: int, layers: int = 2, activation: str = "leaky_relu"):
        super().__init__()
        for name, v in (("style_dim", style_dim), ("style_hidden", hidden), ("mapping_layers", layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        mods: list[nn.Module] = []
        width = style_dim
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), make_activation(activation)]
            width = hidden
        self.net = nn.Sequential(*mods)
        self.style_dim = style_dim
        self.out_dim = hidden

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.net(style)


class ModulatedConv3d(nn.Module):
    """Style-modulated, weight-demodulated 3D convolution (or stride-``k`` transposed convolution), valid padding.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    kernel_size : int
        Cubic kernel size.
    w_dim : int
        Width of the latent ``w`` from :class:`StyleMapping`.
    stride : int
        Convolution stride (2 with ``kernel_size=2`` for down-sampling).
    transpose : bool
        Transposed convolution (up-sampling); requires ``stride == kernel_size`` so each output cell receives
        exactly one kernel tap per input channel. Demodulation is then done per tap (the fan-in of an output
        cell is ``in_channels``, not ``in_channels * k^3``).
    demodulate : bool
        Normalise every per-sample output filter to unit L2 norm.
    bias : bool
        Add a learnable (unmodulated) per-output-channel bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        *,
        stride: int = 1,
        transpose: bool = False,
        demodulate: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        if transpose and stride != kernel_size:
            raise ValueError(f"stride must equal kernel_size for a transposed convolution, got {stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.transpose, self.demodulate = transpose, demodulate
        k = kernel_size
        shape = (in_channels, out_channels, k, k, k) if transpose else (out_channels, in_channels, k, k, k)
        fan_in = in_channels if transpose else in_channels * k**3
        self.weight = nn.Parameter(torch.randn(shape) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.affine = nn.Linear(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)

    def modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample weights, ``(B, out, in, k, k, k)`` (or ``(B, in, out, k, k, k)`` if transposed)."""
        s = self.affine(w)  # (B, in)
        if self.transpose:
            weight = self.weight[None] * s[:, :, None, None, None, None]
            if self.demodulate:  # per output channel and per tap: sum over input channels only
                weight = weight * torch.rsqrt(weight.square().sum(dim=1, keepdim=True) + _DEMOD_EPS)
        else:
            weight = self.weight[None] * s[:, None, :, None, None, None]
            if self.demodulate:
                weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4, 5), keepdim=True) + _DEMOD_EPS)
        return weight

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x`` (B, in, n, n, n) and latent ``w`` (B, w_dim) -> (B, out, n', n', n')."""
        b = x.shape[0]
        weight = self.modulated_weight(w)
        xg = x.reshape(1, b * self.in_channels, *x.shape[2:])
        k = self.kernel_size
        if self.transpose:
            out = F.conv_transpose3d(
                xg, weight.reshape(b * self.in_channels, self.out_channels, k, k, k), stride=self.stride, groups=b
            )
        else:
            out = F.conv3d(
                xg, weight.reshape(b * self.out_channels, self.in_channels, k, k, k), stride=self.stride, groups=b
            )
        out = out.reshape(b, self.out_channels, *out.shape[2:])
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1, 1)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"transpose={self.transpose}, demodulate={self.demodulate}"
        )


class StyledResBlock(nn.Module):
    """Two modulated valid 3^3 convolutions with activations plus a cropped skip; loses 2 cells per side.

    ``out = (act(conv2(act(conv1(x)))) + crop(skip(x))) / sqrt(2)``, where ``skip`` is the identity or, if the
    channel count changes, an unmodulated 1^3 convolution.
    """

    #: Cells lost per side.
    halo = 2

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, activation: str = "leaky_relu"):
        super().__init__()
        self.conv1 = ModulatedConv3d(in_channels, out_channels, 3, w_dim)
        self.conv2 = ModulatedConv3d(out_channels, out_channels, 3, w_dim)
        self.act = make_activation(activation)
        self.skip = None if in_channels == out_channels else nn.Conv3d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """``periodic``: ``x`` is a whole periodic box; each convolution reads a one-cell circular pad, so the
        output keeps the input's size and equals the valid result on the box's periodic extension."""
        pad = (lambda t: F.pad(t, (1,) * 6, mode="circular")) if periodic else (lambda t: t)
        y = self.act(self.conv2(pad(self.act(self.conv1(pad(x), w))), w))
        s = x if self.skip is None else self.skip(x)
        return (y + center_crop(s, y.shape[-1])) * (1.0 / math.sqrt(2.0))
