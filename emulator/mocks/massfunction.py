"""Halo mass function (Tinker et al. 2008) and the HOD resolution check: which galaxies a halo catalog can hold.

Mass function
-------------
``dn/dlnM = f(sigma) (rho_m / M) |d ln sigma / d ln M|`` (comoving, (h/Mpc)^3) with the Tinker et al. (2008,
ApJ 688, 709, Table 2 and eqs. 5-8) fit at ``Delta = 200`` times the mean density:
``f = A [(sigma / b)^-a + 1] exp(-c / sigma^2)``, ``A = 0.186 (1+z)^-0.14``, ``a = 1.47 (1+z)^-0.06``,
``b = 2.57 (1+z)^-alpha``, ``log10 alpha = -(0.75 / log10(200 / 75))^1.2``, ``c = 1.19``. ``sigma(M)`` is the
linear top-hat rms of :func:`emulator.core.power.sigma_r` (CAMB, normalised to sigma8) at
``R = (3 M / (4 pi rho_m))^(1/3)``, masses in Msun/h.

Why a fitting function: the check asks how many of an HOD's galaxies live in halos *below* the resolution of the
halo finder, where the measured FoF mass function has no information at all; any extension of it below the limit
is a model, and Tinker08 is the standard one (accurate to ~5-10% for FoF(b = 0.2)-like masses ~ M_200m), far
better than the 5% / 50% thresholds it decides.

Resolution check
----------------
:func:`unresolved_fraction` is ``int_{M < M_res} n(M) <N(M)> dM / int n(M) <N(M)> dM`` with ``<N> = <Ncen> +
<Nsat>`` (:mod:`emulator.mocks.hod`) and ``M_res = min_members x particle mass`` (or ``min_mass`` if larger): the
fraction of the galaxies the HOD should make that the halo catalog cannot host. :func:`check_hod_resolution`
warns above :data:`WARN_FRACTION` and refuses above :data:`REFUSE_FRACTION` unless forced.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np

from ..core.cosmology import RHO_CRIT, Cosmology
from .hod import HODParams, mean_ncen, mean_nsat

__all__ = ["tinker08_dndlnm", "hod_number_density", "unresolved_fraction", "check_hod_resolution",
           "WARN_FRACTION", "REFUSE_FRACTION", "HODResolutionError"]

WARN_FRACTION = 0.05  #: warn above this unresolved fraction of the HOD's galaxies
REFUSE_FRACTION = 0.50  #: refuse above it unless forced

_LNM = np.linspace(math.log(1e9), math.log(3e16), 121)  # integration grid, ln(M / (Msun/h))


class HODResolutionError(ValueError):
    """The halo catalog cannot host most of the galaxies the HOD asks for (see :func:`check_hod_resolution`)."""


@lru_cache(maxsize=64)
def _dndlnm_table(key: tuple[float, ...], z: float) -> np.ndarray:
    from ..core.power import sigma_r

    cosmo = Cosmology.from_array(key)
    rho_m = RHO_CRIT * cosmo.Omega_m
    mass = np.exp(_LNM)
    radius = (3.0 * mass / (4.0 * math.pi * rho_m)) ** (1.0 / 3.0)
    sigma = np.asarray(sigma_r(cosmo, radius, z), dtype=np.float64)
    dlns_dlnm = np.gradient(np.log(sigma), _LNM)
    alpha = 10.0 ** (-((0.75 / math.log10(200.0 / 75.0)) ** 1.2))
    big_a, a = 0.186 * (1.0 + z) ** -0.14, 1.47 * (1.0 + z) ** -0.06
    b, c = 2.57 * (1.0 + z) ** -alpha, 1.19
    f = big_a * ((sigma / b) ** -a + 1.0) * np.exp(-c / sigma**2)
    return f * rho_m / mass * np.abs(dlns_dlnm)


def tinker08_dndlnm(cosmology: Cosmology, mass, redshift: float = 0.0) -> np.ndarray:
    """Tinker et al. (2008) ``dn/dlnM`` in (h/Mpc)^3 at masses ``M_200m`` (Msun/h, within [1e9, 3e16])."""
    lnm = np.log(np.asarray(mass, dtype=np.float64))
    if lnm.size and (lnm.min() < _LNM[0] - 1e-9 or lnm.max() > _LNM[-1] + 1e-9):
        raise ValueError("mass must lie in [1e9, 3e16] Msun/h for the tabulated mass function")
    table = _dndlnm_table(cosmology.key(), float(redshift))
    return np.exp(np.interp(lnm, _LNM, np.log(table)))


def _occupation(params: HODParams) -> np.ndarray:
    mass = np.exp(_LNM)
    return mean_ncen(mass, params) + mean_nsat(mass, params)


def hod_number_density(params: HODParams, cosmology: Cosmology, redshift: float = 0.0,
                       min_mass: float = 0.0) -> float:
    """Galaxy number density ``int_{M > min_mass} n(M) <N(M)> dlnM`` in (h/Mpc)^3 (Tinker08 halos)."""
    dens = _dndlnm_table(cosmology.key(), float(redshift)) * _occupation(params)
    w = np.clip((_LNM - math.log(max(min_mass, 1e-30))) / (_LNM[1] - _LNM[0]) + 0.5, 0.0, 1.0)
    return float(np.trapezoid(dens * w, _LNM))


def unresolved_fraction(params: HODParams, cosmology: Cosmology, redshift: float, resolved_mass: float) -> float:
    """Fraction of the HOD's expected galaxies in halos lighter than ``resolved_mass`` (Msun/h)."""
    total = hod_number_density(params, cosmology, redshift)
    if total <= 0.0:
        return 0.0
    return 1.0 - hod_number_density(params, cosmology, redshift, resolved_mass) / total


def check_hod_resolution(params: HODParams, cosmology: Cosmology, redshift: float, resolved_mass: float,
                         force: bool = False) -> float:
    """Warn (> 5%) or refuse (> 50%, :class:`HODResolutionError`, unless ``force``) an HOD whose galaxies live in
    unresolved halos; return the unresolved fraction."""
    frac = unresolved_fraction(params, cosmology, redshift, resolved_mass)
    what = (f"{100 * frac:.1f}% of the galaxies this HOD should make (Tinker08 halos at z={redshift:g}) live in "
            f"halos below the resolved mass {resolved_mass:.3g} Msun/h (min_members x particle mass)")
    if frac > REFUSE_FRACTION and not force:
        raise HODResolutionError(f"{what}: refused; use an HOD the resolution supports (e.g. --hod lrg_desi_like), "
                                 "a finer model, or --force-hod to populate what is resolved anyway")
    if frac > WARN_FRACTION:
        warnings.warn(f"{what}; they are missing from the catalog", stacklevel=2)
    return frac
