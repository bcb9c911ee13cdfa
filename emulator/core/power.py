"""Linear and halofit matter power spectra from CAMB, normalised to ``sigma8``; k in h/Mpc, P in (Mpc/h)^3.

Linear power
------------
CAMB (2.x) is run once per cosmology at z = 0: ``H0 = 100 h``, ``ombh2 = Omega_b h^2``,
``omch2 = (Omega_m - Omega_b) h^2``, flat, massless neutrinos (``mnu = 0``, ``N_eff`` CAMB's default), CMB
temperature and helium CAMB's defaults, ``n_s``, a reference ``A_s`` and the matter transfer (``delta_tot``) to
``k = 100 h/Mpc``. The spectrum is then multiplied by ``(sigma8 / sigma8_ref)^2``, which is exact for linear
power, so that ``sigma_r(cosmo, 8) == cosmo.sigma8``. ``sigma8_ref`` is the top-hat integral of CAMB's spectrum
by our own quadrature (:func:`sigma_r`, converged to 1e-9), not CAMB's internal ``sigma8``, which is ~2e-4
low for Planck-like cosmologies (and moves by ~6e-5 with CAMB's accuracy switches); ``A_s`` is rescaled by
the same factor. CAMB's native table (~200 points) is resampled by a cubic spline in ``(ln k, ln P)`` onto a
uniform grid of ``_N_DENSE`` points, between which ``ln P`` is linear in ``ln k`` (max error 1e-6 at the CAMB
nodes); beyond the table (``1e-5 < k < 105`` h/Mpc) the end segments continue as power laws. ``P(0) = 0``.

Redshift dependence is ``P(k, z) = P(k, 0) D1(z)^2`` with ``D1`` from :mod:`emulator.core.growth`, so that
power, initial conditions and the PM simulator share one growth history. CAMB's own ``P(k, z)`` differs at the
1e-3 level (radiation in its background, scale-dependent baryon growth); this is a deliberate choice.

Non-linear power
----------------
:func:`nonlinear_power` runs CAMB's halofit (Takahashi et al. 2012) once more, with the rescaled ``A_s``, so
that CAMB's linear ``P(k, z=0)`` in that run equals :func:`linear_power` (to 1e-6) and has ``sigma8`` equal to
``cosmo.sigma8`` by our quadrature. Halofit is applied to CAMB's own linear ``P(k, z)``.

Caching
-------
Tables are cached in memory per process and on disk across processes (:mod:`emulator.core.camb_cache`, keyed
by cosmology, redshift, CAMB version and table version), so a second run for a cosmology does not call CAMB.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import torch

from .cosmology import Cosmology
from .growth import GrowthHistory

__all__ = ["linear_power", "linear_power_table", "nonlinear_power", "LinearPower", "sigma_r"]

_KMAX_H = 100.0  # h/Mpc, CAMB transfer kmax
_AS_REF = 2.0e-9
_N_DENSE = 16384


class _Table(NamedTuple):
    k: np.ndarray  # CAMB native nodes, h/Mpc
    pk: np.ndarray  # P at the nodes, (Mpc/h)^3
    lnk: np.ndarray  # dense uniform ln k grid
    lnp: np.ndarray  # ln P on the dense grid
    a_s: float  # A_s giving cosmo.sigma8


def _camb_results(cosmo: Cosmology, a_s: float, redshifts: list[float], nonlinear: bool):
    import camb

    pars = camb.CAMBparams()
    pars.set_cosmology(
        H0=100.0 * cosmo.h,
        ombh2=cosmo.Omega_b * cosmo.h**2,
        omch2=cosmo.Omega_cdm * cosmo.h**2,
        mnu=0.0,
        num_massive_neutrinos=0,
        omk=0.0,
    )
    pars.InitPower.set_params(As=a_s, ns=cosmo.n_s)
    pars.WantCls = False
    pars.Want_CMB = False
    pars.set_matter_power(redshifts=redshifts, kmax=_KMAX_H * cosmo.h, silent=True)
    if nonlinear:
        pars.NonLinear = camb.model.NonLinear_pk
        pars.NonLinearModel.set_params(halofit_version="takahashi")
    else:
        pars.NonLinear = camb.model.NonLinear_none
    return camb.get_results(pars)


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for arr in arrays:
        arr.flags.writeable = False
    return arrays


def _dense(k: np.ndarray, pk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.interpolate import CubicSpline  # only on a cache miss

    spline = CubicSpline(np.log(k), np.log(pk))
    lnk = np.linspace(math.log(k[0]), math.log(k[-1]), _N_DENSE)
    return lnk, spline(lnk)


_TABLE_ARRAYS = ("k", "pk", "lnk", "lnp", "a_s")


def _cached_table(kind: str, key: tuple[float, ...], compute, **extra: Any) -> _Table:
    """A table from the on-disk cache (:mod:`emulator.core.camb_cache`), running ``compute`` on a miss."""
    from .camb_cache import cache_key, cached_arrays

    ckey = cache_key(kind, key, kmax_h=_KMAX_H, as_ref=_AS_REF, n_dense=_N_DENSE, **extra)
    arrays = cached_arrays(ckey, _TABLE_ARRAYS, lambda: compute()._asdict())
    return _Table(*_frozen(*(arrays[name] for name in _TABLE_ARRAYS[:4])), float(arrays["a_s"]))


def _camb_linear_table(key: tuple[float, ...]) -> _Table:
    cosmo = Cosmology.from_array(key)
    res = _camb_results(cosmo, _AS_REF, [0.0], nonlinear=False)
    k, _, pk = res.get_linear_matter_power_spectrum(hubble_units=True, k_hunit=True)
    k = np.asarray(k, dtype=np.float64)
    pk = np.asarray(pk[0], dtype=np.float64)
    lnk, lnp = _dense(k, pk)
    ratio = (cosmo.sigma8 / _sigma_table(lnk, lnp, 8.0)) ** 2
    return _Table(k, pk * ratio, lnk, lnp + math.log(ratio), _AS_REF * ratio)


def _camb_nonlinear_table(key: tuple[float, ...], z: float) -> _Table:
    cosmo = Cosmology.from_array(key)
    a_s = _linear_table(key).a_s
    redshifts = [z, 0.0] if z > 0.0 else [0.0]
    res = _camb_results(cosmo, a_s, redshifts, nonlinear=True)
    k, zs, pk = res.get_nonlinear_matter_power_spectrum(hubble_units=True, k_hunit=True)
    row = int(np.argmin(np.abs(np.asarray(zs) - z)))
    k = np.asarray(k, dtype=np.float64)
    pk = np.asarray(pk[row], dtype=np.float64)
    return _Table(k, pk, *_dense(k, pk), a_s)


@lru_cache(maxsize=64)
def _linear_table(key: tuple[float, ...]) -> _Table:
    return _cached_table("linear", key, lambda: _camb_linear_table(key))


@lru_cache(maxsize=64)
def _nonlinear_table(key: tuple[float, ...], z: float) -> _Table:
    return _cached_table("halofit", key, lambda: _camb_nonlinear_table(key, z), z=z)


def _check_z(z: Any) -> float:
    try:
        value = float(z)
    except (TypeError, ValueError):
        raise ValueError(f"z must be a number, got {z!r}") from None
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"z must be finite and >= 0, got {z!r}")
    return value


def _check_k(k: Any) -> np.ndarray:
    arr = np.asarray(k, dtype=np.float64)
    if not np.all(arr >= 0.0) or not np.all(np.isfinite(arr)):
        raise ValueError("k must be finite and >= 0 (h/Mpc)")
    return arr


def _growth2(cosmo: Cosmology, z: float) -> float:
    return float(GrowthHistory(cosmo).D1(1.0 / (1.0 + z))) ** 2 if z > 0.0 else 1.0


def _interp_np(table: Any, k: np.ndarray) -> np.ndarray:
    """Log-log linear interpolation on the dense grid, end segments extrapolated; ``P(0) = 0``.

    The dense ``ln k`` grid is uniform, so the segment of each ``k`` is computed directly,
    ``i = floor((ln k - ln k_0) / d ln k)``, clipped to the end segments: no search, one pass over ``k``.
    """
    x, y = table.lnk, table.lnp
    positive = k > 0.0
    lnk = np.log(np.where(positive, k, 1.0))
    u = (lnk - x[0]) * ((x.size - 1) / (x[-1] - x[0]))  # position on the grid, in cells
    i = np.clip(np.floor(u), 0, x.size - 2).astype(np.intp)
    p = np.exp(y[i] + (u - i) * np.diff(y)[i])
    return np.where(positive, p, 0.0)


def linear_power_table(cosmo: Cosmology) -> tuple[np.ndarray, np.ndarray]:
    """CAMB's native ``(k [h/Mpc], P [(Mpc/h)^3])`` nodes at z = 0, normalised to ``cosmo.sigma8`` (copies)."""
    table = _linear_table(cosmo.key())
    return table.k.copy(), table.pk.copy()


