"""Validation spectra summed over crops and processes (:class:`SpectrumSums`, a torchmetrics ``Metric``)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["SpectrumSums"]


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
