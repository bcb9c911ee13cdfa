"""Small-scale velocity dispersion: the random part of particle velocities that a deterministic generator misses.

The converged truth's particles carry virial motions set by modes finer than the generator's grid (its 2x mass
refinement) and by orbits inside halos that no function of the coarse initial noise predicts. A deterministic
network returns (close to) their conditional mean, so its velocities are too cold where the matter is dense: the
redshift-space monopole of ``hybrid_cola4`` at z = 0 is 20-30% above the truth's at k = 0.5-0.8 h/Mpc (too little
finger-of-God damping) while its real-space P(k) is within a few per cent. Adding to every particle an isotropic
Gaussian velocity whose per-component dispersion ``sigma(ln(1 + delta))`` is the measured rms of the truth's
velocities about the generator's, as a function of the local density at the particle, restores the velocity
variance density bin by density bin (:mod:`emulator.model.velocity_dispersion` holds a model's measured table;
:mod:`benchmarks.velocity_dispersion` fits and grades it).

The local density is the CIC overdensity of the particles on the particle grid (one cell per particle), read out
with the same window at each particle. The noise is drawn on the CPU from a ``torch.Generator`` seeded by
:func:`noise_seed` of the realization's seed, :data:`NOISE_CHUNK` particles at a time in particle order (part of
the stream's definition: another chunk size draws other numbers), so a seed gives the same draws on every device
(the dispersion each draw is scaled by comes from a density painted on the device: equal to rounding). Memory:
the mesh (4 bytes per particle on the particle grid) and one chunk's temporaries. Pure torch.
"""

from __future__ import annotations

import numpy as np
import torch

from .mesh import paint, readout

__all__ = ["DENSITY_FLOOR", "NOISE_CHUNK", "noise_seed", "log_density_at_particles", "binned_second_moments",
           "interpolate_sigma", "add_velocity_noise"]

DENSITY_FLOOR = 1e-3  # 1 + delta below this (an empty CIC neighbourhood) counts as this
_STREAM_TAG = 0x76646973  # "vdis": this stream never coincides with the white noise of the same seed
NOISE_CHUNK = 1 << 20  # particles per draw of the noise stream (bounds the draw's memory to 12 MB)


def noise_seed(seed: int) -> int:
    """Seed (63-bit) of the velocity-noise stream of the realization seeded ``seed`` (derived with
    :class:`numpy.random.SeedSequence` from ``(seed, tag)``)."""
    state = np.random.SeedSequence([int(seed), _STREAM_TAG]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def log_density_at_particles(positions: torch.Tensor, nmesh: int, box_size: float) -> torch.Tensor:
    """``ln(1 + delta)`` at each particle: CIC overdensity of the particles on an ``nmesh^3`` mesh, read out with
    CIC, ``1 + delta`` floored at :data:`DENSITY_FLOOR`.

    Parameters
    ----------
    positions : torch.Tensor
        ``(N, 3)`` Mpc/h (wrapped periodically).
    nmesh : int
        Mesh points per side (the particle grid's, ``n`` for ``n^3`` particles).
    box_size : float
        Box side, Mpc/h.
    """
    return _log_density(_density_mesh(positions, nmesh, box_size), positions, box_size)


def _density_mesh(positions: torch.Tensor, nmesh: int, box_size: float) -> torch.Tensor:
    """``1 + delta`` of the particles, CIC on an ``nmesh^3`` mesh."""
    return paint(positions, nmesh, box_size).mul_(nmesh ** 3 / positions.shape[0])


def _log_density(mesh: torch.Tensor, positions: torch.Tensor, box_size: float) -> torch.Tensor:
    """``ln(1 + delta)`` of ``mesh`` read out with CIC at ``positions``, floored at :data:`DENSITY_FLOOR`."""
    return readout(mesh, positions, box_size).clamp_min_(DENSITY_FLOOR).log_()


def binned_second_moments(log_density: torch.Tensor, residual: torch.Tensor, edges) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, sums)`` per bin of ``ln(1 + delta)``: particle counts and the sum over particles of the mean
    square component of ``residual`` (``(N, 3)``, e.g. km/s; sums in its units squared). ``edges``: ascending bin
    edges; particles outside them fall in the end bins."""
    e = torch.as_tensor(np.asarray(edges, dtype=np.float64), dtype=log_density.dtype, device=log_density.device)
    idx = (torch.bucketize(log_density, e[1:-1], right=True)).cpu()
    sq = residual.double().pow(2).mean(dim=1).cpu()
    nb = e.numel() - 1
    counts = torch.bincount(idx, minlength=nb).numpy().astype(np.int64)
    sums = torch.zeros(nb, dtype=torch.float64).index_add_(0, idx, sq).numpy()
    return counts, sums


def interpolate_sigma(log_density: torch.Tensor, centres, sigma) -> torch.Tensor:
    """``sigma`` (one value per node of ``centres``, ascending ``ln(1 + delta)``) interpolated linearly at
    ``log_density``, held at the end nodes' values beyond them."""
    c = torch.as_tensor(np.asarray(centres, dtype=np.float64), dtype=log_density.dtype, device=log_density.device)
    s = torch.as_tensor(np.asarray(sigma, dtype=np.float64), dtype=log_density.dtype, device=log_density.device)
    if c.numel() == 1:
        return s.expand_as(log_density).clone()
    x = log_density.clamp(c[0], c[-1])
    j = torch.bucketize(x, c[1:-1], right=True)  # node interval [c_j, c_j+1]
    w = (x - c[j]) / (c[j + 1] - c[j])
    return s[j] + w * (s[j + 1] - s[j])


def add_velocity_noise(positions: torch.Tensor, velocities: torch.Tensor, nmesh: int, box_size: float, centres,
                       sigma, seed: int) -> torch.Tensor:
    """Add in place to ``velocities`` an isotropic Gaussian of per-component dispersion
    ``sigma(ln(1 + delta))`` (km/s, :func:`interpolate_sigma` of ``centres``, ``sigma``) at each particle's
    density (:func:`log_density_at_particles`); returns ``velocities``.

    Parameters
    ----------
    positions, velocities : torch.Tensor
        ``(N, 3)`` Mpc/h and km/s, any device (velocities float32 or float64).
    nmesh : int
        Mesh points per side of the density estimate (the particle grid's).
    box_size : float
        Box side, Mpc/h.
    centres, sigma : array_like
        Nodes of ``ln(1 + delta)`` and the dispersion there, km/s (>= 0).
    seed : int
        The realization's seed; the noise stream is :func:`noise_seed` of it.
    """
    mesh = _density_mesh(positions, nmesh, box_size)
    gen = torch.Generator(device="cpu").manual_seed(noise_seed(seed))
    for lo in range(0, velocities.shape[0], NOISE_CHUNK):  # temporaries of one chunk only, beside the mesh
        hi = min(lo + NOISE_CHUNK, velocities.shape[0])
        sig = interpolate_sigma(_log_density(mesh, positions[lo:hi], box_size), centres, sigma).to(device=velocities.device, dtype=velocities.dtype)
        draw = torch.randn((hi - lo, 3), generator=gen, dtype=torch.float32)
        velocities[lo:hi] += draw.to(device=velocities.device, dtype=velocities.dtype) * sig[:, None]
    return velocities
