"""Peak-memory model of mock generation: measured constants and the estimate of a mock held whole.

Used by :func:`emulator.mocks.largebox.plan_memory` (which chooses between holding a box whole and streaming it)
and by the streamed stages' estimates (:func:`emulator.model.streaming.streaming_memory`). Each constant says how it
was measured; the estimates are checked against measured peaks by ``python -m benchmarks.largebox``.
"""

from __future__ import annotations

from ..core.base_recipe import BaseRecipe

__all__ = ["GB", "BASELINE_BYTES", "NETWORK_PASS_BYTES_PER_CELL", "IN_MEMORY_BYTES_PER_PARTICLE", "PM_BASE_BYTES",
           "PM_BASE_MESH_BYTES", "COLA_FRAME_BYTES", "BIASED_BYTES_PER_CELL", "BIASED_BYTES_PER_TRACER",
           "BIASED_FIXED_BYTES", "CUTSKY_BYTES_PER_ROW", "DERIVATIVE_SLAB_FACTOR", "pass_bytes_per_cell", "slab_factor",
           "in_memory_estimate"]

GB = 1e9
#: Resident set of a generation process before its first mock (Python, torch, numba, the model), bytes.
BASELINE_BYTES = 0.45 * GB
#: A mock held whole peaks at the baseline, plus one network tile pass (activations of an input cube of
#: ``(tile + 2 halo)^3`` cells), plus the box's fields, FoF and catalog per particle. Fitted to the maximum resident
#: sets of ``/usr/bin/time -v emulator generate --preset planck18 --tracer halos --box-size L [--n-realizations 3]``
#: (two threads): 0.54 / 1.36 / 1.30 / 2.54 GB at 64^3 / 128^3 / 192^3 / 256^3 particles (tiles of 64 / 128 / 96 /
#: 128), three 256^3 mocks in one process 2.84 GB; the estimate is 7-28% above each (0.69 / 1.56 / 1.64 / 3.03 GB),
#: particle catalogs lower still (0.46 / 1.17 GB at 64^3 / 128^3); with the tile pass below: 0.67 / 1.47 / 1.59 /
#: 2.94 GB (the fit used 190 bytes per cell; with the 280 below: 0.79 / 1.99 / 1.86 / 3.46 GB).
#: Bytes per input cell of one network tile pass, here and in the streamed network stage: the embedded model alone
#: under ``torch.inference_mode`` (two threads, output included, input not) peaks above its start at 133 / 151 / 169
#: bytes per input cell at tiles 64 / 96 / 128 with halo 20 on one 2-core AMD EPYC host, and at 180 / 229-260 /
#: 180-231 on another (AVX-512 with bf16 and VNNI, 1 MiB L2; three runs each, 2026-12-05; 148 / 175-199 / 182-206
#: with one thread): MKL and oneDNN choose their kernels and workspaces by CPU, and the allocator's reuse varies run
#: to run. The largest measured, with a margin.
NETWORK_PASS_BYTES_PER_CELL = 280.0
#: A derivative-velocity network's streamed slab over a head network's: it reads the velocity slab beside the
#: displacement slab, their concatenation and its scaled copy (72 against 24 float32 bytes per input cell, counted
#: from :func:`emulator.model.streaming.stream_fields`, not measured).
DERIVATIVE_SLAB_FACTOR = 3.0
#: Bytes per particle of a mock held whole, above the baseline and the tile pass.
IN_MEMORY_BYTES_PER_PARTICLE = 100.0
#: A hybrid model's PM base (emulator.core.pm_base) above the linear field, bytes per particle:
#: PM_BASE_BYTES + PM_BASE_MESH_BYTES * force_factor^3. Measured at 128^3 particles, one thread (ru_maxrss):
#: 221 / 369 at force factors 1 / 2 (fit: 200 + 21 f^3), rounded up.
PM_BASE_BYTES = 220.0
PM_BASE_MESH_BYTES = 24.0
COLA_FRAME_BYTES = 60.0  # a COLA base's 4 more float32 (N, 3) vectors (psi1, psi2, residual): 48, measured 48
#: Streamed biased tracers: bytes per mesh cell (particle-grid meshes, float64 tracer density, Poisson draws),
#: per tracer, and the fixed part (one painting batch read from the scratch file). Fitted to the peak resident
#: sets of ``python -m benchmarks.biased_memory`` (128^3 and 256^3 cells at 0.01 and 0.1 tracers per (Mpc/h)^3:
#: 0.57, 1.72, 0.65 and 3.42 GB above the stage's start; the estimate is 0-20% above those).
BIASED_BYTES_PER_CELL = 66.0
BIASED_BYTES_PER_TRACER = 153.0
BIASED_FIXED_BYTES = 0.4 * GB
#: Cut-sky stage: peak bytes per catalogue row held (data and one random file; the box tracer catalog included), by
#: file format. Measured with ``python -m benchmarks.cutsky_memory`` (1e6 halos in 1000 Mpc/h, full sky, randoms
#: x20, two random files: 2998 MiB FITS, 1077 MiB HDF5 above the start, fits of 285 and 101 bytes per row; the
#: FITS writer copies the table. With both random files held at once, as before, 3758 and 1837 MiB).
CUTSKY_BYTES_PER_ROW = {"fits": 290.0, "hdf5": 105.0}


def pass_bytes_per_cell(velocity: str = "head") -> float:
    """Bytes per input cell of one network tile pass of a model whose velocity comes from a ``head`` or as the
    ``derivative`` of its displacement (:data:`~emulator.model.velocity_derivative.PASS_MEMORY_FACTOR` more)."""
    from ..model.velocity_derivative import PASS_MEMORY_FACTOR, check_velocity_mode

    factor = PASS_MEMORY_FACTOR if check_velocity_mode(velocity) == "derivative" else 1.0
    return NETWORK_PASS_BYTES_PER_CELL * factor


def slab_factor(velocity: str = "head") -> float:
    """How many times a head model's streamed input slab a model of this velocity kind holds
    (:data:`DERIVATIVE_SLAB_FACTOR` for ``derivative``, 1 for ``head``)."""
    from ..model.velocity_derivative import check_velocity_mode

    return DERIVATIVE_SLAB_FACTOR if check_velocity_mode(velocity) == "derivative" else 1.0


def in_memory_estimate(ngrid: int, *, halo: int, multiple: int, tile: int | None = None,
                       base: BaseRecipe | None = None, velocity: str = "head") -> float:
    """Estimated peak resident memory (bytes) of a mock of ``ngrid^3`` particles held whole, network tiles of
    ``tile`` cells (default: :func:`~emulator.model.tiling.balanced_tile` of at most 128, as generation uses) with
    ``halo`` cells of context on each side; ``base``: the run the model corrects (None or 2LPT: nothing added; a
    PM or COLA run adds its particles and force mesh, COLA's frame a little more); ``velocity``: the model's
    velocity kind (:func:`pass_bytes_per_cell`)."""
    from ..model.tiling import DEFAULT_TILE, balanced_tile

    t = min(int(tile), ngrid) if tile else balanced_tile(ngrid, DEFAULT_TILE, multiple)
    per_particle = IN_MEMORY_BYTES_PER_PARTICLE
    if base is not None and not base.is_lpt:
        per_particle += (PM_BASE_BYTES + PM_BASE_MESH_BYTES * float(base.force_factor) ** 3
                         + COLA_FRAME_BYTES * (base.method == "cola"))
    return (BASELINE_BYTES + pass_bytes_per_cell(velocity) * float(t + 2 * halo) ** 3
            + per_particle * float(ngrid) ** 3)
