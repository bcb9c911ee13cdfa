"""The words of a benchmark report's Model line that say how the generator's particles and halos were graded:
PGD-sharpened or not, velocities with the model's dispersion or not, halo masses calibrated or raw (nothing for
reports made before each existed)."""

from __future__ import annotations

import json

__all__ = ["generator_words", "halo_masses_words", "pgd_words", "vdisp_words"]


def halo_masses_words(model: dict) -> str:
    """How the generator's FoF masses were graded (nothing for reports made before halo-mass calibrations)."""
    applied = model.get("halo_calibration")
    if applied is None:
        return ""
    if applied == "none":
        return "; its FoF halo masses are member count × particle mass (no halo-mass calibration)"
    return (f"; its FoF halo masses are calibrated as `emulator generate` writes them (halo-mass calibration fitted "
            f"on {json.loads(applied).get('fitted_on') or 'its training suite'})")


def pgd_words(model: dict) -> str:
    """Whether the generator's particles were PGD-sharpened (nothing for reports made before PGD files)."""
    applied = model.get("pgd")
    if applied is None:
        return ""
    if applied == "none":
        return "; its particles are the network's (no PGD sharpening)"
    d = json.loads(applied)
    nodes = ", ".join(f"{a:.4g} at z = {z:g}" for z, a in zip(d["redshifts"], d["alpha"]))
    term = d.get("sigma8_term")
    if term:
        nodes += (f" for sigma8 = {term['pivot']:g}, d alpha / d sigma8 "
                  + ", ".join(f"{b:+.4g}" for b in term["slope"]))
    return (f"; its particles are PGD-sharpened as `emulator generate` makes them (alpha {nodes}; band "
            f"{d['k_long']:g}-{d['k_short']:g} h/Mpc)")


def vdisp_words(model: dict) -> str:
    """Whether the generator's velocities carry its small-scale dispersion (nothing for reports made before
    dispersion files)."""
    applied = model.get("velocity_dispersion")
    if applied is None:
        return ""
    if applied == "none":
        return "; its velocities are the network's (no velocity dispersion)"
    d = json.loads(applied)
    return (f"; its velocities carry the model's small-scale dispersion as `emulator generate` adds it (fitted at "
            f"z = {', '.join(f'{z:g}' for z in d['redshifts'])})")


def generator_words(model: dict) -> str:
    """:func:`pgd_words`, :func:`vdisp_words` then :func:`halo_masses_words` of the results' ``model`` entry."""
    return pgd_words(model) + vdisp_words(model) + halo_masses_words(model)
