"""Mocks of boxes larger than memory: ``emulator generate --max-memory GB``.

:func:`plan_memory` estimates the peak resident memory of a mock held whole (:func:`in_memory_estimate`: the
baseline, one network tile pass and about 100 bytes per particle with halos) and, when that exceeds the cap, of the
streamed path, choosing the network tile (= Lagrangian slab thickness), the number of FoF slabs and, when the linear
stage's meshes do not fit (~44 bytes per particle), its out-of-core FFTs (:mod:`emulator.model.linear_disk`) so
every stage fits; it refuses, before anything runs, a cap no plan meets. :func:`streamed_mock` then makes one
realization: the particles, identical bit for bit to the in-memory path with the same tile
(:mod:`emulator.model.streaming`; to float32 rounding with out-of-core FFTs), go to a scratch HDF5 file in the
output folder; halos come from :func:`~emulator.mocks.fof_slabs.slab_friends_of_friends` (identical to the whole-box
finder), galaxies from the same HOD code; ``biased`` tracers from the particle number and momentum meshes painted
from the scratch file in whole :data:`~emulator.core.mesh.PAINT_CHUNK` batches (the bits of painting all at once, so
the same tracers); particle catalogs are copied into the mock chunk by chunk (HDF5 only). Scratch files are removed
at the end, also on failure, and those of killed runs at the start. Supported: ``particles`` (HDF5), ``halos``,
``galaxies`` and ``biased`` (HDF5 or FITS), with ``rsd_axis``, and cut-sky catalogs (data, randoms, n(z)) of halos,
galaxies and biased tracers from the snapshot; not lightcones or cut-sky particles (a one-line error says so). The
cut-sky stage holds the tracer catalog, the data and one random file at a time (each drawn when written); the plan
does not count it in its peak, as only a loose bound on its rows is known before the halos are found (a halo for
every ``min_members`` particles), but prints that bound in GB (:data:`CUTSKY_BYTES_PER_ROW`).

The estimates (:mod:`emulator.mocks.memory_model`) are fitted to peak resident sets measured with
``python -m benchmarks.largebox`` and carry the allocator setting of :mod:`emulator.core.allocator`; they are
estimates (the report states measured against estimated), and the cap is what the plan aims at, not a hard limit
enforced by the operating system.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.base_recipe import BaseRecipe
from ..core.cosmology import particle_mass_from_cosmology
from .catalogs import (MockOptions, _seed, applied_vdisp, finish_catalogs, fof_min_members, halo_calibration,
                       halo_tracer_columns)
from .fof_slabs import default_overlap, slab_fof_memory
from .halo_mass import calibrate_halos
from .fof import linking_length_mpc
from .memory_model import (BASELINE_BYTES, BIASED_BYTES_PER_CELL, BIASED_BYTES_PER_TRACER, BIASED_FIXED_BYTES,
                           CUTSKY_BYTES_PER_ROW, GB, IN_MEMORY_BYTES_PER_PARTICLE, NETWORK_PASS_BYTES_PER_CELL,
                           in_memory_estimate, pass_bytes_per_cell, slab_factor)

__all__ = ["MemoryPlan", "plan_memory", "in_memory_estimate", "pass_bytes_per_cell", "streamed_mock", "warn_if_short",
           "available_memory", "GB", "BASELINE_BYTES", "IN_MEMORY_BYTES_PER_PARTICLE", "NETWORK_PASS_BYTES_PER_CELL",
           "CUTSKY_BYTES_PER_ROW"]

@dataclass
class MemoryPlan:
    """How a mock is made within ``max_memory`` (bytes; estimates in bytes)."""

    ngrid: int
    in_memory: float
    streamed: bool
    tile: int | None = None
    fof_slabs: int = 1
    fof_overlap: float = 0.0
    stages: dict[str, float] | None = None
    scratch_disk: float = 0.0
    cutsky_rows: float = 0.0  # upper bound on the catalogue rows the cut-sky stage holds (data and randoms)
    cutsky_bytes: float = 0.0  # the memory of those rows above the baseline, bytes (CUTSKY_BYTES_PER_ROW)
    linear_block: int | None = None  # planes per block of the out-of-core linear stage (None: its meshes held)

    @property
    def peak(self) -> float:
        """Estimated peak resident memory of the chosen path, bytes."""
        return max(self.stages.values()) if self.streamed else self.in_memory

    def describe(self) -> str:
        """One line for the user: the estimate and, when streamed, how."""
        if not self.streamed:
            return f"memory estimate: {self.in_memory / GB:.2f} GB for {self.ngrid}^3 particles held whole"
        parts = ", ".join(f"{k} {v / GB:.2f}" for k, v in self.stages.items())
        disk = f"linear fields by FFTs on disk in blocks of {self.linear_block} planes, " if self.linear_block else ""
        return (f"memory estimate: {self.peak / GB:.2f} GB streamed ({self.ngrid}^3 particles held whole would need "
                f"{self.in_memory / GB:.1f} GB): {disk}slabs of {self.tile} planes, {self.fof_slabs} FoF slab(s) with "
                f"{self.fof_overlap:g} Mpc/h overlap; stages (GB): {parts}; scratch on disk "
                f"{self.scratch_disk / GB:.1f} GB in the output folder"
                + (f"; not counted: the cut-sky stage holds up to ~{self.cutsky_rows:.3g} catalogue rows (data and "
                   f"one random file, ~{self.cutsky_bytes / GB:.2g} GB) at once" if self.cutsky_rows else ""))


def _tiles(ngrid: int, multiple: int, largest: int) -> list[int]:
    """Candidate slab thicknesses, largest first, down to 16 cells (thinner slabs cost several times more: at
    128^3 a tile of 32 takes 4x the network time of 64, the halo planes being read and computed per slab)."""
    smallest = min(max(16, multiple), largest)
    return [t for t in range(min(largest, ngrid), smallest - 1, -1) if t % multiple == 0]


def plan_memory(opts: MockOptions, ngrid: int, box: float, *, halo: int, multiple: int, max_memory: float | None,
                tile: int | None = None, fof_overlap: float | None = None, format: str = "hdf5",
                base: BaseRecipe | None = None, fof_members: int | None = None, velocity: str = "head") -> MemoryPlan:
    """Choose how to make a mock of ``ngrid^3`` particles within ``max_memory`` GB (None: held whole);
    ``base``: the run the model corrects (a PM or COLA run is never streamed; None: 2LPT); ``velocity``: the
    model's velocity kind;
    ``fof_members``: the FoF member cut (:func:`~emulator.mocks.catalogs.fof_min_members`; default
    ``min_members``), which bounds the number of halos.

    Raises
    ------
    ValueError
        When the cap is below every plan, or a streamed plan is needed for what streaming does not support.
    """
    from ..model.linear_disk import DISK_BYTES_PER_CELL, block_for_memory
    from ..model.streaming import streaming_memory

    npart = float(ngrid) ** 3
    whole = in_memory_estimate(ngrid, halo=halo, multiple=multiple, tile=tile, base=base, velocity=velocity)
    if max_memory is None or whole <= max_memory * GB:
        return MemoryPlan(ngrid, whole, False)
    cap = float(max_memory) * GB
    if base is not None and not base.is_lpt:
        raise ValueError(f"--max-memory {max_memory:g} GB: this model corrects a {base.method.upper()} run, "
                         f"which needs the whole box (~{whole / GB:.1f} GB for {ngrid}^3 particles) and is not "
                         "streamed: raise --max-memory or use a smaller box")
    if opts.cutsky is not None and (opts.cutsky.get("lightcone") or opts.tracer == "particles"):
        what = "lightcones" if opts.cutsky.get("lightcone") else "cut-sky catalogs of particles"
        raise ValueError(f"--max-memory {max_memory:g} GB needs the streamed path ({ngrid}^3 particles held whole: "
                         f"~{whole / GB:.1f} GB), which does not make {what}: raise --max-memory or use a "
                         "smaller box")
    if opts.tracer == "particles" and format != "hdf5":
        raise ValueError("a streamed (--max-memory) particle catalog is written as HDF5 only: use --format hdf5")
    b = linking_length_mpc(box, int(npart), opts.linking_length)
    overlap = default_overlap(b) if fof_overlap is None else float(fof_overlap)
    best = None
    # stage 1 holds its meshes when they fit, else goes out of core in the largest blocks of planes that fit
    block = None if BASELINE_BYTES + streaming_memory(ngrid, ngrid, 0, 0.0)["linear"] <= cap else \
        block_for_memory(ngrid, cap - BASELINE_BYTES)
    for t in _tiles(ngrid, multiple, tile or 64):
        streamed = streaming_memory(ngrid, t, halo, pass_bytes_per_cell(velocity), block,
                                    slab_factor=slab_factor(velocity))
        stages = {k: BASELINE_BYTES + v for k, v in streamed.items()}
        chunk = t * ngrid * ngrid
        if opts.tracer == "particles":
            keep = 8.0 * npart if opts.number_density is not None else 0.0
            stages["catalog"] = BASELINE_BYTES + keep + 80.0 * chunk
        elif opts.tracer == "biased":
            tracers = float(opts.number_density) * box**3
            stages["biased"] = (BASELINE_BYTES + BIASED_FIXED_BYTES + BIASED_BYTES_PER_CELL * npart
                                + BIASED_BYTES_PER_TRACER * tracers)
        else:
            slabs, fof = 1, BASELINE_BYTES + slab_fof_memory(int(npart), box, 1, overlap, chunk)
            for s in range(2, max(2, int(box / overlap)) + 1):  # thinner cores than W gain little
                if fof <= cap:
                    break
                if box / s + 2 * overlap + b < box:  # the extended slab must not wrap onto itself
                    slabs, fof = s, BASELINE_BYTES + slab_fof_memory(int(npart), box, s, overlap, chunk)
            stages["fof"] = fof
        rows = _cutsky_rows(opts, npart, box, fof_members or opts.min_members)
        per_row = CUTSKY_BYTES_PER_ROW.get(format, max(CUTSKY_BYTES_PER_ROW.values()))
        # linear fields (24 B) with the Fourier meshes, then with the particles (24 B): the larger at once
        disk = max(48.0, 24.0 + DISK_BYTES_PER_CELL if block else 0.0) * npart
        plan = MemoryPlan(ngrid, whole, True, t, slabs if opts.tracer in ("halos", "galaxies") else 1, overlap, stages,
                          disk, rows, rows * per_row, block)
        if best is None or plan.peak < best.peak:
            best = plan
        if plan.peak <= cap:
            return plan
    raise ValueError(f"--max-memory {max_memory:g} GB is below the smallest estimate for {ngrid}^3 particles "
                     f"({best.peak / GB:.2f} GB: {best.describe()}): raise it or use a smaller box")


def _cutsky_rows(opts: MockOptions, npart: float, box: float, fof_members: int) -> float:
    """Upper bound on the rows a cut-sky stage holds: every box tracer (biased: ``nbar L^3``; halos: one per
    ``fof_members`` particles, the FoF cut; galaxies: twice that) as data, plus ``randoms_factor`` times that in the
    one random file held at a time."""
    if opts.cutsky is None:
        return 0.0
    from .survey import SURVEY_DEFAULTS

    cs = {**SURVEY_DEFAULTS, **opts.cutsky}
    rows = (float(opts.number_density) * box**3 if opts.tracer == "biased"
            else npart / fof_members * (2.0 if opts.tracer == "galaxies" else 1.0))
    return rows * (1.0 + float(cs["randoms_factor"]))


def available_memory() -> float | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return None


def warn_if_short(plan: MemoryPlan, max_memory: float | None) -> None:
    """Warn, with both numbers, when a mock held whole (no cap given) is estimated above the memory available."""
    free = available_memory()
    if max_memory is None and free is not None and plan.in_memory > free:
        warnings.warn(f"a mock of {plan.ngrid}^3 particles held whole needs ~{plan.in_memory / GB:.1f} GB, more than "
                      f"the {free / GB:.1f} GB available: set --max-memory (GB) to make it slab by slab", stacklevel=3)


def _streamed_biased(src, opts: MockOptions, seed: int, box: float, n: int) -> dict:
    """Biased tracer columns from the particles of ``src`` (``Position``, ``Velocity`` datasets, ID order)."""
    import torch

    from ..core import mesh
    from .catalogs import biased_columns

    chunk = mesh.PAINT_CHUNK  # the in-memory path paints in these batches too
    counts = torch.zeros(n**3, dtype=torch.float32)
    momentum = torch.zeros(3, n**3, dtype=torch.float32)
    for first in range(0, src["Position"].shape[0], chunk):  # whole batches: the bits of one paint call
        pos = torch.from_numpy(src["Position"][first : first + chunk])
        vel = torch.from_numpy(src["Velocity"][first : first + chunk])
        mesh.paint(pos, n, box, out=counts, chunk_size=chunk)
        for i in range(3):
            mesh.paint(pos, n, box, mass=vel[:, i], out=momentum[i], chunk_size=chunk)
        del pos, vel
    return biased_columns(counts.view(n, n, n), momentum.view(3, n, n, n), opts, seed, box)


def _copy_particles(src, group, opts: MockOptions, seed: int, redshift: float, cosmology, box: float,
                    chunks) -> None:
    """Copy (or subsample) ``Position``/``Velocity`` from ``src`` into ``group`` chunk by chunk (+ RSD)."""
    from .catalog import DEFAULT_UNITS
    from .rsd import redshift_space_positions

    n = src["Position"].shape[0]
    keep = None
    if opts.number_density is not None:  # the draw of the in-memory path (emulator.mocks.catalogs)
        n_want = min(int(round(opts.number_density * box**3)), n)
        keep = np.sort(np.random.default_rng(_seed(seed, 1)).choice(n, n_want, replace=False))
    total = n if keep is None else keep.size
    names = ["Position", "Velocity"] + (["RSDPosition"] if opts.rsd_axis is not None else [])
    out = {k: group.create_dataset(k, (total, 3), dtype="f4") for k in names}
    for k in names:
        out[k].attrs["units"] = DEFAULT_UNITS.get(k, "")
    at = 0
    for first, stop in chunks:
        if keep is None:
            rows = np.arange(first, stop)
        else:
            rows = keep[np.searchsorted(keep, first) : np.searchsorted(keep, stop)]
        if rows.size == 0:
            continue
        pos = src["Position"][first:stop][rows - first]
        vel = src["Velocity"][first:stop][rows - first]
        out["Position"][at : at + rows.size] = pos
        out["Velocity"][at : at + rows.size] = vel
        if opts.rsd_axis is not None:
            out["RSDPosition"][at : at + rows.size] = redshift_space_positions(pos, vel, redshift, cosmology, box,
                                                                               los=opts.rsd_axis)
        at += rows.size


def streamed_mock(path: Path, cosmology, redshift: float, box: float, seed: int, opts: MockOptions, plan: MemoryPlan,
                  *, model, device, allow_extrapolation: bool, progress: bool, attrs_of, format: str = "hdf5") -> None:
    """Make one realization with bounded memory and write it to ``path`` (atomically).

    ``attrs_of(fields, extra)`` returns the file attrs (as :func:`emulator.mocks.api.generate_mocks` writes them).
    """
    import h5py

    from ..core.atomic import remove_stale_temporaries, scratch_path
    from ..model.streaming import stream_fields
    from .fof_slabs import slab_friends_of_friends
    from .io import hdf5_mock_writer, write_mock_files

    extra: dict[str, Any] = {"streamed": True, "stream_tile": int(plan.tile), "memory_estimate_gb": plan.peak / GB}
    if plan.linear_block:
        extra["linear_block"] = int(plan.linear_block)
    remove_stale_temporaries(path.parent)  # scratch of killed runs (their owners dead) in this folder
    with scratch_path(path, "particles") as scratch, scratch_path(path, "linear") as linear, \
            scratch_path(path, "fourier") as fourier:
        with h5py.File(scratch, "w") as fh:
            fields = stream_fields(cosmology, redshift, box, seed, fh, linear, model=model, tile=plan.tile,
                                   device=device, allow_extrapolation=allow_extrapolation, progress=progress,
                                   linear_block=plan.linear_block, fourier_scratch=fourier, pgd=opts.pgd,
                                   velocity_dispersion=applied_vdisp(opts, model) is not None)
            chunks = fields.slabs
            if opts.tracer == "particles":
                extra["particle_mass"] = particle_mass_from_cosmology(cosmology.Omega_m, box, fields.ngrid**3)
                if opts.rsd_axis is not None:
                    extra["rsd_axis"] = opts.rsd_axis
                with hdf5_mock_writer(path, attrs_of(fields, extra)) as group:
                    _copy_particles(fh, group, opts, seed, redshift, cosmology, box, chunks)
                return
            aux: dict[str, Any] = {}  # cut-sky-only columns (galaxies: HaloMass)
            if opts.tracer == "biased":
                cols, tattrs = _streamed_biased(fh, opts, seed, box, fields.ngrid), {}
            else:
                pmass = particle_mass_from_cosmology(cosmology.Omega_m, box, fields.ngrid**3)
                cal = halo_calibration(opts, model)
                halos, _ = slab_friends_of_friends(fh["Position"], fh["Velocity"], chunks, fields.x_extent, box,
                                                   linking_length=opts.linking_length,
                                                   min_members=fof_min_members(opts, cal, redshift),
                                                   particle_mass=pmass, n_slabs=plan.fof_slabs,
                                                   overlap=plan.fof_overlap, progress=progress)
        if opts.tracer != "biased":
            extra.update(fof_slabs=int(plan.fof_slabs), fof_overlap=float(plan.fof_overlap))
            halos = calibrate_halos(halos, cal, redshift, opts.min_members)
            cols, tattrs = halo_tracer_columns(halos, opts, cosmology, redshift, box, fields.ngrid, seed, aux, cal)
        catalogs, tattrs = finish_catalogs(cols, tattrs, aux, fields, opts)  # RSD; cut-sky data, randoms, n(z)
        write_mock_files(path, catalogs, attrs_of(fields, {**tattrs, **extra}), format=format)
