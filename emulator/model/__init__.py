"""The emulator network (pure torch): a style-conditioned 3D U-Net with valid convolutions, and box inference.

See docs/architecture.md, "Emulator model conventions".
"""

from .layers import ModulatedConv3d, StyledResBlock, StyleMapping, center_crop, make_activation
from .tiling import periodic_crop, predict_box, tile_origins
from .unet import StyledUNet

__all__ = [
    "StyledUNet",
    "predict_box",
    "periodic_crop",
    "tile_origins",
    "ModulatedConv3d",
    "StyledResBlock",
    "StyleMapping",
    "center_crop",
    "make_activation",
]
