"""The emulator network (pure torch): a style-conditioned 3D U-Net with valid convolutions, and box inference.

See docs/architecture.md, "Emulator model conventions". The names below are loaded on first use, so that
torch-free submodules (:mod:`emulator.model.header`, read by ``emulator info``) do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "StyledUNet",
    "predict_box",
    "periodic_crop",
    "periodic_forward",
    "tile_origins",
    "ModulatedConv3d",
    "StyledResBlock",
    "StyleMapping",
    "center_crop",
    "make_activation",
    "DerivativeVelocityNet",
    "build_network",
]

_HOME = {
    "ModulatedConv3d": "layers",
    "StyledResBlock": "layers",
    "StyleMapping": "layers",
    "center_crop": "layers",
    "make_activation": "layers",
    "periodic_crop": "tiling",
    "periodic_forward": "tiling",
    "predict_box": "tiling",
    "tile_origins": "tiling",
    "StyledUNet": "unet",
    "DerivativeVelocityNet": "velocity_derivative",
    "build_network": "velocity_derivative",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
