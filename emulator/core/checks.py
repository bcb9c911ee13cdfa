"""Validation of scalar inputs shared by the whole project (pure Python: importing it loads no array library).

Each check returns the value converted to its type, or raises a one-line ``ValueError`` naming the parameter and
its unit.
"""

from __future__ import annotations

import math

__all__ = ["check_positive", "check_box_size"]


def check_positive(value: float, name: str, unit: str) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` naming ``name`` and its ``unit`` unless it is a
    positive, finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number ({unit}), got {value!r}") from None
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be positive and finite ({unit}), got {value!r}")
    return v


def check_box_size(box_size: float, name: str = "box_size") -> float:
    """Return ``box_size`` as a float, or raise ``ValueError`` unless it is positive and finite (Mpc/h)."""
    return check_positive(box_size, name, "Mpc/h")
