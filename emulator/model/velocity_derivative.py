"""Velocities as the time derivative of the displacement output (issue 11 §2 (b); Jamieson et al. 2024,
arXiv:2408.07699), instead of a separate velocity head.

In the displacement units of the training sets a velocity ``v`` (km/s) is ``v / (100 a E f1)`` (Mpc/h). For a
particle at Lagrangian position ``q`` with ``x = q + psi``, ``v = a dx/dt = 100 a E f1 dpsi/dln D1``, so that unit
*is* the derivative of the displacement with respect to ``ln D1`` at fixed ``q`` and cosmology. The network
predicts a displacement residual ``R(psi_base, s)`` from the base displacement and the style ``s`` (five
normalised parameters and the normalised redshift); its velocity residual is then the chain rule

    dR/dln D1 = (dR/dpsi_base) . (dpsi_base/dln D1) + (dR/ds_z) (ds_z/dln D1),

where ``dpsi_base/dln D1`` is the base's own velocity (2LPT, PM or COLA, in the same units) and
``ds_z/dln D1 = -2 (1 + z) / (f1 (z_max - z_min))`` (:func:`style_rate`). Both terms come exactly, in one pass,
from forward-mode differentiation (``torch.func.jvp``) of the network along the tangent (base velocity, style
rate): one network, one set of weights, velocities consistent with the displacements by construction. Costs
about 3.5x a plain forward pass of the network on a CPU. Reverse mode through it (training) is exact too.

:class:`DerivativeVelocityNet` wraps a :class:`~emulator.model.unet.StyledUNet` of 3 output channels behind the
interface of a 6-channel one: its input is the base displacement and velocity ``(B, 6, ...)`` and its style the
style and its rate ``(B, 12)``, so tiling, periodic passes and the training module use it unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .style import normalise_style
from .unet import StyledUNet

__all__ = ["VELOCITY_MODES", "DerivativeVelocityNet", "build_network", "style_rate", "style_and_rate",
           "check_velocity_mode", "PASS_MEMORY_FACTOR"]

#: ``head``: the network outputs the velocity residual as three more channels (the default);
#: ``derivative``: the velocity residual is the displacement residual's derivative with respect to ln D1.
VELOCITY_MODES = ("head", "derivative")
#: Peak memory of one network pass of a derivative model over that of the same network with a velocity head (the
#: tangents ride along every activation): 407 / 148, 343 / 164 and 338 / 176 bytes per input cell at tiles 64 / 96
#: / 128 with halo 20 (hybrid_cola4's network widths, two threads, ``torch.inference_mode``, 2026-12-07). The
#: largest ratio, rounded up; memory plans scale their per-cell pass estimate by it.
PASS_MEMORY_FACTOR = 2.8


def check_velocity_mode(mode: object, where: str = "velocity") -> str:
    """``mode`` if it is one of :data:`VELOCITY_MODES`, else a one-line ``ValueError`` naming ``where``."""
    if mode not in VELOCITY_MODES:
        raise ValueError(f"{where} must be one of {', '.join(VELOCITY_MODES)}, got {mode!r}")
    return str(mode)


def style_rate(redshift: float, f1: float, z_low: float, z_high: float) -> float:
    """Derivative of the normalised redshift entry of the style with respect to ``ln D1`` (dimensionless).

    ``s_z = 2 (z - z_low) / (z_high - z_low) - 1`` and ``dz/dln D1 = (dz/dln a) / f1 = -(1 + z) / f1``; 0 when the
    model was trained on one redshift (``s_z`` is then constant).
    """
    width = float(z_high) - float(z_low)
    if width <= 0.0:
        return 0.0
    if not float(f1) > 0.0:
        raise ValueError(f"growth rate f1 must be positive, got {f1!r}")
    return -2.0 * (1.0 + float(redshift)) / (float(f1) * width)


def style_and_rate(params, redshift: float, f1: float, low, high) -> np.ndarray:
    """The 12-entry conditioning of a derivative-velocity network: the style
    (:func:`~emulator.model.style.normalise_style`) and its derivative with respect to ``ln D1`` (only the
    redshift entry moves: :func:`style_rate`)."""
    style = normalise_style(params, redshift, low, high)
    rate = np.zeros_like(style)
    rate[5] = style_rate(redshift, f1, low[5], high[5])
    return np.concatenate([style, rate])


class DerivativeVelocityNet(nn.Module):
    """A displacement-only :class:`StyledUNet` whose velocity residual is its derivative along the base's time.

    Parameters
    ----------
    net : StyledUNet
        The network, with ``out_channels == in_channels`` (3: the displacement residual in cell units).

    Notes
    -----
    ``forward(x, style)`` takes ``x = (psi_base, v_base)`` stacked on the channel axis, both in cell units
    (velocity in displacement units), and ``style = (s, ds/dln D1)``, and returns ``(R, dR/dln D1)``: the same
    ``(B, 6, c, c, c)`` contract as a network with a velocity head.
    """

    def __init__(self, net: StyledUNet) -> None:
        super().__init__()
        if net.out_channels != net.in_channels:
            raise ValueError(f"a derivative-velocity network outputs the displacement residual only: out_channels "
                             f"must equal in_channels ({net.in_channels}), got {net.out_channels}")
        self.net = net
        self.in_channels = 2 * net.in_channels
        self.out_channels = 2 * net.out_channels
        self.style_dim = 2 * net.style_dim
        self.halo, self.size_multiple = net.halo, net.size_multiple
        self.periodic_shift = net.periodic_shift
        self.config = net.config

    def output_size(self, input_size: int) -> int:
        """Output size for an input crop of ``input_size`` cells per side (that of the wrapped network)."""
        return self.net.output_size(input_size)

    def forward(self, x: torch.Tensor, style: torch.Tensor, *, periodic: bool = False) -> torch.Tensor:
        """``(R, dR/dln D1)`` ``(B, 6, c, c, c)`` from ``(psi_base, v_base)`` ``(B, 6, ...)`` and ``(s, ds/dln D1)``
        ``(B, 12)`` (shapes and ``periodic`` as in :meth:`StyledUNet.forward`)."""
        k, s = self.net.in_channels, self.net.style_dim
        if x.ndim != 5 or x.shape[1] != 2 * k:
            raise ValueError(f"x must have shape (B, {2 * k}, N, N, N): displacement and velocity, "
                             f"got {tuple(x.shape)}")
        if style.ndim != 2 or style.shape[1] != 2 * s:
            raise ValueError(f"style must have shape (B, {2 * s}): style and its rate, got {tuple(style.shape)}")

        def residual(disp: torch.Tensor, st: torch.Tensor) -> torch.Tensor:
            return self.net(disp, st, periodic=periodic)

        out, rate = torch.func.jvp(residual, (x[:, :k], style[:, :s]), (x[:, k:], style[:, s:]))
        return torch.cat([out, rate], dim=1)


def build_network(network: dict, velocity: str = "head") -> nn.Module:
    """The network of a model or training run: a :class:`StyledUNet` from its keyword arguments ``network``,
    wrapped in :class:`DerivativeVelocityNet` when ``velocity == "derivative"``."""
    net = StyledUNet(**network)
    return DerivativeVelocityNet(net) if check_velocity_mode(velocity) == "derivative" else net
