"""Fit and grade a model's PGD sharpening (:mod:`emulator.model.pgd_correction`) on a simulation suite.

For every finished simulation of a suite and requested redshift this runs the generator on the simulation's
cosmology and seed without sharpening and keeps its particles and the truth's P(k) (the benchmark's estimator:
CIC, interlaced, bins of one fundamental mode up to k_Nyq). ``--fit FILE`` then chooses, per redshift, the
strength ``alpha >= 0`` that minimises the rms of ``ln(P_gen / P_truth)`` over the pooled snapshots for
``k <= kmax_fraction k_Nyq`` (the issue's accuracy range, k_Nyq / 2 by default), for a fixed band ``k_long``,
``k_short`` (h/Mpc). With ``--sigma8-term`` the strength also follows sigma8 where it is positive: each
snapshot's own best ``alpha`` is fitted (the same search), and ``alpha = a + b (sigma8 - pivot)`` by least
squares over the snapshots (:func:`fit_sigma8_term`; own strengths at the search's bounds, 0 or
:data:`ALPHA_MAX`, are censored and flatten the slope: the fit records how many). Fit on a training suite only;
``--grade`` (without ``--fit``) reports, on any suite (the held-out test suite), the worst and median
``|P/P_truth - 1|`` and the mean at k_Nyq / 2 without and with the model's sharpening (``--pgd FILE``: a
candidate file's instead).

Usage::

    python -m benchmarks.pgd --suite configs/suite_converged.yaml --redshifts 0 0.5 1 2 \
        --fit emulator/models/hybrid_pm4.pgd.json
    python -m benchmarks.pgd --suite configs/suite_converged.yaml --redshifts 0 0.5 1 2 --sigma8-term \
        --fit emulator/models/hybrid_pm4.pgd.json
    python -m benchmarks.pgd --suite configs/suite_converged_test.yaml --grade

The band: on 16 training simulations at z = 0 (hybrid_pm4, 64^3 particles in 128 Mpc/h), the pooled rms of
ln(P/P_truth) for k <= k_Nyq/2 at the best alpha of a coarse scan, and the worst bin there, were (k_long, k_short
in h/Mpc): (0.6, 1.2) 0.0172, 0.101; (0.6, 1.6) 0.0171, 0.088; (0.6, 2.0) 0.0169, 0.097; (0.9, 1.2) 0.0165,
0.090 and (1.2, 1.6) 0.0192, 0.111 (both at the scan's largest alpha, 0.03); (0.9, 2.0) 0.0167, 0.093; without
sharpening 0.041, 0.155. The default (0.6, 1.6) has the smallest worst case at an rms within 4% of the best.

The sigma8 term (2026-12-06, hybrid_pm4, 96 training simulations, z = 0): alpha = 0.0079 + 0.0285 (sigma8 - 0.8)
(each snapshot's own best alpha: mean 0.0079, scatter 0.0039, correlation with sigma8 0.43), training rms
ln(P/P_truth) 0.0327 without sharpening, 0.0138 with it. On the validation suite (``--grade --pgd FILE``) the
worst |P/P_t - 1| for k <= k_Nyq / 2 falls from 0.050 (the shipped one alpha, 0.00904) to 0.038, the median from
0.0064 to 0.0061; on the test suite it rises from 0.051 to 0.056 (median 0.0070 -> 0.0075). Each box's own best
alpha would give 0.016 on validation: the strength varies from box to box far more than with sigma8 (the boxes'
cell variance predicts no better). Not shipped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from emulator.core.checks import check_box_size
from emulator.core.mesh import wrap_positions
from emulator.core.pgd import pgd_shift
from emulator.core.provenance import code_version
from emulator.core.spectra import k_edges, power_spectrum_k
from emulator.model.emulate import emulate_fields
from emulator.model.pgd_correction import PGDCorrection, pgd_path, read_pgd_file

from .contenders import resolve_model
from .env import write_json
from .least_squares import linear_fit
from .metrics import overdensity_k
from .suite_truth import (add_fit_grade_arguments, add_suite_arguments, check_fit_grade, finished_snapshots,
                          write_fitted)

__all__ = ["collect_snapshots", "log_ratios", "fit_alpha", "fit_sigma8_term", "fit_pgd", "grade", "main"]

ALPHA_MAX = 0.05  # upper end of the search (0.03 already over-sharpens every training snapshot at z = 0)


def _spectrum(positions: torch.Tensor, n: int, box: float):
    """The benchmark's P(k) estimate (CIC, interlaced, bins of one fundamental mode up to k_Nyq)."""
    return power_spectrum_k(overdensity_k(positions, n, box), box, n, kedges=k_edges(n, box))


