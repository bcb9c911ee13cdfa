"""Cut-sky catalogues from a periodic box: box replication, sky coordinates, redshifts, footprints and randoms.

Geometry
--------
The box ``[0, L)^3`` is tiled periodically (replica ``n = (i, j, k)`` holds ``x + n L``) and an observer sits at
``observer`` (box coordinates, Mpc/h; any point, default the centre). Every replica whose cube meets the shell
``chi(z_min) <= |r| <= chi(z_max)`` around the observer is used, so each (particle, replica) pair appears at
most once and the shell is covered exactly once. Sky axes are the box axes: ``RA = atan2(r_y, r_x)`` in
``[0, 360)`` degrees, ``DEC = arcsin(r_z / |r|)``; the box ``+x`` axis is ``RA = DEC = 0`` and ``+z`` the north
pole. The box must be larger than the correlation lengths of interest, else replicas repeat structure.

Redshifts
---------
The cosmological redshift ``Z_COSMO`` is the ``z`` whose comoving distance ``chi(z)`` (astropy, converted from
Mpc to Mpc/h by multiplying by ``h``) equals ``|r|``; both directions use cubic splines on a fine table
(:class:`DistanceRedshift`). With RSD the observed redshift is ``1 + Z = (1 + Z_COSMO)(1 + v_los / c)``, with
``v_los = v . r / |r|`` the radial peculiar velocity in km/s. The redshift cut is on the observed ``Z``, in
``[z_min, z_max)``.

Snapshot approximation
----------------------
The whole box is one snapshot at a single redshift: clustering and velocities do not evolve across the shell
(no light-cone interpolation between snapshots). This is the standard construction of snapshot-based cut-sky
mocks; it is recorded in the returned ``attrs`` (``lightcone = "single-snapshot (no evolution)"``).

Footprints
----------
``None`` (full sky) or an RA/Dec rectangle ``{"ra": (ra_min, ra_max), "dec": (dec_min, dec_max)}`` in degrees;
``ra_min > ra_max`` wraps through RA = 0 (e.g. ``(350, 10)`` is 20 degrees wide). Its sky fraction is
``Delta RA [rad] (sin dec_max - sin dec_min) / (4 pi)``.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
from scipy.interpolate import CubicSpline

from ..core.cosmology import Cosmology
from ..core.fourier import check_box_size
from .io import Catalog

__all__ = [
    "C_KMS",
    "DistanceRedshift",
    "check_footprint",
    "footprint_fraction",
    "in_footprint",
    "replicas",
    "box_to_sky",
    "random_catalog",
]

C_KMS = 299792.458  #: speed of light, km/s
LIGHTCONE_NOTE = "single-snapshot (no evolution)"


# ---------------------------------------------------------------------------------------------------------------
# distance <-> redshift
# ---------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _table(key: tuple[float, ...], z_top: float) -> tuple[CubicSpline, CubicSpline]:
    cosmo = Cosmology.from_array(key).to_astropy()
    npts = max(4001, int(math.ceil(z_top / 5e-4)) + 1)
    z = np.linspace(0.0, z_top, npts)
    chi = cosmo.comoving_distance(z).to_value("Mpc") * key[2]  # Mpc -> Mpc/h
    return CubicSpline(z, chi), CubicSpline(chi, z)


class DistanceRedshift:
    """Comoving distance ``chi(z)`` (Mpc/h) and its inverse by cubic-spline interpolation of an astropy table.

    Parameters
    ----------
    cosmology : Cosmology
        Flat ΛCDM background (astropy ``FlatLambdaCDM`` via :meth:`Cosmology.to_astropy`).
    z_max : float
        Largest redshift needed; the table (step ``<= 5e-4`` in ``z``) extends 10% beyond it. Relative accuracy
        against astropy is better than ``1e-9``.
    """

    def __init__(self, cosmology: Cosmology, z_max: float = 3.0) -> None:
        if not isinstance(cosmology, Cosmology):
            raise ValueError(f"cosmology must be an emulator Cosmology, got {type(cosmology).__name__}")
        if not (math.isfinite(z_max) and 0 < z_max <= 1100):
            raise ValueError(f"z_max must be in (0, 1100], got {z_max!r}")
        top = float(f"{1.1 * z_max + 0.01:.3g}")  # rounded so nearby requests share a cached table
        self.cosmology = cosmology
        self._dist, self._red = _table(cosmology.key(), top)
        self.z_max = top
        self.chi_max = float(self._dist(top))

    def distance(self, z: Any) -> np.ndarray:
        """Comoving distance in Mpc/h for redshifts ``0 <= z <= z_max``."""
        z = np.asarray(z, dtype=np.float64)
        if z.size and (not np.all(np.isfinite(z)) or z.min() < 0 or z.max() > self.z_max):
            raise ValueError(f"z must lie in [0, {self.z_max}] for this distance table")
        return self._dist(z)

    def redshift(self, chi: Any) -> np.ndarray:
        """Cosmological redshift for comoving distances ``0 <= chi <= chi(z_max)`` (Mpc/h)."""
        chi = np.asarray(chi, dtype=np.float64)
        if chi.size and (not np.all(np.isfinite(chi)) or chi.min() < 0 or chi.max() > self.chi_max):
            raise ValueError(f"distance must lie in [0, {self.chi_max:.6g}] Mpc/h for this table")
        return np.maximum(self._red(chi), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# footprints
# ---------------------------------------------------------------------------------------------------------------
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


def _wrap360(ra: np.ndarray) -> np.ndarray:
    """Reduce angles to ``[0, 360)`` degrees (a tiny negative angle must not round up to 360)."""
    ra = np.remainder(ra, 360.0)
    return np.where(ra >= 360.0, ra - 360.0, ra)


def _ra_width(fp: dict[str, tuple[float, float]]) -> float:
    ra0, ra1 = fp["ra"]
    return ra1 - ra0 if ra1 > ra0 else ra1 + 360.0 - ra0


def footprint_fraction(footprint: Mapping[str, Any] | None) -> float:
    """Sky fraction of a footprint: ``Delta RA [rad] (sin dec_max - sin dec_min) / (4 pi)`` (1 for ``None``)."""
    fp = check_footprint(footprint)
    if fp is None:
        return 1.0
    d0, d1 = np.radians(fp["dec"])
    return math.radians(_ra_width(fp)) * (math.sin(d1) - math.sin(d0)) / (4.0 * math.pi)


def in_footprint(ra: Any, dec: Any, footprint: Mapping[str, Any] | None) -> np.ndarray:
    """Boolean mask of points (degrees) inside the footprint; RA intervals are half-open ``[lo, hi)``."""
    fp = check_footprint(footprint)
    ra = _wrap360(np.asarray(ra, dtype=np.float64))
    dec = np.asarray(dec, dtype=np.float64)
    if fp is None:
        return np.ones(np.broadcast(ra, dec).shape, dtype=bool)
    ra0, ra1 = fp["ra"]
    ok_ra = (ra >= ra0) & (ra < ra1) if ra1 > ra0 else (ra >= ra0) | (ra < ra1)
    return ok_ra & (dec >= fp["dec"][0]) & (dec <= fp["dec"][1])


# ---------------------------------------------------------------------------------------------------------------
# box to sky
# ---------------------------------------------------------------------------------------------------------------
def _check_range(redshift_range: Any) -> tuple[float, float]:
    try:
        z0, z1 = (float(v) for v in redshift_range)
    except (TypeError, ValueError):
        raise ValueError(f"redshift_range must be a pair (z_min, z_max), got {redshift_range!r}") from None
    if not (math.isfinite(z0) and math.isfinite(z1) and 0.0 <= z0 < z1):
        raise ValueError(f"redshift_range must satisfy 0 <= z_min < z_max (finite), got {redshift_range!r}")
    return z0, z1


def replicas(box_size: float, observer: Any, chi_min: float, chi_max: float) -> np.ndarray:
    """Integer offsets ``(M, 3)`` of the box replicas whose cube meets the shell ``chi_min <= |r| <= chi_max``.

    Replica ``n`` covers ``[n L, (n + 1) L)^3``; distances are from ``observer`` (Mpc/h).
    """
    box = check_box_size(box_size)
    obs = np.asarray(observer, dtype=np.float64)
    lo = np.floor((obs - chi_max) / box).astype(int)
    hi = np.floor((obs + chi_max) / box).astype(int)
    out = []
    for n in itertools.product(*(range(a, b + 1) for a, b in zip(lo, hi))):
        c0 = np.asarray(n) * box - obs  # cube corner relative to the observer
        c1 = c0 + box
        near = np.linalg.norm(np.maximum(np.maximum(c0, -c1), 0.0))
        far = np.linalg.norm(np.maximum(np.abs(c0), np.abs(c1)))
        if near <= chi_max and far >= chi_min:
            out.append(n)
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def _as_numpy(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


_SKY_COLUMNS = ("RA", "DEC", "Z", "Z_COSMO", "DISTANCE", "VLOS", "INDEX", "REPLICA")
_CHUNK = 1 << 20


def _place(pos, vel, start, offset, n, chi0, chi1, z0, z1, fp, table, parts) -> None:
    """Append to ``parts`` the objects of one replica (offset relative to the observer) inside shell and footprint."""
    r = pos + offset
    d = np.sqrt(np.einsum("ij,ij->i", r, r))
    idx = np.flatnonzero((d >= chi0) & (d <= chi1))
    if idx.size == 0:
        return
    r, d = r[idx], d[idx]
    safe = np.where(d > 0, d, 1.0)  # an object exactly at the observer gets RA = DEC = 0 and no RSD
    ra = _wrap360(np.degrees(np.arctan2(r[:, 1], r[:, 0])))
    dec = np.degrees(np.arcsin(np.clip(r[:, 2] / safe, -1.0, 1.0)))
    keep = in_footprint(ra, dec, fp)
    idx, r, d, safe, ra, dec = idx[keep], r[keep], d[keep], safe[keep], ra[keep], dec[keep]
    zc = table.redshift(d)
    if vel is not None:
        vlos = np.einsum("ij,ij->i", vel[idx], r) / safe
        zobs = (1.0 + zc) * (1.0 + vlos / C_KMS) - 1.0
    else:
        vlos = np.zeros_like(d)
        zobs = zc
    sel = (zobs >= z0) & (zobs < z1)
    values = (ra, dec, zobs, zc, d, vlos, idx + start, np.broadcast_to(n, (len(idx), 3)))
    for key, val in zip(_SKY_COLUMNS, values):
        parts[key].append(val[sel])


def box_to_sky(
    position: Any,
    velocity: Any,
    box_size: float,
    cosmology: Cosmology,
    redshift_range: tuple[float, float],
    observer: Any = None,
    footprint: Mapping[str, Any] | None = None,
    rsd: bool = True,
    snapshot_redshift: float | None = None,
) -> Catalog:
    """Place a periodic box around an observer and return the objects in a redshift shell and footprint.

    Parameters
    ----------
    position : array-like (numpy or torch)
        Comoving positions ``(N, 3)``, Mpc/h (wrapped into ``[0, L)``).
    velocity : array-like or None
        Peculiar velocities ``(N, 3)``, km/s; required when ``rsd`` is true.
    box_size : float
        Box side ``L``, Mpc/h.
    cosmology : Cosmology
        Background cosmology for ``chi(z)``.
    redshift_range : (float, float)
        Observed-redshift cut ``[z_min, z_max)``.
    observer : array-like (3,), optional
        Observer position in box coordinates, Mpc/h; default ``(L/2, L/2, L/2)``.
    footprint : dict or None
        RA/Dec rectangle (see module docstring) or ``None`` for the full sky.
    rsd : bool
        Add the radial peculiar velocity to the redshift: ``1 + Z = (1 + Z_COSMO)(1 + v_los / c)``.
    snapshot_redshift : float, optional
        Redshift of the snapshot, recorded in ``attrs`` only.

    Returns
    -------
    Catalog
        Columns ``RA``, ``DEC`` (degrees), ``Z`` (observed), ``Z_COSMO``, ``DISTANCE`` (real-space comoving
        distance, Mpc/h), ``VLOS`` (km/s; zero without RSD), ``INDEX`` (int64 row of the source particle) and
        ``REPLICA`` (int64 ``(M, 3)`` replica offset), plus ``attrs`` describing the construction.
    """
    box = check_box_size(box_size)
    pos = np.remainder(_as_numpy(position, "position"), box)
    vel = None
    if rsd:
        if velocity is None:
            raise ValueError("velocity is required when rsd=True")
        vel = _as_numpy(velocity, "velocity")
        if vel.shape != pos.shape:
            raise ValueError(f"velocity must have the shape of position {pos.shape}, got {vel.shape}")
    z0, z1 = _check_range(redshift_range)
    obs = np.full(3, box / 2.0) if observer is None else np.asarray(observer, dtype=np.float64)
    if obs.shape != (3,) or not np.all(np.isfinite(obs)):
        raise ValueError(f"observer must be a finite 3-vector in Mpc/h, got {observer!r}")
    fp = check_footprint(footprint)

    # cosmological-redshift window that can scatter into [z0, z1) given the largest |v|
    beta = float(np.sqrt((vel**2).sum(axis=1)).max()) / C_KMS if (rsd and len(pos)) else 0.0
    if beta >= 0.5:
        raise ValueError(f"velocity magnitudes up to {beta * C_KMS:.4g} km/s are unphysical for this mapping")
    zc0 = max((1.0 + z0) / (1.0 + beta) - 1.0, 0.0)
    zc1 = (1.0 + z1) / (1.0 - beta) - 1.0
    table = DistanceRedshift(cosmology, zc1)
    chi0, chi1 = float(table.distance(zc0)), float(table.distance(zc1))

    reps = replicas(box, obs, chi0, chi1)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _SKY_COLUMNS}
    for start in range(0, len(pos), _CHUNK):  # bounds the temporaries to O(_CHUNK) rows
        chunk = slice(start, start + _CHUNK)
        for n in reps:
            _place(pos[chunk], None if vel is None else vel[chunk], start, n * box - obs, n, chi0, chi1, z0, z1,
                   fp, table, parts)
    columns = {
        k: (np.concatenate(v) if v else np.zeros((0, 3) if k == "REPLICA" else 0))
        for k, v in parts.items()
    }
    columns["INDEX"] = columns["INDEX"].astype(np.int64)
    columns["REPLICA"] = columns["REPLICA"].astype(np.int64).reshape(-1, 3)
    attrs = {
        "catalog_type": "cutsky",
        "lightcone": LIGHTCONE_NOTE,
        "BoxSize": box,
        "observer": obs.tolist(),
        "redshift_range": [z0, z1],
        "footprint": None if fp is None else {k: list(v) for k, v in fp.items()},
        "footprint_fraction": footprint_fraction(fp),
        "rsd": bool(rsd),
        "n_replicas": int(len(reps)),
        "sky_axes": "RA=atan2(y,x), DEC=asin(z/r) in box axes relative to the observer",
    }
    if snapshot_redshift is not None:
        if not (math.isfinite(float(snapshot_redshift)) and snapshot_redshift > -1):
            raise ValueError(f"snapshot_redshift must be finite and > -1, got {snapshot_redshift!r}")
        attrs["redshift"] = float(snapshot_redshift)
    return Catalog(columns, attrs=attrs)


# ---------------------------------------------------------------------------------------------------------------
# randoms
# ---------------------------------------------------------------------------------------------------------------
def random_catalog(
    n: int | None = None,
    *,
    redshift_range: tuple[float, float],
    cosmology: Cosmology,
    footprint: Mapping[str, Any] | None = None,
    nz: Any = None,
    density_factor: float | None = None,
    n_data: int | None = None,
    seed: int = 0,
) -> Catalog:
    """Random points uniform on the footprint, radially uniform in volume or following the data's ``n(z)``.

    Parameters
    ----------
    n : int, optional
        Number of randoms. Give either ``n`` or ``density_factor``.
    redshift_range : (float, float)
        ``[z_min, z_max)``.
    cosmology : Cosmology
        Background for ``chi(z)``.
    footprint : dict or None
        RA/Dec rectangle or ``None`` (full sky).
    nz : array-like, optional
        Data redshifts. If given, random redshifts are drawn from those within the range, with replacement
        (the "shuffled" method), so the randoms follow the data's ``n(z)``; otherwise they are uniform in
        comoving volume (``chi^3`` uniform between ``chi(z_min)^3`` and ``chi(z_max)^3``).
    density_factor : float, optional
        Number of randoms per data object: ``n = round(density_factor * N_data)`` with ``N_data`` the number of
        ``nz`` values in range, or ``n_data``.
    n_data : int, optional
        Data size for ``density_factor`` when ``nz`` is not given.
    seed : int
        Seed of the ``numpy.random.Generator`` (PCG64). Draw order: RA, then sin(DEC), then the radial draw.

    Returns
    -------
    Catalog
        Columns ``RA``, ``DEC`` (degrees), ``Z`` and ``DISTANCE`` (``chi(Z)``, Mpc/h).
    """
    z0, z1 = _check_range(redshift_range)
    fp = check_footprint(footprint)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    zdata = None
    if nz is not None:
        zdata = np.asarray(nz, dtype=np.float64).ravel()
        zdata = zdata[np.isfinite(zdata) & (zdata >= z0) & (zdata < z1)]
        if zdata.size == 0:
            raise ValueError(f"nz has no finite redshift within redshift_range {(z0, z1)}")
    if (n is None) == (density_factor is None):
        raise ValueError("give exactly one of n or density_factor")
    if density_factor is not None:
        if not (math.isfinite(density_factor) and density_factor > 0):
            raise ValueError(f"density_factor must be positive, got {density_factor!r}")
        size = zdata.size if zdata is not None else n_data
        if size is None or int(size) < 0:
            raise ValueError("density_factor needs nz (data redshifts) or n_data")
        n = int(round(density_factor * int(size)))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = np.random.default_rng(int(seed))
    table = DistanceRedshift(cosmology, z1)
    ra0, width = (0.0, 360.0) if fp is None else (fp["ra"][0], _ra_width(fp))
    d0, d1 = (-90.0, 90.0) if fp is None else fp["dec"]
    ra = _wrap360(ra0 + width * rng.random(n))
    s0, s1 = math.sin(math.radians(d0)), math.sin(math.radians(d1))
    dec = np.degrees(np.arcsin(np.clip(s0 + (s1 - s0) * rng.random(n), -1.0, 1.0)))
    if zdata is None:
        c0, c1 = float(table.distance(z0)), float(table.distance(z1))
        chi = np.cbrt(c0**3 + (c1**3 - c0**3) * rng.random(n))
        z = table.redshift(chi)
        method = "uniform-volume"
    else:
        z = zdata[rng.integers(0, zdata.size, n)]
        chi = table.distance(z)
        method = "shuffled"
    attrs = {
        "catalog_type": "randoms",
        "redshift_range": [z0, z1],
        "footprint": None if fp is None else {k: list(v) for k, v in fp.items()},
        "footprint_fraction": footprint_fraction(fp),
        "radial_method": method,
        "seed": int(seed),
    }
    return Catalog({"RA": ra, "DEC": dec, "Z": z, "DISTANCE": chi}, attrs=attrs)
