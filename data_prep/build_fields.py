"""The fields of one training-set simulation: snapshots on the Lagrangian grid, the 2LPT input, painted density.

:func:`simulation_fields` computes everything :mod:`data_prep.build` writes for one simulation (layout in
``docs/architecture.md``), as plain NumPy arrays and attributes, so that it can run in a worker process or on a
GPU while the builder writes. :func:`grid_fields` reads one snapshot onto the Lagrangian grid by particle ID.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import check_mesh_size, gradient_kernels, to_fourier, to_real
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import lagrangian_grid, lpt2_displacement, lpt_velocity, za_displacement
from emulator.core.mesh import paint
from emulator.core.pm_base import LPT_BASE, BaseRecipe, pm_base_fields
from emulator.core.power import LinearPower
from emulator.core.provenance import sha256_file

from .manifest import SimulationEntry
from .readers import iter_chunks, read_header
from .readers.base import SnapshotError

__all__ = ["grid_fields", "simulation_fields"]


def grid_fields(path: str, ngrid: int, box_size: float, length_unit=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a snapshot onto the Lagrangian grid by particle ID, streaming in chunks.

    Returns
    -------
    disp : ndarray (3, n, n, n) float32
        ``x - q`` with the periodic minimum image, Mpc/h.
    vel : ndarray (3, n, n, n) float32
        Peculiar velocity, km/s.
    redshift : float
    """
    header = read_header(path, length_unit=length_unit)
    n = check_mesh_size(ngrid, "ngrid")
    if int(header.npart_total[1]) != n**3:
        raise SnapshotError(path, f"has {int(header.npart_total[1])} particles, expected ngrid^3 = {n**3}")
    if abs(header.box_size / box_size - 1) > 1e-6:
        raise SnapshotError(path, f"box size {header.box_size} Mpc/h differs from the manifest's {box_size}")
    # One streaming pass. IDs may start at 0 (our simulator) or 1 (N-GenIC, 2LPTic): slot ``id`` of an
    # (n^3 + 1)-long grid covers both, and the offset is read off at the end.
    size = n**3 + 1
    disp = np.empty((3, size), dtype=np.float32)
    vel = np.empty((3, size), dtype=np.float32)
    seen = np.zeros(size, dtype=bool)
    for chunk in iter_chunks(path, length_unit=length_unit):
        ids = chunk.ids
        if ids.min() < 0 or ids.max() >= size:
            raise SnapshotError(path, f"particle IDs outside [0, {n**3}] cannot map to a {n}^3 Lagrangian grid")
        if seen[ids].any() or len(np.unique(ids)) != len(ids):
            raise SnapshotError(path, "duplicate particle IDs")
        seen[ids] = True
        disp[:, ids] = chunk.positions.T
        vel[:, ids] = chunk.velocities.T
    offset = 0 if seen[0] else 1
    if seen[offset : offset + n**3].sum() != n**3:
        missing = n**3 - int(seen[offset : offset + n**3].sum())
        raise SnapshotError(path, f"{missing} Lagrangian grid points have no particle (missing IDs)")
    disp, vel = disp[:, offset : offset + n**3], vel[:, offset : offset + n**3]
    q = lagrangian_grid(n, box_size, dtype=torch.float64).numpy().T  # (3, n^3), C order of (i, j, k)
    disp = disp.astype(np.float64) - q
    disp -= box_size * np.round(disp / box_size)
    return disp.astype(np.float32).reshape(3, n, n, n), vel.reshape(3, n, n, n), float(header.redshift)


