"""Statistics of one realization and their comparison with the truth of the same seed and cosmology.

Density representation (identical for every method): particles are CIC-painted on the ``n^3`` mesh of the
particle grid with two-grid interlacing and window compensation (:func:`emulator.core.window.paint_interlaced`),
giving ``delta_k``; the real-space mesh is its inverse FFT. The lognormal contender is a density mesh already
(no window), used as is. P(k), r(k) and multipoles use ``delta_k``; xi(r), the bispectrum and the PDF use the
real mesh. All estimators are the core's (:mod:`emulator.core.stats`, :mod:`emulator.core.bispectrum`,
:mod:`emulator.core.multipoles`); halos come from :func:`emulator.mocks.fof.friends_of_friends`, the
generator's with its model's halo-mass calibration (:mod:`emulator.mocks.halo_mass`), as ``emulator generate``
writes them.

Wavenumbers: ``k_f = 2 pi / L``, ``k_Nyq = pi n / L`` of the particle grid; P(k) bins are ``k_f`` wide up to
``k_Nyq``; bispectrum shells are given in units of ``k_f``; smoothing radii in cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from emulator.core.cosmology import particle_mass_from_cosmology
from emulator.mocks.halo_mass import calibrated_friends_of_friends, usable_calibration
from emulator.mocks.rsd import redshift_space_positions
from emulator.core.bispectrum import bispectrum_equilateral, bispectrum_triangles
from emulator.core.fourier import fundamental, nyquist, to_fourier, to_real
from emulator.core.multipoles import power_multipoles_k
from emulator.core.stats import (
    correlation_function, density_pdf, k_edges, mass_function, power_spectrum_k, smooth_field,
)
from emulator.core.window import particle_overdensity_k

from .truth import Mock

__all__ = ["Binning", "make_binning", "overdensity_k", "mock_delta_k", "measure", "compare", "power_for_covariance",
           "cosmology_groups", "seed_scatter"]


@dataclass(frozen=True)
class Binning:
    """Bins shared by the truth and every contender of one setup (all float64 CPU tensors, h/Mpc or Mpc/h)."""

    n: int
    box_size: float
    kf: float
    knyq: float
    kedges: torch.Tensor
    cov_edges: torch.Tensor
    halo_edges: torch.Tensor
    k_eq: torch.Tensor
    k_iso: float
    thetas: torch.Tensor
    dk: float
    rmax: float
    radii: tuple[float, ...]


def make_binning(n: int, box_size: float, stats: dict, cov: dict) -> Binning:
    """Bins for an ``n^3`` grid in a box of side ``box_size`` from the ``statistics`` and ``covariance`` configs."""
    kf, knyq = fundamental(box_size), nyquist(n, box_size)
    bs = stats["bispectrum"]
    k_eq = torch.tensor([float(x) * kf for x in bs["equilateral"]], dtype=torch.float64)
    dk = float(bs["dk"]) * kf
    limit = 2.0 / 3.0 * knyq
    if float(k_eq.max()) + dk / 2 >= limit or float(bs["isosceles_k"]) * kf + dk / 2 >= limit:
        raise ValueError(f"statistics.bispectrum: shells must stay below 2/3 k_Nyq = {limit / kf:.3g} k_f "
                         f"(alias-free) for n={n}")
    cell = box_size / n
    cov_kmax = float(cov["kmax"]) * knyq
    return Binning(
        n=n, box_size=box_size, kf=kf, knyq=knyq,
        kedges=k_edges(n, box_size),
        cov_edges=k_edges(n, box_size, kmin=kf * (1 - 1e-9), kmax=cov_kmax, log=True, nbins=int(cov["nbins"])),
        halo_edges=k_edges(n, box_size, kmin=kf * (1 - 1e-9), kmax=0.5 * knyq, log=True,
                           nbins=int(stats["halos"]["pk_nbins"])),
        k_eq=k_eq, k_iso=float(bs["isosceles_k"]) * kf,
        thetas=torch.tensor([float(t) * math.pi for t in bs["isosceles_thetas"]], dtype=torch.float64),
        dk=dk, rmax=float(stats["xi_rmax"]) * box_size,
        radii=tuple(float(r) * cell for r in stats["pdf"]["smoothing_cells"]),
    )


def overdensity_k(positions: torch.Tensor, n: int, box_size: float, *, window: str = "cic",
                  interlace: bool = True) -> torch.Tensor:
    """Window-compensated (optionally interlaced) Fourier overdensity of equal-mass particles, float64."""
    return particle_overdensity_k(positions.to(torch.float64), n, box_size, window=window, interlace=interlace)


def mock_delta_k(mock: Mock, stats: dict) -> torch.Tensor:
    """``delta_k`` of a mock: painted from particles, or the FFT of a density-only mock's mesh."""
    if mock.positions is not None:
        return overdensity_k(mock.positions, mock.ngrid, mock.box_size, window=stats["window"],
                             interlace=bool(stats["interlace"]))
    dk = to_fourier(mock.density.to(torch.float64))
    dk[0, 0, 0] = 0.0
    return dk


