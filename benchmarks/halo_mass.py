"""FoF halo masses of a generator against a suite's simulations, halo by halo in rank (abundance matching).

The generator's FoF catalogues hold too few halos above a fixed particle count. Whether that is a *mass* deficit
(the same halos, each a little lighter: correctable by a calibration ``M -> M f(N, z)``) or missing objects, and
whether it is the same on training and held-out cosmologies, is what a calibration needs to know. For every
finished simulation of a suite and every requested redshift this runs the generator on the simulation's cosmology
and seed, finds FoF halos (b = 0.2, >= 20 particles) in both, sorts each catalogue by mass and pairs the i-th
most massive truth halo with the i-th most massive generator halo. Per snapshot it reports the count ratio and
the median truth / generator mass ratio of the pairs whose truth halo has 35-200 and >= 200 particles; the summary
gives mean and scatter over snapshots.

Usage::

    python -m benchmarks.halo_mass --suite configs/suite_converged.yaml --model hybrid_pm4 [--out FILE.json]

Measured 2026-12-06 (hybrid_pm4, 64^3 particles in 128 Mpc/h, 32 finished training simulations and the 20
held-out test snapshots): mass ratio 1.106 +- 0.022 (training) and 1.105 +- 0.028 (test) for 35-200 particles
at z = 0, 1.06 at z = 0.5, 1.03 at z = 1; 1.01-1.03 above 200 particles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from data_prep.readers import read_header, read_snapshot
from data_prep.simulate.suite import finished_records, load_suite_config
from emulator.core.cosmology import Cosmology
from emulator.mocks.fof import friends_of_friends

from .config import resolve_repo_path
from .contenders import make_contender, resolve_model
from .env import write_json

__all__ = ["abundance_matched_ratio", "measure_suite", "main"]

EDGES = (35.0, 200.0, np.inf)  # truth halo particle counts of the summary bins


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
    mt = np.sort(np.asarray(m_truth, dtype=np.float64))[::-1]
    mg = np.sort(np.asarray(m_gen, dtype=np.float64))[::-1]
    m = min(len(mt), len(mg))
    mt, ratio = mt[:m], mt[:m] / mg[:m]
    out: list[float | None] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mt >= lo) & (mt < hi)
        out.append(float(np.median(ratio[sel])) if sel.any() else None)
    return out


def measure_suite(suite: str | Path, model: str, redshifts=(0.0, 0.5, 1.0), *, min_members: int = 20,
                  linking_length: float = 0.2, log=print) -> dict:
    """Per finished simulation and redshift: halo counts and rank-matched mass ratios (particle units)."""
    cfg = load_suite_config(resolve_repo_path(str(suite)))
    out_dir = Path(cfg.out_dir)  # relative to the working directory, as for data-prep simulate and suite_truth
    records, stale = finished_records(cfg)
    if not records:
        raise FileNotFoundError(f"{out_dir}: no finished simulation of suite {suite} made from its inputs (run "
                                f"data-prep simulate first)")
    if stale:
        log(f"{len(stale)} simulation(s) in {out_dir} made from other inputs are skipped: {sorted(stale)}")
    mdl, _ = resolve_model(model, device=torch.device("cpu"))
    rows = []
    for rec in records:
        cosmo = Cosmology.from_mapping(rec["cosmology"])
        for name in rec["snapshots"]:
            z = float(read_header(out_dir / name).redshift)  # only the snapshots asked for are read in full
            if not any(abs(z - float(want)) < 1e-4 for want in redshifts):
                continue
            snap = read_snapshot(out_dir / name)
            gen = make_contender("generator", cosmo, z, cfg.box_size, cfg.ngrid, int(rec["seed"]), model=mdl)
            truth = friends_of_friends(snap.positions, cfg.box_size, linking_length, min_members)
            mine = friends_of_friends(gen.positions, cfg.box_size, linking_length, min_members)
            ratios = abundance_matched_ratio(truth.n_members, mine.n_members)
            rows.append({"sim_id": rec["sim_id"], "redshift": round(z, 4), "n_truth": len(truth), "n_gen": len(mine),
                         "mass_ratio": ratios})
            log(f"{rec['sim_id']} z = {z:g}: {len(truth)} / {len(mine)} halos, mass ratios {ratios}")
    summary = {}
    for z in sorted({r["redshift"] for r in rows}):
        at = [r for r in rows if r["redshift"] == z]
        count = np.array([r["n_gen"] / r["n_truth"] - 1 for r in at])
        cells = {"snapshots": len(at), "count_ratio_minus_1": [float(count.mean()), float(count.std())]}
        for j, (lo, hi) in enumerate(zip(EDGES[:-1], EDGES[1:])):
            v = np.array([r["mass_ratio"][j] for r in at if r["mass_ratio"][j] is not None])
            cells[f"mass_ratio_{lo:g}_{hi:g}"] = [float(v.mean()), float(v.std())] if len(v) else None
        summary[f"{z:g}"] = cells
    return {"suite": str(suite), "model": model, "min_members": min_members, "linking_length": linking_length,
            "edges_particles": [float(e) for e in EDGES], "per_snapshot": rows, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks.halo_mass``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.halo_mass", description=__doc__.split("\n")[0])
    parser.add_argument("--suite", required=True, help="suite YAML whose finished simulations are the truth")
    parser.add_argument("--model", default="hybrid_pm4", help="model file or embedded model name")
    parser.add_argument("--redshifts", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        res = measure_suite(args.suite, args.model, args.redshifts, log=lambda m: print(m, file=sys.stderr))
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.halo_mass: error: {exc}", file=sys.stderr)
        return 2
    for z, cells in res["summary"].items():
        print(f"z = {z}: {cells['snapshots']} snapshots; " + "; ".join(
            f"{k} {v[0]:.3f} +- {v[1]:.3f}" if v else f"{k} -" for k, v in cells.items() if k != "snapshots"))
    if args.out:
        write_json(Path(args.out), res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
