"""Training losses: Lagrangian field MSE, Eulerian painted-density MSE, and two-point physics constraints.

All functions take fields in Lagrangian-cell units on crops of ``c^3`` particles (see
:mod:`emulator.training.trainingset`): displacements ``(B, 3, c, c, c)`` in cells. Eulerian quantities are
computed by moving the crop's particles ``q + psi`` and painting them (CIC, differentiable, periodic over the
crop) onto a ``c^3`` mesh of unit cells (or a ``refine`` times finer one, for the power term's small scales);
because painting conserves the particle number exactly, the Eulerian term also enforces mass conservation of
the predicted particles. Two-point terms use the core estimators of :mod:`emulator.core.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..core.lpt import lagrangian_grid, vector_field_to_particles
from ..core.mesh import paint
from ..core.stats import correlation_function, power_spectrum

__all__ = [
    "painted_overdensity",
    "lagrangian_loss",
    "eulerian_loss",
    "power_loss",
    "check_kmax_fraction",
    "check_refine",
    "check_redshift_weights",
    "redshift_weights",
    "xi_loss",
    "pdf_loss",
    "check_lowest_quantile",
    "PDF_SOFTENING",
]

#: Added to ``1 + delta`` before the log of the density-PDF term (:func:`pdf_loss`): empty cells sit at log(0.1).
PDF_SOFTENING = 0.1


def painted_overdensity(disp: torch.Tensor, window: str = "cic", refine: int = 1) -> torch.Tensor:
    """Overdensity of the particles ``q + disp`` painted on the crop's own mesh or a finer one.

    Parameters
    ----------
    disp : torch.Tensor
        Displacements in cell units, ``(B, 3, c, c, c)``.
    window : {"ngp", "cic", "tsc"}
        Mass-assignment window.
    refine : int
        Mesh points per particle cell and axis: the mesh has ``refine * c`` points per side (cells of
        ``1 / refine`` particle spacings), so its Nyquist wavenumber is ``refine`` times the particles'.

    Returns
    -------
    torch.Tensor
        ``(B, refine c, refine c, refine c)`` overdensity ``n_particles refine^3 - 1`` (one particle per
        particle cell on average).
    """
    refine = check_refine(refine)
    b, _, c = disp.shape[:3]
    q = lagrangian_grid(c, float(c), dtype=disp.dtype, device=disp.device)
    n = refine * c
    out = [paint(q + vector_field_to_particles(disp[i]), n, float(c), window=window) for i in range(b)]
    return torch.stack(out) * float(refine) ** 3 - 1.0


def lagrangian_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of displacement-like fields (cells^2)."""
    return F.mse_loss(pred, target)


def eulerian_loss(delta_pred: torch.Tensor, delta_true: torch.Tensor, log: bool = False) -> torch.Tensor:
    """MSE of painted overdensities; with ``log`` the MSE of ``log(1 + delta)`` (floored at 1e-3)."""
    if log:
        delta_pred = torch.log(delta_pred.clamp_min(-0.999) + 1.0)
        delta_true = torch.log(delta_true.clamp_min(-0.999) + 1.0)
    return F.mse_loss(delta_pred, delta_true)


