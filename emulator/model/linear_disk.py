"""Stage 1 of streamed generation out of core: the linear displacement and velocity fields of an ``n^3`` box
through Fourier transforms done block by block on disk, so memory is a few blocks of planes, not the box.

:func:`~emulator.model.streaming.linear_fields_to_file` holds ``phi1_k`` and the meshes of the 2LPT source at
once (~44 bytes per particle: 45 GB for a 1000^3 box). Here every mesh lives in an HDF5 scratch file of
``(n, n, n // 2 + 1)`` complex64 values chunked by ``(1, block, n // 2 + 1)``, and each three-dimensional FFT is
two passes over it (the decomposition of a distributed slab FFT, with the disk in place of the other ranks):

- **x blocks**: ``block`` whole planes ``x = x0 .. x1 - 1``, a two-dimensional real FFT over ``(y, z)``;
- **y columns**: every ``x`` for ``k_y`` in one block, a one-dimensional FFT along ``x``, and then any
  operation local in Fourier space (the power spectrum's amplitude, the inverse Laplacian, gradients).

The steps are those of the in-memory path (:func:`~emulator.core.fields.white_noise`,
:func:`~emulator.core.fields.linear_density_k`, :func:`~emulator.core.lpt.lpt_potentials`,
:func:`~emulator.core.lpt.lpt2_potential`, :func:`~emulator.core.lpt.gradient_component`): the same white noise
bit for bit (drawn plane block by plane block from the one generator stream), the same amplitudes and kernels,
the 2LPT source summed in the same order. Only the FFTs are split differently, so the fields agree with the
in-memory ones to float32 rounding (<~ 2e-6 of their rms), not bit for bit.

Memory: about :data:`BYTES_PER_BLOCK_CELL` bytes per cell of one block of planes (``block n^2`` cells; 2 GB for
blocks of 32 planes of a 512^3 mesh, 7.7 GB at 1000^3, so a 1000^3 box under 8 GB takes blocks of 28). Disk:
eight complex meshes, ~32 bytes per particle (:data:`DISK_BYTES_PER_CELL`), next to the 24 of the linear file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.cosmology import Cosmology
from ..core.fourier import check_box_size, check_mesh_size, gradient_kernels, wavenumbers
from ..core.power import LinearPower

__all__ = ["linear_fields_out_of_core", "noise_blocks", "block_for_memory", "out_of_core_memory",
           "BYTES_PER_BLOCK_CELL", "DISK_BYTES_PER_CELL", "LARGEST_BLOCK"]

#: Peak resident bytes per cell of one block of planes (``block n^2`` cells): complex blocks read and written, their
#: transforms, the power spectrum's float64 temporaries, and the heap they fragment (glibc with the settings of
#: :mod:`emulator.core.allocator`). Measured peaks above the start, two threads, 256^3: 231 / 441 / 716 MiB at
#: blocks of 16 / 32 / 64 planes (231 / 220 / 179 bytes per block cell).
BYTES_PER_BLOCK_CELL = 240.0
#: Largest block chosen by :func:`block_for_memory`: thicker blocks gain little time (256^3: 5.6 s at 16 planes,
#: 5.5 s at 32, against 3.8 s with the meshes held) for memory the other stages may want.
LARGEST_BLOCK = 32
#: Scratch disk per particle: eight complex64 meshes in the ``rfftn`` layout (4 bytes per cell each; seven for
#: the Zel'dovich approximation), next to the 24 bytes of the linear fields' file while this stage runs.
DISK_BYTES_PER_CELL = 32.0


def block_for_memory(n: int, budget: float) -> int:
    """Planes per block so one block's working set stays within ``budget`` bytes (at least 4, at most
    :data:`LARGEST_BLOCK` and ``n``); a multiple of 4 so the noise draws keep the generator's stream
    (:func:`noise_blocks`)."""
    b = min(int(budget // (BYTES_PER_BLOCK_CELL * float(n) ** 2)), LARGEST_BLOCK)
    return int(min(max(4, b - b % 4), n))


def out_of_core_memory(n: int, block: int) -> float:
    """Estimated peak resident memory (bytes, above the process's baseline) of :func:`linear_fields_out_of_core`."""
    return BYTES_PER_BLOCK_CELL * float(block) * float(n) ** 2


def noise_blocks(seed: int, n: int, block: int):
    """Yield ``(x0, x1, noise)`` with ``noise`` the planes ``x0 .. x1 - 1`` of
    :func:`~emulator.core.fields.white_noise` ``(seed, n)`` (float64), bit for bit.

    torch draws normal numbers from uniforms in groups of 16 (recomputing the last 16 when the count is not a
    multiple of 16), so consecutive draws from one generator equal one draw of their total when every draw but the
    last has a multiple of 16 values and the last has at least 16: ``block`` must be a multiple of 4 (even ``n``:
    ``n^2`` is a multiple of 4).
    """
    n = check_mesh_size(n)
    if block % 4 and block < n:
        raise ValueError(f"noise block must be a multiple of 4 planes (or all {n}), got {block}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for x0 in range(0, n, block):
        x1 = min(n, x0 + block)
        yield x0, x1, torch.randn((x1 - x0, n, n), dtype=torch.float64, generator=gen)


def _blocks(n: int, block: int):
    return [(s, min(n, s + block)) for s in range(0, n, block)]


def _column(dset, y0: int, y1: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(dset[:, y0:y1]))


def linear_fields_out_of_core(cosmology: Cosmology, redshift: float, box: float, seed: int, n: int, method: str,
                              dset_disp, dset_vdisp, scratch: Path, *, block: int = 8,
                              progress: bool = False) -> None:
    """Write the fields of :func:`~emulator.model.streaming.linear_fields_to_file` (``D1 psi1 + D2 psi2`` and
    ``D1 psi1 + (f2/f1) D2 psi2``, Mpc/h, into ``(3, n, n, n)`` datasets) with FFTs on disk.

    Parameters
    ----------
    scratch : Path
        HDF5 scratch file for the Fourier meshes (~32 bytes per particle); the caller removes it.
    block : int
        Planes per block (a multiple of 4, or at least ``n``; see :func:`block_for_memory`).
    """
    import h5py
    from tqdm.auto import tqdm

    from .emulate import growth_factors

    n, box = check_mesh_size(n), check_box_size(box)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1 or (block % 4 and block < n):
        raise ValueError(f"linear_block must be a positive multiple of 4 planes (or at least n = {n}), got {block!r}")
    block = int(min(block, n))
    _, d1, d2, f1, f2, _ = growth_factors(cosmology, redshift)
    nh = n // 2 + 1
    xs, ys = _blocks(n, block), _blocks(n, block)
    kx, ky, kz = wavenumbers(n, box, dtype=torch.float32)
    g = gradient_kernels(n, box, dtype=torch.float32)
    power = LinearPower(cosmology)
    second = method != "za"
    passes = 4 + (3 if second else 0)
    bar = tqdm(total=passes * len(xs), desc="linear fields (disk FFT)", unit="block", leave=False,
               disable=not progress)

    def inv_lap(y0: int, y1: int) -> torch.Tensor:
        k2 = kx**2 + ky[:, y0:y1] ** 2 + kz**2
        if y0 == 0:
            k2[0, 0, 0] = 1.0
        inv = -1.0 / k2
        if y0 == 0:
            inv[0, 0, 0] = 0.0
        return inv

    with h5py.File(scratch, "w") as f:
        def mesh(name: str):
            return f.create_dataset(name, (n, n, nh), dtype="c8", chunks=(1, min(block, n), nh))

        phi1, phi2, tmp = mesh("phi1"), mesh("phi2") if second else None, [mesh(f"t{i}") for i in range(6)]
        # 1. white noise, x block by x block: its 2D transforms (the noise of white_noise cast to float32)
        for x0, x1, noise in noise_blocks(seed, n, block):
            phi1[x0:x1] = torch.fft.rfft2(noise.to(torch.float32)).numpy()
            bar.update()
        # 2. y columns: the x transform, then delta_k = w_k amp(k) (linear_density_k) and phi1 = -delta_k / k^2
        for y0, y1 in ys:
            wk = torch.fft.fft(_column(phi1, y0, y1), dim=0)
            k = (kx**2 + ky[:, y0:y1] ** 2 + kz**2).sqrt()
            if y0 == 0:
                k[0, 0, 0] = 1.0
            pk = power(k)
            pk = pk if torch.is_tensor(pk) else torch.as_tensor(pk, dtype=torch.float32)
            amp = torch.sqrt(pk.clamp_min(0.0) * n**3 / box**3)
            if y0 == 0:
                amp[0, 0, 0] = 0.0
            amp[n // 2] = 0.0
            if y0 <= n // 2 < y1:
                amp[:, n // 2 - y0] = 0.0
            amp[..., n // 2] = 0.0
            phi1[:, y0:y1] = (inv_lap(y0, y1) * (wk * amp)).numpy()
            bar.update()
        if second:
            _second_order(phi1, phi2, tmp, g, inv_lap, xs, ys, n, bar)
        # last. y columns: the displacement and velocity in Fourier space, x transforms back; then x blocks
        for y0, y1 in ys:
            p1 = _column(phi1, y0, y1)
            p2 = _column(phi2, y0, y1) if second else None
            for axis in range(3):
                ga = g[axis][:, y0:y1] if axis == 1 else g[axis]
                for out, c2 in ((tmp[axis], d2), (tmp[3 + axis], (f2 / f1) * d2)):
                    field = -d1 * p1 if p2 is None else -d1 * p1 + c2 * p2
                    out[:, y0:y1] = torch.fft.ifft(1j * ga * field, dim=0).numpy()
            bar.update()
        for x0, x1 in xs:
            for axis in range(3):
                dset_disp[axis, x0:x1] = torch.fft.irfft2(torch.from_numpy(tmp[axis][x0:x1]), s=(n, n)).numpy()
                dset_vdisp[axis, x0:x1] = torch.fft.irfft2(torch.from_numpy(tmp[3 + axis][x0:x1]), s=(n, n)).numpy()
            bar.update()
    bar.close()


def _second_order(phi1, phi2, tmp, g, inv_lap, xs, ys, n: int, bar) -> None:
    """``phi2_k = laplacian^-1 S`` into ``phi2``, with ``S`` the 2LPT source of ``phi1`` (the sum of
    :func:`emulator.core.lpt.lpt2_potential` in the same order), through the six Hessian meshes in ``tmp``."""
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    for y0, y1 in ys:
        p1 = _column(phi1, y0, y1)
        k = (g[0], g[1][:, y0:y1], g[2])
        for t, (i, j) in zip(tmp, pairs):
            t[:, y0:y1] = torch.fft.ifft(-k[i] * k[j] * p1, dim=0).numpy()
        bar.update()
    for x0, x1 in xs:
        def hess(i: int) -> torch.Tensor:
            return torch.fft.irfft2(torch.from_numpy(tmp[i][x0:x1]), s=(n, n))

        hxx, hyy = hess(0), hess(1)
        source = hxx * hyy
        hzz = hess(2)
        source += hxx * hzz
        del hxx
        source += hyy * hzz
        del hyy, hzz
        for i in (3, 4, 5):
            source -= hess(i) ** 2
        phi2[x0:x1] = torch.fft.rfft2(source).numpy()
        bar.update()
    for y0, y1 in ys:
        phi2[:, y0:y1] = (inv_lap(y0, y1) * torch.fft.fft(_column(phi2, y0, y1), dim=0)).numpy()
        bar.update()
