"""Cut-sky catalogues from a periodic box: box replication, sky coordinates, redshifts and randoms.

Positions and distances are comoving, in Mpc/h; velocities are peculiar velocities in km/s; angles in degrees.

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
The cosmological redshift ``Z_COSMO`` is the ``z`` whose comoving distance ``chi(z)`` (Mpc/h) equals ``|r|``
(:class:`~emulator.mocks.distance.DistanceRedshift`: astropy, splined both ways). With RSD the observed redshift
is ``1 + Z = (1 + Z_COSMO)(1 + v_los / c)``, with ``v_los = v . r / |r|`` the radial peculiar velocity in km/s.
The redshift cut is on the observed ``Z``, in ``[z_min, z_max)``.

Distances (one convention for data and randoms): ``DISTANCE = chi(Z)``, the comoving distance of the *observed*
redshift (redshift space, what a pipeline reading RA, DEC, Z or RA, DEC, DISTANCE sees), and ``DISTANCE_COSMO =
chi(Z_COSMO) = |r|`` (real space). Randoms have no peculiar velocity: ``Z_COSMO = Z``, ``DISTANCE_COSMO =
DISTANCE``. The convention is recorded in ``attrs["DISTCONV"]``.

Snapshot approximation
----------------------
The whole box is one snapshot at a single redshift: clustering and velocities do not evolve across the shell
(no light-cone interpolation between snapshots). This is the standard construction of snapshot-based cut-sky
mocks; it is recorded in the returned ``attrs`` (``lightcone = "single-snapshot (no evolution)"``).

Footprints
----------
``None`` (full sky) or an RA/Dec rectangle ``{"ra": (ra_min, ra_max), "dec": (dec_min, dec_max)}`` in degrees,
``ra_min > ra_max`` wrapping through RA = 0; see :mod:`emulator.mocks.footprint`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

import numpy as np

from ..core.checks import check_box_size
from ..core.cosmology import Cosmology
from .arrays import as_vectors
from .catalog import Catalog
from .distance import C_KMS, DistanceRedshift
from .footprint import check_footprint, footprint_fraction, in_footprint, ra_width, wrap360

__all__ = ["replicas", "box_to_sky", "random_catalog"]

LIGHTCONE_NOTE = "single-snapshot (no evolution)"


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


_SKY_COLUMNS = ("RA", "DEC", "Z", "Z_COSMO", "DISTANCE", "DISTANCE_COSMO", "VLOS", "INDEX", "REPLICA")
#: The distance convention of every cut-sky file (data and randoms), stored as ``DISTCONV``.
DISTANCE_CONVENTION = "DISTANCE=chi(Z) observed (redshift space); DISTANCE_COSMO=chi(Z_COSMO) real space"
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
    ra = wrap360(np.degrees(np.arctan2(r[:, 1], r[:, 0])))
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
    dz = table.distance(zobs[sel]) if vel is not None else d[sel]  # chi(Z): the redshift-space distance
    values = (ra, dec, zobs, zc, None, d, vlos, idx + start, np.broadcast_to(n, (len(idx), 3)))
    for key, val in zip(_SKY_COLUMNS, values):
        parts[key].append(dz if val is None else val[sel])


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
        Columns ``RA``, ``DEC`` (degrees), ``Z`` (observed), ``Z_COSMO``, ``DISTANCE`` (``chi(Z)``, Mpc/h),
        ``DISTANCE_COSMO`` (``chi(Z_COSMO)``, the real-space distance, Mpc/h), ``VLOS`` (km/s; zero without
        RSD), ``INDEX`` (int64 row of the source particle) and ``REPLICA`` (int64 ``(M, 3)`` replica offset),
        plus ``attrs`` describing the construction.
    """
    box = check_box_size(box_size)
    pos = np.remainder(as_vectors(position, "position"), box)
    vel = None
    if rsd:
        if velocity is None:
            raise ValueError("velocity is required when rsd=True")
        vel = as_vectors(velocity, "velocity")
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
        "DISTCONV": DISTANCE_CONVENTION,
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
        Columns ``RA``, ``DEC`` (degrees), ``Z`` and ``DISTANCE`` (``chi(Z)``, Mpc/h; the convention of
        :func:`box_to_sky`, with ``Z_COSMO = Z`` for randoms).
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
    ra0, width = (0.0, 360.0) if fp is None else (fp["ra"][0], ra_width(fp))
    d0, d1 = (-90.0, 90.0) if fp is None else fp["dec"]
    ra = wrap360(ra0 + width * rng.random(n))
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
        "DISTCONV": DISTANCE_CONVENTION,
    }
    return Catalog({"RA": ra, "DEC": dec, "Z": z, "DISTANCE": chi}, attrs=attrs)
