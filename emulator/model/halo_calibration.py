"""A model's halo-mass calibration: the FoF masses of its particles mapped onto those of the converged truth.

A generator (like a few-step PM run) under-resolves the dense cores of small halos: friends-of-friends (FoF) on
its particles finds the same halos as on the truth's, each a few percent lighter (hybrid_pm4 at z = 0: 10% for
35-200 particles, 1-3% above 200; measured by abundance matching, the same on training and held-out cosmologies,
:mod:`benchmarks.halo_mass`). A fixed particle-count cut then keeps 5-10% too few halos. The calibration
``M = N m_p f(N, z)`` (``N`` the FoF member count on the generator's particles, ``m_p`` the particle mass) maps
each halo onto the mass of the truth halo of the same abundance rank, so that counts above a mass, the mass
function and the halo samples selected by mass are those of the converged simulation. ``N f(N, z)`` is rounded
to a whole number of particles, as the truth's FoF masses are (:meth:`HaloMassCalibration.calibrated_members`):
a cut at 20 particles then means the same in both catalogues.

``<stem>.halo_mass.json`` next to ``<stem>.pt`` (written by ``python -m benchmarks.halo_mass --fit``) holds
``f`` on a grid of member counts (interpolated linearly in ``log N``, constant beyond the end nodes) and
redshifts (linear in ``z``), for one FoF linking length, fitted on training simulations only. Like a model card
it counts only while its ``sha256`` is the model file's (and its ``pgd_sha256`` the PGD sharpening's the
model applies, :mod:`emulator.model.pgd_correction`). Like :mod:`emulator.model.header`, this module does not
import torch.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .sidecar import read_sidecar, sidecar_path

__all__ = ["CALIBRATION_FORMAT", "HaloMassCalibration", "calibration_path", "read_calibration"]

CALIBRATION_FORMAT = "cosmo-emulator-halo-mass-calibration"


@dataclass(frozen=True)
class HaloMassCalibration:
    """``f(N, z)``, the truth / generator FoF mass ratio at equal abundance, on a grid.

    Attributes
    ----------
    sha256 : str
        SHA-256 of the model file it was fitted for.
    redshifts : np.ndarray
        ``(nz,)`` ascending redshifts of the table rows.
    members : np.ndarray
        ``(nm,)`` ascending FoF member counts on the generator's particles of the table columns.
    factor : np.ndarray
        ``(nz, nm)`` mass ratios ``f``; ``N f(N, z)`` does not decrease with ``N`` at any ``z`` (the mass order
        is kept).
    linking_length : float
        FoF linking length (units of the mean interparticle separation) it holds for.
    source : dict
        Provenance: the command, training suite, snapshots and residuals of the fit.
    pgd_sha256 : str
        Digest of the PGD sharpening the generator's particles had in the fit (``"none"``: without).
    """

    sha256: str
    redshifts: np.ndarray
    members: np.ndarray
    factor: np.ndarray
    linking_length: float
    source: dict = field(default_factory=dict)
    pgd_sha256: str = "none"

    def __post_init__(self) -> None:
        z, n, f = (np.asarray(a, dtype=np.float64) for a in (self.redshifts, self.members, self.factor))
        if z.ndim != 1 or n.ndim != 1 or f.shape != (z.size, n.size) or z.size < 1 or n.size < 2:
            raise ValueError(f"halo-mass calibration: factor must be (redshifts, members) = ({z.size}, {n.size}), "
                             f"got {f.shape}")
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(n)) and np.all(np.isfinite(f))):
            raise ValueError("halo-mass calibration: redshifts, members and factors must be finite")
        if np.any(np.diff(z) <= 0) or np.any(np.diff(n) <= 0) or n[0] < 1:
            raise ValueError("halo-mass calibration: redshifts and members must be strictly ascending, members >= 1")
        if np.any(f <= 0):
            raise ValueError("halo-mass calibration: every factor must be positive")
        for name, v in (("redshifts", z), ("members", n), ("factor", f)):
            object.__setattr__(self, name, v)
        whole = np.arange(1.0, np.ceil(n[-1]) + 2.0)  # every member count the table's nodes and interpolation reach
        for zi in z:  # a blend of non-decreasing rows is non-decreasing: the rows suffice
            if np.any(np.diff(whole * self.factor_at(whole, zi)) < -1e-3):  # factors are stored to 5-6 decimals
                raise ValueError(f"halo-mass calibration: N f(N, z) decreases with N at z = {zi:g} (calibrated masses "
                                 "must keep the FoF mass order)")

    def factor_at(self, n_members, redshift: float) -> np.ndarray:
        """``f`` for member counts ``n_members`` (array) at ``redshift``; warns outside the fitted redshifts."""
        z = float(redshift)
        lo, hi = float(self.redshifts[0]), float(self.redshifts[-1])
        if not lo - 1e-6 <= z <= hi + 1e-6:
            warnings.warn(f"halo-mass calibration fitted for z in [{lo:g}, {hi:g}]; at z = {z:g} the nearest "
                          f"redshift's factors are used", stacklevel=2)
        x = np.log(np.maximum(np.asarray(n_members, dtype=np.float64), 1.0))
        rows = [np.interp(x, np.log(self.members), row) for row in self.factor]
        if len(rows) == 1:
            return rows[0]
        j = int(np.clip(np.searchsorted(self.redshifts, z) - 1, 0, len(rows) - 2))
        w = float(np.clip((z - self.redshifts[j]) / (self.redshifts[j + 1] - self.redshifts[j]), 0.0, 1.0))
        return (1.0 - w) * rows[j] + w * rows[j + 1]

    def calibrated_members(self, n_members, redshift: float) -> np.ndarray:
        """The truth's member count at equal abundance, ``N f(N, z)`` rounded to a whole number (int64) as the
        truth's counts are: cuts and mass bins then select the same halos in both. Non-decreasing in ``N``."""
        n = np.asarray(n_members, dtype=np.float64)
        return np.floor(n * self.factor_at(n, redshift) + 0.5).astype(np.int64)

    def min_raw_members(self, min_members: int, redshift: float) -> int:
        """Smallest generator member count whose calibrated count reaches ``min_members``."""
        n = np.arange(1, int(min_members) + 1)
        ok = self.calibrated_members(n, redshift) >= int(min_members)
        return int(n[np.argmax(ok)]) if ok.any() else int(min_members)

    def to_dict(self) -> dict:
        """The file's JSON content."""
        return {"format": CALIBRATION_FORMAT, "format_version": 1, "sha256": self.sha256,
                "linking_length": self.linking_length, "redshifts": self.redshifts.tolist(),
                "members": self.members.tolist(), "factor": self.factor.tolist(), "source": self.source,
                "pgd_sha256": self.pgd_sha256}

    def describe(self) -> str:
        """One line per redshift: ``f`` at 20, 40, 100 and 1000 members."""
        show = (20, 40, 100, 1000)
        lines = [f"halo-mass calibration (FoF b = {self.linking_length:g}; truth / generator mass at equal "
                 f"abundance, fitted on {self.source.get('suite', '?')}): f(N) at N = " + ", ".join(map(str, show))]
        for z in self.redshifts:
            lines.append(f"  z = {z:g}: " + ", ".join(f"{v:.3f}" for v in self.factor_at(np.array(show), z)))
        return "\n".join(lines)


