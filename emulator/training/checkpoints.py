"""Reading Lightning checkpoints with one-line errors for truncated, corrupt or foreign files.

A checkpoint written by ``torch.save`` is a zip archive whose members carry CRC-32 checksums. ``torch.load`` does
not verify them: a checkpoint with damaged tensor bytes loads silently with wrong weights. :func:`check_checkpoint`
tests the archive (a truncated file has no central directory; a damaged one fails its checksums) before anything is
unpickled, then loads it memory-mapped (``weights_only=True``), so tensors are not read into memory.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import torch

__all__ = ["check_checkpoint", "read_checkpoint"]


def read_checkpoint(path: str | Path, parameter: str) -> dict:
    """Check and load a Lightning checkpoint (memory-mapped, ``weights_only=True``).

    Parameters
    ----------
    path : str or Path
        The ``.ckpt`` file.
    parameter : str
        The option that named it (``--ckpt``, ``ckpt_path``), quoted in errors.

    Returns
    -------
    dict
        The checkpoint; tensors are memory-mapped from the file.

    Raises
    ------
    FileNotFoundError, ValueError
        One line naming the file and ``parameter``.
    """
    path = Path(path)
    where = f"{path} ({parameter})"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {where} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"checkpoint {where} is truncated or not a PyTorch checkpoint (no zip directory)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ValueError(f"checkpoint {where} is damaged ({type(exc).__name__}: {exc})") from None
    if bad is not None:
        raise ValueError(f"checkpoint {where} is damaged (checksum mismatch in member {bad})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        # torch's message for a pickle of objects advises weights_only=False (running it): do not pass that on
        reason = str(exc).splitlines()[0] if isinstance(exc, RuntimeError) and str(exc) else type(exc).__name__
        raise ValueError(f"checkpoint {where} cannot be read weights-only ({reason})") from None
    if not isinstance(ckpt, dict) or not {"state_dict", "global_step"} <= set(ckpt):
        raise ValueError(f"{where} is not a Lightning training checkpoint (no state_dict / global_step)")
    return ckpt


def check_checkpoint(path: str | Path, parameter: str) -> None:
    """Raise a one-line error if ``path`` is not a readable Lightning checkpoint (see :func:`read_checkpoint`)."""
    read_checkpoint(path, parameter)
