"""Validation spectra: one batch's (:func:`batch_spectra`), summed over crops and processes
(:class:`SpectrumSums`, a torchmetrics ``Metric``) and read at chosen wavenumbers (:func:`summarise_spectra`)."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric

from ..core.stats import power_spectrum

__all__ = ["SpectrumSums", "batch_spectra", "summarise_spectra"]

NAMES = ("ratio_model", "ratio_lpt", "r_model", "r_lpt")


def batch_spectra(delta_pred: torch.Tensor, delta_true: torch.Tensor,
                  delta_lpt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-crop auto and cross spectra of the model, its base and the truth (crop units: k in 1/cell).

    Parameters
    ----------
    delta_pred, delta_true, delta_lpt : torch.Tensor
        Painted overdensities ``(B, c, c, c)`` of the model, the target and the base
        (:func:`~emulator.training.losses.painted_overdensity`).
    """
    c = float(delta_true.shape[-1])
    pk_true = power_spectrum(delta_true, c)
    spec = {
        "p_true": pk_true.power,
        "p_model": power_spectrum(delta_pred, c).power,
        "p_lpt": power_spectrum(delta_lpt, c).power,
        "x_model": power_spectrum(delta_pred, c, delta_true).power,
        "x_lpt": power_spectrum(delta_lpt, c, delta_true).power,
    }
    spec["k_sum"] = pk_true.k.expand_as(pk_true.power) if pk_true.power.ndim == 2 else pk_true.k[None]
    return spec


def summarise_spectra(res: dict[str, torch.Tensor], cell: float,
                      k_fractions: list[float]) -> tuple[dict, dict[str, float]]:
    """The computed sums as lists (k in h/Mpc) and the ratios and r(k) at fractions of the Nyquist wavenumber.

    Parameters
    ----------
    res : dict
        :meth:`SpectrumSums.compute`'s output.
    cell : float
        Cell size, Mpc/h.
    k_fractions : list of float
        Fractions of k_Nyq = pi / cell at which to read each quantity (nearest bin).

    Returns
    -------
    record, scalars : dict, dict
        ``record`` holds ``k_h_mpc``, ``indices`` and the four curves; ``scalars`` maps ``val/<name>@k=<k>``
        to its value.
    """
    k_phys = res["k"] / cell  # crop units (1/cell) -> h/Mpc
    record = {"k_h_mpc": k_phys.tolist(),
              "indices": res["indices"].tolist() if res["indices"] is not None else []}
    record.update({name: res[name].tolist() for name in NAMES})
    scalars = {}
    for frac in k_fractions:
        j = int(torch.argmin((k_phys - frac * math.pi / cell).abs()))
        tag = f"{float(k_phys[j]):.3g}"
        scalars.update({f"val/{name}@k={tag}": float(res[name][j]) for name in NAMES})
    return record, scalars


class SpectrumSums(Metric):
    """Sums over validation crops of the auto and cross spectra needed for P(k) ratios and r(k) (DDP-safe).

    States are summed across processes, and the sample indices are gathered, so a ratio of sums is exact and a
    sample seen twice would be visible.
    """

    full_state_update = False

    def __init__(self, nbins: int) -> None:
        super().__init__()
        for name in ("p_true", "p_model", "p_lpt", "x_model", "x_lpt"):
            self.add_state(name, default=torch.zeros(nbins, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("k_sum", default=torch.zeros(nbins, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("indices", default=[], dist_reduce_fx="cat")

    def update(self, spectra: dict[str, torch.Tensor], indices: torch.Tensor) -> None:
        for name, value in spectra.items():
            setattr(self, name, getattr(self, name) + value.detach().double().sum(0))
        self.n += indices.numel()
        self.indices.append(indices.detach())

    def compute(self) -> dict[str, torch.Tensor]:
        idx = self.indices if torch.is_tensor(self.indices) else torch.cat(self.indices) if self.indices else None
        return {
            "k": self.k_sum / self.n.clamp_min(1),
            "ratio_model": self.p_model / self.p_true,
            "ratio_lpt": self.p_lpt / self.p_true,
            "r_model": self.x_model / (self.p_model * self.p_true).sqrt(),
            "r_lpt": self.x_lpt / (self.p_lpt * self.p_true).sqrt(),
            "indices": idx,
        }