def check_refine(value: object, name: str = "painting refine") -> int:
    """``value`` as a positive integer (booleans refused); otherwise a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_kmax_fraction(value: object, name: str = "power kmax_fraction") -> float | None:
    """``value`` as a float in (0, 1] (None passes through); otherwise a ``ValueError`` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def power_loss(delta_pred: torch.Tensor, delta_true: torch.Tensor, nbins: int | None = None,
               kmax_fraction: float | None = None, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over k bins (and meshes) of ``(log P_pred(k) - log P_true(k))^2`` on meshes of ``n^3`` points.

    ``sample_weights`` (one per mesh of a batch ``(B, n, n, n)``, e.g. :func:`redshift_weights`) multiply each
    mesh's term before the mean: all ones is the unweighted loss.

    The bins (width the fundamental) run to the mesh's Nyquist wavenumber: on a mesh painted with ``refine``
    points per particle cell and axis (:func:`painted_overdensity`) that is ``refine`` times the particles', and
    ``kmax_fraction`` is a fraction of the mesh's, not the particles'. The value does not depend on the box's
    units (both spectra scale alike), so the mesh is taken as ``n`` unit cells.

    The target's power is treated as a constant; bins run from the crop's fundamental to its Nyquist frequency,
    or to ``kmax_fraction`` of it (``0 < kmax_fraction <= 1``; the bins near the Nyquist frequency otherwise
    outnumber the rest, and there the target holds power that no function of the input predicts).
    """
    c = delta_pred.shape[-1]
    box = float(c)
    kmax = None
    fraction = check_kmax_fraction(kmax_fraction)
    if fraction is not None:
        last = math.floor(fraction * c / 2)  # last whole bin (width k_f) below the fraction of k_Nyq
        if last < 1:
            raise ValueError(f"power kmax_fraction={kmax_fraction} leaves no k bin on a mesh of {c} points")
        kmax = (last + 0.5) * 2.0 * math.pi / box  # mesh units (cell = 1): the default edges, cut; 1.0 = default
    p_pred = power_spectrum(delta_pred, box, nbins=nbins, kmax=kmax).power
    p_true = power_spectrum(delta_true.detach(), box, nbins=nbins, kmax=kmax).power
    tiny = torch.finfo(p_pred.dtype).tiny
    sq = (p_pred.clamp_min(tiny).log() - p_true.clamp_min(tiny).log()) ** 2
    if sample_weights is not None and sq.dim() != 2:
        raise ValueError(f"power sample_weights: one weight per mesh of the batch ({sq.shape[0]} meshes), "
                         f"got shape {tuple(sample_weights.shape)}")
    return _weighted_mean(sq, sample_weights, "power")


def _weighted_mean(sq: torch.Tensor, sample_weights: torch.Tensor | None, term: str) -> torch.Tensor:
    """Mean of ``sq`` (one row per mesh of a batch) with each mesh's row multiplied by its weight (None: 1)."""
    if sample_weights is None:
        return sq.mean()
    if tuple(sample_weights.shape) != (sq.shape[0],):
        raise ValueError(f"{term} sample_weights: one weight per mesh of the batch ({sq.shape[0]} meshes), "
                         f"got shape {tuple(sample_weights.shape)}")
    return (sample_weights.to(sq).reshape(-1, *[1] * (sq.dim() - 1)) * sq).mean()


def check_redshift_weights(value: object, name: str = "model.power_redshift_weights"
                           ) -> tuple[tuple[float, float], ...] | None:
    """``{redshift: weight}`` as ``((z, w), ...)`` sorted by redshift (None stays None); a one-line
    ``ValueError`` naming ``name`` for anything else (redshifts and weights finite and >= 0, one weight > 0)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{name} must be a mapping {{redshift: weight}} with at least one entry, got {value!r}")
    pairs = []
    for z, w in value.items():
        try:
            z, w = float(z), float(w)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {z!r}: {w!r} is not a redshift and a weight") from None
        if not (math.isfinite(z) and z >= 0 and math.isfinite(w) and w >= 0):
            raise ValueError(f"{name}: redshift {z:g} with weight {w:g}: both must be finite and >= 0")
        pairs.append((z, w))
    if len({z for z, _ in pairs}) < len(pairs):
        raise ValueError(f"{name}: a redshift is given twice ({sorted(z for z, _ in pairs)})")
    if not any(w > 0 for _, w in pairs):
        raise ValueError(f"{name}: every weight is 0")
    return tuple(sorted(pairs))


def redshift_weights(redshift: torch.Tensor, table: tuple[tuple[float, float], ...]) -> torch.Tensor:
    """Each sample's weight: piecewise linear in redshift through the ``(z, w)`` points of ``table`` (from
    :func:`check_redshift_weights`), constant beyond its first and last redshift.

    Examples
    --------
    >>> redshift_weights(torch.tensor([0.0, 0.25, 1.0, 2.0]), ((0.0, 3.0), (0.5, 2.0), (1.0, 1.0))).tolist()
    [3.0, 2.5, 1.0, 1.0]
    """
    zs = torch.tensor([z for z, _ in table], dtype=redshift.dtype, device=redshift.device)
    ws = torch.tensor([w for _, w in table], dtype=redshift.dtype, device=redshift.device)
    if len(table) == 1:
        return ws.expand(redshift.shape).clone()
    z = redshift.clamp(zs[0], zs[-1])
    i = torch.searchsorted(zs, z).clamp(1, len(table) - 1)
    t = (z - zs[i - 1]) / (zs[i] - zs[i - 1])
    return ws[i - 1] + t * (ws[i] - ws[i - 1])


def xi_loss(delta_pred: torch.Tensor, delta_true: torch.Tensor, nbins: int | None = None) -> torch.Tensor:
    """Mean squared difference of the binned correlation functions xi(r) of the crops, in units of xi_true(0)."""
    c = delta_pred.shape[-1]
    box = float(c)
    xi_pred = correlation_function(delta_pred, box, nbins=nbins)[1]
    xi_true = correlation_function(delta_true.detach(), box, nbins=nbins)[1]
    scale = xi_true[..., :1].abs().clamp_min(1e-6)
    return (((xi_pred - xi_true) / scale) ** 2).mean()


def check_lowest_quantile(value: object, name: str = "model.pdf_lowest_quantile") -> float:
    """``value`` as a float in [0, 1), else a one-line ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def pdf_loss(delta_pred: torch.Tensor, delta_true: torch.Tensor, softening: float = PDF_SOFTENING,
             sample_weights: torch.Tensor | None = None, lowest_quantile: float = 0.0) -> torch.Tensor:
    """Squared 1D Wasserstein-2 distance between the one-point PDFs of ``log(1 + delta + softening)`` of each mesh.

    Each mesh's values are sorted and compared rank by rank (the quantile functions of the two PDFs), so the term
    matches the distribution of densities, its high tail (the cells of halo cores) included, and not where each
    value sits: a field with the truth's PDF at other places costs nothing. Use it on the power term's mesh
    (``power_refine`` points per particle cell) to reach inside a particle cell. ``sample_weights``: one per mesh,
    as in :func:`power_loss`. ``lowest_quantile`` in [0, 1): compare only the ranks above it (0.9: the densest
    10% of cells, where halos are; the mean is then over those ranks). Dimensionless (squared e-folds of density).
    """
    if not float(softening) > 0.0:
        raise ValueError(f"pdf softening must be positive, got {softening!r}")
    lowest_quantile = check_lowest_quantile(lowest_quantile)

    def quantiles(delta: torch.Tensor) -> torch.Tensor:
        return torch.log((delta + 1.0).clamp_min(0.0) + float(softening)).flatten(1).sort(dim=1).values

    qp, qt = quantiles(delta_pred), quantiles(delta_true.detach())
    first = min(int(float(lowest_quantile) * qp.shape[1]), qp.shape[1] - 1)
    sq = ((qp[:, first:] - qt[:, first:]) ** 2).mean(dim=1)
    return _weighted_mean(sq, sample_weights, "pdf")