def _power(positions: torch.Tensor, n: int, box: float) -> torch.Tensor:
    return _spectrum(positions, n, box).power


def collect_snapshots(suite: str | Path, model, redshifts, *, log=print) -> list[dict]:
    """Per finished simulation and redshift: ``sim_id, redshift, sigma8, n, box, k`` (h/Mpc), the truth's
    ``p_truth`` ((Mpc/h)^3) and the generator's unsharpened ``positions`` ((N, 3) Mpc/h, float32)."""
    out = []
    for cfg, rec, cosmo, z, snap in finished_snapshots(suite, redshifts, log):
        n, box = int(cfg.ngrid), check_box_size(cfg.box_size)
        gen = emulate_fields(cosmo, z, box, int(rec["seed"]), model=model, ngrid=n, allow_extrapolation=True,
                             keep_displacement=False, pgd=False,  # the grid generation uses for this box
                             velocity_dispersion=False)
        truth = torch.as_tensor(np.asarray(snap.positions), dtype=torch.float32)
        ps = _spectrum(truth, n, box)
        out.append({"sim_id": rec["sim_id"], "redshift": z, "sigma8": float(cosmo.sigma8), "n": n, "box": box,
                    "k": ps.k.numpy(),
                    "p_truth": ps.power.numpy(), "positions": gen.positions})
        log(f"{rec['sim_id']} z = {z:g}")
    return out


def log_ratios(snaps: list[dict], alpha, k_long: float, k_short: float) -> np.ndarray:
    """``ln(P_gen / P_truth)`` per snapshot and k bin, ``(snapshots, bins)``, after sharpening by ``alpha`` (one
    strength, or one per snapshot)."""
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (len(snaps),))
    rows = []
    for s, alpha in zip(snaps, alphas):
        alpha = float(alpha)
        pos = s["positions"]
        if alpha > 0:
            pos = wrap_positions(pos + pgd_shift(pos, s["n"], s["box"], alpha, k_long, k_short), s["box"])
        rows.append(np.log(_power(pos, s["n"], s["box"]).numpy() / s["p_truth"]))
    return np.array(rows)


def _in_range(snaps: list[dict], kmax_fraction: float) -> np.ndarray:
    s = snaps[0]
    return s["k"] <= kmax_fraction * np.pi * s["n"] / s["box"] + 1e-9


def fit_alpha(snaps: list[dict], k_long: float, k_short: float, *, kmax_fraction: float = 0.5,
              tol: float = 2e-4) -> tuple[float, float, float]:
    """``(alpha, rms, rms without)``: the strength in ``[0, ALPHA_MAX]`` minimising the pooled rms of
    ``ln(P_gen / P_truth)`` for ``k <= kmax_fraction k_Nyq`` (a coarse scan, then golden-section search around its
    best point to ``tol``); strengths are rounded to 1e-5, as stored."""
    sel = _in_range(snaps, kmax_fraction)
    cache: dict[float, float] = {}

    def rms(a: float) -> float:
        a = round(float(a), 5)
        if a not in cache:
            cache[a] = float(np.sqrt(np.mean(log_ratios(snaps, a, k_long, k_short)[:, sel] ** 2)))
        return cache[a]

    grid = [0.0, *np.geomspace(0.002, ALPHA_MAX, 7)]
    j = int(np.argmin([rms(a) for a in grid]))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    g = (np.sqrt(5.0) - 1.0) / 2.0
    while hi - lo > tol:
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if rms(a) <= rms(b):
            hi = b
        else:
            lo = a
    best = min(cache, key=cache.get)
    return best, cache[best], cache[0.0]


