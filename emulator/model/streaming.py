"""Bounded-memory generation of large boxes: the same particles as :func:`~emulator.model.emulate.emulate_fields`,
made slab by slab through HDF5 scratch files, for models whose base is 2LPT (a hybrid model's PM base needs the
whole box and is refused here).

One process holding a whole box needs about 100 bytes per particle at its peak with halos, above the baseline and
one network tile pass (2.9 GB estimated at 256^3, 2.5 GB measured; ~100 GB for a 2 Gpc/h box at 2 Mpc/h: see
:func:`emulator.mocks.largebox.in_memory_estimate`). Here the box goes through three stages, each
bounded:

1. **Linear fields.** The white noise, ``delta_k`` and the two LPT potentials need the whole mesh (they are
   Fourier transforms), but only a few meshes at once (:func:`emulator.core.lpt.lpt_potentials` computes the
   2LPT source in place); the displacement ``D1 psi1 + D2 psi2`` and the velocity field, three components each,
   are taken one component at a time (:func:`emulator.core.lpt.gradient_component`) and written to a scratch
   file (24 bytes per particle on disk, ``linear.h5``).
2. **Network.** The box is cut into slabs of ``tile`` Lagrangian planes along x (the origins of
   :func:`emulator.model.tiling.tile_origins`); each slab is read with its ``halo`` planes on either side
   (periodic), and the network runs on its ``tile^3`` tiles with their halos exactly as the tiled
   :func:`~emulator.model.tiling.predict_box` does, so the particles equal those of the in-memory path with the
   same ``tile`` bit for bit (same inputs, same shapes, same operations). Positions and velocities of the slab's
   particles, contiguous in the particle order ``id = i n^2 + j n + k``, go to ``Position`` and ``Velocity``
   (``(n^3, 3)`` float32) in the output file, with the Eulerian x range of each slab (``x_extent``) for the
   halo finder (:mod:`emulator.mocks.fof_slabs`).

Peak memory is then a few meshes in stage 1 (~44 bytes per particle) and ``(tile + 2 halo) n^2`` cells in stage 2,
not the box (:func:`streaming_memory` estimates it). Where stage 1's meshes do not fit (a 1000^3 box needs ~45 GB),
``linear_block`` makes it out of core (:mod:`emulator.model.linear_disk`: the FFTs in blocks of planes through a
scratch file, ~240 bytes per cell of one block, the fields equal to float32 rounding rather than bit for bit).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.allocator import release_freed_memory
from ..core.cosmology import Cosmology
from ..core.fields import linear_density_k, white_noise
from ..core.fourier import check_box_size
from ..core.lpt import gradient_component, lpt2_potential, lpt_displacement, lpt_potentials
from ..core.mesh import wrap_positions
from ..core.power import LinearPower
from .emulate import Realization, check_request, growth_factors
from .linear_disk import linear_fields_out_of_core, out_of_core_memory
from .portable import EmulatorModel
from .tiling import tile_origins

__all__ = ["StreamedFields", "stream_fields", "linear_fields_to_file", "streaming_memory"]


@dataclass
class StreamedFields(Realization):
    """A realization written to an HDF5 group: ``Position`` (``(n^3, 3)`` float32, Mpc/h, in ``[0, L)``) and
    ``Velocity`` (km/s), in the particle order of :class:`~emulator.model.emulate.GeneratedFields`.

    ``slabs`` lists ``(first, stop)`` particle indices of each Lagrangian slab, contiguous and without overlap,
    and ``x_extent`` its unwrapped Eulerian x range ``(lo, hi)`` in Mpc/h (positions before the periodic wrap
    lie in it).
    """

    path: Path
    group: str
    slabs: list[tuple[int, int]] = field(default_factory=list)
    x_extent: list[tuple[float, float]] = field(default_factory=list)


def linear_fields_to_file(cosmology: Cosmology, redshift: float, box: float, seed: int, n: int, method: str,
                          dset_disp, dset_vdisp, device: torch.device) -> None:
    """Write the LPT displacement ``D1 psi1 + D2 psi2`` (Mpc/h) and the velocity in displacement units
    ``D1 psi1 + (f2/f1) D2 psi2`` to the ``(3, n, n, n)`` datasets ``dset_disp`` and ``dset_vdisp``, one
    component at a time (the arithmetic of :func:`~emulator.model.emulate.emulate_fields`)."""
    _, d1, d2, f1, f2, _ = growth_factors(cosmology, redshift)
    noise = white_noise(seed, n, dtype=torch.float32, device=device)
    delta_k = linear_density_k(noise, box, LinearPower(cosmology))
    del noise
    phi1_k = lpt_potentials(delta_k, box, second_order=False)[0]
    del delta_k  # before the 2LPT source, the stage's peak (~40 bytes per cell)
    phi2_k = lpt2_potential(phi1_k, box) if method != "za" else None
    for axis in range(3):
        psi1 = -gradient_component(phi1_k, box, axis)
        psi2 = gradient_component(phi2_k, box, axis) if phi2_k is not None else torch.zeros_like(psi1)
        dset_disp[axis] = lpt_displacement(psi1, psi2, d1, d2).cpu().numpy()
        dset_vdisp[axis] = lpt_displacement(psi1, psi2, d1, (f2 / f1) * d2).cpu().numpy()
        del psi1, psi2


def _rows(dset, start: int, stop: int, n: int) -> np.ndarray:
    """Planes ``start .. stop - 1`` (periodic, any range) along axis 1 of a ``(3, n, n, n)`` dataset."""
    idx = np.arange(start, stop) % n
    runs = np.flatnonzero(np.diff(idx) != 1) + 1
    parts = [dset[:, int(r[0]) : int(r[-1]) + 1] for r in np.split(idx, runs)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _network_slab(net, x: torch.Tensor, style: torch.Tensor, tile: int, starts: list[int]) -> torch.Tensor:
    """The network on a slab ``(1, C, tile + 2 halo, n, n)`` (x planes already extended): ``(1, C_out, tile, n,
    n)``, tile by tile with periodic halos in y and z, as :func:`~emulator.model.tiling.predict_box`.

    Cubes rather than one pass over the slab periodic along y and z: measured at 256^3 (2 threads) a slab pass
    of 64 planes costs 1.29 us per particle against 1.54 for 64^3 cubes, for 3.4x the memory (2.3 GB against
    0.7 GB above the baseline), as large tensors cost more per cell than small ones; the bounded memory wins.
    """
    halo, n = int(net.halo), x.shape[-1]
    device = next(net.parameters()).device
    out = None
    for oy, oz in itertools.product(starts, repeat=2):
        iy = torch.remainder(torch.arange(oy - halo, oy + tile + halo), n)
        iz = torch.remainder(torch.arange(oz - halo, oz + tile + halo), n)
        y = net(x[..., iy[:, None], iz[None, :]].to(device), style).to(x.device)
        if out is None:
            out = x.new_zeros((1, y.shape[1], tile, n, n), dtype=y.dtype)
        out[..., oy : oy + tile, oz : oz + tile] = y
    return out


def stream_fields(cosmology: Cosmology, redshift: float, box_size: float, seed: int, out_group, scratch: Path, *,
                  model: EmulatorModel | None = None, method: str = "emulator", ngrid: int | None = None,
                  tile: int = 64, device: str | torch.device = "cpu", allow_extrapolation: bool = False,
                  progress: bool = False, hook=None, linear_block: int | None = None,
                  fourier_scratch: Path | None = None, pgd: bool = True,
                  velocity_dispersion: bool = True) -> StreamedFields:
    """Generate one realization into ``out_group`` (an open h5py group) with bounded memory.

    Parameters are those of :func:`~emulator.model.emulate.emulate_fields`, plus ``out_group`` (receives
    ``Position`` and ``Velocity``), ``scratch`` (a file path for the linear fields, removed at the end) and
    ``tile`` (slab thickness and network tile, cells; a multiple of the network's ``size_multiple``).
    ``hook(stage)``, if given, is called after the ``"linear"`` and ``"network"`` stages (memory measurements of
    ``python -m benchmarks.largebox``). ``linear_block`` (planes, a multiple of 4): make stage 1 out of core
    (:func:`~emulator.model.linear_disk.linear_fields_out_of_core`) with its Fourier meshes in ``fourier_scratch``
    (default: next to ``scratch``; removed at the end), on the CPU whatever ``device``. A model whose PGD
    sharpening acts at ``redshift`` is refused unless ``pgd`` is False (the pull needs the whole box's density),
    and one with a velocity dispersion unless ``velocity_dispersion`` is False (it reads the density at each
    particle).
    """
    import h5py
    from tqdm.auto import tqdm

    if method == "emulator" and model is not None and not model.base.is_lpt:
        raise ValueError(f"--max-memory streams 2LPT-base models only; {model.name} corrects a "
                         f"{model.base.label()} run, which needs the whole box in memory (drop --max-memory)")
    if method == "emulator" and pgd and model is not None and model.pgd is not None \
            and model.pgd.alpha_at(redshift, cosmology.sigma8) > 0:
        raise ValueError(f"--max-memory cannot apply {model.name}'s PGD sharpening at z = {redshift:g} (it needs the "
                         f"whole box's density): drop --max-memory, or --no-pgd")
    if method == "emulator" and velocity_dispersion and model is not None and model.vdisp is not None:
        raise ValueError(f"--max-memory cannot add {model.name}'s velocity dispersion (it needs the whole box's "
                         f"density): drop --max-memory, or --no-velocity-dispersion")
    n, seed, device, extrapolated = check_request(cosmology, redshift, box_size, seed, model=model,
                                                  method=method, ngrid=ngrid, device=device,
                                                  allow_extrapolation=allow_extrapolation)
    box = check_box_size(box_size)
    multiple = max(2, int(model.net.size_multiple)) if method == "emulator" else 1
    tile = min(int(tile), n)
    starts = tile_origins(n, tile, multiple)
    a, _, _, f1, _, e = growth_factors(cosmology, redshift)
    cell = box / n
    scratch = Path(scratch)
    fourier = Path(fourier_scratch) if fourier_scratch is not None else scratch.with_name(scratch.name + ".fourier")
    pos_ds = out_group.create_dataset("Position", (n**3, 3), dtype="f4")
    vel_ds = out_group.create_dataset("Velocity", (n**3, 3), dtype="f4")
    res = StreamedFields(cosmology=cosmology, redshift=float(redshift), box_size=box, ngrid=n, seed=seed,
                         method=method, extrapolated=extrapolated, path=Path(out_group.file.filename),
                         group=out_group.name)
    try:
        with h5py.File(scratch, "w") as tmp:
            disp_ds = tmp.create_dataset("disp", (3, n, n, n), dtype="f4")
            vdisp_ds = tmp.create_dataset("vdisp", (3, n, n, n), dtype="f4")
            if linear_block is None:
                linear_fields_to_file(cosmology, redshift, box, seed, n, method, disp_ds, vdisp_ds, device)
            else:
                try:
                    linear_fields_out_of_core(cosmology, redshift, box, seed, n, method, disp_ds, vdisp_ds, fourier,
                                              block=linear_block, progress=progress)
                finally:
                    fourier.unlink(missing_ok=True)
            # the freed heap of a stage, kept by keep_freed_memory, fragments under the next stage's arrays and adds
            # to its peak: give it back between stages
            release_freed_memory()
            if hook is not None:
                hook("linear")
            net = model.net if method == "emulator" else None
            halo = int(net.halo) if net is not None else 0
            style = model.style(cosmology, redshift)[None].to(next(net.parameters()).device) if net else None
            ax = torch.arange(n, dtype=torch.float32) * cell  # lagrangian_grid's axis
            for ox in tqdm(starts, desc="slabs", unit="slab", leave=False, disable=not progress):
                ext = torch.from_numpy(_rows(disp_ds, ox - halo, ox + tile + halo, n))
                disp = ext[:, halo : halo + tile]
                if net is not None and model.velocity == "derivative":  # the network reads the base velocity too
                    ext_v = torch.from_numpy(_rows(vdisp_ds, ox - halo, ox + tile + halo, n))
                    vdisp = ext_v[:, halo : halo + tile]
                    ext = torch.cat([ext, ext_v])
                else:
                    vdisp = torch.from_numpy(vdisp_ds[:, ox : ox + tile])
                if net is not None:
                    with torch.inference_mode():
                        r = _network_slab(net, (ext / cell)[None], style, tile, starts)[0]
                    disp = disp + cell * r[:3]
                    vdisp = vdisp + cell * r[3:]
                    del r
                del ext
                q = torch.stack(torch.meshgrid(ax[ox : ox + tile], ax, ax, indexing="ij"), dim=-1).reshape(-1, 3)
                x = q + disp.flatten(-3).transpose(-1, -2)
                res.x_extent.append((float(x[:, 0].min()), float(x[:, 0].max())))
                pos = wrap_positions(x, box)
                rows = (ox * n * n, (ox + tile) * n * n)
                pos_ds[rows[0] : rows[1]] = pos.numpy()
                vel_ds[rows[0] : rows[1]] = ((100.0 * a * e * f1) * vdisp).flatten(-3).transpose(-1, -2).numpy()
                # the last slab may be shifted back over its neighbour (tile_origins): list each particle once
                res.slabs.append((max(rows[0], res.slabs[-1][1] if res.slabs else 0), rows[1]))
                del q, x, pos, disp, vdisp
        release_freed_memory()
        if hook is not None:
            hook("network")
    finally:
        scratch.unlink(missing_ok=True)
    return res


def streaming_memory(n: int, tile: int, halo: int, pass_bytes_per_cell: float,
                     linear_block: int | None = None, slab_factor: float = 1.0) -> dict[str, float]:
    """Estimated peak resident memory (bytes, above the process's baseline) of the two stages of
    :func:`stream_fields` for ``n^3`` particles.

    Stage 1 holds ``phi1_k`` and the meshes of the 2LPT source (measured 43 bytes per cell at 256^3 with the
    allocator setting of :mod:`emulator.core.allocator`; 44 used). Stage 2 holds the extended slab (12 bytes per
    input cell, ``slab_factor`` times that for a derivative-velocity network, which reads the velocity slab
    too), the slab's outputs, positions and velocities (~150 bytes per output particle) and one network tile
    pass of ``pass_bytes_per_cell`` per input cell (the measured
    :func:`emulator.mocks.memory_model.pass_bytes_per_cell`, shared with the held-whole estimate: ~0.31 GB at
    tile 64 for a network with a velocity head, 2.8 times that for a derivative-velocity network). Fitted to
    ``python -m benchmarks.largebox``-style stage measurements. With ``linear_block``, stage 1 is out of core
    (:func:`~emulator.model.linear_disk.out_of_core_memory`).
    """
    cells = float(n) ** 3
    slab_in = float(tile + 2 * halo) * n * n
    slab_out = float(tile) * n * n
    tile_pass = float(tile + 2 * halo) ** 3 * float(pass_bytes_per_cell)
    linear = 44.0 * cells if linear_block is None else out_of_core_memory(n, linear_block)
    return {"linear": linear, "network": 12.0 * float(slab_factor) * slab_in + 150.0 * slab_out + tile_pass}
