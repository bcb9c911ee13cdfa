"""Which embedded model a mock request needs: its Lagrangian resolution, from the tracer or ``--resolution``.

The embedded models come at two particle spacings (:data:`RESOLUTION_MODELS`): at 2 Mpc/h (particle mass
2.775e11 Omega_m x 8 Msun/h: 20-particle FoF halos from ~1.4e13 Msun/h) ``hybrid_cola4`` (the default: a network
correcting a 4-step COLA run) and ``default`` (a network correcting 2LPT), and ``hybrid_pm4_1mpc`` at 1 Mpc/h (8x
lighter particles: halos from ~1.8e12 Msun/h). A request that names no model gets the coarsest spacing (the
cheapest) whose resolution holds what it asks for:

* ``galaxies``: the coarsest model whose halos host all but :data:`~emulator.mocks.massfunction.WARN_FRACTION`
  of the HOD's expected galaxies (Tinker08 halos, the same count as the HOD resolution check), at the request's
  worst redshift; the finest model when none does (the HOD check then warns or refuses with the number);
* ``halos`` with a ``min_mass``: the coarsest model whose ``min_members`` x particle mass reaches down to it;
* anything else: the 2 Mpc/h model.

``resolution`` (Mpc/h) picks the model of that spacing instead. At each spacing the first installed model of its
list is used. A memory-capped request (``max_memory``) chooses among the models it can stream (2LPT base) only:
``default`` at 2 Mpc/h. The choice is made before anything is computed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from ..core.cosmology import Cosmology, particle_mass_from_cosmology
from ..model.header import DEFAULT_MODEL, LPT_MODEL, MODELS_DIR, read_header
from .catalogs import resolved_mass

__all__ = ["RESOLUTION_MODELS", "available_resolutions", "choose_model"]

#: Lagrangian cell (Mpc/h) -> the embedded models generated at that resolution, preferred first
RESOLUTION_MODELS: dict[float, tuple[str, ...]] = {2.0: (DEFAULT_MODEL, LPT_MODEL), 1.0: ("hybrid_pm4_1mpc",)}


def available_resolutions(streamable_only: bool = False) -> dict[float, str]:
    """``{cell: name}``: at each spacing of :data:`RESOLUTION_MODELS` the first model installed, coarsest first
    (``streamable_only``: the first with a 2LPT base, which a ``max_memory`` run can stream; a PM base needs the
    whole box)."""
    out = {}
    for cell, names in sorted(RESOLUTION_MODELS.items(), reverse=True):
        for name in names:
            path = MODELS_DIR / f"{name}.pt"
            if not path.is_file():
                continue
            header = read_header(path)
            if not math.isclose(header.cell_size, cell, rel_tol=1e-6):
                raise ValueError(f"embedded model {name} ({path}) is not at {cell:g} Mpc/h")
            if not streamable_only or header.base.get("method", "2lpt") == "2lpt":
                out[cell] = name
                break
    if not out:
        raise FileNotFoundError(f"no embedded model is installed in {MODELS_DIR}")
    return out


def _worst_unresolved(opts: Any, cosmology: Cosmology, redshifts: list[float], mmin: float) -> float:
    from .massfunction import unresolved_fraction

    return max(unresolved_fraction(opts.hod_params(), cosmology, z, mmin) for z in redshifts)


def _check_resolution(resolution: Any) -> float:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)) or not math.isfinite(resolution) \
            or resolution <= 0:
        raise ValueError(f"resolution must be a positive particle spacing in Mpc/h, got {resolution!r}")
    return float(resolution)


def choose_model(opts: Any, cosmology: Cosmology, redshifts: list[float], resolution: float | None = None,
                 log: Callable[[str], None] | None = None, streamable_only: bool = False) -> Path:
    """The embedded model a request without a model file needs (see the module docstring).

    Parameters
    ----------
    opts : MockOptions
        The tracer options (``tracer``, ``hod``, ``min_members``, ``min_mass``).
    cosmology : Cosmology
    redshifts : list of float
        Every redshift the catalog's objects come from (one snapshot, or a lightcone's ladder).
    resolution : float, optional
        Lagrangian cell in Mpc/h: the model of that spacing (one of :data:`RESOLUTION_MODELS`).
    log : callable, optional
        Receives one line naming the model chosen and why, when it is not the coarsest.
    streamable_only : bool
        Choose among models a memory-capped run can stream (2LPT base) only.

    Returns
    -------
    Path
        The embedded model's file.
    """
    if resolution is not None:
        res = _check_resolution(resolution)
        models = available_resolutions()
        for cell, name in models.items():
            if math.isclose(res, cell, rel_tol=1e-6):
                return MODELS_DIR / f"{name}.pt"
        have = ", ".join(f"{c:g} ({n})" for c, n in models.items())
        raise ValueError(f"resolution={res:g} Mpc/h: no embedded model at that particle spacing; available: {have}")
    models = available_resolutions(streamable_only)
    cells = list(models)  # coarsest first
    chosen, why = cells[0], ""
    if opts.tracer == "galaxies":
        fractions = {}
        for cell in cells:
            mmin = resolved_mass(opts, cosmology, cell, 1)  # one particle per cell of side ``cell``
            fractions[cell] = _worst_unresolved(opts, cosmology, redshifts, mmin)
        from .massfunction import WARN_FRACTION

        good = [c for c in cells if fractions[c] <= WARN_FRACTION]
        # none good enough: the coarsest of those that lose the fewest (a min_mass above both resolutions
        # loses the same galaxies at both: no reason to pay for the finer one)
        chosen = good[0] if good else min(cells, key=lambda c: (round(fractions[c], 6), -c))
        why = (f"{100 * fractions[cells[0]]:.1f}% of the HOD's galaxies are in halos below the "
               f"{cells[0]:g} Mpc/h model's resolved mass, {100 * fractions[chosen]:.1f}% at {chosen:g} Mpc/h")
    elif opts.tracer == "halos" and opts.min_mass:
        pmass = {c: particle_mass_from_cosmology(cosmology.Omega_m, c, 1) for c in cells}
        chosen = next((c for c in cells if opts.min_members * pmass[c] <= opts.min_mass * (1 + 1e-9)), cells[-1])
        why = (f"min_mass={opts.min_mass:.3g} Msun/h is below {opts.min_members} particles of the {cells[0]:g} "
               f"Mpc/h model ({opts.min_members * pmass[cells[0]]:.3g} Msun/h)")
    if chosen != cells[0] and log is not None:
        log(f"using the embedded model {models[chosen]} ({chosen:g} Mpc/h particle spacing: "
            f"{(cells[0] / chosen) ** 3:.0f}x the particles of a box at {cells[0]:g} Mpc/h): {why}")
    return MODELS_DIR / f"{models[chosen]}.pt"