def power_for_covariance(delta_k: torch.Tensor, b: Binning) -> torch.Tensor:
    """P(k) in the covariance bins (log-spaced), (Mpc/h)^3."""
    return power_spectrum_k(delta_k, b.box_size, b.n, kedges=b.cov_edges).power


def _pdf_edges(delta: torch.Tensor, b: Binning, nbins: int) -> list[torch.Tensor]:
    edges = []
    for radius in b.radii:
        rho = 1.0 + smooth_field(delta, b.box_size, radius).reshape(-1)
        hi = float(np.quantile(rho.cpu().numpy(), 0.999))
        lo = min(0.0, float(rho.min()))
        edges.append(torch.linspace(lo, hi, nbins + 1, dtype=torch.float64))
    return edges


def _halos(mock: Mock, b: Binning, cfg: dict, mass_edges):
    mp = particle_mass_from_cosmology(mock.cosmology.Omega_m, b.box_size, mock.positions.shape[0])
    cat = calibrated_friends_of_friends(  # the generator's masses as its catalogs hold them
        mock.positions, b.box_size, cfg["linking_length"], int(cfg["min_members"]),
        usable_calibration(mock.halo_calibration, cfg["linking_length"]), mock.redshift, particle_mass=mp,
        velocities=mock.velocities if mock.halo_velocities is None else mock.halo_velocities)
    out = {"n_halos": len(cat), "particle_mass": mp}
    if mass_edges is None:  # truth: edges from its own masses
        if len(cat) == 0:
            return out, cat
        lo, hi = math.log10(mp * int(cfg["min_members"])), math.log10(cat.mass.max() * 1.0001)
        mass_edges = torch.logspace(lo, max(hi, lo + 0.1), int(cfg["mass_bins"]) + 1, dtype=torch.float64)
    out["mass_edges"] = mass_edges
    if len(cat):
        centres, dndlogm, counts = mass_function(cat.mass, b.box_size**3, bins=mass_edges)
        out.update(mass_centres=centres, dndlog10m=dndlogm, counts=counts)
        dk = overdensity_k(torch.as_tensor(cat.position), b.n, b.box_size)
        out["pk"] = power_spectrum_k(dk, b.box_size, b.n, kedges=b.halo_edges,
                                     shot_noise=b.box_size**3 / len(cat)).power
    else:  # a contender without any halo: an empty mass function, undefined halo power
        nb = mass_edges.numel() - 1
        out.update(mass_centres=torch.sqrt(mass_edges[1:] * mass_edges[:-1]),
                   dndlog10m=torch.zeros(nb, dtype=torch.float64), counts=torch.zeros(nb, dtype=torch.int64),
                   pk=torch.full((b.halo_edges.numel() - 1,), float("nan"), dtype=torch.float64))
    return out, cat


def _galaxies(mock: Mock, cat, b: Binning, cfg: dict, los: str) -> dict:
    """HOD galaxies of the FoF halos ``cat`` in redshift space: multipoles 0, 2, 4 in the halo P(k) bins.

    The same Zheng07 parameters and HOD seed for every contender (``statistics.galaxies``); ``P_0`` has the
    Poisson shot noise ``V / N`` removed. ``sigma`` is the Gaussian error of each multipole for this field,
    ``sqrt((2l + 1) / (N_modes / 2)) (P_0 + V / N)`` (independent modes, no covariance between bins).
    """
    from emulator.mocks.hod import populate_halos

    gal = populate_halos(cat, cfg["hod"], int(cfg["seed"]), cosmology=mock.cosmology, redshift=mock.redshift,
                         box_size=b.box_size)
    n = int(gal.position.shape[0])
    if n == 0:
        return {"n_galaxies": 0}
    s = redshift_space_positions(torch.as_tensor(gal.position), torch.as_tensor(gal.velocity), mock.redshift,
                                 mock.cosmology, b.box_size, los=los)
    dk = overdensity_k(s, b.n, b.box_size)
    shot = b.box_size**3 / n
    mp = power_multipoles_k(dk, b.box_size, b.n, ells=(0, 2, 4), los=los, kedges=b.halo_edges, shot_noise=shot)
    p0, p2, p4 = mp.poles
    sigma = torch.stack([torch.sqrt((2 * ell + 1) / (mp.modes.to(torch.float64) / 2)) * (p0 + shot)
                         for ell in (0, 2, 4)])
    return {"n_galaxies": n, "k": mp.k, "p0": p0, "p2": p2, "p4": p4, "sigma": sigma, "shot_noise": shot}


