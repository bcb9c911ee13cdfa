"""The catalogue boundary: array inputs (numpy, or torch tensors on any device) become validated numpy arrays.

Catalogue code (FoF, HOD, NFW profiles, cut-sky, catalogue files) works on numpy. It still accepts torch tensors,
and this module is the one place that converts them (``.detach().cpu().numpy()``, so a CUDA tensor or one that
requires grad is fine); torch itself is never imported here.

Units are the project's: positions in Mpc/h, velocities in km/s, masses in Msun/h. The helpers do not convert
units; they only name them in their error messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["from_torch", "as_array", "as_vectors", "as_positive"]


def from_torch(x: Any) -> Any:
    """A torch tensor as a numpy array (detached, on the CPU); any other object unchanged."""
    if hasattr(x, "detach"):  # torch tensor, on any device
        return x.detach().cpu().numpy()
    return x


def as_array(x: Any, dtype: Any = None) -> np.ndarray:
    """``np.asarray(x, dtype)`` of a numpy array, array-like or torch tensor (no validation)."""
    return np.asarray(from_torch(x), dtype=dtype)


def as_vectors(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """A finite ``(N, 3)`` array, float64 by default (positions in Mpc/h, velocities in km/s, ...).

    ``dtype=None`` keeps a float32 or float64 input as it is (no copy of a large array that is only read);
    anything else becomes float64.

    Raises
    ------
    ValueError
        Naming ``name``, if ``x`` is not real, not of shape ``(N, 3)`` or holds NaN or inf.
    """
    x = from_torch(x)
    if dtype is None:
        dtype = x.dtype if getattr(x, "dtype", None) in (np.float32, np.float64) else np.float64
    try:
        out = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real (N, 3) array, got {type(x).__name__}") from None
    if out.ndim != 2 or out.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return out


def as_positive(x: Any, name: str, unit: str) -> np.ndarray:
    """A float64 array of positive, finite values (e.g. masses in Msun/h), any shape.

    Raises
    ------
    ValueError
        ``"<name> must be positive and finite (<unit>)"`` if a value is zero, negative, NaN or inf.
    """
    out = as_array(x, np.float64)
    if not np.isfinite(out).all() or (out <= 0).any():
        raise ValueError(f"{name} must be positive and finite ({unit})")
    return out