def linear_power(cosmo: Cosmology, k: Any, z: float = 0.0) -> np.ndarray:
    """Linear matter power ``P(k, z) = P_CAMB(k, 0) (sigma8/sigma8_ref)^2 D1(z)^2`` (see the module docstring).

    Parameters
    ----------
    cosmo : Cosmology
        Cosmology; the z = 0 table is cached on ``cosmo.key()`` (the first call runs CAMB, ~1-2 s).
    k : array_like
        Wavenumbers in h/Mpc, ``>= 0``.
    z : float
        Redshift, ``>= 0``.

    Returns
    -------
    numpy.ndarray
        ``P`` in (Mpc/h)^3, float64, shape of ``k``.
    """
    z = _check_z(z)
    k = _check_k(k)
    return _interp_np(_linear_table(cosmo.key()), k) * _growth2(cosmo, z)


def nonlinear_power(cosmo: Cosmology, k: Any, z: float = 0.0) -> np.ndarray:
    """Halofit (Takahashi 2012) matter power from CAMB at redshift ``z``, linear ``sigma8(0) = cosmo.sigma8``.

    Parameters as for :func:`linear_power`; one CAMB run per ``(cosmology, z)``, cached.
    """
    z = _check_z(z)
    k = _check_k(k)
    return _interp_np(_nonlinear_table(cosmo.key(), float(f"{z:.10g}")), k)


