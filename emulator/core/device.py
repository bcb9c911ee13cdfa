"""Which torch device to compute on: one checked answer for every command (``cpu``, ``cuda[:index]``, ``auto``)."""

from __future__ import annotations

import torch

__all__ = ["check_device", "resolve_device"]


def check_device(device: str | torch.device) -> torch.device:
    """The torch device to compute on: ``cpu`` or ``cuda[:index]``, checked to exist in this torch build.

    Raises
    ------
    ValueError
        One line naming the device: not a device string, a type other than cpu/cuda, CUDA asked of a torch
        without CUDA support or on a machine without a visible GPU, or a GPU index beyond those visible.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:<index>'), got {device!r}") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device {device!r} is not supported: use 'cpu' or 'cuda' (or 'cuda:<index>')")
    if not torch.cuda.is_available():
        why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ValueError(f"device {device!r}: {why} (torch {torch.__version__}); use device 'cpu'")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    return dev


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or ``None``): CUDA when a GPU is visible, else the CPU; anything else as :func:`check_device`."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(device)