def fit_sigma8_term(sigma8, alphas, pivot: float) -> tuple[float, float, float]:
    """``(a, b, se(b))``: least squares ``alpha = a + b (sigma8 - pivot)`` over snapshots' own best strengths."""
    x = np.asarray(sigma8, dtype=np.float64) - float(pivot)
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError("the sigma8 term needs snapshots of at least two sigma8 values (and three snapshots)")
    coef, se = linear_fit([x], alphas)
    return float(coef[0]), float(coef[1]), float(se[1])


def fit_pgd(snaps: list[dict], sha256: str, k_long: float, k_short: float, *, kmax_fraction: float = 0.5,
            sigma8_term: bool = False, source: dict | None = None, log=print) -> PGDCorrection:
    """:class:`PGDCorrection` with ``alpha`` fitted at each redshift of ``snaps`` (see :func:`fit_alpha`); with
    ``sigma8_term``, where that pooled ``alpha`` is positive, ``alpha`` and its sigma8 slope from the snapshots'
    own best strengths (:func:`fit_sigma8_term`; pivot and range: the snapshots' mean and extreme sigma8)."""
    zs = sorted({s["redshift"] for s in snaps})
    s8 = np.array([s["sigma8"] for s in snaps]) if sigma8_term else None
    pivot = round(float(s8.mean()), 5) if sigma8_term else 0.8
    alphas, slopes, fits = [], [], {}
    for z in zs:
        at = [s for s in snaps if s["redshift"] == z]
        a, r, r0 = fit_alpha(at, k_long, k_short, kmax_fraction=kmax_fraction)
        fits[f"{z:g}"] = {"snapshots": len(at), "alpha": a, "rms_ln_ratio": round(r, 5),
                          "rms_ln_ratio_without": round(r0, 5)}
        b = 0.0
        if sigma8_term and a > 0:
            own = [fit_alpha([s], k_long, k_short, kmax_fraction=kmax_fraction)[0] for s in at]
            a, b, se = fit_sigma8_term([s["sigma8"] for s in at], own, pivot)
            a, b = max(round(a, 5), 0.0), round(b, 5)
            node = PGDCorrection(sha256=sha256, redshifts=np.array([z]), alpha=np.array([a]), k_long=k_long,
                                 k_short=k_short, sigma8_slope=np.array([b]), sigma8_pivot=pivot,
                                 sigma8_range=(float(s8.min()), float(s8.max())))
            each = [node.alpha_at(z, s["sigma8"]) for s in at]  # the strengths generation would apply
            sel = _in_range(at, kmax_fraction)
            r = float(np.sqrt(np.mean(log_ratios(at, each, k_long, k_short)[:, sel] ** 2)))
            fits[f"{z:g}"].update(alpha=a, sigma8_slope=b, sigma8_slope_se=round(se, 5), rms_ln_ratio=round(r, 5),
                                  rms_ln_ratio_one_alpha=fits[f"{z:g}"]["rms_ln_ratio"],
                                  own_alpha_mean=round(float(np.mean(own)), 5),
                                  own_alpha_sd=round(float(np.std(own)), 5),
                                  own_alpha_at_bounds=int(sum(v <= 0.0 or v >= ALPHA_MAX for v in own)))
        alphas.append(a)
        slopes.append(b)
        log(f"z = {z:g}: alpha = {a:.5f}" + (f" {b:+.5f} (sigma8 - {pivot:g})" if b else "")
            + f", rms ln(P/P_truth) {r0:.4f} -> {r:.4f} ({len(at)} snapshots)")
    src = {"made_by": "python -m benchmarks.pgd", "code_version": code_version(), "kmax_fraction_of_nyquist":
           kmax_fraction, "fit": fits, **(source or {})}
    term = {} if not sigma8_term else {"sigma8_slope": np.array(slopes), "sigma8_pivot": pivot,
                                       "sigma8_range": (float(s8.min()), float(s8.max()))}
    return PGDCorrection(sha256=sha256, redshifts=np.array(zs), alpha=np.array(alphas), k_long=k_long,
                         k_short=k_short, source=src, **term)