class LinearPower:
    """Linear power ``P(k, z)`` as a torch callable (see :func:`linear_power`).

    ``LinearPower(cosmo, z)(k)`` takes a tensor of ``k`` in h/Mpc (any floating dtype and device) and returns
    ``P`` in (Mpc/h)^3 with the same shape, dtype and device, by log-log linear interpolation of the cached
    table (computed in float64 where the device supports it); ``P(0) = 0``. It agrees with
    :func:`linear_power` to rounding.
    """

    def __init__(self, cosmo: Cosmology, z: float = 0.0) -> None:
        self.cosmo = cosmo
        self.z = _check_z(z)
        table = _linear_table(cosmo.key())
        lnp = table.lnp + math.log(_growth2(cosmo, self.z))
        self._lnk0 = float(table.lnk[0])
        self._inv_dlnk = (table.lnk.size - 1) / float(table.lnk[-1] - table.lnk[0])  # cells per unit ln k
        self._lnp = torch.as_tensor(lnp, dtype=torch.float64)
        self._dlnp = torch.as_tensor(np.diff(lnp), dtype=torch.float64)
        self._cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def _tables(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (str(device), dtype)
        if key not in self._cache:
            self._cache[key] = (self._lnp.to(device, dtype), self._dlnp.to(device, dtype))
        return self._cache[key]

    def __call__(self, k: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(k):
            k = torch.as_tensor(k, dtype=torch.float64)
        if not k.is_floating_point():
            raise ValueError(f"k must be a floating-point tensor, got dtype {k.dtype}")
        if k.numel():
            lo, hi = torch.aminmax(k)  # NaN propagates into both, failing the test below
            if not (bool(lo >= 0.0) and bool(hi < math.inf)):
                raise ValueError("k must be finite and >= 0 (h/Mpc)")
        work = torch.float32 if k.device.type == "mps" else torch.float64
        y, dy = self._tables(k.device, work)
        flat = k.reshape(-1)
        if flat.numel() <= self.CHUNK:
            return self._lookup(flat, y, dy).reshape(k.shape)
        # in chunks: the float64 temporaries of a 256^3 mesh's rfft half (8.5e6 modes) would take ~0.5 GB at once
        out = torch.empty(flat.shape, dtype=k.dtype, device=k.device)
        for start in range(0, flat.numel(), self.CHUNK):
            out[start : start + self.CHUNK] = self._lookup(flat[start : start + self.CHUNK], y, dy)
        return out.reshape(k.shape)

    #: Elements of ``k`` interpolated at once by :meth:`__call__` (the result does not depend on it).
    CHUNK = 1 << 20

    def _lookup(self, k: torch.Tensor, y: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
        """Interpolated ``P`` at the 1-d ``k`` (checked by the caller), in ``k``'s dtype."""
        kw = k.to(y.dtype)
        positive = kw > 0.0
        # The dense ln k grid is uniform: the segment index is computed, not searched (one pass over k).
        u = torch.log(torch.where(positive, kw, torch.ones_like(kw)))
        u = u.sub_(self._lnk0).mul_(self._inv_dlnk)  # position on the grid, in cells
        i = u.floor().clamp_(0, y.numel() - 2).long()
        t = u.sub_(i)
        p = torch.take(dy, i).mul_(t).add_(torch.take(y, i)).exp_()
        return torch.where(positive, p, torch.zeros_like(p)).to(k.dtype)

    def __repr__(self) -> str:
        return f"LinearPower({self.cosmo!r}, z={self.z})"


def _tophat(x: np.ndarray) -> np.ndarray:
    """Fourier transform of the unit top hat, ``3 (sin x - x cos x) / x^3``, with a series for small ``x``."""
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    exact = 3.0 * (np.sin(xs) - xs * np.cos(xs)) / xs**3
    return np.where(small, 1.0 - x**2 / 10.0, exact)


def _sigma_table(lnk_table: np.ndarray, lnp_table: np.ndarray, r: float) -> float:
    """Top-hat rms of the tabulated spectrum at radius ``r`` (see :func:`sigma_r`)."""
    from scipy.integrate import simpson

    table = _Table(np.empty(0), np.empty(0), lnk_table, lnp_table, 0.0)
    lnk = np.arange(math.log(1e-6), math.log(2000.0 / r), 0.002)
    k = np.exp(lnk)
    integrand = k**3 * _interp_np(table, k) * _tophat(k * r) ** 2 / (2.0 * math.pi**2)
    return math.sqrt(simpson(integrand, x=lnk))


def sigma_r(cosmo: Cosmology, r: Any, z: float = 0.0) -> Any:
    """RMS linear density contrast in top-hat spheres of radius ``r`` (Mpc/h) at redshift ``z``.

    ``sigma^2(r) = int dlnk k^3 P(k, z) W^2(k r) / (2 pi^2)``, ``W(x) = 3 (sin x - x cos x) / x^3``, by Simpson's
    rule on a uniform ``ln k`` grid (step 0.002) from ``k = 1e-6`` to ``2000 / r`` h/Mpc (power-law
    extrapolation outside the CAMB table). Returns a float for scalar ``r``, else an array of its shape.
    """
    z = _check_z(z)
    radius = np.asarray(r, dtype=np.float64)
    if not np.all(np.isfinite(radius)) or np.any(radius <= 0.0):
        raise ValueError(f"r must be finite and > 0 (Mpc/h), got values in [{np.min(radius)}, {np.max(radius)}]")
    table = _linear_table(cosmo.key())
    out = np.empty(radius.shape)
    for idx, rv in np.ndenumerate(radius):
        out[idx] = _sigma_table(table.lnk, table.lnp, float(rv))
    out *= math.sqrt(_growth2(cosmo, z))
    return float(out) if out.ndim == 0 else out
