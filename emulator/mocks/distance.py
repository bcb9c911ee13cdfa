"""Comoving distance and redshift: the table :class:`DistanceRedshift` and the speed of light :data:`C_KMS`.

The comoving distance ``chi(z)`` comes from astropy (``FlatLambdaCDM`` via
:meth:`~emulator.core.cosmology.Cosmology.to_astropy`), converted from Mpc to Mpc/h by multiplying by ``h``;
both directions, ``chi(z)`` and ``z(chi)``, are cubic splines on a fine table (step ``<= 5e-4`` in ``z``),
accurate to better than ``1e-9`` relative to astropy. Tables are cached per cosmology and (rounded) redshift
range, so repeated catalogues with the same background reuse them. Distances are in Mpc/h, velocities in km/s.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from ..core.cosmology import Cosmology

__all__ = ["C_KMS", "DistanceRedshift"]

C_KMS = 299792.458  #: speed of light, km/s


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
