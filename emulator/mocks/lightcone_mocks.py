"""Survey mocks on an evolving lightcone: one realization generated at a ladder of redshifts, then the survey layer.

``cutsky["lightcone"]`` is ``True`` (a ladder from the redshift range, :func:`emulator.mocks.lightcone.default_ladder`:
steps of at most 0.05, i.e. ``ceil((z_max - z_min + 0.02) / 0.05) + 1`` snapshots) or a list of ladder redshifts.
Particles cross the cone with displacements and velocities interpolated between snapshots; halos, galaxies and
biased tracers come from the snapshot nearest each shell (:mod:`emulator.mocks.lightcone`). Every snapshot uses the
same seed (same initial noise) and the same per-stage seeds, so tracers of one realization differ between
snapshots only by evolution. The survey columns, randoms and files are those of :mod:`emulator.mocks.survey_files`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from .catalog import Catalog
from .catalogs import MockOptions, _seed, _tracer_columns
from .lightcone import default_ladder, particle_lightcone, shell_lightcone
from .survey_files import survey_outputs

__all__ = ["ladder_of", "lightcone_mock", "check_lightcone_request"]


def _maxrss_mb() -> float:
    """Peak resident memory of this process so far, MB (-1 where ``resource`` is missing, e.g. Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover
        return -1.0
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def ladder_of(cutsky: dict) -> list[float]:
    """The ladder redshifts of a ``cutsky`` option with ``lightcone`` set (sorted)."""
    spec = cutsky["lightcone"]
    z0, z1 = (float(z) for z in cutsky["redshift_range"])
    if spec is True:
        return default_ladder(z0, z1)
    return sorted(float(z) for z in spec)


def lightcone_mock(emulate: Callable[[float], Any], opts: MockOptions, calibration=None) -> tuple[Any, dict, dict]:
    """``(fields of the lowest ladder redshift, catalogs, attrs)`` of one realization; ``emulate(z)`` returns the
    :class:`~emulator.model.emulate.GeneratedFields` of the realization at redshift ``z``; ``calibration``: the
    model's halo-mass calibration (``model.halo_calibration``), applied as ``opts`` say. Snapshots are generated
    in increasing redshift and dropped when used (particles: two at a time)."""
    from ..core.lpt import lagrangian_grid, vector_field_to_particles

    cs = opts.cutsky
    ladder = ladder_of(cs)
    zr = tuple(float(z) for z in cs["redshift_range"])
    attrs: dict[str, Any] = {"lightcone_step_seconds": [], "lightcone_step_maxrss_mb": []}

    def step(j: int):  # one ladder snapshot, generated when needed (time and peak memory go to the attrs)
        t0 = time.perf_counter()
        fields = emulate(ladder[j])
        attrs["lightcone_step_seconds"].append(round(time.perf_counter() - t0, 3))
        attrs["lightcone_step_maxrss_mb"].append(_maxrss_mb())
        return fields

    f0 = step(0)
    first = {0: f0}
    if opts.tracer == "particles":
        q = lagrangian_grid(f0.ngrid, f0.box_size).cpu().numpy().astype(np.float64)
        keep = slice(None)
        if opts.number_density is not None:
            n_want = min(int(round(opts.number_density * f0.box_size**3)), len(q))
            keep = np.sort(np.random.default_rng(_seed(f0.seed, 1)).choice(len(q), n_want, replace=False))

        def snapshot(j: int):
            f = first.pop(j) if j in first else step(j)
            return (vector_field_to_particles(f.displacement).cpu().numpy().astype(np.float64)[keep],
                    f.velocities.cpu().numpy().astype(np.float64)[keep])

        out = particle_lightcone(q[keep], snapshot, ladder, f0.box_size, f0.cosmology, zr,
                                 observer=cs.get("observer"), rsd=cs.get("rsd", True))
        n_box = len(q[keep])
    else:
        sizes = []

        def catalog_at(j: int) -> dict:
            f = first.pop(j) if j in first else step(j)
            aux: dict = {}
            cols, extra = _tracer_columns(f, opts, f.seed, aux, calibration)
            attrs.update({f"{k}_z{ladder[j]:g}": v for k, v in extra.items() if k == "hod_unresolved_fraction"})
            attrs.update({k: v for k, v in extra.items() if k != "hod_unresolved_fraction"})
            sizes.append(len(cols["Position"]))
            return {**cols, **aux}

        spec = cs.get("footprint")  # a rectangle pre-cuts the shells; masks are applied by the survey layer
        rect = spec if isinstance(spec, dict) and set(spec) == {"ra", "dec"} else None
        out = shell_lightcone(catalog_at, ladder, f0.box_size, f0.cosmology, zr, observer=cs.get("observer"),
                              footprint=rect, rsd=cs.get("rsd", True))
        n_box = max(sizes)
    sky = Catalog(out["columns"], attrs=out["attrs"])
    seeds = {"SEED_IC": int(f0.seed), "SEED_SEL": _seed(f0.seed, 5) % 2**31,
             "SEED_RAN": _seed(f0.seed, 4) % 2**31 if opts.randoms_seed is None else int(opts.randoms_seed)}
    if "hod_seed" in attrs:
        seeds["SEED_HOD"] = attrs["hod_seed"]
    catalogs, extra = survey_outputs({}, {}, f0, cs, seeds, sky=sky, n_box=n_box)
    attrs.update(extra)
    attrs["lightcone_zladder"] = ladder
    return f0, catalogs, attrs


def check_lightcone_request(opts: MockOptions, model, cosmology, allow_extrapolation: bool,
                            box_size: float | None = None, ngrid: int | None = None) -> None:
    """Before anything is computed: the ladder covers the range and lies in the model's hull, and (galaxies, with
    ``box_size`` and ``ngrid``) the HOD resolution check holds at every ladder redshift: the redshift with the
    largest unresolved fraction is the one checked (warned about or refused)."""
    if opts.cutsky is None or not opts.cutsky.get("lightcone"):
        return
    from ..model.portable import ExtrapolationError
    from .lightcone import check_ladder

    z0, z1 = (float(z) for z in opts.cutsky["redshift_range"])
    ladder = check_ladder(ladder_of(opts.cutsky), z0, z1)
    for z in ladder:
        model.base.check_redshift(z)  # a PM base starts at its z_init
    outside = sorted({msg for z in ladder for msg in model.check_domain(cosmology, z)})
    if outside and not allow_extrapolation:
        raise ExtrapolationError(f"lightcone ladder {ladder} outside the model's training hull: "
                                 + "; ".join(outside) + " (use --allow-extrapolation)")
    if opts.tracer == "galaxies" and box_size is not None and ngrid is not None:
        from .catalogs import check_hod, resolved_mass
        from .massfunction import unresolved_fraction

        mmin = resolved_mass(opts, cosmology, box_size, ngrid)
        worst = max(ladder, key=lambda z: unresolved_fraction(opts.hod_params(), cosmology, z, mmin))
        check_hod(opts, cosmology, worst, box_size, ngrid)
