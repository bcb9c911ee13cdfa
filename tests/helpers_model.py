"""A small random-weight model file in the portable format, for tests that need a model but not its accuracy."""

from __future__ import annotations

from pathlib import Path

import torch

from emulator.core.cosmology import Cosmology
from emulator.model import StyledUNet


def write_small_model(path: Path, cosmo: Cosmology, *, cell_size: float = 4.0,
                      out_init_scale: float | None = 1e-3) -> Path:
    """Write a 2LPT-base model (seeded random weights, hull 0.9-1.1 x ``cosmo``, z in [0, 1]) to ``path``.
    ``out_init_scale`` None: the network's default output scale."""
    torch.manual_seed(0)
    extra = {} if out_init_scale is None else {"out_init_scale": out_init_scale}
    net = StyledUNet(in_channels=3, out_channels=6, style_dim=6, base_channels=4, depth=1, blocks=1, style_hidden=8,
                     **extra)
    torch.save({"format": "cosmo-emulator-model", "format_version": 1, "network": net.config,
                "state_dict": net.state_dict(), "style_low": [float(x) for x in cosmo.to_array() * 0.9] + [0.0],
                "style_high": [float(x) for x in cosmo.to_array() * 1.1] + [1.0], "cell_size": float(cell_size),
                "metadata": {"name": "test-model"}}, path)
    return path
