"""The covariance ensemble of a benchmark run: P(k) of many seeds at one cosmology, truth recipe and contenders.

Each method's realizations are kept, by seed, in a piece of the run's :class:`~benchmarks.resume.PartialStore` as
they finish, so a killed run resumes at the next seed.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from emulator.core.cosmology import Cosmology
from emulator.core.stats import covariance, power_spectrum_k

from .config import covariance_contenders, model_scope, pm_settings, same_recipe
from .contenders import make_contender
from .metrics import Binning, mock_delta_k, power_for_covariance
from .resume import PartialStore
from .truth import simulate_truth

__all__ = ["covariance_ensemble"]

_EVERY = 10  # log a line every this many realizations


def _realizations(store: PartialStore | None, piece: str, scope: dict, seeds: list[int],
                  make: Callable[[int], dict | torch.Tensor], log: Callable[[str], None], label: str) -> dict:
    """``{str(seed): make(seed)}`` for every seed, reusing and extending the stored piece ``piece``."""
    got = store.get(piece, scope) if store is not None else None
    done, spent = (dict(got["rows"]), float(got["seconds"])) if got is not None else ({}, 0.0)
    todo = [s for s in seeds if str(s) not in done]
    if len(todo) < len(seeds):
        log(f"covariance: {label}: {len(seeds) - len(todo)} of {len(seeds)} realizations reused")
    t0 = time.perf_counter()
    for i, s in enumerate(todo, 1):
        t1 = time.perf_counter()
        done[str(s)] = make(s)
        spent += time.perf_counter() - t1
        if store is not None:
            store.put(piece, scope, {"rows": done, "seconds": spent}, seconds=spent)
        if i % _EVERY == 0 or i == len(todo):
            log(f"covariance: {label}: {len(seeds) - len(todo) + i}/{len(seeds)} "
                f"({(time.perf_counter() - t0) / i:.1f} s each)")
    return done


def covariance_ensemble(cfg: dict, b: Binning, cosmo: Cosmology, model, sim: dict, device: torch.device,
                        log: Callable[[str], None], store: PartialStore | None = None) -> dict:
    """P(k) covariance and correlation of the truth recipe and of each contender over the same seeds.

    Parameters
    ----------
    cfg : dict
        The tier's configuration (``covariance``: realizations, base_seed, contenders; ``statistics``).
    b : Binning
        The run's bins (``cov_edges``: the covariance's k bins, h/Mpc).
    cosmo : Cosmology
        The ensemble's cosmology.
    model : EmulatorModel or None
        The generator.
    sim : dict
        The covariance truth's simulation recipe (``run_simulation`` settings).
    device : torch.device
        Where the mocks are made.
    log : callable
        Progress lines.
    store : PartialStore, optional
        Where finished realizations are kept (pieces ``covariance_truth`` and ``covariance_<name>``).

    Returns
    -------
    dict
        ``cosmology, seeds, k`` (h/Mpc), ``edges``, ``noise_floor_diag`` (the relative error sqrt(2/(N-1)) of a
        variance from N realizations), ``truth`` (mean, cov, corr) and ``contenders``: per name its mean, mean
        ratio to the truth, cov, corr, diagonal relative error and the Frobenius norm of its correlation's
        difference.
    """
    cc, stats, n = cfg["covariance"], cfg["statistics"], b.n
    seeds = [int(cc["base_seed"]) + i for i in range(int(cc["realizations"]))]
    z = float(cfg["redshift"])

    def truth_row(s: int) -> dict:
        dk = mock_delta_k(simulate_truth(cosmo, s, n, b.box_size, z, sim, device=device), stats)
        fine = power_spectrum_k(dk, b.box_size, n, kedges=b.kedges)
        return {"cov": power_for_covariance(dk, b).cpu(), "fine": fine.power.cpu(), "k_fine": fine.k.cpu(),
                "k_cov": power_spectrum_k(dk, b.box_size, n, kedges=b.cov_edges).k.cpu()}

    scope = {"covariance": {k: v for k, v in cc.items() if k != "contenders"}, "statistics": stats, "recipe": sim,
             "cosmology": cosmo.to_dict()}
    rows = _realizations(store, "covariance_truth", scope, seeds, truth_row, log, "truth")
    first = rows[str(seeds[0])]
    kcov, kfine = first["k_cov"], first["k_fine"]
    mean_fine = torch.stack([rows[str(s)]["fine"] for s in seeds]).mean(0)
    samples = {"truth": torch.stack([rows[str(s)]["cov"] for s in seeds])}
    names = covariance_contenders(cfg)
    for name in names:
        if same_recipe(pm_settings(cfg, name), sim):  # deterministic in (recipe, seed): the truth's own samples
            log(f"covariance: {name} is the covariance truth's recipe: its {len(seeds)} realizations reused")
            samples[name] = samples["truth"]
            continue

        def row(s: int, name=name) -> torch.Tensor:
            mock = make_contender(name, cosmo, z, b.box_size, n, s, model=model, simulation=sim,
                                  pm_steps=cfg["pm_few"]["steps"], target=(kfine, mean_fine),
                                  allow_extrapolation=cfg["model"]["allow_extrapolation"], device=device,
                                  pm=pm_settings(cfg, name))
            return power_for_covariance(mock_delta_k(mock, stats), b).cpu()

        own = {**scope, "contender": name, "pm": pm_settings(cfg, name), "pm_few": cfg["pm_few"],
               "model": model_scope(cfg)}
        done = _realizations(store, f"covariance_{name}", own, seeds, row, log, name)
        samples[name] = torch.stack([done[str(s)] for s in seeds])
    cov_t, corr_t = covariance(samples["truth"])
    out = {"cosmology": cosmo.to_dict(), "seeds": seeds, "k": kcov, "edges": b.cov_edges,
           "noise_floor_diag": float(np.sqrt(2.0 / (len(seeds) - 1))),
           "truth": {"mean": samples["truth"].mean(0), "cov": cov_t, "corr": corr_t}, "contenders": {}}
    for name in names:
        cov_c, corr_c = covariance(samples[name])
        rel = cov_c.diagonal() / cov_t.diagonal() - 1
        out["contenders"][name] = {
            "mean": samples[name].mean(0), "mean_ratio": samples[name].mean(0) / samples["truth"].mean(0),
            "cov": cov_c, "corr": corr_c, "diag_rel_err": rel, "diag_mean_abs_rel_err": float(rel.abs().mean()),
            "corr_frobenius": float(torch.linalg.matrix_norm(corr_c - corr_t)),
        }
    return out
