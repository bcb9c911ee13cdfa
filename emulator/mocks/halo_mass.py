"""Calibrated FoF halo masses: a model's :class:`~emulator.model.halo_calibration.HaloMassCalibration` applied to
the FoF catalogue of its particles.

FoF runs down to the smallest member count whose calibrated mass can reach the ``min_members`` cut
(:func:`raw_min_members`); :func:`calibrate_halos` then sets ``mass = n_members x particle_mass x f(n_members, z)``
rounded to whole particle masses (:meth:`~emulator.model.halo_calibration.HaloMassCalibration.calibrated_members`)
and keeps the halos whose calibrated mass is at least ``min_members x particle_mass``: the cut means the same
mass as on the converged truth. ``n_members`` stays the count of member particles. The mass order, and with it
each halo's rank, is unchanged (``N f(N)`` does not decrease with ``N``).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import replace

import numpy as np

from ..model.halo_calibration import HaloMassCalibration
from .fof import Halos, friends_of_friends

__all__ = ["usable_calibration", "raw_min_members", "calibrate_halos", "calibrated_friends_of_friends",
           "calibration_attr", "calibration_digest"]


def usable_calibration(calibration: HaloMassCalibration | None, linking_length: float, enabled: bool = True
                       ) -> HaloMassCalibration | None:
    """``calibration`` when ``enabled`` and it holds for ``linking_length``; ``None`` otherwise (with a warning
    naming both linking lengths when they differ)."""
    if calibration is None or not enabled:
        return None
    if abs(float(linking_length) - calibration.linking_length) > 1e-9:
        warnings.warn(f"the model's halo-mass calibration holds for FoF linking_length={calibration.linking_length:g},"
                      f" not {float(linking_length):g}: halo masses are uncalibrated (N x particle mass)",
                      stacklevel=3)
        return None
    return calibration


def raw_min_members(calibration: HaloMassCalibration | None, min_members: int, redshift: float) -> int:
    """The FoF ``min_members`` to run with so that :func:`calibrate_halos` can keep every halo of calibrated
    mass ``>= min_members`` particle masses (``min_members`` itself without a calibration); at least 2."""
    if calibration is None:
        return int(min_members)
    return max(2, calibration.min_raw_members(int(min_members), redshift))


def calibrate_halos(halos: Halos, calibration: HaloMassCalibration | None, redshift: float,
                    min_members: int) -> Halos:
    """``halos`` with calibrated masses, cut at ``min_members`` particle masses (unchanged without calibration).

    Parameters
    ----------
    halos : Halos
        FoF catalogue of the generator's particles found with ``min_members`` of :func:`raw_min_members`.
    calibration : HaloMassCalibration or None
    redshift : float
    min_members : int
        The cut in particle masses of calibrated mass (the catalog's ``min_members``).

    Returns
    -------
    Halos
        Same order; ``mass`` in Msun/h calibrated (whole particle masses); ``labels`` of dropped halos set to -1.
    """
    if calibration is None:
        return halos
    members = calibration.calibrated_members(halos.n_members, redshift)
    mass = members * halos.particle_mass
    # non-increasing along the catalogue (N f(N) non-decreasing: HaloMassCalibration): the kept are the first
    keep = int(np.count_nonzero(members >= int(min_members)))
    if np.any(members[:keep] < int(min_members)):  # excluded by HaloMassCalibration's checks
        raise ValueError("halo-mass calibration: calibrated masses lost the FoF mass order")
    labels = halos.labels.copy()
    labels[labels >= keep] = -1
    vel = None if halos.velocity is None else halos.velocity[:keep]
    return replace(halos, position=halos.position[:keep], velocity=vel, mass=mass[:keep],
                   n_members=halos.n_members[:keep], labels=labels)


def calibrated_friends_of_friends(positions, box_size: float, linking_length: float, min_members: int,
                                  calibration: HaloMassCalibration | None, redshift: float, *, particle_mass: float,
                                  velocities=None) -> Halos:
    """FoF halos (:func:`~emulator.mocks.fof.friends_of_friends`) of at least ``min_members`` particle masses,
    their masses calibrated: FoF down to :func:`raw_min_members`, then :func:`calibrate_halos`. ``calibration``:
    one that holds for ``linking_length`` (:func:`usable_calibration`) or None (plain FoF). The halos of
    ``emulator generate``'s in-memory catalogs and of the benchmark's generator."""
    found = friends_of_friends(positions, box_size, linking_length, raw_min_members(calibration, min_members, redshift),
                               particle_mass=particle_mass, velocities=velocities)
    return calibrate_halos(found, calibration, redshift, min_members)


def calibration_attr(calibration: HaloMassCalibration | None) -> str:
    """The provenance attr ``halo_mass_calibration``: ``"none"`` or the JSON of the table that was applied."""
    if calibration is None:
        return "none"
    d = calibration.to_dict()
    return json.dumps({k: d[k] for k in ("sha256", "linking_length", "redshifts", "members", "factor")}
                      | {"fitted_on": calibration.source.get("suite", "")}, separators=(",", ":"))


def calibration_digest(calibration: HaloMassCalibration | None) -> str:
    """``"none"`` or the SHA-256 of :func:`calibration_attr`: the attr ``halo_mass_calibration_sha256`` that
    identifies an output file (a refitted table makes other halos from the same model bytes)."""
    return "none" if calibration is None else hashlib.sha256(calibration_attr(calibration).encode()).hexdigest()
