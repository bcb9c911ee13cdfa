"""Which form of small-scale velocity does the redshift-space quadrupole ask for? A diagnostic of the velocity
dispersion (:mod:`benchmarks.velocity_dispersion`), not a fit.

For the first ``--limit`` finished simulations of a suite at each redshift, this grades the generator's particles
(PGD applied, as generation makes them) in redshift space against the truth's (the estimator of
:func:`benchmarks.velocity_dispersion.multipoles`: line of sight z, ``k <= k_Nyq / 2``) with these velocities:

- ``network``: the network's, nothing added;
- ``truth``: the truth's own velocities (matched by particle id) on the generator's positions, what no velocity
  model can beat;
- ``gaussian``: the network's plus an isotropic Gaussian of per-component variance ``<v_t^2> - <v_gen^2>`` per
  density bin of *this* box (an oracle of the shipped table's form: the table's own fitting error is left out);
- ``tails k``: the same variance drawn with heavier tails, a Gaussian scaled per particle by ``sqrt(s)``,
  ``s ~ Gamma(k, 1 / k)`` (mean 1, excess kurtosis ``3 / k``; one ``s`` for the three components);
- ``infall b``: the network's plus a coherent pull towards density peaks, ``b u`` times the PGD shift of unit
  strength (:func:`emulator.core.pgd.pgd_shift`, band 0.3-1.6 h/Mpc; ``u = 100 a E f``), then the Gaussian of the
  variance still missing per bin.

It prints, per form, the worst and median ``|P0/P0_t - 1|`` and ``|P2 - P2_t| / P0_t`` and their mean over boxes
per k bin, and the kurtosis ``<v^4> / <v^2>^2`` of one velocity component per density bin for the truth, the
network and the Gaussian form.

Usage::

    python -m benchmarks.velocity_dispersion_forms --model hybrid_cola4 --suite configs/suite_converged_val.yaml \\
        --redshifts 0 --limit 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from emulator.core.checks import check_box_size
from emulator.core.pgd import pgd_shift
from emulator.core.velocity_noise import binned_second_moments, interpolate_sigma, log_density_at_particles
from emulator.model.emulate import emulate_fields
from emulator.model.velocity_dispersion import velocity_scale

from .contenders import resolve_model
from .env import write_json
from .suite_truth import add_suite_arguments, finished_snapshots
from .velocity_dispersion import DEFAULT_EDGES, multipoles

__all__ = ["FORMS", "KURTOSIS_EDGES", "form_velocities", "kurtosis_by_density", "main"]

FORMS = ("network", "truth", "gaussian", "tails 2", "tails 1", "infall 0.03", "infall 0.1")
KURTOSIS_EDGES = np.array([-np.inf, 0.0, 1.0, 2.0, 3.0, 4.0, np.inf])  # ln(1 + delta)
INFALL_BAND = (0.3, 1.6)  # h/Mpc


def _oracle_noise(v0: torch.Tensor, v_t: torch.Tensor, lnd: torch.Tensor, gen: torch.Generator,
                  kappa: float | None = None) -> torch.Tensor:
    """``v0`` plus noise of per-bin variance ``<v_t^2> - <v0^2>`` (floored at 0), Gaussian or Gamma-scaled."""
    counts, s_t = binned_second_moments(lnd, v_t, DEFAULT_EDGES)
    s_0 = binned_second_moments(lnd, v0, DEFAULT_EDGES)[1]
    var = np.clip((s_t - s_0) / np.maximum(counts, 1), 0.0, None)
    centres = 0.5 * (DEFAULT_EDGES[1:] + DEFAULT_EDGES[:-1])
    sig = interpolate_sigma(lnd, centres, np.sqrt(var))
    if kappa is not None:
        sig = sig * (torch._standard_gamma(torch.full_like(sig, kappa), generator=gen) / kappa).sqrt()
    return v0 + torch.randn(v0.shape, generator=gen, dtype=v0.dtype) * sig[:, None]


def form_velocities(form: str, v_net: torch.Tensor, v_t: torch.Tensor, positions: torch.Tensor, n: int, box: float,
                    u: float, seed: int) -> torch.Tensor:
    """The velocities (km/s, float64) of one ``form`` of :data:`FORMS` (see the module's text)."""
    lnd = log_density_at_particles(positions, n, box).double()
    gen = torch.Generator().manual_seed(int(seed))
    name, _, value = form.partition(" ")
    if name == "network":
        return v_net
    if name == "truth":
        return v_t
    if name == "gaussian":
        return _oracle_noise(v_net, v_t, lnd, gen)
    if name == "tails":
        return _oracle_noise(v_net, v_t, lnd, gen, kappa=float(value))
    if name == "infall":
        pull = pgd_shift(positions.double(), n, box, 1.0, *INFALL_BAND)
        return _oracle_noise(v_net + float(value) * u * pull, v_t, lnd, gen)
    raise ValueError(f"unknown form {form!r}; known: {list(FORMS)}")


def kurtosis_by_density(lnd: torch.Tensor, v: torch.Tensor) -> np.ndarray:
    """``<v^4> / <v^2>^2`` of the velocity components per bin of :data:`KURTOSIS_EDGES` (NaN where empty)."""
    idx = torch.bucketize(lnd, torch.as_tensor(KURTOSIS_EDGES[1:-1], dtype=lnd.dtype), right=True)
    out = np.full(KURTOSIS_EDGES.size - 1, np.nan)
    for b in range(out.size):
        c = v[idx == b].double().reshape(-1)
        if c.numel():
            out[b] = float(c.pow(4).mean() / c.pow(2).mean().pow(2))
    return out


def _grade(suite, model, z: float, limit: int, log) -> dict:
    errs = {f: ([], []) for f in FORMS}
    kurt, k = [], None
    for i, (cfg, rec, cosmo, zz, snap) in enumerate(finished_snapshots(suite, [z], log)):
        if i >= limit:
            break
        n, box, seed = int(cfg.ngrid), check_box_size(cfg.box_size), int(rec["seed"])
        g = emulate_fields(cosmo, zz, box, seed, model=model, ngrid=n, allow_extrapolation=True,
                           keep_displacement=False, velocity_dispersion=False)
        order = np.argsort(np.asarray(snap.ids), kind="stable")  # Lagrangian C order, as the generator's
        v_t = torch.as_tensor(np.asarray(snap.velocities)[order], dtype=torch.float64)
        x_t = torch.as_tensor(np.asarray(snap.positions)[order], dtype=torch.float32)
        k, p0_t, p2_t = multipoles(x_t, v_t.float(), cosmo, zz, n, box)
        sel = k <= 0.5 * np.pi * n / box + 1e-9
        u, v_net = velocity_scale(cosmo, zz), g.velocities.double()
        for form in FORMS:
            v = form_velocities(form, v_net, v_t, g.positions, n, box, u, seed)
            _, p0, p2 = multipoles(g.positions, v.float(), cosmo, zz, n, box)
            errs[form][0].append((p0 / p0_t - 1)[sel])
            errs[form][1].append(((p2 - p2_t) / p0_t)[sel])
            if form == "gaussian":
                lnd = log_density_at_particles(g.positions, n, box).double()
                kurt.append([kurtosis_by_density(lnd, w) for w in (v_t, v_net, v)])
        log(f"{rec['sim_id']} z = {zz:g}")
    if k is None:
        raise ValueError(f"no finished simulation of {suite} at z = {z:g}")
    sel = k <= 0.5 * np.pi * n / box + 1e-9
    out = {"snapshots": len(kurt), "k": k[sel].tolist(), "forms": {}, "kurtosis_edges": KURTOSIS_EDGES.tolist(),
           "kurtosis_truth_network_gaussian": np.nanmean(np.array(kurt), axis=0).tolist()}
    for form, (e0, e2) in errs.items():
        e0, e2 = np.array(e0), np.array(e2)
        out["forms"][form] = {"p0_worst": float(np.abs(e0).max()), "p0_median": float(np.median(np.abs(e0))),
                              "p2_worst": float(np.abs(e2).max()), "p2_median": float(np.median(np.abs(e2))),
                              "p0_mean": e0.mean(0).tolist(), "p2_mean": e2.mean(0).tolist()}
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks.velocity_dispersion_forms``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.velocity_dispersion_forms",
                                     description=__doc__.split("\n")[0])
    add_suite_arguments(parser)
    parser.add_argument("--limit", type=int, default=8, help="simulations per redshift (the suite's first)")
    parser.add_argument("--out", help="write the results here (JSON)")
    args = parser.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        if args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        model, _ = resolve_model(args.model, device=torch.device("cpu"))
        res = {f"{z:g}": _grade(args.suite, model, z, args.limit, say) for z in args.redshifts}
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.velocity_dispersion_forms: error: {exc}", file=sys.stderr)
        return 2
    for z, r in res.items():
        k = np.array(r["k"])
        print(f"z = {z}, {r['snapshots']} boxes; k (h/Mpc): {np.round(k[::2], 2).tolist()}")
        for form, c in r["forms"].items():
            print(f"  {form:12s} P0 worst {c['p0_worst']:.3f} median {c['p0_median']:.4f} mean "
                  f"{np.round(c['p0_mean'][::2], 3).tolist()}; dP2/P0 worst {c['p2_worst']:.3f} median "
                  f"{c['p2_median']:.4f} mean {np.round(c['p2_mean'][::2], 3).tolist()}")
        print("  kurtosis per ln(1 + delta) bin " + str(r["kurtosis_edges"]) + " (truth, network, gaussian): "
              + str(np.round(r["kurtosis_truth_network_gaussian"], 2).tolist()))
    if args.out:
        write_json(Path(args.out), {"suite": str(args.suite), "model": args.model, "limit": args.limit,
                                    "grade": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
