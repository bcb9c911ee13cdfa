"""Survey footprints with completeness: full sky, an RA/Dec rectangle, a HEALPix map, or RA/Dec polygons.

A :class:`Footprint` gives every sky position (RA, DEC in degrees) a completeness in ``[0, 1]``; an object is kept
with that probability (:mod:`emulator.mocks.survey`), and randoms are drawn with density proportional to it
(:meth:`Footprint.sample`), so data and randoms share the selection exactly.

Specifications (:func:`load_footprint`)
----------------------------------------
* ``None``: full sky, completeness 1.
* ``{"ra": (lo, hi), "dec": (lo, hi)}``: an RA/Dec rectangle (:mod:`emulator.mocks.footprint`), completeness 1
  inside.
* ``{"healpix": path or array, "nest": False}``: a HEALPix map at any ``nside`` (read with ``healpy.read_map``;
  the FITS header's ``ORDERING`` is honoured, an array is RING unless ``nest``): binary (0/1) or fractional
  completeness; ``UNSEEN`` and NaN pixels count as 0; values outside ``[0, 1]`` are refused.
* ``{"polygons": [[[ra, dec], ...], ...], "nside": 512}``: spherical polygons (great-circle edges, convex, as
  ``healpy.query_polygon``) rendered to a binary HEALPix map at ``nside`` (pixel centres inside): the area is
  that of the pixelised footprint, shared exactly by data and randoms.

HEALPix angles: ``theta = 90 deg - DEC``, ``phi = RA`` (``healpy.ang2pix(..., lonlat=True)``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .footprint import check_footprint, footprint_fraction, in_footprint, ra_width, wrap360

__all__ = ["Footprint", "load_footprint"]


class Footprint:
    """Completeness on the sky (see the module docstring).

    Attributes
    ----------
    kind : {"full", "rect", "healpix"}
    source : str
        What it was made from (``full-sky``, the rectangle, the map file or ``polygons``), for headers.
    rect : dict or None
        The rectangle, for the fast geometric pre-cut of :func:`~emulator.mocks.cutsky.box_to_sky`.
    """

    def __init__(self, kind: str, source: str, rect: dict | None = None, hmap: np.ndarray | None = None,
                 nest: bool = False) -> None:
        self.kind, self.source, self.rect, self.nest = kind, source, rect, nest
        self.map = hmap
        self.nside = None if hmap is None else int(math.isqrt(hmap.size // 12))

    # -- geometry ------------------------------------------------------------------------------------------------
    def completeness(self, ra: Any, dec: Any) -> np.ndarray:
        """Completeness in ``[0, 1]`` at RA, DEC (degrees)."""
        ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
        if self.kind == "full":
            return np.ones(np.broadcast(ra, dec).shape)
        if self.kind == "rect":
            return in_footprint(ra, dec, self.rect).astype(np.float64)
        hp = _healpy()

        return self.map[hp.ang2pix(self.nside, ra, dec, nest=self.nest, lonlat=True)]

    @property
    def sky_fraction(self) -> float:
        """Fraction of the sphere where the completeness is positive (geometric area / 4 pi)."""
        if self.kind in ("full", "rect"):
            return footprint_fraction(self.rect)
        return float(np.count_nonzero(self.map > 0) / self.map.size)

    @property
    def effective_fraction(self) -> float:
        """Completeness-weighted sky fraction ``sum(completeness) / N_pix`` (equal to ``sky_fraction`` if binary)."""
        if self.kind in ("full", "rect"):
            return self.sky_fraction
        return float(self.map.sum() / self.map.size)

    @property
    def area_deg2(self) -> float:
        """Geometric area in square degrees."""
        return self.sky_fraction * 4.0 * math.pi * (180.0 / math.pi) ** 2

    def describe(self) -> str:
        """One line for headers: kind, source, area."""
        extra = f" nside={self.nside} {'NEST' if self.nest else 'RING'}" if self.map is not None else ""
        return f"{self.kind}: {self.source}{extra}; area {self.area_deg2:.6g} deg2"

    # -- sampling ------------------------------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points (RA, DEC degrees) with density proportional to the completeness.

        Full sky and rectangles: uniform in RA and sin(DEC) (RA, then sin(DEC) drawn). Maps: a pixel drawn with
        probability proportional to its completeness, then a point uniform in that pixel (uniform in the cap
        of radius ``max_pixrad`` around its centre, rejected until it falls in the pixel).
        """
        if self.kind in ("full", "rect"):
            fp = self.rect
            ra0, width = (0.0, 360.0) if fp is None else (fp["ra"][0], ra_width(fp))
            d0, d1 = (-90.0, 90.0) if fp is None else fp["dec"]
            ra = wrap360(ra0 + width * rng.random(n))
            s0, s1 = math.sin(math.radians(d0)), math.sin(math.radians(d1))
            return ra, np.degrees(np.arcsin(np.clip(s0 + (s1 - s0) * rng.random(n), -1.0, 1.0)))
        hp = _healpy()

        weights = self.map / self.map.sum()
        pix = rng.choice(self.map.size, size=n, p=weights)
        ra, dec = np.empty(n), np.empty(n)
        cap = hp.max_pixrad(self.nside)
        todo = np.arange(n)
        while todo.size:
            centre = np.stack(hp.pix2vec(self.nside, pix[todo], nest=self.nest), axis=-1)
            cos_t = 1.0 - (1.0 - math.cos(cap)) * rng.random(todo.size)
            phi = 2.0 * math.pi * rng.random(todo.size)
            sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
            # orthonormal basis (e1, e2, centre) around each pixel centre
            ref = np.where(np.abs(centre[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
            e1 = np.cross(ref, centre)
            e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
            e2 = np.cross(centre, e1)
            vec = centre * cos_t[:, None] + (e1 * np.cos(phi)[:, None] + e2 * np.sin(phi)[:, None]) * sin_t[:, None]
            ok = hp.vec2pix(self.nside, vec[:, 0], vec[:, 1], vec[:, 2], nest=self.nest) == pix[todo]
            lon, lat = hp.vec2ang(vec[ok], lonlat=True)
            ra[todo[ok]], dec[todo[ok]] = wrap360(lon), lat
            todo = todo[~ok]
        return ra, dec


def _healpy() -> Any:
    """healpy, or a one-line error saying how to install it (HEALPix footprints need it)."""
    try:
        import healpy
    except ImportError:
        raise ImportError("HEALPix footprints need healpy: pip install healpy (a dependency of cosmo-emulator; "
                          "re-run bash scripts/setup.sh)") from None
    return healpy


def _check_map(values: np.ndarray, where: str) -> np.ndarray:
    hp = _healpy()

    values = np.asarray(values, dtype=np.float64).ravel()
    if not hp.isnpixok(values.size):
        raise ValueError(f"footprint map {where}: {values.size} pixels is not a HEALPix map (12 nside^2)")
    values = np.where(np.isnan(values) | (values == hp.UNSEEN), 0.0, values)
    if values.min() < 0.0 or values.max() > 1.0:
        raise ValueError(f"footprint map {where}: completeness must lie in [0, 1], got values in "
                         f"[{values.min():g}, {values.max():g}]")
    if not values.any():
        raise ValueError(f"footprint map {where} is empty (completeness 0 everywhere)")
    return values


def _read_map(path: Any) -> tuple[np.ndarray, bool]:
    hp = _healpy()
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"footprint map file {str(path)!r} does not exist")
    try:
        with fits.open(path) as hdul:
            ordering = str(hdul[1].header.get("ORDERING", "RING")).upper()
        values = hp.read_map(str(path), dtype=np.float64, nest=ordering.startswith("NEST"))
    except (OSError, IndexError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"footprint map file {str(path)!r} is not a readable HEALPix FITS map: {exc}") from None
    return _check_map(values, repr(str(path))), ordering.startswith("NEST")


def _polygons(polys: Any, nside: Any) -> np.ndarray:
    hp = _healpy()

    if isinstance(nside, bool) or not isinstance(nside, (int, np.integer)) or not hp.isnsideok(int(nside)):
        raise ValueError(f"footprint nside must be a power of 2, got {nside!r}")
    out = np.zeros(hp.nside2npix(int(nside)))
    try:
        polys = [np.asarray(p, dtype=np.float64) for p in polys]
    except (TypeError, ValueError):
        raise ValueError("footprint polygons must be lists of [ra, dec] vertices (degrees)") from None
    if not polys:
        raise ValueError("footprint polygons must not be empty")
    for i, p in enumerate(polys):
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3 or not np.all(np.isfinite(p)):
            raise ValueError(f"footprint polygon {i} must have >= 3 finite [ra, dec] vertices (degrees)")
        vec = np.stack(hp.ang2vec(p[:, 0], p[:, 1], lonlat=True), axis=0).reshape(-1, 3)
        try:
            out[hp.query_polygon(int(nside), vec, inclusive=False)] = 1.0
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"footprint polygon {i} is not a convex spherical polygon: {exc}") from None
    return _check_map(out, "from polygons")


def load_footprint(spec: Mapping[str, Any] | Footprint | None) -> Footprint:
    """A :class:`Footprint` from a specification (see the module docstring); one-line ``ValueError`` if bad."""
    if isinstance(spec, Footprint):
        return spec
    if spec is None:
        return Footprint("full", "full-sky")
    if isinstance(spec, Mapping) and "healpix" in spec:
        src = spec["healpix"]
        if isinstance(src, (str, Path)):
            hmap, nest = _read_map(src)
            return Footprint("healpix", str(src), hmap=hmap, nest=nest)
        return Footprint("healpix", "array", hmap=_check_map(src, "array"), nest=bool(spec.get("nest", False)))
    if isinstance(spec, Mapping) and "polygons" in spec:
        nside = spec.get("nside", 512)
        return Footprint("healpix", f"{len(spec['polygons'])} polygons", hmap=_polygons(spec["polygons"], nside))
    rect = check_footprint(spec)
    return Footprint("rect", f"RA {list(rect['ra'])} DEC {list(rect['dec'])}", rect=rect)
