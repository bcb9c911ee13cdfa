"""Zheng et al. (2007) halo occupation distribution (HOD): mean occupations and halo population.

Occupation model (halotools ``Zheng07Cens`` / ``Zheng07Sats`` parameter names and conventions)::

    <Ncen>(M) = 0.5 [1 + erf((log10 M - logMmin) / sigma_logM)]
    <Nsat>(M) = ((M - M0) / M1)^alpha   for M > M0, else 0       (M0 = 10^logM0, M1 = 10^logM1)

with masses in Msun/h. Like halotools (whose ``Zheng07Sats`` default is ``modulate_with_cenocc=False``), satellites
are *not* multiplied by ``<Ncen>`` unless ``modulate_with_cenocc=True``, which gives Zheng et al.'s own
``<Nsat> <Ncen>`` form. Centrals are Bernoulli draws, satellites Poisson draws, independent of each other.

Phase space (:func:`populate_halos`):

* Halo mass is taken as ``M_200m`` (FoF masses at ``b = 0.2`` are close to it); the halo radius is the comoving
  ``R_200m = (3 M / (4 pi 200 rho_m))^(1/3)`` with ``rho_m = Omega_m rho_crit`` the comoving mean matter density,
  in Mpc/h; the physical radius is ``R_200m / (1 + z)``.
* Centrals sit at the halo centre with the halo velocity.
* Satellites follow an NFW profile truncated at ``R_200m``, ``rho ~ 1 / [x (1 + x)^2]`` with ``x = r c / R_200m``;
  radii are drawn by inverting the enclosed-mass fraction ``m(c u) / m(c)``, ``m(y) = ln(1 + y) - y / (1 + y)``,
  exactly with the Lambert W function (plus one Newton polish), directions are isotropic. The concentration
  is a constant or Duffy et al. (2008) for ``M_200m`` (full sample): ``c = 10.14 (M / 2e12)^-0.081 (1+z)^-1.01``
  with ``M`` in Msun/h. The profile functions live in :mod:`emulator.mocks.nfw`.
* Satellite velocities are the halo velocity plus an isotropic Gaussian with the per-component dispersion
  ``sigma = sqrt(G M / (2 R))`` (``R`` the physical ``R_200m``, ``G = 4.30091e-9 Mpc (km/s)^2 / Msun``; the h factors
  of M and R cancel), i.e. ``V_200 / sqrt(2)``, the 1D dispersion of a singular isothermal sphere of the same
  circular velocity: a documented simplification of the NFW Jeans solution.
* Positions are wrapped periodically into ``[0, L)``. Draws come from ``numpy.random.default_rng(seed)`` in a
  fixed order, so a seed gives the same catalogue on every machine.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from scipy.special import erf

from .arrays import as_array, as_positive
from .nfw import concentration_duffy08, nfw_inverse_mass_fraction, r200m

__all__ = [
    "HODParams",
    "PRESETS",
    "get_preset",
    "Galaxies",
    "mean_ncen",
    "mean_nsat",
    "populate_halos",
    "G_NEWTON",
]

#: Newton's constant in Mpc (km/s)^2 / Msun.
G_NEWTON: float = 4.30091e-9


@dataclass(frozen=True)
class HODParams:
    """Zheng07 HOD parameters (halotools names); masses in log10(Msun/h)."""

    logMmin: float
    sigma_logM: float
    logM0: float
    logM1: float
    alpha: float

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"HOD parameter {name} must be a number, got {value!r}") from None
            if not math.isfinite(v):
                raise ValueError(f"HOD parameter {name} must be finite, got {value!r}")
            object.__setattr__(self, name, v)
        if self.sigma_logM <= 0.0:
            raise ValueError(f"HOD parameter sigma_logM must be positive, got {self.sigma_logM}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "HODParams":
        """Build from a mapping with the five keys (extra keys are ignored)."""
        names = ("logMmin", "sigma_logM", "logM0", "logM1", "alpha")
        missing = [k for k in names if k not in values]
        if missing:
            raise ValueError(f"HOD params missing: {', '.join(missing)}")
        return cls(**{k: values[k] for k in names})


def _table1() -> dict[str, HODParams]:
    # Zheng et al. (2007) Table 1 best fits (as tabulated in halotools) for SDSS luminosity thresholds M_r < t.
    rows = {
        "18": (11.35, 0.25, 11.20, 12.40, 0.83),
        "18.5": (11.46, 0.24, 10.59, 12.68, 0.97),
        "19": (11.60, 0.26, 11.49, 12.83, 1.02),
        "19.5": (11.75, 0.28, 11.69, 13.01, 1.06),
        "20": (12.02, 0.26, 11.38, 13.31, 1.06),
        "20.5": (12.30, 0.21, 11.84, 13.58, 1.12),
        "21": (12.79, 0.39, 11.92, 13.94, 1.15),
        "21.5": (13.38, 0.51, 13.94, 13.91, 1.04),
        "22": (14.22, 0.77, 14.00, 14.69, 0.87),
    }
    return {f"zheng07_mr{t.replace('.', 'p')}": HODParams(*v) for t, v in rows.items()}


#: Named parameter sets, e.g. ``"zheng07_mr20"`` (M_r < -20, halotools' default threshold), ``"zheng07_mr20p5"``,
#: and ``"lrg_desi_like"``.
PRESETS: dict[str, HODParams] = _table1()

# DESI-LRG-like Zheng07 set: this project's tuning, not a published fit. With the Tinker08 mass function of
# emulator.mocks.massfunction (Planck18, z = 0.5) it reproduces the summary of the DESI One-Percent Survey LRG
# HOD analysis (Yuan et al. 2023, arXiv:2306.06314, 0.4 < z < 0.6: satellite fraction 11%, log10 <M_h> = 13.40),
# with n = 3.9e-4 (h/Mpc)^3 at z = 0.5 (5.9e-4 at z = 0). At 2 Mpc/h (particle mass 6.9e11 Msun/h at Planck18)
# 1.9% of its galaxies sit below 10-particle halos and 28% below 20-particle ones (z = 0.5): use min_members=10.
PRESETS["lrg_desi_like"] = HODParams(logMmin=13.05, sigma_logM=0.20, logM0=13.05, logM1=14.10, alpha=1.20)


def get_preset(name: str) -> HODParams:
    """Return the HOD parameters of a named preset (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown HOD preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def _params(params: Any) -> HODParams:
    if isinstance(params, HODParams):
        return params
    if isinstance(params, str):
        return get_preset(params)
    if isinstance(params, Mapping):
        return HODParams.from_mapping(params)
    raise ValueError(f"params must be HODParams, a mapping or a preset name, got {type(params).__name__}")


def mean_ncen(mass: Any, params: Any) -> np.ndarray:
    """Mean central occupation ``0.5 [1 + erf((log10 M - logMmin) / sigma_logM)]`` of halos of mass M (Msun/h)."""
    p = _params(params)
    return 0.5 * (1.0 + erf((np.log10(as_positive(mass, "mass", "Msun/h")) - p.logMmin) / p.sigma_logM))


def mean_nsat(mass: Any, params: Any, *, modulate_with_cenocc: bool = False) -> np.ndarray:
    """Mean satellite occupation ``((M - M0) / M1)^alpha`` for ``M > M0`` (else 0), M in Msun/h.

    ``modulate_with_cenocc=True`` multiplies by :func:`mean_ncen` (Zheng et al. 2007); the default ``False``
    matches halotools' ``Zheng07Sats`` default.
    """
    p = _params(params)
    m = as_positive(mass, "mass", "Msun/h")
    excess = np.clip(m - 10.0**p.logM0, 0.0, None) / 10.0**p.logM1
    out = np.zeros_like(excess)
    np.power(excess, p.alpha, out=out, where=excess > 0.0)
    return out * mean_ncen(m, p) if modulate_with_cenocc else out


@dataclass
class Galaxies:
    """An HOD galaxy catalogue: centrals first (in halo order), then satellites (grouped by halo).

    Attributes
    ----------
    position : np.ndarray
        ``(N, 3)`` float64, Mpc/h, in ``[0, box_size)``.
    velocity : np.ndarray or None
        ``(N, 3)`` float64 peculiar velocity, km/s (``None`` if the halos carry no velocities).
    is_central : np.ndarray
        ``(N,)`` bool.
    halo_index : np.ndarray
        ``(N,)`` int64 index of the host halo in the input catalogue.
    box_size : float
        Box side, Mpc/h.
    """

    position: np.ndarray
    velocity: np.ndarray | None
    is_central: np.ndarray
    halo_index: np.ndarray
    box_size: float

    def __len__(self) -> int:
        return int(self.is_central.shape[0])


def _halo_columns(halos: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, float | None]:
    """(position, velocity, mass, box_size) from a :class:`~.fof.Halos`-like object or nbodykit-style mapping."""
    if isinstance(halos, Mapping):
        get = halos.get
        pos, vel, mass = get("Position", get("position")), get("Velocity", get("velocity")), get("Mass", get("mass"))
        box = get("BoxSize", get("box_size"))
    else:
        pos, vel, mass = (getattr(halos, k, None) for k in ("position", "velocity", "mass"))
        box = getattr(halos, "box_size", None)
    if pos is None or mass is None:
        raise ValueError("halos must provide position (N, 3) Mpc/h and mass (N,) Msun/h")

    pos, mass = as_array(pos, np.float64), as_positive(mass, "halos mass", "Msun/h")
    if pos.ndim != 2 or pos.shape[1] != 3 or mass.shape != (pos.shape[0],):
        raise ValueError(f"halos position must be (N, 3) and mass (N,), got {pos.shape} and {mass.shape}")
    if vel is not None:
        vel = as_array(vel, np.float64)
        if vel.shape != pos.shape:
            raise ValueError(f"halos velocity must have shape {pos.shape}, got {vel.shape}")
    return pos, vel, mass, None if box is None else float(np.asarray(box).ravel()[0])


def populate_halos(
    halos: Any,
    params: Any,
    seed: int,
    *,
    cosmology: Any,
    redshift: float = 0.0,
    box_size: float | None = None,
    concentration: float | str = "duffy08",
    modulate_with_cenocc: bool = False,
) -> Galaxies:
    """Populate halos with Zheng07 centrals and NFW satellites (see the module docstring for the model).

    Parameters
    ----------
    halos : Halos or mapping
        Halo catalogue with ``position`` (M, 3) Mpc/h, ``mass`` (M,) Msun/h (taken as ``M_200m``) and optionally
        ``velocity`` (M, 3) km/s; a mapping may use nbodykit columns ``Position, Velocity, Mass`` (and ``BoxSize``).
    params : HODParams, mapping or str
        Zheng07 parameters or a preset name (e.g. ``"zheng07_mr20"``).
    seed : int
        Seed of the ``numpy.random.default_rng`` stream.
    cosmology : Cosmology or float
        Object with ``Omega_m`` (e.g. :class:`emulator.core.cosmology.Cosmology`) or ``Omega_m`` itself.
    redshift : float
        Redshift of the halos (concentration and physical radius for the velocity dispersion).
    box_size : float, optional
        Box side in Mpc/h; defaults to ``halos.box_size``.
    concentration : float or "duffy08"
        Constant NFW concentration or the Duffy et al. (2008) ``M_200m`` relation.
    modulate_with_cenocc : bool
        Multiply ``<Nsat>`` by ``<Ncen>`` (default ``False``, as halotools).

    Returns
    -------
    Galaxies
    """
    p = _params(params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    om = float(getattr(cosmology, "Omega_m", cosmology))
    if not math.isfinite(om) or om <= 0.0:
        raise ValueError(f"cosmology Omega_m must be positive, got {om!r}")
    z = float(redshift)
    if not math.isfinite(z) or z <= -1.0:
        raise ValueError(f"redshift must be finite and > -1, got {redshift!r}")
    pos, vel, mass, box_attr = _halo_columns(halos)
    box = box_size if box_size is not None else box_attr
    if box is None or not math.isfinite(float(box)) or float(box) <= 0.0:
        raise ValueError(f"box_size must be positive (Mpc/h), got {box!r} (pass it or give halos a box_size)")
    box = float(box)
    if isinstance(concentration, str):
        if concentration.lower() != "duffy08":
            raise ValueError(f"concentration must be a positive number or 'duffy08', got {concentration!r}")
        conc = concentration_duffy08(mass, z) if mass.size else mass.copy()
    else:
        cval = float(concentration)
        if not math.isfinite(cval) or cval <= 0.0:
            raise ValueError(f"concentration must be a positive number or 'duffy08', got {concentration!r}")
        conc = np.full_like(mass, cval)

    rng = np.random.default_rng(int(seed))
    n_halo = mass.size
    has_cen = rng.random(n_halo) < mean_ncen(mass, p)
    n_sat = rng.poisson(mean_nsat(mass, p, modulate_with_cenocc=modulate_with_cenocc))
    cen_idx = np.flatnonzero(has_cen)
    sat_idx = np.repeat(np.arange(n_halo), n_sat)

    radius = r200m(mass[sat_idx], om) if sat_idx.size else np.zeros(0)
    u = nfw_inverse_mass_fraction(rng.random(sat_idx.size), conc[sat_idx])
    direction = rng.standard_normal((sat_idx.size, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    sat_pos = pos[sat_idx] + direction * (u * radius)[:, None]
    position = np.concatenate([pos[cen_idx], sat_pos]) if n_halo else np.zeros((0, 3))
    position = np.mod(position, box)
    position[position >= box] = 0.0

    velocity = None
    if vel is not None:
        sigma = np.sqrt(G_NEWTON * mass[sat_idx] / (2.0 * radius / (1.0 + z)))
        sat_vel = vel[sat_idx] + rng.standard_normal((sat_idx.size, 3)) * sigma[:, None]
        velocity = np.concatenate([vel[cen_idx], sat_vel])
    return Galaxies(
        position=position,
        velocity=velocity,
        is_central=np.concatenate([np.ones(cen_idx.size, bool), np.zeros(sat_idx.size, bool)]),
        halo_index=np.concatenate([cen_idx, sat_idx]).astype(np.int64),
        box_size=box,
    )