def grade(snaps: list[dict], pgd: PGDCorrection | None, *, kmax_fraction: float = 0.5) -> dict:
    """Per redshift, without and with ``pgd``: worst and median ``|P/P_truth - 1|`` for ``k <= kmax_fraction
    k_Nyq`` and the mean ``P/P_truth - 1`` in the last bin of that range and at k_Nyq."""
    sel = _in_range(snaps, kmax_fraction)
    out = {}
    for z in sorted({s["redshift"] for s in snaps}):
        at = [s for s in snaps if s["redshift"] == z]
        cells = {"snapshots": len(at)}
        for name, p in (("without", None), ("with", pgd)):
            if name == "with" and p is None:
                continue
            alphas = [p.alpha_at(z, s.get("sigma8")) if p else 0.0 for s in at]
            e = np.expm1(log_ratios(at, alphas, p.k_long if p else 1.0, p.k_short if p else 1.0))
            cells[name] = {"worst": float(np.abs(e[:, sel]).max()), "median": float(np.median(np.abs(e[:, sel]))),
                           "mean_at_kmax": float(e[:, sel][:, -1].mean()), "mean_at_nyquist": float(e[:, -1].mean())}
        out[f"{z:g}"] = cells
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks.pgd``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pgd", description=__doc__.split("\n")[0])
    add_suite_arguments(parser)
    add_fit_grade_arguments(parser, "PGD", "pgd", "fit alpha per redshift on the suite, write the PGD file here",
                            "fit and grade P(k) up to this fraction of k_Nyq (default 0.5)")
    parser.add_argument("--k-long", type=float, default=0.6, help="high-pass scale of the pull, h/Mpc")
    parser.add_argument("--k-short", type=float, default=1.6, help="low-pass scale of the pull, h/Mpc")
    parser.add_argument("--sigma8-term", action="store_true",
                        help="--fit: let alpha follow sigma8 (each snapshot's own best strength, fitted linearly)")
    args = parser.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        check_fit_grade(args, "pgd")
        if args.sigma8_term and not args.fit:
            raise ValueError("--sigma8-term is an option of --fit FILE")
        model, _ = resolve_model(args.model, device=torch.device("cpu"))
        pgd = model.pgd
        if args.pgd:
            pgd = read_pgd_file(args.pgd)
            if pgd.sha256 != model.sha256:
                raise ValueError(f"{args.pgd} was fitted for model sha256 {pgd.sha256[:16]}, not {args.model}'s")
        if args.grade and pgd is None and not args.fit:
            raise ValueError(f"model {args.model} has no PGD file {pgd_path(model.path)} (fit one with --fit)")
        snaps = collect_snapshots(args.suite, model, args.redshifts, log=say)
        if args.fit:
            pgd = fit_pgd(snaps, model.sha256, args.k_long, args.k_short, kmax_fraction=args.kmax_fraction,
                          sigma8_term=args.sigma8_term, log=say, source={
                              "suite": str(args.suite), "model": Path(model.path).name,
                              "command": "python -m benchmarks.pgd " + shlex.join(
                                  argv if argv is not None else sys.argv[1:])})
            if write_fitted(pgd, args.fit, pgd_path(model.path), say) and model.halo_calibration is not None:
                say("note: the model's halo-mass calibration was fitted on particles without this PGD file (it is "
                    "not applied until refitted): python -m benchmarks.halo_mass --suite SUITE --redshifts 0 0.5 1 2 "
                    f"--fit {Path(model.path).with_suffix('')}.halo_mass.json")
        res = grade(snaps, pgd, kmax_fraction=args.kmax_fraction) if args.grade else None
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.pgd: error: {exc}", file=sys.stderr)
        return 2
    for z, cells in (res or {}).items():
        print(f"z = {z}: {cells['snapshots']} snapshots; " + "; ".join(
            f"{name}: worst {c['worst']:.4f}, median {c['median']:.4f}, mean at kmax {c['mean_at_kmax']:+.4f}, "
            f"at k_Nyq {c['mean_at_nyquist']:+.4f}" for name, c in cells.items() if name != "snapshots"))
    if args.out and res is not None:
        write_json(Path(args.out), {"suite": str(args.suite), "model": args.model, "pgd": pgd and pgd.to_dict(),
                                    "kmax_fraction_of_nyquist": args.kmax_fraction, "grade": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
