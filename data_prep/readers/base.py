"""Common pieces of the snapshot readers: the :class:`Snapshot` container, errors, units, IDs, time checks.

Conventions (binding for every reader)
--------------------------------------
- ``positions``: comoving, Mpc/h, float64, as stored (not wrapped into the box).
- ``velocities``: peculiar velocity ``v = a dx/dt`` in km/s, in the file's precision.
- ``ids``: int64. ``particle_mass``: Msun/h, a scalar (mass table) or one value per particle.
- Length units come from file metadata or from the caller's ``length_unit``; they are never guessed.
- Velocity conventions, as the exponent ``p`` in ``v_pec = V a^p`` for a stored value ``V``:
  ``"gadget"`` (``V = v_pec/sqrt(a)``, p = 1/2), ``"peculiar"`` (p = 0), ``"internal"`` (``V = a^2 dx/dt =
  a v_pec``, p = -1; MP-Gadget with ``UsePeculiarVelocity = 0``).

Locating a snapshot's files, multi-file sets, format detection and chunking are in :mod:`data_prep.readers.files`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MPC_IN_CM", "MSUN_IN_G", "VELOCITY_CONVENTIONS", "Snapshot", "SnapshotHeader", "SnapshotError", "LengthUnitError",
    "parse_length_unit", "resolve_length_unit", "scale_lengths", "snap_to_power_of_ten", "velocity_exponent",
    "validate_ids", "check_parttype", "check_time_redshift",
]

MPC_IN_CM = 3.085678e24  # Gadget's Mpc in cm: UnitLength_in_cm of a Mpc/h file
MSUN_IN_G = 1.989e33  # Gadget's solar mass in g
VELOCITY_CONVENTIONS: dict[str, float] = {"gadget": 0.5, "peculiar": 0.0, "internal": -1.0}
_LENGTH_UNITS = {"mpc/h": 1.0, "kpc/h": 1e-3, "gpc/h": 1e3}


class SnapshotError(ValueError):
    """A snapshot file is unreadable, inconsistent or incomplete; the message starts with the file name.

    ``SnapshotError(path, message)``; a single argument is taken as the whole message (as when unpickling).
    """

    def __init__(self, path: Any, message: str | None = None) -> None:
        if message is None:
            path, message = None, str(path)
        self.path = os.fspath(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class LengthUnitError(SnapshotError):
    """A snapshot does not say its length unit and none was given.

    ``problem`` describes what is missing; the message adds ``advice`` (by default the Python argument
    ``length_unit``), which a front end replaces with its own option (``data-prep inspect --length-unit``).
    """

    PYTHON_ADVICE = "pass length_unit='Mpc/h', 'kpc/h' or a factor to Mpc/h"

    def __init__(self, path: Any, problem: str | None = None, advice: str | None = None) -> None:
        if problem is None:  # one argument: the whole message (unpickling)
            super().__init__(path)
            self.problem, self.advice = str(path), ""
            return
        self.problem, self.advice = problem, self.PYTHON_ADVICE if advice is None else advice
        super().__init__(path, f"{problem}; {self.advice}")

    def __reduce__(self):
        return type(self), (self.path, self.problem, self.advice)


@dataclass
class Snapshot:
    """Particles of one type from a snapshot (or a chunk of one), in the project's units.

    Attributes
    ----------
    positions : ndarray (N, 3) float64, comoving Mpc/h.
    velocities : ndarray (N, 3) float32 or float64, peculiar km/s.
    ids : ndarray (N,) int64.
    box_size : float, Mpc/h.
    redshift, scale_factor : float.
    cosmology : dict with at least ``Omega_m, Omega_lambda, h`` (None where the file does not say).
    particle_mass : float or ndarray (N,), Msun/h.
    source : list of the files read.
    length_unit_mpc_h : float, the factor applied to stored lengths to get Mpc/h.
    """

    positions: np.ndarray
    velocities: np.ndarray
    ids: np.ndarray
    box_size: float
    redshift: float
    scale_factor: float
    cosmology: dict
    particle_mass: float | np.ndarray
    source: list[str]
    length_unit_mpc_h: float
    parttype: int = 1
    format: str = ""

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.positions.shape != (n, 3) or self.velocities.shape != (n, 3):
            raise ValueError(f"positions {self.positions.shape} / velocities {self.velocities.shape} "
                             f"do not match ids ({n},): expected ({n}, 3)")
        if np.ndim(self.particle_mass) and np.shape(self.particle_mass) != (n,):
            raise ValueError(f"particle_mass has shape {np.shape(self.particle_mass)}, expected () or ({n},)")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class SnapshotHeader:
    """What a reader knows before reading particles; lengths already converted to Mpc/h.

    ``velocity_factor`` multiplies stored velocities into peculiar km/s; ``mass_unit_msun_h`` multiplies
    stored masses into Msun/h; ``mass_table`` is already in Msun/h (0 means per-particle masses are stored).
    """

    format: str
    files: list[str]
    npart_total: np.ndarray
    npart_file: np.ndarray
    mass_table: np.ndarray
    box_size: float
    box_size_file: float
    length_unit_mpc_h: float
    velocity_factor: float
    mass_unit_msun_h: float
    redshift: float
    scale_factor: float
    cosmology: dict
    attrs: dict = field(default_factory=dict)
    layout: list = field(default_factory=list, repr=False)  # reader-specific per-file bookkeeping


def check_parttype(parttype: int) -> int:
    """Validate a Gadget particle type (0..5)."""
    if isinstance(parttype, bool) or not isinstance(parttype, (int, np.integer)) or not 0 <= parttype <= 5:
        raise ValueError(f"parttype must be an integer in 0..5, got {parttype!r}")
    return int(parttype)


def snap_to_power_of_ten(value: float, rtol: float) -> float:
    """Return the nearest power of ten if ``value`` is within ``rtol`` of it, else ``value`` unchanged.

    Codes differ in their Mpc (3.085678e24 vs 3.0856776e24 cm) and solar mass (1.989e33 vs 1.98841e33 g);
    snapping absorbs these so that e.g. a kpc file converts to Mpc/h by an exact division by 1000.
    """
    if not value > 0 or not math.isfinite(value):
        return value
    p10 = 10.0 ** round(math.log10(value))
    return p10 if abs(value / p10 - 1.0) <= rtol else value


def parse_length_unit(length_unit: str | float) -> float:
    """Factor converting a length unit to Mpc/h: ``"Mpc/h"`` -> 1, ``"kpc/h"`` -> 1e-3, or a positive float."""
    if isinstance(length_unit, str):
        key = length_unit.strip().lower().replace(" ", "")
        if key in _LENGTH_UNITS:
            return _LENGTH_UNITS[key]
        raise ValueError(f"length_unit must be 'Mpc/h', 'kpc/h', 'Gpc/h' or a factor to Mpc/h, got {length_unit!r}")
    try:
        factor = float(length_unit)
    except (TypeError, ValueError):
        raise ValueError(f"length_unit must be a string or a number, got {length_unit!r}") from None
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"length_unit factor must be positive and finite, got {length_unit!r}")
    return factor


def resolve_length_unit(path: str, from_metadata: float | None, length_unit: str | float | None,
                        box_size_file: float) -> float:
    """Pick the length factor to Mpc/h: the caller's ``length_unit`` if given, else file metadata, else fail.

    An explicit ``length_unit`` that disagrees with the metadata wins, with a warning. With neither, raise a
    :class:`LengthUnitError` asking for ``length_unit`` (a BoxSize > 5000 only feeds the hint: it suggests kpc/h).
    """
    if length_unit is not None:
        factor = parse_length_unit(length_unit)
        if from_metadata is not None and not math.isclose(factor, from_metadata, rel_tol=1e-6):
            warnings.warn(f"{path}: length_unit={length_unit!r} overrides the file's unit metadata "
                          f"({from_metadata:g} Mpc/h per unit)", stacklevel=3)
        return factor
    if from_metadata is not None:
        return from_metadata
    hint = " (BoxSize > 5000 suggests kpc/h)" if box_size_file > 5000 else ""
    raise LengthUnitError(path, f"the file has no length-unit metadata (BoxSize={box_size_file:g} in file units){hint}")


def scale_lengths(values: np.ndarray, factor: float) -> np.ndarray:
    """``values * factor`` as float64, dividing by the exact integer ``1/factor`` when there is one (kpc -> Mpc)."""
    out = np.asarray(values, dtype=np.float64)
    if factor == 1.0:
        return out.copy() if out is values else out
    inv = 1.0 / factor
    if inv > 1.0 and abs(inv - round(inv)) <= 1e-9 * inv:
        return out / float(round(inv))
    return out * factor


def velocity_exponent(convention: str | None, default: float) -> float:
    """Exponent ``p`` of ``v_pec = V a^p`` for a named convention (``None`` keeps the format's default)."""
    if convention is None:
        return default
    try:
        return VELOCITY_CONVENTIONS[convention]
    except KeyError:
        raise ValueError(f"velocity_convention must be one of {sorted(VELOCITY_CONVENTIONS)}, "
                         f"got {convention!r}") from None


def validate_ids(ids: np.ndarray, expected_n: int | None = None, *, source: Any = None) -> int:
    """Check that ``ids`` is a permutation of a contiguous range ``[min, min + N)`` and return ``min``.

    Raises
    ------
    SnapshotError
        Naming ``source``, with the number of duplicated and missing IDs and a few examples of each.
    """
    ids = np.asarray(ids).astype(np.int64, copy=False).ravel()
    n = ids.size if expected_n is None else int(expected_n)
    if ids.size != n:
        raise SnapshotError(source, f"expected {n} particle IDs, found {ids.size}")
    if n == 0:
        return 0
    s = np.sort(ids)
    lo = int(s[0])
    dup = np.unique(s[1:][s[1:] == s[:-1]])
    uniq = np.unique(s)
    in_range = uniq[uniq < lo + n]
    n_missing = n - in_range.size
    if dup.size == 0 and n_missing == 0:
        return lo
    parts = []
    if dup.size:
        parts.append(f"{dup.size} duplicated (e.g. {dup[:5].tolist()})")
    if n_missing:
        missing = np.setdiff1d(np.arange(lo, lo + n, dtype=np.int64), in_range, assume_unique=True)
        parts.append(f"{n_missing} missing from [{lo}, {lo + n}) (e.g. {missing[:5].tolist()})")
    raise SnapshotError(source, "particle IDs are not a permutation of a contiguous range: " + "; ".join(parts))


def check_time_redshift(path: str, scale_factor: float, redshift: float | None) -> tuple[float, float]:
    """Return ``(a, z)``, checking ``a (1 + z) = 1`` to 1e-4 when both are given (else derive one)."""
    a = float(scale_factor)
    if not (a > 0 and math.isfinite(a)):
        raise SnapshotError(path, f"scale factor (Time) must be positive, got {scale_factor!r}")
    if redshift is None:
        return a, 1.0 / a - 1.0
    z = float(redshift)
    if abs(a * (1.0 + z) - 1.0) > 1e-4:
        raise SnapshotError(path, f"Time={a:g} and Redshift={z:g} disagree (a(1+z) != 1): "
                                  "not a comoving cosmological snapshot?")
    return a, z
