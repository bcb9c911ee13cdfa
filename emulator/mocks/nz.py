"""Radial selection: a target n(z) from a two-column table, its measurement on a catalog, and ``nz.txt``.

Densities are comoving number densities in (h/Mpc)^3 at full completeness; volumes in (Mpc/h)^3.

Target table (:func:`read_nz`)
------------------------------
Two whitespace-separated columns ``z  n(z)`` (``#`` comments), ``z`` strictly increasing, ``n >= 0``: samples of a
function, linearly interpolated, 0 outside the table.

Downsampling (:func:`selection_probability`)
--------------------------------------------
The mock's own density ``n_mock`` is measured in redshift bins of width ``dz`` (counts in the footprint over the
shell volume times the footprint's geometric sky fraction, before any selection). An object at observed
redshift ``z`` in bin ``b`` is kept with probability ``n_target(z) / n_mock[b]`` (times the completeness at its
position, applied by the caller with the same stored uniform random), so the output follows ``n_target`` within
the bin. If the mock is too sparse (``max n_target`` over a bin above ``n_mock[b]``), a one-line ``ValueError``
lists the redshift bins where it fails.

``nz.txt`` (:func:`nz_table`, :func:`format_nz`)
------------------------------------------------
Columns ``z_mid z_low z_high n(z) N V_shell`` as survey teams write them: ``N`` objects in the bin, ``V_shell``
the comoving volume of the shell within the footprint, completeness-weighted
(``4 pi / 3 (chi_high^3 - chi_low^3) f_sky,eff``), and ``n = N / V_shell``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .distance import DistanceRedshift

__all__ = ["TargetNZ", "read_nz", "bin_edges", "shell_volume", "measure_nz", "selection_probability", "nz_table",
           "format_nz", "sample_redshifts"]


class TargetNZ:
    """A target ``n(z)`` in (h/Mpc)^3: linear interpolation of ``(z, n)`` samples, 0 outside."""

    def __init__(self, z: Any, n: Any, source: str = "array") -> None:
        z, n = np.asarray(z, dtype=np.float64).ravel(), np.asarray(n, dtype=np.float64).ravel()
        if z.size < 2 or z.shape != n.shape:
            raise ValueError(f"n(z) {source}: needs >= 2 rows of (z, n), got {z.size} z and {n.size} n values")
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(n))) or np.any(np.diff(z) <= 0) or z[0] < 0:
            raise ValueError(f"n(z) {source}: z must be finite, >= 0 and strictly increasing, n finite")
        if n.min() < 0:
            raise ValueError(f"n(z) {source}: n must be >= 0 (h/Mpc)^3, got {n.min():g}")
        self.z, self.n, self.source = z, n, source

    def __call__(self, z: Any) -> np.ndarray:
        return np.interp(np.asarray(z, dtype=np.float64), self.z, self.n, left=0.0, right=0.0)


def read_nz(path: Any) -> TargetNZ:
    """Read a two-column ``z n(z)`` text file (n in (h/Mpc)^3); one-line ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"n(z) file {str(path)!r} does not exist")
    try:
        data = np.loadtxt(path, comments="#", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"n(z) file {str(path)!r} is not a table of numbers: {exc}") from None
    if data.shape[1] != 2:
        raise ValueError(f"n(z) file {str(path)!r} must have two columns (z, n in (h/Mpc)^3), got {data.shape[1]}")
    return TargetNZ(data[:, 0], data[:, 1], source=str(path))


def bin_edges(z0: float, z1: float, dz: float) -> np.ndarray:
    """Bin edges from ``z0`` to ``z1`` of width ``dz`` (the last bin ends exactly at ``z1``)."""
    if not (math.isfinite(dz) and dz > 0):
        raise ValueError(f"nz_dz must be positive, got {dz!r}")
    nbin = max(1, int(math.ceil((z1 - z0) / dz - 1e-9)))
    return np.linspace(z0, z1, nbin + 1)


