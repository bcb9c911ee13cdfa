"""FKP power spectrum multipoles of a cut-sky catalog with randoms (Yamamoto estimator, FFT form).

A reference estimator for the survey files of :mod:`emulator.mocks.survey` (columns ``RA``, ``DEC``,
``DISTANCE``, ``NZ``, ``WEIGHT``; nbodykit's ``ConvolvedFFTPower`` and pypower compute the same quantities).

The weighted field ``F(x) = sum_d w_d delta_D(x - x_d) - alpha sum_r w_r delta_D(x - x_r)`` with
``w = WEIGHT / (1 + NZ P0)`` and ``alpha = sum w_d / sum w_r`` gives (Feldman, Kaiser & Peacock 1994; Yamamoto et
al. 2006; the FFT form of Bianchi et al. 2015 and Scoccimarro 2015, line of sight to each object)

    P_0(k) = < |F_0(k)|^2 > / A - S,        P_2(k) = 5 < Re[F_0(k) F_2*(k)] > / A,
    F_2(k) = (3/2) sum_ij khat_i khat_j Q_ij(k) - F_0(k) / 2,   Q_ij = FFT[xhat_i xhat_j F],

averaged over the modes of each ``|k|`` shell; ``A = alpha sum_r w_r^2 NZ_r`` ((h/Mpc)^3 counts, so ``P`` is in
(Mpc/h)^3), ``S = (sum_d w_d^2 + alpha^2 sum_r w_r^2) / A``. The fields are painted with CIC
(:func:`emulator.core.mesh.paint`) on an ``n^3`` mesh of a cube enclosing the randoms (10% padding) and deconvolved
by the CIC window; ``xhat`` is each object's own direction from the observer.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

from ..core.mesh import paint

__all__ = ["FKPMultipoles", "sky_to_cartesian", "fkp_multipoles"]


class FKPMultipoles(NamedTuple):
    """``k`` (h/Mpc, mean per bin), ``p0``, ``p2`` ((Mpc/h)^3), ``modes`` per bin, ``shot_noise``, ``box_size``."""

    k: np.ndarray
    p0: np.ndarray
    p2: np.ndarray
    modes: np.ndarray
    shot_noise: float
    box_size: float


def sky_to_cartesian(ra: Any, dec: Any, distance: Any) -> np.ndarray:
    """``(N, 3)`` positions relative to the observer (Mpc/h) from RA, DEC (degrees) and distance (Mpc/h), in the
    sky axes of :mod:`emulator.mocks.cutsky` (``+x`` at RA = DEC = 0, ``+z`` north)."""
    ra, dec = np.radians(np.asarray(ra, dtype=np.float64)), np.radians(np.asarray(dec, dtype=np.float64))
    d = np.asarray(distance, dtype=np.float64)
    return np.stack([d * np.cos(dec) * np.cos(ra), d * np.cos(dec) * np.sin(ra), d * np.sin(dec)], axis=-1)


def _cic_window(n: int, box: float) -> np.ndarray:
    k = np.fft.fftfreq(n) * n
    kz = np.fft.rfftfreq(n) * n
    w = [np.sinc(v / n) ** 2 for v in (k, k, kz)]  # np.sinc(x) = sin(pi x) / (pi x)
    return w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]


def _paint(pos: np.ndarray, weight: np.ndarray, n: int, box: float) -> np.ndarray:
    mesh = paint(torch.from_numpy(pos), n, box, mass=torch.from_numpy(weight), window="cic")
    return np.fft.rfftn(mesh.numpy())


def fkp_multipoles(data: Mapping[str, Any], randoms: Mapping[str, Any], *, p0: float = 1.0e4, nmesh: int = 128,
                   kedges: Any = None, distance: str = "DISTANCE") -> FKPMultipoles:
    """Monopole and quadrupole of a cut-sky catalog (see the module docstring).

    Parameters
    ----------
    data, randoms : mapping
        Columns ``RA``, ``DEC`` (degrees), ``distance`` (Mpc/h), ``NZ`` ((h/Mpc)^3), optionally ``WEIGHT``.
    p0 : float
        FKP ``P0``, (Mpc/h)^3.
    nmesh : int
        Mesh points per side (even).
    kedges : array-like, optional
        Bin edges in h/Mpc; default: width ``2 k_f`` from ``k_f`` to the Nyquist frequency.
    distance : str
        Radial column, ``DISTANCE`` (redshift space) or ``DISTANCE_COSMO`` (real space).
    """
    xd = sky_to_cartesian(data["RA"], data["DEC"], data[distance])
    xr = sky_to_cartesian(randoms["RA"], randoms["DEC"], randoms[distance])
    wd = np.asarray(data.get("WEIGHT", np.ones(len(xd))), np.float64) / (1 + np.asarray(data["NZ"]) * p0)
    wr = np.asarray(randoms.get("WEIGHT", np.ones(len(xr))), np.float64) / (1 + np.asarray(randoms["NZ"]) * p0)
    alpha = wd.sum() / wr.sum()
    lo, hi = xr.min(axis=0), xr.max(axis=0)
    box = float((hi - lo).max() * 1.1)
    origin = 0.5 * (lo + hi) - box / 2
    norm = alpha * np.sum(wr**2 * np.asarray(randoms["NZ"], np.float64))
    shot = (np.sum(wd**2) + alpha**2 * np.sum(wr**2)) / norm
    window = _cic_window(nmesh, box)
    hat_d = xd / np.linalg.norm(xd, axis=1, keepdims=True)
    hat_r = xr / np.linalg.norm(xr, axis=1, keepdims=True)
    pd, pr = xd - origin, xr - origin

    def field(md, mr):
        return (_paint(pd, wd * md, nmesh, box) - alpha * _paint(pr, wr * mr, nmesh, box)) / window

    f0 = field(1.0, 1.0)
    kf = 2 * math.pi / box
    kx = np.fft.fftfreq(nmesh, 1.0 / nmesh) * kf
    kz = np.fft.rfftfreq(nmesh, 1.0 / nmesh) * kf
    kvec = np.meshgrid(kx, kx, kz, indexing="ij")
    kmag = np.sqrt(sum(c**2 for c in kvec))
    safe = np.where(kmag > 0, kmag, 1.0)
    f2 = -0.5 * f0
    for i in range(3):
        for j in range(i, 3):
            q = field(hat_d[:, i] * hat_d[:, j], hat_r[:, i] * hat_r[:, j])
            f2 = f2 + (1.5 if i == j else 3.0) * kvec[i] * kvec[j] / safe**2 * q
    mult = np.full(kmag.shape, 2.0)  # rfft half space: modes with kz = 0 or Nyquist count once
    mult[..., 0] = 1.0
    if nmesh % 2 == 0:
        mult[..., -1] = 1.0
    edges = np.arange(kf, math.pi * nmesh / box, 2 * kf) if kedges is None else np.asarray(kedges, np.float64)
    idx = np.digitize(kmag.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1) & (kmag.ravel() > 0)
    idx, m = idx[ok], mult.ravel()[ok]

    def avg(values):
        return np.bincount(idx, values.ravel()[ok] * m, len(edges) - 1) / np.maximum(modes, 1)

    modes = np.bincount(idx, m, len(edges) - 1)
    p0_ = avg(np.abs(f0) ** 2) / norm - shot
    p2_ = 5 * avg((f0 * np.conj(f2)).real) / norm
    return FKPMultipoles(avg(kmag), p0_, p2_, modes, float(shot), box)
