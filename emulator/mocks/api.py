"""``emulator.generate_mocks``: the Python API behind ``emulator generate``.

Example
-------
>>> from emulator.api import generate_mocks
>>> paths = generate_mocks("planck18", redshift=0.0, box_size=128.0, n_realizations=4, base_seed=1,
...                        tracer="halos", out_dir="mocks")
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..core.allocator import release_freed_memory
from ..core.checks import check_box_size
from ..core.cosmology import PARAMETER_NAMES, Cosmology, get_preset
from ..core.distributed import (all_gather_objects, barrier, init_if_needed, launched_by_torchrun, rank_device,
                                rank_world, shard)
from ..core.provenance import code_version
from ..model.corners import corner_warning
from ..model.emulate import SEED_MAX, check_seed, emulate_fields, resolve_grid
from ..model.pgd_correction import pgd_attr, pgd_digest
from ..model.portable import EmulatorModel, ExtrapolationError, check_device, load_model
from ..model.velocity_dispersion import vdisp_attr, vdisp_digest, vdisp_path
from .catalogs import (MockOptions, applied_pgd, applied_vdisp, check_hod, check_tracer_count, fof_min_members,
                       halo_calibration, make_catalogs)
from .halo_mass import calibration_attr, calibration_digest
from .largebox import GB, in_memory_estimate, plan_memory, streamed_mock, warn_if_short
from .outputs import Target, reserve_outputs, write_manifest

__all__ = ["generate_mocks", "resolve_cosmology", "MockPaths"]


def resolve_cosmology(params: Any) -> Cosmology:
    """A :class:`Cosmology` from a preset name, a mapping of the five parameters, an astropy cosmology
    (with ``n_s`` or ``n``, and ``sigma8``, in ``meta``: see :meth:`Cosmology.from_astropy`) or a Cosmology."""
    if isinstance(params, Cosmology):
        return params
    if isinstance(params, str):
        return get_preset(params)
    if isinstance(params, dict):
        return Cosmology.from_mapping(params)
    if hasattr(params, "Om0") and hasattr(params, "H0"):
        return Cosmology.from_astropy(params)
    raise ValueError(f"cannot interpret {params!r} as a cosmology: use a preset name, a dict of "
                     f"{', '.join(PARAMETER_NAMES)}, an astropy cosmology or a Cosmology")


class MockPaths(list):
    """The files of a :func:`generate_mocks` run (a list of :class:`~pathlib.Path`, one per seed, in seed order);
    ``skipped`` lists those that were already there with the same parameters and were kept, not recomputed."""

    def __init__(self, paths=(), skipped=()) -> None:
        super().__init__(paths)
        self.skipped: list[Path] = list(skipped)


def _streamable_if_capped(model: EmulatorModel, cap: float, box_size: Any, tile: int | None,
                          streamable: Any, device: str) -> tuple[EmulatorModel, str | None]:
    """The embedded model chosen for a capped request, or, when it corrects a PM run (held whole, never streamed)
    and that exceeds ``cap`` GB, the streamable (2LPT-based) model ``streamable()`` chooses instead, with the line
    that says so (None when the model is kept)."""
    if model.base.is_lpt:
        return model, None
    box = check_box_size(box_size)
    multiple = max(2, int(model.net.size_multiple))
    ngrid = resolve_grid(box, model.cell_size, multiple)
    whole = in_memory_estimate(ngrid, halo=int(model.net.halo), multiple=multiple, tile=tile, base=model.base,
                               velocity=model.velocity)
    if whole <= cap * GB:
        return model, None
    path = streamable()
    return load_model(path, device=device), (
        f"--max-memory {cap:g} GB: {model.name} corrects a {model.base.method.upper()} run, which is held whole "
        f"(~{whole / GB:.1f} GB for {ngrid}^3 particles); using the streamable 2LPT-based embedded model {path.stem}")


def _check_cap(max_memory: Any) -> float | None:
    if max_memory is None:
        return None
    try:
        cap = float(max_memory)
    except (TypeError, ValueError):
        raise ValueError(f"max_memory (--max-memory) must be a number of GB, got {max_memory!r}") from None
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(f"max_memory (--max-memory) must be a positive number of GB, got {max_memory!r}")
    return cap


def _seeds(seeds: Sequence[int] | None, n_realizations: int, base_seed: int) -> list[int]:
    if seeds is None:
        if isinstance(n_realizations, bool) or not isinstance(n_realizations, numbers.Integral) or n_realizations < 1:
            raise ValueError(f"n_realizations must be an integer >= 1, got {n_realizations!r}")
        base, n_realizations = check_seed(base_seed, "base_seed (--seed)"), int(n_realizations)
        if base + n_realizations - 1 > SEED_MAX:
            raise ValueError(f"base_seed (--seed) + n_realizations - 1 = {base + n_realizations - 1} exceeds "
                             f"2^64 - 1 = {SEED_MAX}, the largest white-noise seed")
        return [base + i for i in range(n_realizations)]
    out = [check_seed(s, "seeds") for s in seeds]
    if not out:
        raise ValueError("seeds must not be empty")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct (one file per seed), got {list(seeds)}")
    return out


def _warn_if_velocities_cold(opts: MockOptions, model: EmulatorModel) -> None:
    """Warn when particles or biased tracers go to redshift space with the network's velocities alone: the
    options ask for the dispersion but the model has no table."""
    redshift_space = opts.rsd_axis is not None or (opts.cutsky is not None and opts.cutsky.get("rsd", True))
    if model.vdisp is None and opts.velocity_dispersion and opts.tracer in ("particles", "biased") and redshift_space:
        table = f" ({vdisp_path(model.path).name})" if model.path else ""
        warnings.warn(f"model {model.name} has no velocity-dispersion table{table}: its velocities lack the virial "
                      f"motions that damp redshift-space clustering (without its table, hybrid_cola4's particles "
                      f"have P0 29% high at k_Nyq/2 at z = 0); fit one with python -m benchmarks.velocity_dispersion",
                      stacklevel=3)


def generate_mocks(
    params: Any,
    *,
    redshift: float = 0.0,
    box_size: float = 128.0,
    n_realizations: int = 1,
    base_seed: int = 1,
    seeds: Sequence[int] | None = None,
    out_dir: str | Path = "mocks",
    format: str = "hdf5",
    model: EmulatorModel | str | Path | None = None,
    device: str = "cpu",
    allow_extrapolation: bool = False,
    tile: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    max_memory: float | None = None,
    fof_overlap: float | None = None,
    log: Any = None,
    resolution: float | None = None,
    on_choice: Any = None,
    **tracer_options: Any,
) -> MockPaths:
    """Generate mock catalogs, one file per realization (``mock_<seed>.hdf5`` or ``.fits``) in ``out_dir``.

    The whole request is checked before the first mock is computed (options, seeds, redshift, device, model and
    its hull, tracer count, the output folder, locks and files already there: :mod:`emulator.mocks.outputs`);
    a failure is a one-line ``ValueError`` and leaves no file and no new folder behind.

    Parameters
    ----------
    params
        Cosmology: preset name, dict, astropy cosmology (``n_s`` or ``n``, and ``sigma8`` in ``meta``, e.g.
        ``astropy.cosmology.Planck18``) or :class:`Cosmology`.
    redshift : float
        Snapshot redshift, finite and >= 0 (and in the model's range unless ``allow_extrapolation``).
    box_size : float
        Box side in Mpc/h (a multiple of the model's cell size).
    n_realizations, base_seed : int
        Seeds ``base_seed, base_seed + 1, ...`` unless ``seeds`` is given; seeds are integers in
        ``[0, 2^64 - 1]`` (the range of the white-noise generator, :data:`emulator.model.emulate.SEED_MAX`).
    seeds : sequence of int, optional
        Distinct seeds, one file each.
    out_dir : str or Path
        Output folder, created if missing; it must be writable.
    format : {"hdf5", "fits"}
    model
        A loaded model, a model file, or None: the embedded model whose particle spacing the tracer needs
        (:func:`emulator.mocks.model_choice.choose_model`: ``hybrid_cola4`` at 2 Mpc/h unless the HOD's galaxies or
        ``min_mass`` need the 1 Mpc/h model; with ``max_memory`` below what the chosen PM- or COLA-base model needs held
        whole, the streamable 2LPT-based ``default`` instead).
    resolution : float, optional
        Particle spacing in Mpc/h of the embedded model to use (2 or 1); not with ``model``.
    on_choice : callable, optional
        Receives the line naming the embedded model chosen when it is not ``hybrid_cola4`` (default: a
        ``UserWarning``).
    device : str
        ``cpu`` or ``cuda[:index]``.
    allow_extrapolation : bool
        Permit parameters outside the model's hull (the warning goes into the attrs).
    tile : int, optional
        Network tile size in cells (memory control).
    progress : bool
        Show a progress bar.
    max_memory : float, optional
        Memory cap in GB (10^9 bytes): a mock whose estimated peak (:func:`emulator.mocks.largebox.plan_memory`)
        exceeds it is made with bounded memory, slab by slab through scratch files in ``out_dir``, with the same
        particles and halos as held whole with the same ``tile`` (:mod:`emulator.mocks.largebox`; streamed
        slabs default to at most 64 planes, the in-memory pass to balanced tiles of at most 128 above 128^3); a
        cap no plan meets is refused before any work.
        None: every mock is held whole (a warning when the estimate exceeds the memory available).
    fof_overlap : float, optional
        Overlap of the FoF slabs of a streamed mock, Mpc/h (default: 10 Mpc/h or 25 linking lengths).
    log : callable, optional
        Receives one line with the memory estimate and plan (e.g. ``print``).
    overwrite : bool
        Replace existing ``mock_<seed>`` files. Without it a file already there with the same parameters is kept
        (listed in ``skipped``) and one with other parameters stops the run, naming the differing attrs.
    tracer_options
        Fields of :class:`emulator.mocks.catalogs.MockOptions` (``tracer``, ``number_density``, ``hod``, ...).

    Returns
    -------
    MockPaths
        The files, one per seed (a list; ``.skipped``: those kept from an earlier identical run).
    """
    from tqdm.auto import tqdm

    from .io import write_mock_files

    cosmo = resolve_cosmology(params)
    opts = MockOptions(**tracer_options)
    if format not in ("hdf5", "fits"):
        raise ValueError(f"format must be hdf5 or fits, got {format!r}")
    try:
        redshift = float(redshift)
    except (TypeError, ValueError):
        raise ValueError(f"redshift must be a number, got {redshift!r}") from None
    if not math.isfinite(redshift) or redshift < 0:  # a plain error: never extrapolation advice
        raise ValueError(f"redshift must be finite and >= 0, got {redshift}")
    seeds = _seeds(seeds, n_realizations, base_seed)
    device = str(check_device(rank_device(str(device))))  # cuda -> cuda:LOCAL_RANK under torchrun
    if model is not None and resolution is not None:
        raise ValueError("give a model (--model) or a resolution (--resolution), not both")
    fallback = None  # the line saying a capped request got the streamable model instead of the default
    if model is None:
        from .model_choice import choose_model

        zs = [redshift]
        if opts.cutsky is not None and opts.cutsky.get("lightcone"):  # the objects come from the ladder
            from .lightcone import check_ladder
            from .lightcone_mocks import ladder_of

            zs = check_ladder(ladder_of(opts.cutsky), *(float(z) for z in opts.cutsky["redshift_range"]))
        say = on_choice or (lambda line: warnings.warn(line, stacklevel=4))
        model = choose_model(opts, cosmo, zs, resolution, log=say)
        if max_memory is not None and resolution is None:  # a resolution asked for is kept (or refused)
            model, fallback = _streamable_if_capped(
                load_model(model, device=device), _check_cap(max_memory), box_size, tile,
                lambda: choose_model(opts, cosmo, zs, resolution, streamable_only=True), device)
    if not isinstance(model, EmulatorModel):
        model = load_model(model, device=device)
    model.base.check_redshift(redshift)  # a PM base starts at its z_init
    outside = model.check_domain(cosmo, redshift)
    if outside and not allow_extrapolation:
        raise ExtrapolationError(
            "outside the model's training hull: " + "; ".join(outside) + " (use --allow-extrapolation)"
        )
    box = check_box_size(box_size)
    ngrid = resolve_grid(box, model.cell_size, max(2, model.net.size_multiple))
    check_tracer_count(opts, ngrid, box)
    if opts.cutsky is not None and opts.cutsky.get("lightcone"):  # galaxies: the HOD is checked at every ladder z
        from .lightcone_mocks import check_lightcone_request

        check_lightcone_request(opts, model, cosmo, allow_extrapolation, box, ngrid)
    else:
        check_hod(opts, cosmo, redshift, box, ngrid)  # galaxies: warn/refuse an HOD the resolution cannot hold
    pgd = applied_pgd(opts, model)  # the sharpening applied (its digest: part of every file's identity)
    vdisp = applied_vdisp(opts, model)  # the velocity dispersion added (likewise)
    # near a corner where the card measured P(k) beyond its target: the line, in every file's attrs (else "")
    accuracy = getattr(corner_warning(model.card, model.hull(), cosmo.to_dict(), redshift), "text", "")
    _warn_if_velocities_cold(opts, model)
    calibration = halo_calibration(opts, model) if opts.tracer in ("halos", "galaxies") else None
    plan = plan_memory(opts, ngrid, box, halo=int(model.net.halo), multiple=max(2, int(model.net.size_multiple)),
                       max_memory=_check_cap(max_memory), tile=tile, fof_overlap=fof_overlap, format=format,
                       base=model.base, fof_members=fof_min_members(opts, calibration, redshift),
                       velocity=model.velocity)
    if plan.streamed and pgd is not None and pgd.alpha_at(redshift, cosmo.sigma8) > 0:  # before any file is reserved
        raise ValueError(f"--max-memory streams this box, which cannot apply {model.name}'s PGD sharpening at "
                         f"z = {redshift:g} (it needs the whole box's density): raise --max-memory, or --no-pgd")
    if plan.streamed and vdisp is not None:
        raise ValueError(f"--max-memory streams this box, which cannot add {model.name}'s velocity dispersion (it "
                         f"needs the whole box's density): raise --max-memory, or --no-velocity-dispersion")
    if fallback is not None:  # said once the plan is possible: a refused request gets one line, its error
        say(fallback)
    if log is not None:
        log(plan.describe())
    warn_if_short(plan, max_memory)
    suffix = ".hdf5" if format == "hdf5" else ".fits"
    fixed = {**cosmo.to_dict(), "redshift": redshift, "BoxSize": box, "Nmesh": ngrid}
    run = {"tracer": opts.tracer, "tracer_options": opts.to_attrs(), "model_sha256": model.sha256,
           "halo_mass_calibration_sha256": calibration_digest(calibration),  # a refitted table: other halos
           "pgd_sha256": pgd_digest(pgd), "velocity_dispersion_sha256": vdisp_digest(vdisp)}
    targets = [Target(Path(out_dir) / f"mock_{seed:06d}{suffix}", {**fixed, "seed": seed, **run}) for seed in seeds]
    init_if_needed(device)  # torchrun with WORLD_SIZE > 1: each rank reserves and computes its own seeds
    rank, world = rank_world()
    with reserve_outputs(out_dir, shard(targets, rank, world), overwrite) as mine:
        todo = [t for t in mine if t.compute]
        for target in tqdm(todo, desc="mocks", unit="mock", disable=not progress):
            seed = target.identity["seed"]
            t0 = time.perf_counter()

            def attrs_of(fields, extra, seed=seed, t0=t0):
                return {
                    **cosmo.to_dict(),
                    "redshift": redshift,
                    "BoxSize": float(fields.box_size),
                    "Nmesh": int(fields.ngrid),
                    "seed": seed,
                    "tracer": opts.tracer,
                    "tracer_options": opts.to_attrs(),
                    "model_name": model.name,
                    "model_sha256": model.sha256,
                    "halo_mass_calibration": calibration_attr(calibration),
                    "halo_mass_calibration_sha256": calibration_digest(calibration),
                    "pgd": pgd_attr(pgd),
                    "pgd_sha256": pgd_digest(pgd),
                    "pgd_alpha": float(getattr(fields, "pgd_alpha", 0.0)),  # applied at this file's redshift
                    "velocity_dispersion": vdisp_attr(vdisp),
                    "velocity_dispersion_sha256": vdisp_digest(vdisp),
                    "package_version": code_version(),
                    "extrapolation_warning": "; ".join(fields.extrapolated),
                    "accuracy_warning": accuracy,
                    "generation_seconds": time.perf_counter() - t0,
                    **extra,
                }

            if plan.streamed:
                streamed_mock(target.path, cosmo, redshift, box, seed, opts, plan, model=model, device=device,
                              allow_extrapolation=allow_extrapolation, progress=progress, attrs_of=attrs_of,
                              format=format)
                release_freed_memory()
                continue
            if opts.cutsky is not None and opts.cutsky.get("lightcone"):  # one realization at a ladder of z
                from .lightcone_mocks import lightcone_mock

                fields, catalogs, extra = lightcone_mock(
                    lambda z, s=seed: emulate_fields(cosmo, z, box, s, model=model, device=device, tile=tile,
                                                     allow_extrapolation=allow_extrapolation, pgd=opts.pgd,
                                                     velocity_dispersion=vdisp is not None), opts,
                    calibration)
            else:
                fields = emulate_fields(cosmo, redshift, box, seed, model=model, device=device, tile=tile,
                                        allow_extrapolation=allow_extrapolation, keep_displacement=False,
                                        pgd=opts.pgd, velocity_dispersion=vdisp is not None)
                catalogs, extra = make_catalogs(fields, opts, calibration)  # resolved once, above
            write_mock_files(target.path, catalogs, attrs_of(fields, extra), format=format)  # companions, then mock
            del fields, catalogs
            release_freed_memory()  # the next mock starts from an unfragmented heap (emulator.core.allocator)
    kept = {p for part in all_gather_objects([str(t.path) for t in mine if not t.compute]) for p in part}
    for t in targets:
        t.compute = str(t.path) not in kept
    if launched_by_torchrun():  # one manifest of every rank's files, by rank 0 (a plain call writes none)
        if rank == 0:
            write_manifest(out_dir, targets)
        barrier()
    return MockPaths([t.path for t in targets], [t.path for t in targets if not t.compute])
