"""Sky footprints: RA/Dec rectangles in degrees, their sky fraction and membership of points.

A footprint is ``None`` (full sky) or an RA/Dec rectangle ``{"ra": (ra_min, ra_max), "dec": (dec_min,
dec_max)}`` in degrees; ``ra_min > ra_max`` wraps through RA = 0 (e.g. ``(350, 10)`` is 20 degrees wide). Its
sky fraction is ``Delta RA [rad] (sin dec_max - sin dec_min) / (4 pi)``. RA intervals are half-open
``[lo, hi)``, Dec intervals closed. Angles are in degrees throughout; nothing here depends on distances.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["check_footprint", "footprint_fraction", "in_footprint", "wrap360", "ra_width"]


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (degrees), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return lo, hi


def check_footprint(footprint: Mapping[str, Any] | None) -> dict[str, tuple[float, float]] | None:
    """Validate a footprint; return ``None`` (full sky) or ``{"ra": (lo, hi), "dec": (lo, hi)}`` normalised.

    RA limits are reduced to ``[0, 360)``, except that a width of 360 degrees or more gives ``(0, 360)``.
    """
    if footprint is None:
        return None
    if not isinstance(footprint, Mapping) or set(footprint) != {"ra", "dec"}:
        raise ValueError(f"footprint must be None or a dict with keys 'ra' and 'dec' (degrees), got {footprint!r}")
    ra0, ra1 = _pair(footprint["ra"], "footprint['ra']")
    d0, d1 = _pair(footprint["dec"], "footprint['dec']")
    if not -90.0 <= d0 < d1 <= 90.0:
        raise ValueError(f"footprint['dec'] must satisfy -90 <= dec_min < dec_max <= 90, got {(d0, d1)}")
    if ra0 == ra1:
        raise ValueError(f"footprint['ra'] must have a non-zero width, got {(ra0, ra1)}")
    if ra1 - ra0 >= 360.0:
        return {"ra": (0.0, 360.0), "dec": (d0, d1)}
    return {"ra": (ra0 % 360.0, ra1 % 360.0 if ra1 % 360.0 != 0.0 else 360.0), "dec": (d0, d1)}


def wrap360(ra: np.ndarray) -> np.ndarray:
    """Reduce angles to ``[0, 360)`` degrees (a tiny negative angle must not round up to 360)."""
    ra = np.remainder(ra, 360.0)
    return np.where(ra >= 360.0, ra - 360.0, ra)


def ra_width(fp: dict[str, tuple[float, float]]) -> float:
    """RA width in degrees of a footprint normalised by :func:`check_footprint` (wrapping through RA = 0)."""
    ra0, ra1 = fp["ra"]
    return ra1 - ra0 if ra1 > ra0 else ra1 + 360.0 - ra0


def footprint_fraction(footprint: Mapping[str, Any] | None) -> float:
    """Sky fraction of a footprint: ``Delta RA [rad] (sin dec_max - sin dec_min) / (4 pi)`` (1 for ``None``)."""
    fp = check_footprint(footprint)
    if fp is None:
        return 1.0
    d0, d1 = np.radians(fp["dec"])
    return math.radians(ra_width(fp)) * (math.sin(d1) - math.sin(d0)) / (4.0 * math.pi)


def in_footprint(ra: Any, dec: Any, footprint: Mapping[str, Any] | None) -> np.ndarray:
    """Boolean mask of points (degrees) inside the footprint; RA intervals are half-open ``[lo, hi)``."""
    fp = check_footprint(footprint)
    ra = wrap360(np.asarray(ra, dtype=np.float64))
    dec = np.asarray(dec, dtype=np.float64)
    if fp is None:
        return np.ones(np.broadcast(ra, dec).shape, dtype=bool)
    ra0, ra1 = fp["ra"]
    ok_ra = (ra >= ra0) & (ra < ra1) if ra1 > ra0 else (ra >= ra0) | (ra < ra1)
    return ok_ra & (dec >= fp["dec"][0]) & (dec <= fp["dec"][1])
