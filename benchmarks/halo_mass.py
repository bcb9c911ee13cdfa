"""FoF halo masses of a generator against a suite's simulations, halo by halo in rank (abundance matching), and
the halo-mass calibration fitted from them.

The generator's FoF catalogues hold too few halos above a fixed particle count: the same halos, each a little
lighter (a *mass* deficit, correctable by a calibration ``M -> N m_p f(N, z)``, see
:mod:`emulator.model.halo_calibration`). For every finished simulation of a suite and every requested redshift
this runs the generator on the simulation's cosmology and seed, finds FoF halos (b = 0.2, >= 8 particles) in
both, sorts each catalogue by mass and pairs the i-th most massive truth halo with the i-th most massive
generator halo. Per snapshot it reports the counts above 20 and 40 particle masses and the median truth /
generator mass ratio of the pairs whose truth halo has 35-200 and >= 200 particles; the summary gives mean and
scatter over snapshots. With ``--calibrated`` the generator's masses are those of the model's calibration (the
catalogs ``emulator generate`` writes): ratios near 1 grade it. ``--fit FILE`` fits the calibration on the suite
(a training suite: the test suite grades it) and writes it (``emulator/models/<model>.halo_mass.json`` is the
file generation reads).

Usage::

    python -m benchmarks.halo_mass --suite configs/suite_converged.yaml --redshifts 0 0.5 1 2 \
        --fit emulator/models/hybrid_pm4.halo_mass.json
    python -m benchmarks.halo_mass --suite configs/suite_converged_test.yaml --calibrated [--out FILE.json]

Measured 2026-12-06 (hybrid_pm4, 64^3 particles in 128 Mpc/h, 32 finished training simulations and the 20
held-out test snapshots): mass ratio 1.106 +- 0.022 (training) and 1.105 +- 0.028 (test) for 35-200 particles
at z = 0, 1.06 at z = 0.5, 1.03 at z = 1; 1.01-1.03 above 200 particles; FoF counts above 20 particles 10%, 7%
and 5% low (before its PGD sharpening). With the calibration fitted on the training suite (on the sharpened
particles, as generation makes them), on the test suite (``--calibrated``): counts above 20 / 40 particle masses
+0.8% / +0.5% (z = 0), -0.5% / +3.2% (z = 0.5), +2.6% / -0.7% (z = 1), mass ratios 1.00 +- 0.01. The count
error above 40 particle masses runs with sigma8 (``count_40_sigma8_slope``, z = 0): -0.31 +- 0.05 on all 96
training simulations, -0.37 +- 0.05 on the test snapshots (2026-12-06); a cosmology term does not help on the
validation suite (:mod:`benchmarks.halo_mass_study`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from emulator.core.provenance import code_version
from emulator.model.halo_calibration import HaloMassCalibration, calibration_path
from emulator.model.pgd_correction import pgd_digest
from emulator.mocks.fof import friends_of_friends

from .contenders import make_contender, resolve_model
from .env import write_json
from .least_squares import linear_fit
from .suite_truth import add_suite_arguments, finished_snapshots, write_fitted

__all__ = ["abundance_matched_ratio", "collect_suite", "fit_calibration", "summarise", "main"]

EDGES = (35.0, 200.0, np.inf)  # truth halo particle counts of the summary bins
COUNT_CUTS = (20, 40)  # particle masses above which halos are counted
FIND_MIN_MEMBERS = 8  # FoF cut of both catalogues: below the smallest calibrated cut of interest


def _matched(m_truth, m_gen) -> tuple[np.ndarray, np.ndarray]:
    """Both catalogues sorted by mass, descending, cut to the shorter one: the rank-matched pairs."""
    mt = np.sort(np.asarray(m_truth, dtype=np.float64))[::-1]
    mg = np.sort(np.asarray(m_gen, dtype=np.float64))[::-1]
    m = min(len(mt), len(mg))
    return mt[:m], mg[:m]


def abundance_matched_ratio(m_truth, m_gen, edges=EDGES) -> list[float | None]:
    """Median of ``m_truth[i] / m_gen[i]`` over rank-matched halos, per bin of the truth mass.

    Parameters
    ----------
    m_truth, m_gen : array_like
        Halo masses (any unit, the same for both: particle counts or Msun/h), in any order.
    edges : sequence of float
        Bin edges in that unit; a pair belongs to the bin of its truth halo.

    Returns
    -------
    list of float or None
        One median per bin (None where no pair falls in it).
    """
    mt, mg = _matched(m_truth, m_gen)
    ratio = mt / np.maximum(mg, 1e-300)
    out: list[float | None] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mt >= lo) & (mt < hi)
        out.append(float(np.median(ratio[sel])) if sel.any() else None)
    return out


def collect_suite(suite: str | Path, model, redshifts=(0.0, 0.5, 1.0), *, linking_length: float = 0.2,
                  log=print) -> list[dict]:
    """FoF member counts (>= :data:`FIND_MIN_MEMBERS`) of the truth and of the generator (``model``: an
    EmulatorModel; its particles as generation makes them, PGD sharpening included) per finished simulation of
    ``suite`` and requested redshift: dicts ``sim_id, redshift, cosmology`` (its parameters), ``truth, gen`` (int
    arrays, descending)."""
    snaps = []
    for cfg, rec, cosmo, z, snap in finished_snapshots(suite, redshifts, log):
        gen = make_contender("generator", cosmo, z, cfg.box_size, cfg.ngrid, int(rec["seed"]), model=model)
        counts = [friends_of_friends(p, cfg.box_size, linking_length, FIND_MIN_MEMBERS).n_members
                  for p in (snap.positions, gen.positions)]
        snaps.append({"sim_id": rec["sim_id"], "redshift": z, "cosmology": cosmo.to_dict(), "truth": counts[0],
                      "gen": counts[1]})
        log(f"{rec['sim_id']} z = {z:g}: {len(counts[0])} / {len(counts[1])} halos of >= {FIND_MIN_MEMBERS}")
    return snaps


def _whole_counts(snaps: list[dict], z: float, members: np.ndarray) -> np.ndarray:
    """Whole truth counts ``c(N)`` for the generator member counts ``members``: for every truth count ``k`` the
    generator count ``n_k`` whose pooled abundance ``N_g(>= n_k)`` is nearest (in log) to the truth's
    ``N_t(>= k)``, and ``c(N) = max{k : n_k <= N}`` (``N`` where no ``n_k`` is that small): a cut at any ``k``
    then keeps ``N_g(>= n_k)`` halos. Non-decreasing in ``N``."""
    t = np.sort(np.concatenate([s["truth"] for s in snaps if s["redshift"] == z]))
    g = np.sort(np.concatenate([s["gen"] for s in snaps if s["redshift"] == z]))
    k = np.arange(FIND_MIN_MEMBERS, min(int(t[-1]), 4 * int(members[-1])) + 1)
    n = np.arange(FIND_MIN_MEMBERS, min(int(g[-1]), 4 * int(members[-1])) + 1)
    log_t = np.log(t.size - np.searchsorted(t, k, "left"))  # every k <= max(t) holds at least one halo
    log_g = np.log(g.size - np.searchsorted(g, n, "left"))
    n_k = n[np.argmin(np.abs(log_g[None, :] - log_t[:, None]), axis=1)]  # non-decreasing in k
    out = np.asarray(members, dtype=np.int64).copy()
    for j, m in enumerate(members):
        below = k[n_k <= m]
        if below.size:
            out[j] = below.max()
    return out


def fit_calibration(snaps: list[dict], sha256: str, *, linking_length: float = 0.2, integer_to: int = 32,
                    dex: float = 0.1, min_pairs: int = 100, source: dict | None = None,
                    pgd_sha256: str = "none") -> HaloMassCalibration:
    """``f(N, z)`` by abundance matching, per redshift over the pooled snapshots.

    For each integer ``N`` from :data:`FIND_MIN_MEMBERS` to ``integer_to``: ``f = k / N`` with ``k`` the truth
    member count of the nearest pooled abundance (whole counts as the truth's, so that a cut at any count keeps as
    many halos as the truth within one step of the generator's counts, ~2.5% at 20 particles). Above, in bins
    ``dex`` wide (node at the bin's geometric centre) while a bin holds ``min_pairs`` rank-matched pairs (the
    i-th most massive halos of each snapshot) at some redshift: their summed truth over summed generator count;
    at a redshift whose bin holds fewer, and beyond the last node, ``f`` is held constant. ``pgd_sha256``: the
    digest of the PGD sharpening the generator's particles had (the model's, :func:`collect_suite`).
    """
    zs = sorted({s["redshift"] for s in snaps})
    pairs = {}
    for z in zs:
        got = [_matched(s["truth"], s["gen"]) for s in snaps if s["redshift"] == z]
        pairs[z] = (np.concatenate([g for _, g in got]), np.concatenate([t for t, _ in got]))
        if np.count_nonzero(pairs[z][0] == integer_to) < 10:
            raise ValueError(f"too few halos of {integer_to} members at z = {z:g} "
                             f"({np.count_nonzero(pairs[z][0] == integer_to)}): use more simulations")
    whole = np.arange(FIND_MIN_MEMBERS, integer_to + 1)
    members = [float(n) for n in whole]
    factor = [[round(float(k) / n, 6) for k, n in zip(_whole_counts(snaps, z, whole), whole)] for z in zs]
    factor = [list(col) for col in zip(*factor)]  # (members, redshifts)
    lo = integer_to + 1.0
    while max(np.count_nonzero((g >= lo) & (g < lo * 10**dex)) for g, _ in pairs.values()) >= min_pairs:
        hi, row = lo * 10**dex, []
        for i, z in enumerate(zs):
            g, t = pairs[z]
            sel = (g >= lo) & (g < hi)
            enough = np.count_nonzero(sel) >= min_pairs
            row.append(round(float(t[sel].sum() / g[sel].sum()), 5) if enough else factor[-1][i])  # else: held
        members.append(round(float(np.sqrt(lo * hi)), 3))
        factor.append(row)
        lo = hi
    f = np.array(factor).T
    m = np.array(members)
    # rank order must survive noisy high-N bins: N f(N) made non-decreasing (a running maximum along N)
    f = np.ceil(np.maximum.accumulate(m * f, axis=1) / m * 1e6) / 1e6
    src = {"made_by": "python -m benchmarks.halo_mass", "code_version": code_version(),
           "pairs_per_redshift": {f"{z:g}": int(len(pairs[z][0])) for z in zs},
           "snapshots_per_redshift": {f"{z:g}": sum(s["redshift"] == z for s in snaps) for z in zs}, **(source or {})}
    return HaloMassCalibration(sha256=sha256, redshifts=np.array(zs), members=m, factor=f,
                               linking_length=linking_length, source=src, pgd_sha256=pgd_sha256)


def _sigma8_slope(sigma8: list, ratios: list) -> list[float] | None:
    """``[b, se(b)]`` of the least-squares fit ln(ratio) = a + b sigma8, or None without sigma8 for every ratio,
    three distinct values, or a positive ratio everywhere."""
    if any(v is None for v in sigma8) or len(set(sigma8)) < 3 or min(ratios) <= 0:
        return None
    coef, se = linear_fit([sigma8], np.log(np.asarray(ratios, float)))
    return [float(coef[1]), float(se[1])]


def summarise(snaps: list[dict], calibration: HaloMassCalibration | None = None) -> dict:
    """Per snapshot and per redshift (mean and scatter over snapshots): generator / truth counts above
    :data:`COUNT_CUTS` particle masses minus 1 and rank-matched mass ratios in the :data:`EDGES` bins; with
    ``calibration`` the generator's masses are calibrated. Where the snapshots carry their ``cosmology`` (at least
    three sigma8 values at a redshift), ``count_40_sigma8_slope`` is the least-squares slope of ln(N/N_t) above 40
    particle masses against sigma8 and its standard error: a calibration that is right on average can still be
    wrong cosmology by cosmology."""
    rows = []
    for s in snaps:
        gen = s["gen"] if calibration is None else calibration.calibrated_members(s["gen"], s["redshift"])
        row = {"sim_id": s["sim_id"], "redshift": s["redshift"], "sigma8": (s.get("cosmology") or {}).get("sigma8"),
               "mass_ratio": abundance_matched_ratio(s["truth"], gen[gen >= min(COUNT_CUTS)])}
        for cut in COUNT_CUTS:
            n_truth = max(1, np.count_nonzero(s["truth"] >= cut))
            row[f"count_ratio_{cut}"] = float(np.count_nonzero(gen >= cut) / n_truth)
        rows.append(row)
    summary = {}
    for z in sorted({r["redshift"] for r in rows}):
        at = [r for r in rows if r["redshift"] == z]
        cells: dict = {"snapshots": len(at)}
        for cut in COUNT_CUTS:
            v = np.array([r[f"count_ratio_{cut}"] - 1 for r in at])
            cells[f"count_ratio_{cut}_minus_1"] = [float(v.mean()), float(v.std())]
        for j, (lo, hi) in enumerate(zip(EDGES[:-1], EDGES[1:])):
            v = np.array([r["mass_ratio"][j] for r in at if r["mass_ratio"][j] is not None])
            cells[f"mass_ratio_{lo:g}_{hi:g}"] = [float(v.mean()), float(v.std())] if len(v) else None
        slope = _sigma8_slope([r.get("sigma8") for r in at], [r["count_ratio_40"] for r in at])
        if slope is not None:
            cells["count_40_sigma8_slope"] = slope
        summary[f"{z:g}"] = cells
    return {"calibrated": calibration is not None, "per_snapshot": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks.halo_mass``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.halo_mass", description=__doc__.split("\n")[0])
    add_suite_arguments(parser)
    parser.add_argument("--calibrated", action="store_true",
                        help="grade the model's halo-mass calibration (its <stem>.halo_mass.json)")
    parser.add_argument("--fit", metavar="FILE", help="fit the halo-mass calibration on the suite, write it here")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        model, _ = resolve_model(args.model, device=torch.device("cpu"))
        if args.calibrated and model.halo_calibration is None and not args.fit:
            raise ValueError(f"model {args.model} has no halo-mass calibration (fit one with --fit)")
        snaps = collect_suite(args.suite, model, args.redshifts, log=say)
        cal = None
        if args.fit:
            cal = fit_calibration(snaps, model.sha256, pgd_sha256=pgd_digest(model.pgd), source={
                "suite": str(args.suite), "model": Path(model.path).name,
                "command": "python -m benchmarks.halo_mass " + shlex.join(argv if argv is not None else sys.argv[1:])})
            write_fitted(cal, args.fit, calibration_path(model.path), say)
        # --fit with --calibrated grades the new table on the suite it was fitted on (in-sample)
        res = summarise(snaps, (cal or model.halo_calibration) if args.calibrated else None)
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.halo_mass: error: {exc}", file=sys.stderr)
        return 2
    for z, cells in res["summary"].items():
        print(f"z = {z}: {cells['snapshots']} snapshots; " + "; ".join(
            f"{k} {v[0]:.3f} +- {v[1]:.3f}" if v else f"{k} -" for k, v in cells.items() if k != "snapshots"))
    if args.out:
        write_json(Path(args.out), {"suite": str(args.suite), "model": args.model, "linking_length": 0.2,
                                    "edges_particles": [float(e) for e in EDGES], **res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
