"""Lightcones that evolve with redshift, from one initial noise field generated at a ladder of redshifts.

Units: comoving Mpc/h, peculiar km/s, angles in degrees.

Particles (FastPM-style on-the-fly crossing)
--------------------------------------------
The generator gives, for the same seed, each particle's displacement ``Psi(q)`` and velocity on the Lagrangian
grid at every ladder redshift ``z_0 < z_1 < ... < z_K``. Between two neighbouring ladder points the particle's
position ``x(a) = q + Psi(a) + n L - observer`` (replica ``n``) and velocity are interpolated linearly in the
scale factor ``a``. It enters the cone where ``|x(a)| = chi(a)``, the past light cone of the observer: it is
inside the sphere ``chi(a_early)`` at the earlier ladder point and outside ``chi(a_late)`` at the later one, and
the crossing ``a`` is found by regula falsi (6 steps).
``Z_COSMO = 1 / a - 1`` at the crossing, ``Z`` adds the radial velocity as in :mod:`emulator.mocks.cutsky`.
Each (particle, replica) enters at most once.

Halos and galaxies (nearest snapshot per shell)
-----------------------------------------------
FoF halos have no identity across snapshots, so the cone is cut into shells in observed redshift bounded by the
mid-points between ladder redshifts and shell ``j`` is filled from the catalog of snapshot ``j``
(:func:`emulator.mocks.cutsky.box_to_sky` on that shell): clustering and masses evolve from shell to shell, and
the shared initial noise keeps the structures continuous across shell boundaries. Column ``SNAPSHOT`` gives
the ladder index; ``INDEX`` points into that snapshot's box catalog.

Replication
-----------
Boxes replicate periodically; the number of replicas is recorded (``n_replicas``). When the cone is deeper than
half the box (``chi(z_max) > L / 2``) a structure can be seen twice (in two replicas, in different directions);
a warning says so and ``attrs["repeats"]`` records it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from .cutsky import DISTANCE_CONVENTION, _check_range, box_to_sky, replicas
from .distance import C_KMS, DistanceRedshift
from .footprint import wrap360

__all__ = ["default_ladder", "check_ladder", "particle_lightcone", "shell_lightcone", "repeat_warning"]


def default_ladder(z_min: float, z_max: float, dz: float = 0.05) -> list[float]:
    """Ladder spanning ``[z_min - 0.01, z_max + 0.01]`` (clipped at 0) with steps of at most ``dz``:
    ``ceil(range / dz) + 1`` snapshots."""
    lo, hi = max(0.0, z_min - 0.01), z_max + 0.01
    n = max(1, math.ceil((hi - lo) / dz - 1e-9))
    return [float(round(z, 6)) for z in np.linspace(lo, hi, n + 1)]


def check_ladder(ladder: Sequence[float], z_min: float, z_max: float) -> list[float]:
    """A sorted ladder of distinct redshifts >= 0 covering ``[z_min, z_max]``; ``ValueError`` otherwise."""
    try:
        zs = sorted(float(z) for z in ladder)
    except (TypeError, ValueError):
        raise ValueError(f"lightcone ladder must be a list of redshifts, got {ladder!r}") from None
    if len(zs) < 2 or len(set(zs)) != len(zs) or zs[0] < 0 or not all(map(math.isfinite, zs)):
        raise ValueError(f"lightcone ladder needs >= 2 distinct finite redshifts >= 0, got {ladder!r}")
    if zs[0] > z_min or zs[-1] < z_max:
        raise ValueError(f"lightcone ladder [{zs[0]}, {zs[-1]}] must cover the redshift range [{z_min}, {z_max}]")
    return zs


def repeat_warning(box: float, chi_max: float) -> bool:
    """Warn (and return True) when a structure can be seen twice: ``chi_max > L / 2``."""
    if chi_max > box / 2.0:
        warnings.warn(f"the cone reaches chi = {chi_max:.4g} Mpc/h, deeper than half the box ({box / 2:.4g} "
                      "Mpc/h): structures are seen more than once through the periodic replicas", stacklevel=3)
        return True
    return False


def _sky(r: np.ndarray, vel: np.ndarray | None, zc: np.ndarray, table: DistanceRedshift):
    d = np.sqrt(np.einsum("ij,ij->i", r, r))
    safe = np.where(d > 0, d, 1.0)
    ra = wrap360(np.degrees(np.arctan2(r[:, 1], r[:, 0])))
    dec = np.degrees(np.arcsin(np.clip(r[:, 2] / safe, -1.0, 1.0)))
    vlos = np.zeros_like(d) if vel is None else np.einsum("ij,ij->i", vel, r) / safe
    return ra, dec, d, vlos, (1.0 + zc) * (1.0 + vlos / C_KMS) - 1.0


def _crossing(re, rl, ae, al, table, steps: int = 6) -> np.ndarray:
    """Fraction ``t`` in [0, 1] (early -> late) where ``|re + t (rl - re)| = chi(a)``, ``a = ae + t (al - ae)``,
    by regula falsi keeping the bracket ``f(t0) <= 0 < f(t1)`` (``f`` is nearly linear in ``t``)."""
    def f(t):
        r = re + t[:, None] * (rl - re)
        return np.sqrt(np.einsum("ij,ij->i", r, r)) - table.distance(1.0 / (ae + t * (al - ae)) - 1.0)

    t0, t1 = np.zeros(len(re)), np.ones(len(re))
    f0, f1 = f(t0), f(t1)
    for _ in range(steps):
        t = np.clip(t0 - f0 * (t1 - t0) / (f1 - f0), t0, t1)
        ft = f(t)
        left = ft <= 0
        t0, f0 = np.where(left, t, t0), np.where(left, ft, f0)
        t1, f1 = np.where(left, t1, t), np.where(left, f1, ft)
    return np.clip(t0 - f0 * (t1 - t0) / np.where(f1 > f0, f1 - f0, 1.0), 0.0, 1.0)


def particle_lightcone(q: np.ndarray, snapshot: Callable[[int], tuple[np.ndarray, np.ndarray]],
                       ladder: Sequence[float], box_size: float, cosmology, redshift_range, observer: Any = None,
                       rsd: bool = True) -> dict:
    """Particles entering the past light cone (see the module docstring).

    Parameters
    ----------
    q : (N, 3) Lagrangian positions, Mpc/h.
    snapshot : callable
        ``snapshot(j) -> (displacement, velocity)``, ``(N, 3)`` arrays in Mpc/h and km/s (same particle order) at
        ``ladder[j]``; called once per ladder point in increasing redshift, and only two are held at a time.
    ladder : increasing redshifts of the snapshots; they must cover the range, and should extend beyond it by the
        largest RSD shift (``v_max / c``; a warning otherwise: objects near the edges would be missed).
    redshift_range : observed-redshift cut ``[z_min, z_max)``.

    Returns
    -------
    dict
        ``{"columns": ..., "attrs": ...}``: the columns of :func:`~emulator.mocks.cutsky.box_to_sky`
        (``DISTANCE = chi(Z)``, ``DISTANCE_COSMO`` the crossing distance) and attrs with ``zladder``,
        ``n_replicas``, ``repeats``.
    """
    z0, z1 = _check_range(redshift_range)
    zs = [float(z) for z in ladder]
    if zs != sorted(zs):
        raise ValueError(f"lightcone ladder must be increasing, got {list(ladder)}")
    check_ladder(zs, z0, z1)
    box = float(box_size)
    obs = np.full(3, box / 2.0) if observer is None else np.asarray(observer, dtype=np.float64)
    table = DistanceRedshift(cosmology, zs[-1])
    cols: dict[str, list] = {k: [] for k in ("RA", "DEC", "Z", "Z_COSMO", "DISTANCE", "DISTANCE_COSMO", "VLOS",
                                             "INDEX", "REPLICA")}
    n_reps = set()
    late = [np.asarray(a, dtype=np.float64) for a in snapshot(0)]
    beta = float(np.abs(late[1]).max()) * math.sqrt(3) / C_KMS if len(q) else 0.0
    if zs[0] > max((1 + z0) / (1 + beta) - 1, 0.0) or zs[-1] < (1 + z1) / (1 - beta) - 1:
        warnings.warn(f"the ladder [{zs[0]}, {zs[-1]}] does not extend beyond [{z0}, {z1}] by the RSD shift "
                      f"(v_max = {beta * C_KMS:.0f} km/s): objects near the edges may be missing", stacklevel=2)
    for j in range(len(zs) - 1):  # interval between zs[j] (late) and zs[j + 1] (early)
        early = [np.asarray(a, dtype=np.float64) for a in snapshot(j + 1)]
        al, ae = 1.0 / (1.0 + zs[j]), 1.0 / (1.0 + zs[j + 1])
        xl, xe = q + late[0], q + early[0]
        pad = float(np.abs(xl - xe).max()) + float(max(np.abs(late[0]).max(), np.abs(early[0]).max()))
        chil, chie = float(table.distance(zs[j])), float(table.distance(zs[j + 1]))
        for n in replicas(box, obs, max(chil - pad, 0.0), chie + pad):
            off = n * box - obs
            re, rl = xe + off, xl + off
            fe = np.sqrt(np.einsum("ij,ij->i", re, re)) - chie
            fl = np.sqrt(np.einsum("ij,ij->i", rl, rl)) - chil
            idx = np.flatnonzero((fe <= 0) & (fl > 0))
            if idx.size == 0:
                continue
            n_reps.add(tuple(n))
            t = _crossing(re[idx], rl[idx], ae, al, table)
            r = re[idx] + t[:, None] * (rl[idx] - re[idx])
            v = early[1][idx] + t[:, None] * (late[1][idx] - early[1][idx]) if rsd else None
            zc = 1.0 / (ae + t * (al - ae)) - 1.0
            ra, dec, d, vlos, zobs = _sky(r, v, zc, table)
            sel = (zobs >= z0) & (zobs < z1)
            for key, val in (("RA", ra), ("DEC", dec), ("Z", zobs), ("Z_COSMO", zc), ("DISTANCE_COSMO", d),
                             ("VLOS", vlos), ("INDEX", idx), ("REPLICA", np.broadcast_to(n, (idx.size, 3)))):
                cols[key].append(val[sel])
            cols["DISTANCE"].append(table.distance(zobs[sel]))
        late = early
    out = {k: (np.concatenate(v) if v else np.zeros((0, 3) if k == "REPLICA" else 0)) for k, v in cols.items()}
    out["INDEX"] = out["INDEX"].astype(np.int64)
    out["REPLICA"] = out["REPLICA"].astype(np.int64).reshape(-1, 3)
    attrs = {"catalog_type": "cutsky", "lightcone": "particles crossing the past light cone, linear in a between "
             "ladder snapshots", "zladder": zs, "n_replicas": len(n_reps), "observer": obs.tolist(),
             "repeats": repeat_warning(box, float(table.distance(min(z1, zs[-1])))), "DISTCONV": DISTANCE_CONVENTION,
             "rsd": bool(rsd)}
    return {"columns": out, "attrs": attrs}


def shell_lightcone(catalog_at: Callable[[int], dict], ladder: Sequence[float], box_size: float, cosmology,
                    redshift_range, observer: Any = None, footprint=None, rsd: bool = True) -> dict:
    """Halos or galaxies from the snapshot nearest each shell (see the module docstring).

    ``catalog_at(j)`` returns the box columns (``Position``, ``Velocity``, ...) at ``ladder[j]``; every box column
    except positions and velocities is carried into the sky catalog, plus ``SNAPSHOT``.
    """
    z0, z1 = _check_range(redshift_range)
    zs = check_ladder(ladder, z0, z1)
    edges = [z0] + [0.5 * (a + b) for a, b in zip(zs[:-1], zs[1:])] + [z1]
    edges = np.clip(edges, z0, z1)
    parts, n_reps = [], 0
    for j in range(len(zs)):
        lo, hi = float(edges[j]), float(edges[j + 1])
        if hi <= lo:
            continue
        cols = catalog_at(j)
        sky = box_to_sky(cols["Position"], cols["Velocity"], box_size, cosmology, (lo, hi), observer=observer,
                         footprint=footprint, rsd=rsd, snapshot_redshift=zs[j])
        n_reps = max(n_reps, int(sky.attrs["n_replicas"]))
        part = {k: np.asarray(v) for k, v in sky.items()}
        for k, v in cols.items():
            if k not in ("Position", "Velocity", "RSDPosition"):
                part[k] = np.asarray(v)[part["INDEX"]]
        part["SNAPSHOT"] = np.full(len(part["INDEX"]), j, dtype=np.int16)
        parts.append(part)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    table = DistanceRedshift(cosmology, z1)
    attrs = {"catalog_type": "cutsky", "lightcone": "nearest ladder snapshot per redshift shell", "zladder": zs,
             "shell_edges": [float(e) for e in edges], "n_replicas": n_reps,
             "observer": (np.full(3, box_size / 2.0) if observer is None else np.asarray(observer)).tolist(),
             "repeats": repeat_warning(box_size, float(table.distance(z1))), "DISTCONV": DISTANCE_CONVENTION,
             "rsd": bool(rsd)}
    return {"columns": out, "attrs": attrs}