def _linear_delta_k(entry: SimulationEntry, ngrid: int, box_size: float,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """Linear density (rfft layout, float64, on ``device``) at D1 = 1 from the seed or from the IC snapshot."""
    if entry.seed is not None:
        noise = white_noise(entry.seed, ngrid, dtype=torch.float64).to(device)  # drawn on the CPU: same on any device
        return linear_density_k(noise, box_size, LinearPower(entry.cosmology, 0.0))
    disp, _, z_ic = grid_fields(entry.ic, ngrid, box_size, entry.length_unit)
    d1 = float(GrowthHistory(entry.cosmology).D1(1.0 / (1.0 + z_ic)))
    g = gradient_kernels(ngrid, box_size, dtype=torch.float64, device=device)
    psi = torch.from_numpy(disp.astype(np.float64)).to(device)
    div_k = sum(1j * gi * to_fourier(psi[a]) for a, gi in enumerate(g))
    return -div_k / d1


def simulation_fields(entry: SimulationEntry, ngrid: int, box_size: float, device: str | torch.device = "cpu",
                      base: BaseRecipe = LPT_BASE) -> dict:
    """Everything the training set holds for one simulation, as NumPy arrays (float32) and attributes.

    Parameters
    ----------
    entry : SimulationEntry
        The simulation (manifest entry).
    ngrid : int
        Particles per side.
    box_size : float
        Box side, Mpc/h.
    device : str or torch.device
        Where the 2LPT fields and the painted densities are computed (``"cpu"`` or a CUDA device).
    base : BaseRecipe
        With a PM recipe, also ``base_disp`` / ``base_vel``: the few-step PM run of
        :func:`emulator.core.pm_base.pm_base_fields` from the same linear density (in float32, as generation
        runs it) at each snapshot's redshift, in Mpc/h and km/s.

    Returns
    -------
    dict
        ``sim_id``, ``ngrid``, ``linear_delta`` (n, n, n), ``redshifts``: a list of ``(group name, attrs,
        arrays)`` per snapshot with arrays ``lpt_disp``, ``lpt_vel`` (and ``base_disp``, ``base_vel``), ``disp``,
        ``vel`` (3, n, n, n) and
        ``density`` (n, n, n), and ``attrs`` of the simulation group (cosmology, seed, sources and checksums).
    """
    n = ngrid
    delta_k = _linear_delta_k(entry, n, box_size, device)
    out = {"sim_id": entry.sim_id, "ngrid": n, "linear_delta": to_real(delta_k, n).float().cpu().numpy()}
    psi1 = za_displacement(delta_k, box_size)
    psi2 = lpt2_displacement(delta_k, box_size)
    base_k = None if base.is_lpt else delta_k.to(torch.complex64)  # the PM base runs in float32, as generation
    growth = GrowthHistory(entry.cosmology)
    q = lagrangian_grid(n, box_size, dtype=torch.float64, device=device)
    sources = list(entry.snapshots) + ([entry.ic] if entry.ic else [])
    redshifts, seen = [], set()
    for path in entry.snapshots:
        disp, vel, z = grid_fields(path, n, box_size, entry.length_unit)
        a = 1.0 / (1.0 + z)
        d1, d2, f1, f2, e = (float(getattr(growth, name)(a)) for name in ("D1", "D2", "f1", "f2", "E"))
        key = f"z_{z:.4f}"
        if key in seen:
            raise ValueError(f"{path}: two snapshots of {entry.sim_id} share redshift {z:.4f}")
        seen.add(key)
        attrs = dict(redshift=z, scale_factor=a, D1=d1, D2=d2, f1=f1, f2=f2, E=e, source=os.path.abspath(path))
        lpt_v = lpt_velocity(psi1, psi2, a=a, hubble_e=e, d1=d1, f1=f1, d2=d2, f2=f2)
        x = q + torch.from_numpy(disp.reshape(3, -1).T.astype(np.float64)).to(device)
        density = paint(x, n, box_size, window="cic") - 1.0  # one particle per cell on average
        arrays = {
            "lpt_disp": (d1 * psi1 + d2 * psi2).float().cpu().numpy(),
            "lpt_vel": lpt_v.float().cpu().numpy(),
            "disp": disp,
            "vel": vel,
            "density": density.float().cpu().numpy(),
        }
        if not base.is_lpt:
            try:
                bd, bv = pm_base_fields(base_k, box_size, entry.cosmology, z, base, growth=growth)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            arrays["base_disp"] = bd.cpu().numpy()
            arrays["base_vel"] = (bv * (100.0 * a * e * f1)).cpu().numpy()
        redshifts.append((key, attrs, arrays))
    out["redshifts"] = redshifts
    attrs = {k: v for k, v in entry.cosmology.to_dict().items()}
    attrs.update(
        seed=-1 if entry.seed is None else entry.seed,
        box_size=box_size,
        ngrid=n,
        source_files=json.dumps([os.path.abspath(p) for p in sources]),
        source_sha256=json.dumps([sha256_file(p) for p in sources]),
        linear_field_from="seed" if entry.seed is not None else "ic",
    )
    out["attrs"] = attrs
    return out
