"""Cosmological parameters: an immutable, validated flat-ΛCDM parameter vector (Quijote style).

The five parameters are ``Omega_m`` (total matter, CDM + baryons), ``Omega_b``, ``h`` (``H0 = 100 h``
km/s/Mpc), ``n_s`` and ``sigma8`` (rms linear density in 8 Mpc/h spheres at z = 0). Neutrinos are massless,
radiation is neglected in the background expansion (``E(a)``), and the universe is flat.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from .checks import check_positive

__all__ = ["Cosmology", "PRESETS", "PARAMETER_NAMES", "get_preset", "RHO_CRIT", "particle_mass_from_cosmology"]

PARAMETER_NAMES: tuple[str, ...] = ("Omega_m", "Omega_b", "h", "n_s", "sigma8")

#: Critical density today, ``3 H0^2 / (8 pi G)`` with ``H0 = 100 h`` km/s/Mpc, in (Msun/h) / (Mpc/h)^3
#: (equivalently 2.775e11 h^2 Msun / Mpc^3), from G = 4.30091e-9 Mpc (km/s)^2 / Msun:
#: ``3 * 100^2 / (8 pi * 4.30091e-9) = 2.77536627e11``.
RHO_CRIT: float = 2.77536627e11

# Physically admissible ranges (wide; training priors are narrower and live in configs/).
_BOUNDS: dict[str, tuple[float, float]] = {
    "Omega_m": (0.01, 1.0),
    "Omega_b": (0.0, 0.2),
    "h": (0.2, 1.5),
    "n_s": (0.5, 1.5),
    "sigma8": (0.05, 2.0),
}


@dataclass(frozen=True)
class Cosmology:
    """Flat ΛCDM parameters.

    Parameters
    ----------
    Omega_m : float
        Total matter density today (CDM + baryons), dimensionless.
    Omega_b : float
        Baryon density today; must not exceed ``Omega_m``.
    h : float
        Dimensionless Hubble constant, ``H0 = 100 h`` km/s/Mpc.
    n_s : float
        Scalar spectral index.
    sigma8 : float
        Linear rms density contrast in spheres of 8 Mpc/h at z = 0.
    """

    Omega_m: float
    Omega_b: float
    h: float
    n_s: float
    sigma8: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                raise ValueError(f"cosmology parameter {f.name} must be a number, got {value!r}")
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"cosmology parameter {f.name} must be a number, got {value!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"cosmology parameter {f.name} must be finite, got {value!r}")
            lo, hi = _BOUNDS[f.name]
            if not lo <= value <= hi:
                raise ValueError(f"cosmology parameter {f.name}={value} outside the admissible range [{lo}, {hi}]")
            object.__setattr__(self, f.name, value)
        if self.Omega_b > self.Omega_m:
            raise ValueError(f"Omega_b={self.Omega_b} exceeds Omega_m={self.Omega_m}")

    # ---- derived quantities -------------------------------------------------------------------------
    @property
    def Omega_cdm(self) -> float:
        """Cold dark matter density today."""
        return self.Omega_m - self.Omega_b

    @property
    def Omega_lambda(self) -> float:
        """Dark-energy density today (flatness)."""
        return 1.0 - self.Omega_m

    def efunc(self, a: Any) -> Any:
        """Dimensionless Hubble rate ``E(a) = H(a)/H0 = sqrt(Omega_m a^-3 + Omega_lambda)``."""
        a = np.asarray(a, dtype=np.float64)
        out = np.sqrt(self.Omega_m * a**-3 + self.Omega_lambda)
        return float(out) if out.ndim == 0 else out

    # ---- conversions -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, float]:
        """Parameters as a plain dict (keys of :data:`PARAMETER_NAMES`)."""
        return asdict(self)

    def to_array(self) -> np.ndarray:
        """Parameters as a float64 vector in the order of :data:`PARAMETER_NAMES`."""
        return np.array([getattr(self, k) for k in PARAMETER_NAMES], dtype=np.float64)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Cosmology":
        """Build from a mapping with exactly the keys of :data:`PARAMETER_NAMES` (extra keys are ignored)."""
        missing = [k for k in PARAMETER_NAMES if k not in values]
        if missing:
            raise ValueError(f"cosmology is missing parameter(s): {', '.join(missing)}")
        return cls(**{k: float(values[k]) for k in PARAMETER_NAMES})

    @classmethod
    def from_array(cls, values: Any) -> "Cosmology":
        """Build from a length-5 vector in the order of :data:`PARAMETER_NAMES`."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size != len(PARAMETER_NAMES):
            raise ValueError(f"cosmology vector must have {len(PARAMETER_NAMES)} entries, got {arr.size}")
        return cls(*arr.tolist())

    def to_astropy(self):
        """Equivalent ``astropy.cosmology.FlatLambdaCDM`` (massless neutrinos, no radiation).

        ``n_s`` and ``sigma8`` have no astropy slot and travel in ``meta``.
        """
        from astropy.cosmology import FlatLambdaCDM

        return FlatLambdaCDM(
            H0=100.0 * self.h,
            Om0=self.Omega_m,
            Ob0=self.Omega_b,
            Tcmb0=0.0,
            meta={"n_s": self.n_s, "sigma8": self.sigma8},
        )

    @classmethod
    def from_astropy(cls, cosmo, *, n_s: float | None = None, sigma8: float | None = None) -> "Cosmology":
        """Build from an astropy flat ΛCDM cosmology; ``n_s``/``sigma8`` come from arguments or ``meta``.

        ``meta`` may name the spectral index ``n_s`` (as :meth:`to_astropy` writes it) or ``n`` (as astropy's
        built-in realizations do, e.g. ``astropy.cosmology.Planck18.meta == {"n": 0.9665, "sigma8": 0.8102,
        ...}``); ``n_s`` wins when both are there. ``Omega_m`` is astropy's ``Om0`` (CDM + baryons; the massive
        neutrinos of Planck18, ``Onu0`` ~ 0.0014, are not added), ``Omega_b`` is ``Ob0`` and ``h = H0 / 100``.
        """
        meta = getattr(cosmo, "meta", {}) or {}
        if n_s is None:
            n_s = meta.get("n_s", meta.get("n"))
        sigma8 = meta.get("sigma8") if sigma8 is None else sigma8
        if n_s is None or sigma8 is None:
            raise ValueError("astropy cosmology carries no n_s/sigma8: pass them or set cosmo.meta['n_s' (or 'n'), "
                             "'sigma8']")
        if abs(float(cosmo.Ok0)) > 1e-6:
            raise ValueError(f"only flat cosmologies are supported, got Ok0={float(cosmo.Ok0)}")
        if cosmo.Ob0 is None or float(cosmo.Ob0) <= 0.0:
            raise ValueError("astropy cosmology has no baryon density Ob0 (needed for the linear power)")
        if float(cosmo.Tcmb0.value) > 0 or getattr(cosmo, "has_massive_nu", False):
            import warnings

            warnings.warn(
                "astropy cosmology has radiation or massive neutrinos; this package's background is flat "
                "ΛCDM with matter and Λ only, so E(z) will differ slightly from the astropy object",
                stacklevel=2,
            )
        return cls(float(cosmo.Om0), float(cosmo.Ob0), float(cosmo.H0.value) / 100.0, float(n_s), float(sigma8))

    def key(self) -> tuple[float, ...]:
        """Hashable key rounded to 10 significant digits, for caches."""
        return tuple(float(f"{v:.10g}") for v in self.to_array())