def measure(mock: Mock, b: Binning, stats: dict, ref: dict | None = None) -> dict:
    """All statistics of one realization.

    Parameters
    ----------
    mock : Mock
    b : Binning
    stats : dict
        The ``statistics`` config.
    ref : dict, optional
        The truth's measurement: its PDF and mass-function edges are reused, and halos are skipped when the
        truth had too few.

    Returns
    -------
    dict
        Tensors (float64): ``delta_k``, ``k``, ``pk`` (``b.kedges`` bins), ``xi`` (with ``rsep``, ``xi_mask``),
        ``q_eq``, ``q_iso``
        (with ``k3_iso``), ``pdf`` (list per radius), ``sigma2`` (variance of the smoothed field per radius),
        ``halos`` (dict or None), ``galaxies`` (HOD galaxies' redshift-space multipoles, with
        ``statistics.galaxies``, or None), ``rsd`` (``p0``, ``p2`` or None), ``notes``.
    """
    n, box = b.n, b.box_size
    notes: list[str] = []
    dk = mock_delta_k(mock, stats)
    delta = to_real(dk, n)
    out: dict = {"delta_k": dk, "notes": notes}
    ps = power_spectrum_k(dk, box, n, kedges=b.kedges)
    out["k"], out["pk"] = ps.k, ps.power
    out["rsep"], out["xi"], _ = correlation_function(delta, box, rmax=b.rmax)
    out["xi_mask"] = xi_mask(out["xi"], stats["xi_floor"])
    _, out["q_eq"] = bispectrum_equilateral(delta, box, b.k_eq, b.dk)
    out["k3_iso"], _, out["q_iso"] = bispectrum_triangles(delta, box, b.k_iso, b.k_iso, b.thetas, b.dk)
    edges = ref["pdf_edges"] if ref is not None else _pdf_edges(delta, b, int(stats["pdf"]["nbins"]))
    out["pdf_edges"] = edges
    out["pdf"], out["sigma2"] = [], []
    for radius, e in zip(b.radii, edges):
        out["pdf"].append(density_pdf(delta, box, radius, bins=e)[1])
        out["sigma2"].append(float(smooth_field(delta, box, radius).var()))
    out["halos"] = None
    hcfg = stats["halos"]
    if not mock.has_particles:
        notes.append(f"{mock.name}: no particles, so no halos and no redshift space")
    elif ref is not None and ref.get("halos") is None:
        pass  # the truth has too few halos: note made there
    else:
        halos, cat = _halos(mock, b, hcfg, None if ref is None else ref["halos"]["mass_edges"])
        if ref is None and halos["n_halos"] < int(hcfg["min_halos"]):
            notes.append(f"halos skipped: the truth has {halos['n_halos']} FoF halos of >= {hcfg['min_members']} "
                         f"particles, fewer than min_halos={hcfg['min_halos']} (box too small)")
        else:
            out["halos"] = halos
    out["galaxies"] = None
    if out["halos"] is not None and out["halos"]["n_halos"] and stats.get("galaxies") and mock.velocities is not None:
        out["galaxies"] = _galaxies(mock, cat, b, stats["galaxies"], stats["rsd"]["los"])
    out["rsd"] = None
    if mock.has_particles and mock.velocities is not None:
        s = redshift_space_positions(mock.positions, mock.velocities, mock.redshift, mock.cosmology, box,
                                     los=stats["rsd"]["los"])
        sk = overdensity_k(s, n, box, window=stats["window"], interlace=bool(stats["interlace"]))
        poles = power_multipoles_k(sk, box, n, ells=(0, 2), los=stats["rsd"]["los"], kedges=b.kedges).poles
        out["rsd"] = {"p0": poles[0], "p2": poles[1]}
    return out


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.full_like(a, float("nan")))