def calibration_path(model_path: str | Path) -> Path:
    """The calibration file of a model file: ``<folder>/<stem>.halo_mass.json``."""
    return sidecar_path(model_path, "halo_mass")


def _build(data: dict) -> HaloMassCalibration:
    cal = HaloMassCalibration(sha256=str(data["sha256"]), redshifts=data["redshifts"], members=data["members"],
                              factor=data["factor"], linking_length=float(data["linking_length"]),
                              source=dict(data.get("source", {})), pgd_sha256=str(data.get("pgd_sha256") or "none"))
    if not math.isfinite(cal.linking_length) or cal.linking_length <= 0:
        raise ValueError(f"bad linking_length {cal.linking_length}")
    return cal


def read_calibration(model_path: str | Path, sha256: str, *, pgd_sha256: str) -> HaloMassCalibration | None:
    """The halo-mass calibration of the model file ``model_path`` (SHA-256 ``sha256``), or ``None`` when it has
    none; an unreadable or stale file (fitted for other model bytes, or on particles of another PGD sharpening
    than the model's, ``pgd_sha256``: :meth:`emulator.model.pgd_correction.PGDCorrection.digest`) is ``None``
    with a warning on stderr."""
    cal = read_sidecar(model_path, sha256, "halo_mass", CALIBRATION_FORMAT, _build, "halo-mass calibration",
                       "FoF masses stay uncalibrated")
    if cal is not None and cal.pgd_sha256 != pgd_sha256:
        print(f"warning: {calibration_path(model_path)}: halo-mass calibration fitted on particles with PGD "
              f"{cal.pgd_sha256[:16]}, the model's are {pgd_sha256[:16]}; FoF masses stay uncalibrated",
              file=sys.stderr)
        return None
    return cal
