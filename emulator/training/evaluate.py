"""Held-out accuracy of a model: P(k) ratio and cross-correlation r(k) against simulations it never saw.

For every simulation of a split (default ``test``) of a training set and every redshift, the truth particles
``q + disp`` are compared with the emulator and with 2LPT from the same seed: the power ratio
``P_X(k) / P_sim(k)`` and ``r(k) = Re<d_X d_sim*> / sqrt(P_X P_sim)`` of CIC-painted, interlaced, compensated
density meshes at the particle-grid resolution. The numbers go into the model file's metadata and ``emulator
info``.
"""

from __future__ import annotations

import h5py
import numpy as np
import torch

from ..core.cosmology import Cosmology
from ..core.lpt import lagrangian_grid, vector_field_to_particles
from ..core.stats import power_spectrum_k
from ..core.window import particle_overdensity_k
from ..model.emulate import emulate_fields
from ..model.portable import EmulatorModel
from .trainingset import TrainingSetInfo

__all__ = ["density_k", "compare", "evaluate_model", "table"]


def density_k(positions: torch.Tensor, box_size: float, nmesh: int) -> torch.Tensor:
    """Fourier overdensity of particles (CIC, interlaced, compensated), ``rfftn`` layout."""
    return particle_overdensity_k(positions, nmesh, box_size, window="cic")


def compare(truth_k: torch.Tensor, other_k: torch.Tensor, box_size: float, nmesh: int) -> dict[str, np.ndarray]:
    """k, P ratio and r(k) of ``other`` against ``truth`` (both Fourier overdensities)."""
    pt = power_spectrum_k(truth_k, box_size, nmesh)
    po = power_spectrum_k(other_k, box_size, nmesh).power
    px = power_spectrum_k(other_k, box_size, nmesh, field2_k=truth_k).power
    return {
        "k": pt.k.cpu().numpy(),
        "ratio": (po / pt.power).cpu().numpy(),
        "r": (px / (po * pt.power).sqrt()).cpu().numpy(),
    }


def evaluate_model(model: EmulatorModel, path: str, split: str = "test", device: str = "cpu") -> dict:
    """Per-sample and mean P ratio and r(k) of the emulator and of 2LPT on one split of a training set."""
    info = TrainingSetInfo.read(path)
    n, box = info.ngrid, info.box_size
    q = lagrangian_grid(n, box, dtype=torch.float32)
    rows = []
    with h5py.File(path, "r") as f:
        for sample in info.samples(split):
            sim = f["sims"][sample.sim_id]
            seed = int(sim.attrs["seed"])
            if seed < 0:
                continue  # linear field from an IC snapshot: no seed to regenerate the same universe
            cosmo = Cosmology(*sample.params)
            disp = torch.from_numpy(sim[sample.zgroup]["disp"][...])
            truth = torch.remainder(q + vector_field_to_particles(disp), box)
            tk = density_k(truth, box, n)
            row = {"sim_id": sample.sim_id, "redshift": sample.redshift, "cosmology": cosmo.to_dict()}
            for method in ("emulator", "2lpt"):
                fields = emulate_fields(cosmo, sample.redshift, box, seed, model=model, method=method, ngrid=n,
                                        device=device, allow_extrapolation=True, pgd=False,
                                        velocity_dispersion=False)  # the network's
                res = compare(tk, density_k(fields.positions.cpu(), box, n), box, n)
                row["k"] = res["k"].tolist()
                row[method] = {"ratio": res["ratio"].tolist(), "r": res["r"].tolist()}
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: split {split!r} has no seeded simulations to evaluate")
    k = np.array(rows[0]["k"])
    knyq = np.pi * n / box
    summary = {"split": split, "n_samples": len(rows), "k_nyquist": knyq, "k": k.tolist()}
    for method in ("emulator", "2lpt"):
        ratio = np.array([r[method]["ratio"] for r in rows])
        rr = np.array([r[method]["r"] for r in rows])
        sel = k <= knyq / 2
        summary[method] = {
            "ratio_mean": ratio.mean(0).tolist(),
            "ratio_worst": np.take_along_axis(ratio, np.abs(ratio - 1).argmax(0)[None], 0)[0].tolist(),
            "r_worst": rr.min(0).tolist(),
            "r_mean": rr.mean(0).tolist(),
            "max_abs_ratio_minus_1_to_half_nyquist": float(np.abs(ratio[:, sel] - 1).max()),
            "max_one_minus_r_to_half_nyquist": float((1 - rr[:, sel]).max()),
        }
    summary["samples"] = rows
    return summary


def table(summary: dict, every: int = 1) -> str:
    """Markdown table up to k_Nyq/2: mean over samples of the P ratio and r(k) for 2LPT and the emulator, and
    the emulator's worst sample (largest |P ratio - 1|, smallest r) in each bin
    (:func:`emulator.model.header.accuracy_table`, which ``emulator info`` uses without torch)."""
    from ..model.header import accuracy_table

    return accuracy_table(summary, every)