def compare(truth: dict, other: dict, b: Binning) -> dict:
    """Per-bin comparison of ``other`` with ``truth`` (both from :func:`measure`), float64 tensors / floats.

    Keys: ``pk_ratio``, ``r`` (``Re<d_t d_c*> / sqrt(P_t P_c)``), ``xi_ratio`` (``nan`` where the truth's
    ``|xi|`` is below ``xi_floor`` times its first bin, see :func:`xi_mask`), ``dq_eq``,
    ``dq_iso`` (``Q - Q_truth``), ``pdf_l1`` (``integral |p - p_truth| d(1+delta)`` per radius, in [0, 2]),
    ``sigma2_ratio``, and when available ``hmf_ratio``, ``halo_pk_ratio``, ``n_halos``, ``p0_ratio``,
    ``dp2_over_p0`` (``(P_2 - P_2,truth) / P_0,truth``), and with ``statistics.galaxies`` the HOD galaxies'
    ``gal_p0_ratio``, ``gal_dp2_over_p0``, ``gal_dp4_over_p0`` (in the bins ``gal_k``), ``gal_sigma_over_p0``
    (the truth's Gaussian error of P_0, P_2, P_4 over its P_0) and ``n_galaxies``.
    """
    n, box = b.n, b.box_size
    cross = power_spectrum_k(truth["delta_k"], box, n, other["delta_k"], kedges=b.kedges).power
    out = {
        "pk_ratio": _ratio(other["pk"], truth["pk"]),
        "r": cross / torch.sqrt(truth["pk"] * other["pk"]),
        "xi_ratio": torch.where(truth["xi_mask"], _ratio(other["xi"], truth["xi"]),
                                torch.full_like(truth["xi"], float("nan"))),
        "dq_eq": other["q_eq"] - truth["q_eq"],
        "dq_iso": other["q_iso"] - truth["q_iso"],
        "pdf_l1": [float(((po - pt).abs() * (e[1:] - e[:-1]).to(pt)).sum())
                   for po, pt, e in zip(other["pdf"], truth["pdf"], truth["pdf_edges"])],
        "sigma2_ratio": [so / st for so, st in zip(other["sigma2"], truth["sigma2"])],
    }
    th, oh = truth.get("halos"), other.get("halos")
    if th is not None and oh is not None:
        out["n_halos"] = oh["n_halos"]
        if "counts" in oh:
            out["hmf_ratio"] = _ratio(oh["counts"].to(torch.float64), th["counts"].to(torch.float64))
            out["halo_pk_ratio"] = _ratio(oh["pk"], th["pk"])
    tg, og = truth.get("galaxies"), other.get("galaxies")
    if tg is not None and og is not None and tg.get("n_galaxies") and og.get("n_galaxies"):
        out["n_galaxies"] = og["n_galaxies"]
        out["gal_k"] = tg["k"]
        out["gal_p0_ratio"] = _ratio(og["p0"], tg["p0"])
        for ell in (2, 4):
            out[f"gal_dp{ell}_over_p0"] = (og[f"p{ell}"] - tg[f"p{ell}"]) / tg["p0"]
        out["gal_sigma_over_p0"] = tg["sigma"] / tg["p0"]  # the truth's own Gaussian error, per multipole
    if truth.get("rsd") is not None and other.get("rsd") is not None:
        out["p0_ratio"] = _ratio(other["rsd"]["p0"], truth["rsd"]["p0"])
        out["dp2_over_p0"] = (other["rsd"]["p2"] - truth["rsd"]["p2"]) / truth["rsd"]["p0"]
    return out


def xi_mask(xi: torch.Tensor, floor: float) -> torch.Tensor:
    """Bins where ``|xi| >= floor * |xi[0]|`` (ratios elsewhere are dominated by the zero crossing)."""
    return xi.abs() >= float(floor) * xi[0].abs()


def max_over(values: torch.Tensor, k: torch.Tensor | None = None, kmax: float | None = None) -> float:
    """``max |values|`` over finite entries (and ``k <= kmax`` when given); ``nan`` if none."""
    v = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    keep = torch.isfinite(v)
    if k is not None and kmax is not None:
        keep = keep & (torch.as_tensor(k).cpu() <= kmax)
    return float(v[keep].abs().max()) if bool(keep.any()) else float("nan")


def to_numpy(x) -> np.ndarray:
    """Tensor (any device) -> numpy float64."""
    return torch.as_tensor(x).detach().cpu().to(torch.float64).numpy()


def cosmology_groups(entries: list[dict]) -> list[list[int]]:
    """Indices of ``entries`` (each with a ``cosmology`` mapping) grouped by cosmology, in first-seen order: the
    realizations (seeds) of each test cosmology."""
    groups: dict[tuple, list[int]] = {}
    for i, e in enumerate(entries):
        key = tuple(sorted((k, round(float(v), 12)) for k, v in e["cosmology"].items()))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def seed_scatter(curves: list, k, kmax: float) -> float | None:
    """Realization noise of a per-k comparison: the largest, over ``k <= kmax``, sample standard deviation
    (``ddof = 1``) of ``curves`` (one per seed of one cosmology); ``None`` with fewer than two curves."""
    if len(curves) < 2:
        return None
    std = torch.stack([torch.as_tensor(c, dtype=torch.float64).cpu() for c in curves]).std(dim=0, correction=1)
    return max_over(std, torch.as_tensor(k, dtype=torch.float64).cpu(), kmax)