def shell_volume(table: DistanceRedshift, edges: np.ndarray, fsky: float) -> np.ndarray:
    """Comoving volumes ``4 pi / 3 (chi_high^3 - chi_low^3) fsky`` of the shells between ``edges``, (Mpc/h)^3."""
    chi = table.distance(edges)
    return 4.0 * math.pi / 3.0 * np.diff(chi**3) * fsky


def measure_nz(z: np.ndarray, edges: np.ndarray, table: DistanceRedshift, fsky: float):
    """``(n, N, V)`` per bin: counts ``N``, shell volumes ``V`` and ``n = N / V`` in (h/Mpc)^3."""
    counts = np.histogram(z, bins=edges)[0]
    vol = shell_volume(table, edges, fsky)
    return counts / vol, counts, vol


def selection_probability(z: np.ndarray, target: TargetNZ, edges: np.ndarray, table: DistanceRedshift,
                          fsky: float) -> np.ndarray:
    """Keep probability ``n_target(z) / n_mock[bin]`` per object (see the module docstring); ``ValueError`` listing
    the redshift bins where the mock is sparser than the target."""
    n_mock, counts, _ = measure_nz(z, edges, table, fsky)
    fine = np.linspace(0.0, 1.0, 33)
    peak = np.array([target(lo + (hi - lo) * fine).max() for lo, hi in zip(edges[:-1], edges[1:])])
    bad = peak > n_mock
    if np.any(bad):
        where = ", ".join(f"[{lo:.4g}, {hi:.4g}) mock {nm:.3g} < target {t:.3g}"
                          for lo, hi, nm, t in zip(edges[:-1][bad], edges[1:][bad], n_mock[bad], peak[bad]))
        raise ValueError(f"the mock is too sparse for the target n(z) ({target.source}) in (h/Mpc)^3 at z in "
                         f"{where}: lower the target, or use a denser tracer (lower min_members or logMmin)")
    b = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, len(edges) - 2)
    return np.clip(target(z) / np.where(n_mock[b] > 0, n_mock[b], 1.0), 0.0, 1.0)


def nz_table(z: np.ndarray, edges: np.ndarray, table: DistanceRedshift, fsky_eff: float) -> np.ndarray:
    """``(nbin, 6)`` array ``z_mid z_low z_high n(z) N V_shell`` of a catalog's observed redshifts."""
    n, counts, vol = measure_nz(z, edges, table, fsky_eff)
    return np.column_stack([0.5 * (edges[:-1] + edges[1:]), edges[:-1], edges[1:], n, counts, vol])


def format_nz(rows: np.ndarray, header: str) -> str:
    """Text of ``nz.txt``: ``# header`` lines, the column names, then one row per bin."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines.append("# z_mid z_low z_high n(z)[(h/Mpc)^3] N V_shell[(Mpc/h)^3]")
    lines += [f"{a:.6f} {b:.6f} {c:.6f} {d:.8e} {int(e)} {f:.8e}" for a, b, c, d, e, f in rows]
    return "\n".join(lines) + "\n"


def sample_redshifts(n: int, target: TargetNZ, z0: float, z1: float, table: DistanceRedshift,
                     rng: np.random.Generator) -> np.ndarray:
    """``n`` redshifts in ``[z0, z1)`` with density ``n_target(z) dV/dz`` (inverse CDF on a fine grid, linear)."""
    z = np.linspace(z0, z1, 4001)
    chi = table.distance(z)
    pdf = target(z) * chi**2 * table._dist(z, 1)  # dV/dz ~ chi^2 dchi/dz
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(z))])
    if cdf[-1] <= 0:
        raise ValueError(f"the target n(z) ({target.source}) is zero over [{z0}, {z1})")
    return np.minimum(np.interp(rng.random(n) * cdf[-1], cdf, z), np.nextafter(z1, z0))