PRESETS: dict[str, Cosmology] = {
    # Planck 2018 TT,TE,EE+lowE+lensing+BAO (Table 2, last column), massless-neutrino approximation.
    "planck18": Cosmology(Omega_m=0.3111, Omega_b=0.04897, h=0.6766, n_s=0.9665, sigma8=0.8102),
    # Quijote fiducial (Villaescusa-Navarro et al. 2020).
    "quijote": Cosmology(Omega_m=0.3175, Omega_b=0.049, h=0.6711, n_s=0.9624, sigma8=0.834),
}


def get_preset(name: str) -> Cosmology:
    """Return a named preset (case-insensitive): one of :data:`PRESETS`."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown cosmology preset {name!r}; choose from {', '.join(sorted(PRESETS))}") from None


def particle_mass_from_cosmology(Omega_m: float, box_size: float, npart: int) -> float:
    """Mass per particle ``rho_crit * Omega_m * L^3 / N`` in Msun/h (``rho_crit`` = :data:`RHO_CRIT`).

    Parameters
    ----------
    Omega_m : float
        Total matter density today (all matter is in the particles).
    box_size : float
        Box side ``L``, Mpc/h.
    npart : int
        Total number of particles ``N`` (e.g. ``ngrid**3``).
    """
    om = check_positive(Omega_m, "Omega_m", "dimensionless")
    box = check_positive(box_size, "box_size", "Mpc/h")
    if isinstance(npart, bool) or int(npart) != npart or npart < 1:
        raise ValueError(f"npart must be a positive integer, got {npart!r}")
    return RHO_CRIT * om * box**3 / int(npart)
