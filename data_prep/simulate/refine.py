"""Mass refinement: the same universe sampled by ``refine`` times more particles per axis.

A simulation of seed ``s`` on ``n^3`` particles draws the white noise ``white_noise(s, n)``
(:mod:`emulator.core.fields`). Refined by ``r``, it runs ``N^3 = (r n)^3`` particles whose white noise carries
the coarse noise on its large-scale modes and fresh, independent noise on the rest:

* every Fourier mode ``m = (m_x, m_y, m_z)`` (integer wavenumbers, units of ``2 pi / L``) with all
  ``|m_i| < n/2`` (strictly inside the coarse Nyquist frequency) is the coarse noise's mode times ``r^(3/2)``;
* every other mode (the coarse Nyquist planes included, which :func:`emulator.core.fields.linear_density_k` sets to
  zero on the coarse grid anyway) is the mode of an independent unit white noise on the ``N^3`` grid, drawn from
  a ``torch.Generator`` seeded with :func:`refined_seed` ``(s, r)``.

Normalisation: the unnormalised ``rfftn`` of unit white noise on ``n^3`` points has ``<|w_m|^2> = n^3``, and
:func:`~emulator.core.fields.linear_density_k` makes ``delta_m = w_m sqrt(P n^3 / V)``, so the same physical
field has ``delta_m^(N) = r^3 delta_m^(n)``; hence ``w_m^(N) = r^(3/2) w_m^(n)``, which keeps
``<|w_m^(N)|^2> = N^3``: the fine noise is again unit-variance white (the coarse set is closed under
``m -> -m``, so the field stays real). The linear density of the refined run equals the coarse one on every
mode the coarse grid carries, and the fixed-amplitude / paired options act mode by mode, so they commute with
the refinement.

Outputs keep the particle at the coarse Lagrangian point ``q = (i, j, k) L / n``, i.e. fine particle
``(r i, r j, r k)`` (:func:`coarse_lattice_index`), so a refined suite has the coarse suite's shapes and ids.
"""

from __future__ import annotations

import numpy as np
import torch

from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import check_mesh_size, to_fourier, to_real

__all__ = [
    "check_refine", "coarse_lattice_index", "coarse_modes", "initial_density_k", "refined_seed", "refined_white_noise",
]

_STREAM_TAG = 0x7EF1E  # separates the fine stream from any plain white_noise seed


def check_refine(refine: object) -> int:
    """Validate the refinement factor (a positive integer; 1 = no refinement)."""
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or int(refine) < 1:
        raise ValueError(f"refine must be a positive integer (particles per axis per coarse particle), got {refine!r}")
    return int(refine)


def refined_seed(seed: int, refine: int) -> int:
    """Seed of the independent small-scale stream of a run refined by ``refine`` (a 63-bit integer).

    Derived with :class:`numpy.random.SeedSequence` from ``(seed, refine, tag)``, so it never coincides with
    the coarse stream of ``seed`` and differs between refinement factors.
    """
    state = np.random.SeedSequence([int(seed), int(refine), _STREAM_TAG]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def _coarse_index(n: int, refine: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fine-grid indices of the coarse modes ``|m_i| < n/2`` along a full and along the half (rfft) axis."""
    m = torch.arange(-(n // 2) + 1, n // 2)
    full = torch.remainder(m, refine * n)
    half = torch.arange(0, n // 2)
    return full, half


def coarse_modes(field_k: torch.Tensor, n: int) -> torch.Tensor:
    """The modes with all ``|m_i| < n/2`` of an ``rfftn`` array (any even grid ``>= n``), shape ``(n-1, n-1, n/2)``.

    Ordered by wavenumber ``m_x, m_y`` from ``-n/2 + 1`` to ``n/2 - 1`` and ``m_z`` from 0 to ``n/2 - 1``, so arrays
    from grids of different sizes compare element by element.
    """
    big = field_k.shape[0]
    if field_k.ndim != 3 or big % n or big < n:
        raise ValueError(f"field_k must be an rfftn array of a grid that is a multiple of n={n}, "
                         f"got {tuple(field_k.shape)}")
    full, half = _coarse_index(n, big // n)
    return field_k[full][:, full][:, :, half]


def refined_white_noise(
    seed: int,
    n: int,
    refine: int,
    *,
    fine_seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Unit white noise on ``(refine n)^3`` points carrying ``white_noise(seed, n)`` on its coarse modes.

    Parameters
    ----------
    seed : int
        The coarse white-noise seed (:func:`emulator.core.fields.white_noise`).
    n : int
        Coarse cells per side (even).
    refine : int
        Refinement factor ``r`` (1 returns ``white_noise(seed, n)`` itself).
    fine_seed : int, optional
        Seed of the small-scale stream; default :func:`refined_seed` ``(seed, r)``. Another value keeps every
        coarse mode and redraws the sub-grid ones (the same large-scale universe with other small-scale initial
        conditions: ``python -m benchmarks.subgrid_noise``).

    Returns
    -------
    torch.Tensor
        Shape ``(r n, r n, r n)``, built in float64 on the CPU, then cast and moved (as ``white_noise``).
    """
    n = check_mesh_size(n, "ngrid")
    r = check_refine(refine)
    coarse = white_noise(seed, n, dtype=torch.float64)
    if r == 1:
        return coarse.to(dtype=dtype, device=device)
    big = r * n
    gen = torch.Generator(device="cpu").manual_seed(refined_seed(seed, r) if fine_seed is None else int(fine_seed))
    fine_k = to_fourier(torch.randn((big, big, big), dtype=torch.float64, generator=gen))
    coarse_k = to_fourier(coarse)
    cf, ch = _coarse_index(n, 1)
    ff, fh = _coarse_index(n, r)
    block = coarse_k[cf][:, cf][:, :, ch] * r**1.5
    ix, iy, iz = torch.meshgrid(ff, ff, fh, indexing="ij")
    fine_k[ix, iy, iz] = block
    return to_real(fine_k, big).to(dtype=dtype, device=device)


def coarse_lattice_index(n: int, refine: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Indices (C order of the ``(r n)^3`` lattice) of the fine particles at ``q = (i, j, k) L / n``.

    They come in coarse C order.
    """
    r = check_refine(refine)
    big = r * n
    i = torch.arange(n, device=device, dtype=torch.int64) * r
    return ((i[:, None, None] * big + i[None, :, None]) * big + i[None, None, :]).reshape(-1)


def initial_density_k(
    seed: int,
    n: int,
    box_size: float,
    power,
    refine: int = 1,
    *,
    fixed_amplitude: bool = False,
    invert_phase: bool = False,
    fine_seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Linear density (``rfftn`` layout, :func:`~emulator.core.fields.linear_density_k`) of the ``(refine n)^3`` run.

    With ``refine = 1`` it is exactly the 2LPT input of ``emulator generate`` for the same seed (same noise, same
    linear power); with ``refine > 1`` its modes strictly inside the coarse Nyquist frequency are ``refine^3``
    times those (the ``n^3 / V`` normalisation of the finer grid), and ``fine_seed`` is that of
    :func:`refined_white_noise`.
    """
    r = check_refine(refine)
    noise = white_noise(seed, n, dtype=dtype, device=device) if r == 1 else \
        refined_white_noise(seed, n, r, fine_seed=fine_seed, dtype=dtype, device=device)
    return linear_density_k(noise, box_size, power, fixed_amplitude=fixed_amplitude, invert_phase=invert_phase)
