"""Run one 2LPT + PM simulation: seeded initial conditions, FastPM kick-drift-kick steps, particle outputs.

Initial conditions
------------------
White noise ``white_noise(seed, ngrid)`` (see :mod:`emulator.core.fields` for the phase convention) times the
z = 0 linear power (``LinearPower(cosmo, 0)`` unless ``power`` is given) gives ``delta_L`` at ``D1 = 1``; the 2LPT
displacement at ``a_init = 1/(1+z_init)`` is ``s = D1 psi1 + D2 psi2`` and the momentum
``p = gp psi1 + gp2 psi2`` (``p = a v / 100``, :mod:`emulator.core.growth`), i.e. the velocity of
:func:`emulator.core.lpt.lpt_velocity`. Particle ``id = i n^2 + j n + k`` sits at ``q = (i, j, k) L / n``; every
output keeps that (C) order.

Mass refinement (``refine = r > 1``, :mod:`data_prep.simulate.refine`): the run uses ``(r n)^3`` particles whose
white noise carries ``white_noise(seed, n)`` on every mode strictly inside the coarse Nyquist frequency (same
universe, finer sampling), 2LPT on the fine grid, a force mesh of ``force_factor r n`` points a side, and keeps
in every output (the IC included) only the particles on the coarse Lagrangian grid, with the coarse ids: the
outputs have the shapes of a ``refine = 1`` run. ``refine = 1`` is bit-identical to the unrefined simulator.

Determinism: a given configuration gives bit-identical outputs on the CPU. On CUDA, painting uses atomic
additions whose order varies, so repeated runs agree only to float rounding.

Versioning: :data:`SIMULATOR_VERSION` is the simulator's code version for provenance and resumption. It is bumped
by hand whenever a change (here, in :mod:`emulator.core.pm`, in the core physics they call, in a default of
:func:`run_simulation`, or in the snapshot writer) changes the snapshots written for the same inputs. Suites
record it per simulation rather than the git commit, so that a commit that leaves the physics alone (docs,
refactoring) does not invalidate a suite, while one that changes it makes a resumed suite refuse to mix old and
new simulations. Training sets with a PM base (:mod:`emulator.core.pm_base`, the same PM code) record it in
their fingerprint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from emulator.core.cosmology import Cosmology
from emulator.core.fourier import check_box_size, check_mesh_size
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import lagrangian_grid
from emulator.core.mesh import wrap_positions  # re-exported: the simulator's wrap is the core's
from emulator.core.power import LinearPower

from .pm import PMForce, check_force_options, check_step_options, initial_state, kdk, step_schedule
from .refine import check_refine, coarse_lattice_index, initial_density_k

__all__ = ["INTEGRATORS", "SIMULATOR_VERSION", "ParticleState", "SimulationResult", "check_options", "run_simulation",
           "wrap_positions"]

#: Bump when the simulator's output for the same inputs changes (see the module notes); not for docs/refactors.
SIMULATOR_VERSION = 1
INTEGRATORS: tuple[str, ...] = ("fastpm", "cola")  # time stepping of run_simulation


@dataclass
class ParticleState:
    """Particles at one epoch, in Lagrangian C order.

    Attributes
    ----------
    positions : torch.Tensor
        ``(N, 3)`` comoving positions in ``[0, L)``, Mpc/h.
    velocities : torch.Tensor
        ``(N, 3)`` peculiar velocities, km/s.
    ids : torch.Tensor
        ``(N,)`` int64, ``id = i n^2 + j n + k`` for the Lagrangian point ``(i, j, k) L / n``.
    scale_factor : float
        ``a`` of this state.
    displacements : torch.Tensor
        ``(N, 3)`` ``x - q`` in Mpc/h, not wrapped (equal to the minimum image while ``|x - q| < L / 2``).
    """

    positions: torch.Tensor
    velocities: torch.Tensor
    ids: torch.Tensor
    scale_factor: float
    displacements: torch.Tensor

    @property
    def redshift(self) -> float:
        """``1/a - 1``."""
        return 1.0 / self.scale_factor - 1.0


@dataclass
class SimulationResult:
    """Output of :func:`run_simulation`: the IC state and one state per requested output redshift (same order)."""

    ic: ParticleState
    outputs: list[ParticleState]
    cosmology: Cosmology
    seed: int
    ngrid: int
    box_size: float
    boundaries: np.ndarray
    config: dict = field(default_factory=dict)
    wall_time: float = 0.0


def _state(q, disp, mom, ids, a, box_size) -> ParticleState:
    return ParticleState(
        positions=wrap_positions(q + disp, box_size),
        velocities=mom * (100.0 / a),
        ids=ids,
        scale_factor=float(a),
        displacements=disp.clone(),
    )


def check_options(*, output_redshifts: object, z_init: object, steps: object, force_factor: object, refine: object,
                  spacing: object, integrator: object, lpt_order: object, deconvolve: object, gradient: object,
                  mesh_shift: object) -> tuple[float, list[float]]:
    """Validate the settings of :func:`run_simulation` that a suite YAML sets (``simulation:``), before any work.

    Raises a one-line ``ValueError`` naming the option at fault; returns ``z_init`` and ``output_redshifts`` as
    floats. :class:`data_prep.simulate.suite.SuiteConfig` calls it when a config loads, so a bad value fails
    there rather than when the first simulation starts.
    """
    if isinstance(force_factor, bool) or not isinstance(force_factor, int) or force_factor < 1:
        raise ValueError(f"force_factor must be a positive integer, got {force_factor!r}")
    check_refine(refine)
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    if isinstance(lpt_order, bool) or lpt_order not in (1, 2):
        raise ValueError(f"lpt_order must be 1 or 2, got {lpt_order!r}")
    check_step_options(steps, spacing)
    check_force_options(deconvolve, gradient, mesh_shift, "mesh_shift")
    try:
        z0 = float(z_init)
        zs = [float(z) for z in output_redshifts]
    except (TypeError, ValueError):
        raise ValueError("z_init and output_redshifts must be numbers (a list for output_redshifts)") from None
    if not math.isfinite(z0) or z0 <= 0.0:
        raise ValueError(f"z_init must be positive and finite, got {z_init!r}")
    if not zs or any(not (0.0 <= z <= z0) for z in zs):
        raise ValueError(f"output_redshifts must be a non-empty list within [0, z_init={z0}], got {zs!r}")
    return z0, zs


def run_simulation(
    cosmology: Cosmology,
    seed: int,
    ngrid: int,
    box_size: float,
    *,
    output_redshifts: Sequence[float] = (0.0,),
    z_init: float = 9.0,
    steps: int = 10,
    force_factor: int = 2,
    refine: int = 1,
    fine_seed: int | None = None,
    spacing: str = "linear",
    integrator: str = "fastpm",
    lpt_order: int = 2,
    deconvolve: int = 1,
    gradient: str = "fd4",
    mesh_shift: float = 0.5,
    fixed_amplitude: bool = False,
    invert_phase: bool = False,
    power: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> SimulationResult:
    """Run a 2LPT + PM (FastPM KDK) simulation of ``ngrid^3`` particles in a periodic box.

    Parameters
    ----------
    cosmology : Cosmology
        Flat ΛCDM parameters.
    seed : int
        White-noise seed (same seed and ``ngrid`` -> same universe).
    ngrid : int
        Particles per side (even).
    box_size : float
        Box side in Mpc/h.
    output_redshifts : sequence of float
        Redshifts in ``[0, z_init]`` at which states are returned (inserted as step boundaries, hit exactly).
    z_init : float
        Starting redshift of the 2LPT initial conditions.
    steps : int
        Steps from ``z_init`` to the lowest output redshift, evenly spaced in ``a`` (or ``ln a``); output epochs
        that do not fall on a boundary add a step each.
    force_factor : int
        Force mesh of ``force_factor * refine * ngrid`` points per side (``>= 2``; 1 allowed for experiments).
    refine : int
        Particles per axis per output particle (mass refinement, see the module notes); 1: no refinement.
    fine_seed : int, optional
        With ``refine > 1``: seed of the sub-grid initial modes (default derived from ``seed``; see
        :func:`data_prep.simulate.refine.refined_white_noise`). Recorded in ``config`` when given.
    spacing : {"linear", "log"}
        Step spacing in ``a`` or ``ln a``.
    integrator : {"fastpm", "cola"}
        FastPM kick-drift-kick steps (:func:`emulator.core.pm.kdk`), or the same steps in the frame of the LPT
        initial conditions (COLA, :mod:`emulator.core.cola`: large scales right with a few steps;
        recorded in ``config`` only when ``"cola"``).
    lpt_order : {1, 2}
        Zel'dovich (1) or 2LPT (2) initial conditions.
    deconvolve, gradient, mesh_shift
        Force options of :class:`data_prep.simulate.pm.PMForce` (``mesh_shift`` is its ``shift``); the defaults
        are justified there.
    fixed_amplitude, invert_phase : bool
        Fixed / paired initial conditions (:func:`emulator.core.fields.linear_density_k`).
    power : callable, optional
        z = 0 linear ``P(k)`` in (Mpc/h)^3 on a torch tensor of ``k`` (h/Mpc); default ``LinearPower(cosmology)``.
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.float64`` for particles and meshes.
    device : torch.device or str, optional
        Where to run (``"cpu"``, ``"cuda"``).
    progress : bool
        tqdm progress bar over steps.

    Returns
    -------
    SimulationResult
        ``ic`` (the 2LPT state at ``z_init``) and ``outputs`` (one :class:`ParticleState` per entry of
        ``output_redshifts``, same order), plus the step boundaries and the configuration.
    """
    t0 = time.perf_counter()
    if not isinstance(cosmology, Cosmology):
        raise ValueError(f"cosmology must be a Cosmology, got {type(cosmology).__name__}")
    n = check_mesh_size(ngrid, "ngrid")
    box = check_box_size(box_size)
    z_init, zs = check_options(output_redshifts=output_redshifts, z_init=z_init, steps=steps,
                               force_factor=force_factor, refine=refine, spacing=spacing, integrator=integrator,
                               lpt_order=lpt_order, deconvolve=deconvolve, gradient=gradient, mesh_shift=mesh_shift)
    refine = int(refine)
    if fine_seed is not None and refine == 1:
        raise ValueError("fine_seed needs refine > 1 (an unrefined run has no sub-grid modes)")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")

    growth = GrowthHistory(cosmology)
    a_init = 1.0 / (1.0 + z_init)
    out_a = [1.0 / (1.0 + z) for z in zs]
    # --- initial conditions -------------------------------------------------------------------------------
    fine = refine * n
    pk = power if power is not None else LinearPower(cosmology, 0.0)
    delta_k = initial_density_k(seed, n, box, pk, refine, fixed_amplitude=fixed_amplitude, invert_phase=invert_phase,
                                fine_seed=fine_seed, dtype=dtype, device=device)
    disp, mom, frame = initial_state(delta_k, box, growth, a_init, lpt_order, cola=integrator == "cola")
    del delta_k
    q = lagrangian_grid(fine, box, dtype=dtype, device=device)
    ids = torch.arange(n**3, dtype=torch.int64, device=q.device)
    keep = None if refine == 1 else coarse_lattice_index(n, refine, device=q.device)

    def state(s: torch.Tensor, p: torch.Tensor, a: float) -> ParticleState:
        if keep is None:
            return _state(q, s, p, ids, a, box)
        return _state(q[keep], s[keep], p[keep], ids, a, box)

    ic = state(disp, mom, a_init)

    # --- time stepping -------------------------------------------------------------------------------------
    outputs: list[ParticleState | None] = [ic if a == a_init else None for a in out_a]
    todo = [a for a in out_a if a > a_init]
    boundaries = np.array([a_init])
    if todo:
        boundaries = step_schedule(a_init, max(todo), steps, todo, spacing)
        solver = PMForce(force_factor * fine, box, cosmology.Omega_m, deconvolve=deconvolve, gradient=gradient,
                         shift=mesh_shift, dtype=dtype, device=q.device)

        def record(a: float, s: torch.Tensor, p: torch.Tensor) -> None:
            for i, ai in enumerate(out_a):
                if outputs[i] is None and ai == a:
                    outputs[i] = state(s, p, a)

        kdk(q, disp, mom, boundaries, growth, solver, box, spacing=spacing, callback=record, progress=progress,
            frame=frame)
    config = {
        "output_redshifts": zs, "z_init": z_init, "steps": steps, "force_factor": force_factor, "refine": refine,
        "spacing": spacing,
        "lpt_order": lpt_order, "deconvolve": deconvolve, "gradient": gradient, "mesh_shift": mesh_shift,
        "fixed_amplitude": fixed_amplitude, "invert_phase": invert_phase, "custom_power": power is not None,
        "dtype": str(dtype).replace("torch.", ""),
    }
    if fine_seed is not None:
        config["fine_seed"] = int(fine_seed)
    if integrator != "fastpm":
        config["integrator"] = integrator
    return SimulationResult(
        ic=ic, outputs=outputs, cosmology=cosmology, seed=seed, ngrid=n, box_size=box, boundaries=boundaries,
        config=config, wall_time=time.perf_counter() - t0,
    )
