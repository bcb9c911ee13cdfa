"""NFW halo profiles: concentration, radius ``R_200m`` and the enclosed-mass fraction and its inverse.

Masses are ``M_200m`` in Msun/h; radii are comoving, in Mpc/h: ``R_200m = (3 M / (4 pi 200 rho_m))^(1/3)`` with
``rho_m = Omega_m rho_crit`` the comoving mean matter density (``rho_crit`` in h^2 Msun / Mpc^3,
:data:`emulator.core.cosmology.RHO_CRIT`).

The profile is NFW truncated at ``R = R_200m``, ``rho ~ 1 / [x (1 + x)^2]`` with ``x = r c / R``; the mass
inside ``r = u R`` is the fraction ``m(c u) / m(c)`` of the halo mass, ``m(y) = ln(1 + y) - y / (1 + y)``. Its
inverse (used to draw satellite radii, :mod:`emulator.mocks.hod`) is exact with the Lambert W function plus one
Newton polish. The concentration is a constant or Duffy et al. (2008) for ``M_200m`` (full sample):
``c = 10.14 (M / 2e12)^-0.081 (1+z)^-1.01`` with ``M`` in Msun/h.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import lambertw

from ..core.cosmology import RHO_CRIT
from .arrays import as_positive

__all__ = ["concentration_duffy08", "r200m", "nfw_mass_fraction", "nfw_inverse_mass_fraction"]


def concentration_duffy08(mass: Any, redshift: float = 0.0) -> np.ndarray:
    """Duffy et al. (2008) NFW concentration for ``M_200m`` (full sample): ``10.14 (M/2e12)^-0.081 (1+z)^-1.01``."""
    return 10.14 * (as_positive(mass, "mass", "Msun/h") / 2.0e12) ** -0.081 * (1.0 + float(redshift)) ** -1.01


def r200m(mass: Any, Omega_m: float) -> np.ndarray:
    """Comoving ``R_200m = (3 M / (4 pi 200 Omega_m rho_crit))^(1/3)`` in Mpc/h for M in Msun/h."""
    m = as_positive(mass, "mass", "Msun/h")
    return (3.0 * m / (4.0 * math.pi * 200.0 * float(Omega_m) * RHO_CRIT)) ** (1.0 / 3.0)


def nfw_mass_fraction(u: Any, c: Any) -> np.ndarray:
    """NFW mass fraction inside ``r = u R`` of a halo truncated at ``R``: ``m(c u) / m(c)``."""
    u, c = np.asarray(u, dtype=np.float64), np.asarray(c, dtype=np.float64)
    return (np.log1p(c * u) - c * u / (1.0 + c * u)) / (np.log1p(c) - c / (1.0 + c))


def nfw_inverse_mass_fraction(p: Any, c: Any) -> np.ndarray:
    """``u = r / R`` with :func:`nfw_mass_fraction` ``(u, c) = p``, for ``p`` in [0, 1].

    ``m(y) = q`` solves as ``y = -1 / W0(-exp(-1 - q)) - 1`` (Lambert W, principal branch); for ``q < 1e-8``,
    next to W's branch point, the series ``y = s + 2 s^2 / 3`` with ``s = sqrt(2 q)`` is used instead. One
    Newton step then polishes ``y`` to full precision.
    """
    p, c = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(c, dtype=np.float64))
    q = p * (np.log1p(c) - c / (1.0 + c))
    small = q < 1e-8  # W is singular at the branch point q = 0: use the series y = s + 2 s^2 / 3, s = sqrt(2 q)
    w = lambertw(-np.exp(-1.0 - np.where(small, 1.0, q)), 0).real
    s = np.sqrt(2.0 * q)
    y = np.where(small, s + 2.0 * s**2 / 3.0, np.maximum(-1.0 / w - 1.0, 0.0))
    f = np.log1p(y) - y / (1.0 + y) - q
    dfdy = y / (1.0 + y) ** 2
    y = np.where(dfdy > 0.0, y - f / np.where(dfdy > 0.0, dfdy, 1.0), y)
    return np.clip(y / c, 0.0, 1.0)
