"""Linear and second-order growth in flat ΛCDM, and FastPM-style kick/drift factors.

Background: ``E(a) = H(a)/H0 = sqrt(Omega_m a^-3 + 1 - Omega_m)`` (:meth:`Cosmology.efunc`; radiation and
massive neutrinos neglected), ``Omega_m(a) = Omega_m a^-3 / E^2`` and ``dlnE/dlna = -1.5 Omega_m(a)``.

Growth factors (primes are ``d/dln a``)
---------------------------------------
* ``D1'' + (2 + dlnE/dlna) D1' = 1.5 Omega_m(a) D1``, growing mode ``D1 ~ a`` as ``a -> 0``, normalised to
  ``D1(a=1) = 1``; ``f1 = dlnD1/dlna``.
* ``D2'' + (2 + dlnE/dlna) D2' = 1.5 Omega_m(a) (D2 - D1^2)``, growing mode ``D2 -> -3/7 D1^2`` as ``a -> 0``
  (Scoccimarro 1998 / 2LPTic sign convention, so ``D2 < 0``; see :mod:`emulator.core.lpt`); ``f2 = dlnD2/dlna``.

Both are solved once per ``Omega_m`` (the only parameter they depend on) with ``scipy.integrate.solve_ivp``
(DOP853, ``rtol = 1e-12``) in the rescaled variables ``g1 = D1/a`` and ``g2 = D2/a^2``, which are constant in
the matter era, from ``a = 1e-6``; the dense output is the interpolant. For ``a < 1e-6`` the matter-era limits
are used (relative error ``< 1e-16 (1 - Omega_m)/Omega_m``).

PM time stepping (Feng et al. 2016, FastPM)
-------------------------------------------
Time unit ``1/H0``, comoving positions ``x`` in Mpc/h, and the canonical momentum

    p = a^2 dx/dt / H0 = a^3 E(a) dx/da            [Mpc/h],

so that the peculiar velocity is ``v = a dx/dt = 100 p / a`` km/s. The equations of motion are

    dx/da = p / (a^3 E(a)),        dp/da = F / (a^2 E(a)),
    F = -grad Phi,                 laplacian Phi = 1.5 Omega_m delta(x)          (Phi in (Mpc/h)^2),

with ``delta`` the density contrast (no factor ``1/a``: that is absorbed in ``dp/da``). In linear theory
``x = q + D1 psi`` and, for ``delta = -div(D1 psi)``, ``F = 1.5 Omega_m D1 psi``; hence ``p = gp(a) psi`` and
``F = gf(a) psi`` with

    gp(a) = a^3 E(a) dD1/da = a^2 E D1 f1,
    gf(a) = a^2 E(a) dgp/da = 1.5 Omega_m D1(a)           (the equality is the growth equation).

A drift ``x += p(a_mid) (D1(a1) - D1(a0)) / gp(a_mid)`` and a kick
``p += F(a_mid) (gp(a1) - gp(a0)) / gf(a_mid)`` are therefore exact for the linear growing mode whatever the step
(:func:`fastpm_drift_factor`, :func:`fastpm_kick_factor`); for small steps they reduce to the leapfrog factors
``int da / (a^3 E)`` and ``int da / (a^2 E)``. In a KDK step ``a_n -> a_{n+1}`` with ``a_h`` in between, the
first kick uses ``(a0, a1, a_mid) = (a_n, a_h, a_n)``, the drift ``(a_n, a_{n+1}, a_h)`` and the second kick
``(a_h, a_{n+1}, a_{n+1})``. The second-order analogues ``gp2 = a^3 E dD2/da = a^2 E D2 f2`` and
``gf2 = a^2 E dgp2/da = 1.5 Omega_m (D2 - D1^2)`` give the 2LPT initial momentum ``p = gp psi1 + gp2 psi2``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from .cosmology import Cosmology

__all__ = [
    "A_MAX",
    "GrowthHistory",
    "growth_factor",
    "growth_rate",
    "growth_factor_2",
    "growth_rate_2",
    "fastpm_drift_factor",
    "fastpm_kick_factor",
]

A_MIN_ODE = 1e-6
A_MAX = 10.0  # largest scale factor supported (z = -0.9)


def _rhs(lna: float, y: np.ndarray, omega_m: float) -> list[float]:
    """ODE for ``(g1, g1', g2, g2')`` with ``g1 = D1/a``, ``g2 = D2/a^2`` (derivatives in ``ln a``)."""
    a3 = math.exp(3.0 * lna)
    om_a = omega_m / (omega_m + (1.0 - omega_m) * a3)
    g1, dg1, g2, dg2 = y
    ddg1 = -(4.0 - 1.5 * om_a) * dg1 - 3.0 * (1.0 - om_a) * g1
    ddg2 = -(6.0 - 1.5 * om_a) * dg2 - (8.0 - 4.5 * om_a) * g2 - 1.5 * om_a * g1 * g1
    return [dg1, ddg1, dg2, ddg2]


@lru_cache(maxsize=256)
def _solve(omega_m: float):
    """Dense ODE solution in ``ln a`` and the normalisation ``g1(a=1)``, cached per ``Omega_m``."""
    sol = solve_ivp(
        _rhs,
        (math.log(A_MIN_ODE), math.log(A_MAX)),
        [1.0, 0.0, -3.0 / 7.0, 0.0],
        method="DOP853",
        rtol=1e-12,
        atol=1e-15,
        dense_output=True,
        args=(omega_m,),
    )
    if not sol.success:  # pragma: no cover - the ODE is smooth for every admissible Omega_m
        raise RuntimeError(f"growth ODE failed for Omega_m={omega_m}: {sol.message}")
    g1_today = float(sol.sol(0.0)[0])
    return sol.sol, g1_today


def _check_a(a: Any, name: str = "a") -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0) or np.any(arr > A_MAX):
        lo, hi = np.min(arr), np.max(arr)
        raise ValueError(f"{name} must be finite scale factors in (0, {A_MAX}], got values in [{lo}, {hi}]")
    return arr


def _out(x: np.ndarray) -> Any:
    return float(x) if x.ndim == 0 else x


class GrowthHistory:
    """Growth factors, background and FastPM factors of one flat ΛCDM cosmology (see module docstring).

    All methods take a scale factor ``a`` (scalar or array, ``0 < a <= A_MAX``) and return a float for a scalar
    input, else a float64 array of the same shape. Only ``Omega_m`` matters; the ODE solution is cached.

    Parameters
    ----------
    cosmo : Cosmology
        The cosmology (``Omega_m`` is used).
    """

    def __init__(self, cosmo: Cosmology) -> None:
        if not isinstance(cosmo, Cosmology):
            raise ValueError(f"cosmo must be a Cosmology, got {type(cosmo).__name__}")
        self.cosmo = cosmo
        self.omega_m = cosmo.key()[0]
        self._sol, self._g1_today = _solve(self.omega_m)

    def _state(self, a: Any) -> tuple[np.ndarray, ...]:
        arr = _check_a(a)
        lna = np.log(np.maximum(arr, A_MIN_ODE))
        g1, dg1, g2, dg2 = self._sol(lna.ravel()).reshape(4, *arr.shape)
        return arr, g1, dg1, g2, dg2

    # ---- background --------------------------------------------------------------------------------------
    def E(self, a: Any) -> Any:
        """``E(a) = H(a)/H0``, dimensionless."""
        return _out(np.asarray(self.cosmo.efunc(_check_a(a)), dtype=np.float64))

    def omega_m_a(self, a: Any) -> Any:
        """``Omega_m(a) = Omega_m a^-3 / E(a)^2``."""
        arr = _check_a(a)
        return _out(self.omega_m / (self.omega_m + (1.0 - self.omega_m) * arr**3))

    def dlnE_dlna(self, a: Any) -> Any:
        """``dlnE/dlna = -1.5 Omega_m(a)``."""
        return _out(-1.5 * np.asarray(self.omega_m_a(a)))

    # ---- growth ---------------------------------------------------------------------------------------------
    def D1(self, a: Any) -> Any:
        """Linear growth factor, ``D1(1) = 1``."""
        arr, g1, *_ = self._state(a)
        return _out(arr * g1 / self._g1_today)

    def f1(self, a: Any) -> Any:
        """Linear growth rate ``dlnD1/dlna``."""
        _, g1, dg1, *_ = self._state(a)
        return _out(1.0 + dg1 / g1)

    def D2(self, a: Any) -> Any:
        """Second-order growth factor (negative), ``D2 -> -3/7 D1^2`` as ``a -> 0``."""
        arr, _, _, g2, _ = self._state(a)
        return _out(arr**2 * g2 / self._g1_today**2)

    def f2(self, a: Any) -> Any:
        """Second-order growth rate ``dlnD2/dlna``."""
        *_, g2, dg2 = self._state(a)
        return _out(2.0 + dg2 / g2)

    def dD1_da(self, a: Any) -> Any:
        """``dD1/da = D1 f1 / a``."""
        arr, g1, dg1, *_ = self._state(a)
        return _out((g1 + dg1) / self._g1_today)

    # ---- FastPM factors -------------------------------------------------------------------------------------
    def gp(self, a: Any) -> Any:
        """Momentum growth ``gp = a^3 E dD1/da = a^2 E D1 f1`` (linear ``p = gp psi``), dimensionless."""
        arr = _check_a(a)
        return _out(arr**3 * np.asarray(self.cosmo.efunc(arr)) * np.asarray(self.dD1_da(arr)))

    def gf(self, a: Any) -> Any:
        """Force growth ``gf = a^2 E dgp/da = 1.5 Omega_m D1`` (linear ``F = gf psi``)."""
        return _out(1.5 * self.omega_m * np.asarray(self.D1(a)))

    def gp2(self, a: Any) -> Any:
        """Second-order momentum growth ``gp2 = a^3 E dD2/da = a^2 E D2 f2`` (negative)."""
        arr, g1, dg1, g2, dg2 = self._state(a)
        d2_da = arr * (2.0 * g2 + dg2) / self._g1_today**2
        return _out(arr**3 * np.asarray(self.cosmo.efunc(arr)) * d2_da)

    def gf2(self, a: Any) -> Any:
        """Second-order force growth ``gf2 = a^2 E dgp2/da = 1.5 Omega_m (D2 - D1^2)``."""
        arr, g1, _, g2, _ = self._state(a)
        return _out(1.5 * self.omega_m * arr**2 * (g2 - g1**2) / self._g1_today**2)

    def drift_factor(self, a0: Any, a1: Any, a_mid: Any) -> Any:
        """FastPM drift ``(D1(a1) - D1(a0)) / gp(a_mid)``: ``x += factor * p(a_mid)`` (see module docstring)."""
        d = np.asarray(self.D1(a1)) - np.asarray(self.D1(a0))
        return _out(np.asarray(d / np.asarray(self.gp(a_mid))))

    def kick_factor(self, a0: Any, a1: Any, a_mid: Any) -> Any:
        """FastPM kick ``(gp(a1) - gp(a0)) / gf(a_mid)``: ``p += factor * F(a_mid)`` (see module docstring)."""
        d = np.asarray(self.gp(a1)) - np.asarray(self.gp(a0))
        return _out(np.asarray(d / np.asarray(self.gf(a_mid))))


def growth_factor(cosmo: Cosmology, a: Any) -> Any:
    """Linear growth factor ``D1(a)``, normalised to ``D1(1) = 1``."""
    return GrowthHistory(cosmo).D1(a)


def growth_rate(cosmo: Cosmology, a: Any) -> Any:
    """Linear growth rate ``f1 = dlnD1/dlna``."""
    return GrowthHistory(cosmo).f1(a)


def growth_factor_2(cosmo: Cosmology, a: Any) -> Any:
    """Second-order growth factor ``D2(a) < 0`` with ``D2 -> -3/7 D1^2`` as ``a -> 0``."""
    return GrowthHistory(cosmo).D2(a)


def growth_rate_2(cosmo: Cosmology, a: Any) -> Any:
    """Second-order growth rate ``f2 = dlnD2/dlna``."""
    return GrowthHistory(cosmo).f2(a)


def fastpm_drift_factor(cosmo: Cosmology, a0: Any, a1: Any, a_mid: Any) -> Any:
    """Drift factor from ``a0`` to ``a1`` with the momentum taken at ``a_mid``: ``x += factor * p``.

    ``p = a^3 E(a) dx/da`` in Mpc/h (see module docstring); the factor is dimensionless.
    """
    return GrowthHistory(cosmo).drift_factor(a0, a1, a_mid)


def fastpm_kick_factor(cosmo: Cosmology, a0: Any, a1: Any, a_mid: Any) -> Any:
    """Kick factor from ``a0`` to ``a1`` with the force taken at ``a_mid``: ``p += factor * F``.

    ``F = -grad Phi`` with ``laplacian Phi = 1.5 Omega_m delta`` (see module docstring); dimensionless.
    """
    return GrowthHistory(cosmo).kick_factor(a0, a1, a_mid)
