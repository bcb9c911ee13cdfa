"""Shared by the mesh and window tests: the window names and seeded torch generators."""

from __future__ import annotations

import torch

WINDOWS = ["ngp", "cic", "tsc"]


def gen(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)
