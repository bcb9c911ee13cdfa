"""Held-out truth: N-body simulations run on the fly, or the test split of a training-set HDF5 file.

Both give :class:`Mock` objects (particles in Lagrangian C order, positions in ``[0, L)`` Mpc/h, peculiar
velocities km/s), the same container the contenders fill, so every statistic treats them alike.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import torch

from data_prep.simulate.run import run_simulation, wrap_positions
from emulator.core.cosmology import PARAMETER_NAMES, Cosmology
from emulator.core.lpt import lagrangian_grid, vector_field_to_particles
from emulator.training.trainingset import TrainingSetInfo

__all__ = ["Mock", "simulate_truth", "trainingset_truth", "synchronize", "file_identity"]


@dataclass
class Mock:
    """One realization of one method (the truth or a contender).

    Attributes
    ----------
    name : str
        ``"truth"`` or a contender name.
    positions, velocities : torch.Tensor or None
        ``(N, 3)`` Mpc/h in ``[0, L)`` and km/s; ``None`` for density-only contenders (lognormal).
    density : torch.Tensor or None
        ``(n, n, n)`` overdensity mesh for density-only contenders.
    seconds : float
        Wall time to make this realization (linear-power tables already cached).
    notes : list of str
        Caveats to carry into the report.
    label : str
        Name of the truth's cosmology in figures (a suite's ``sim_id``; empty: made from the parameters).
    source : list
        Identity of the file a truth was read from, ``[path, size in bytes, mtime in ns, what in it]`` (empty:
        simulated here); a resumed benchmark reuses pieces only for the same file (:mod:`benchmarks.resume`).
    halo_calibration : HaloMassCalibration or None
        The generator's halo-mass calibration (its model's): FoF masses are calibrated as in the catalogs of
        ``emulator generate`` (:mod:`emulator.mocks.halo_mass`); None for every other method.
    halo_velocities : torch.Tensor or None
        Velocities the halo finder averages, when they differ from ``velocities``: the generator's network
        velocities, without the velocity dispersion its particles carry (as in the halo and galaxy catalogs of
        ``emulator generate``).
    """

    name: str
    cosmology: Cosmology
    redshift: float
    box_size: float
    ngrid: int
    seed: int
    positions: torch.Tensor | None = None
    velocities: torch.Tensor | None = None
    density: torch.Tensor | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    label: str = ""
    source: list = field(default_factory=list)
    halo_calibration: Any = None
    halo_velocities: torch.Tensor | None = None

    @property
    def has_particles(self) -> bool:
        return self.positions is not None


def synchronize(device) -> None:
    """Wait for queued CUDA work so that wall times are honest."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def simulate_truth(
    cosmology: Cosmology,
    seed: int,
    ngrid: int,
    box_size: float,
    redshift: float,
    simulation: dict,
    *,
    name: str = "truth",
    device: str | torch.device = "cpu",
) -> Mock:
    """Run :func:`data_prep.simulate.run.run_simulation` to ``redshift`` and wrap the output as a :class:`Mock`.

    ``simulation`` holds keyword arguments of ``run_simulation`` (``z_init``, ``steps``, ``force_factor``, ...).
    """
    synchronize(device)
    t0 = time.perf_counter()
    res = run_simulation(cosmology, seed, ngrid, box_size, output_redshifts=[redshift], device=device, **simulation)
    synchronize(device)
    out = res.outputs[0]
    return Mock(name=name, cosmology=cosmology, redshift=float(redshift), box_size=float(box_size), ngrid=ngrid,
                seed=seed, positions=out.positions, velocities=out.velocities, seconds=time.perf_counter() - t0)


def file_identity(path, what: str) -> list:
    """``[path, size in bytes, mtime in ns, what]`` of a truth's file (cheap, and a rewritten file differs)."""
    st = os.stat(path)
    return [str(path), st.st_size, st.st_mtime_ns, what]


def trainingset_truth(
    path: str, split: str = "test", redshift: float | None = None, max_sims: int | None = None,
    *, device: str | torch.device = "cpu",
) -> tuple[list[Mock], list[str]]:
    """Held-out simulations of a training set (format of ``docs/architecture.md``) as :class:`Mock` objects.

    Positions are ``q + disp`` wrapped into the box, velocities from ``vel``; ``seed`` and the cosmology come
    from the simulation's attributes. With ``redshift`` given, only the matching redshift group (to 1e-4) of
    each simulation is used. Simulations without a seed (``seed = -1``: linear field taken from an IC snapshot)
    are skipped, because the contenders need the seed's white noise; the returned notes say so.
    """
    info = TrainingSetInfo.read(path)
    samples = info.samples(split)
    if redshift is not None:
        samples = [s for s in samples if abs(s.redshift - float(redshift)) < 1e-4]
    if not samples:
        raise ValueError(f"{path}: split {split!r} has no simulation at redshift {redshift}")
    n, box = info.ngrid, info.box_size
    q = lagrangian_grid(n, box, dtype=torch.float32, device=device)
    mocks: list[Mock] = []
    notes: list[str] = []
    with h5py.File(path, "r") as f:
        for s in samples:
            if max_sims and len(mocks) >= max_sims:
                break
            sim = f["sims"][s.sim_id]
            if int(sim.attrs["seed"]) < 0:
                notes.append(f"{path}:{s.sim_id} skipped: no white-noise seed (linear field from an IC snapshot)")
                continue
            grp = sim[s.zgroup]
            disp = torch.as_tensor(np.asarray(grp["disp"], dtype=np.float32), device=device)
            vel = torch.as_tensor(np.asarray(grp["vel"], dtype=np.float32), device=device)
            cosmo = Cosmology(*[float(sim.attrs[k]) for k in PARAMETER_NAMES])
            mock = Mock(
                name="truth", cosmology=cosmo, redshift=s.redshift, box_size=box, ngrid=n, seed=int(sim.attrs["seed"]),
                positions=wrap_positions(q + vector_field_to_particles(disp), box),
                velocities=vector_field_to_particles(vel).contiguous(),
            )
            mock.notes.append(f"truth from {path}:{s.sim_id}/{s.zgroup}")
            mock.source = file_identity(path, f"{s.sim_id}/{s.zgroup}")
            mocks.append(mock)
    if not mocks:
        raise ValueError(f"{path}: no usable held-out simulation in split {split!r} (all lack a seed)")
    return mocks, notes
