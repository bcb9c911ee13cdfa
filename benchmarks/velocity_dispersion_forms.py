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
- ``tails m``: the same variance drawn with heavier tails, a Gaussian scaled per particle by ``sqrt(s)``, ``s``
  Gamma-distributed with shape ``m`` and scale ``1 / m`` (mean 1; the added noise alone has excess kurtosis
  ``3 / m``, the sum with the network's velocities less; one ``s`` for the three components);
- ``infall b``: the network's plus a coherent pull towards density peaks, ``b u`` times the PGD shift of unit
  strength (:func:`emulator.core.pgd.pgd_shift`, band 0.3-1.6 h/Mpc; ``u = 100 a E f``), then the Gaussian of the
  variance still missing per bin.

It prints, per form, the worst and median ``|P0/P0_t - 1|`` and ``|P2 - P2_t| / P0_t`` and their mean over boxes
per k bin, and the kurtosis ``<v^4> / <v^2>^2`` of the velocity components (the three pooled, about zero) per bin
of the density at the generator's particle, for the truth's velocities, the network's and the Gaussian form's.

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


def _oracle_noise(v0: torch.Tensor, v_t: torch.Tensor, lnd: torch.Tensor, rng: np.random.Generator,
                  shape: float | None = None) -> torch.Tensor:
    """``v0`` plus noise of per-bin variance ``<v_t^2> - <v0^2>`` (floored at 0), Gaussian or Gamma-scaled."""
    counts, s_t = binned_second_moments(lnd, v_t, DEFAULT_EDGES)
    s_0 = binned_second_moments(lnd, v0, DEFAULT_EDGES)[1]
    var = np.clip((s_t - s_0) / np.maximum(counts, 1), 0.0, None)
    centres = 0.5 * (DEFAULT_EDGES[1:] + DEFAULT_EDGES[:-1])
    sig = interpolate_sigma(lnd, centres, np.sqrt(var))
    if shape is not None:
        sig = sig * torch.from_numpy(np.sqrt(rng.gamma(shape, 1.0 / shape, size=sig.shape[0]))).to(sig.dtype)
    draw = torch.from_numpy(rng.standard_normal(tuple(v0.shape))).to(v0.dtype)
    return v0 + draw * sig[:, None]


def form_velocities(form: str, v_net: torch.Tensor, v_t: torch.Tensor, positions: torch.Tensor, n: int, box: float,
                    u: float, seed: int, log_density: torch.Tensor | None = None) -> torch.Tensor:
    """The velocities of one ``form`` of :data:`FORMS` (see the module's text; any ``tails m`` with ``m > 0`` and
    ``infall b`` with ``b >= 0``).

    Parameters
    ----------
    form : str
        ``network``, ``truth``, ``gaussian``, ``tails m`` or ``infall b``.
    v_net, v_t : torch.Tensor
        ``(N, 3)`` the network's and the truth's velocities of the same particles, km/s (float64 for the noise
        forms).
    positions : torch.Tensor
        ``(N, 3)`` the generator's particle positions, Mpc/h.
    n : int
        Mesh points per side of the density estimate (the particle grid's).
    box : float
        Box side, Mpc/h.
    u : float
        Velocity unit ``100 a E f``, km/s per Mpc/h (:func:`emulator.model.velocity_dispersion.velocity_scale`).
    seed : int
        Seed of the noise (a :class:`numpy.random.Generator`).
    log_density : torch.Tensor, optional
        ``(N,)`` ``ln(1 + delta)`` at the particles (float64) when the caller has it; by default it is
        :func:`~emulator.core.velocity_noise.log_density_at_particles` of ``positions``.

    Returns
    -------
    torch.Tensor
        ``(N, 3)`` km/s: ``v_net`` or ``v_t`` themselves for ``network`` and ``truth``, a new tensor otherwise.
    """
    name, _, value = form.partition(" ")
    try:
        number = float(value) if name in ("tails", "infall") else None
    except ValueError:
        number = None
    valid = (name in ("network", "truth", "gaussian") and not value) or (
        number is not None and (number > 0 if name == "tails" else number >= 0))
    if not valid:
        raise ValueError(f"unknown form {form!r}; known: network, truth, gaussian, 'tails m' (m > 0), 'infall b' "
                         f"(b >= 0)")
    if name == "network":
        return v_net
    if name == "truth":
        return v_t
    lnd = log_density_at_particles(positions, n, box).double() if log_density is None else log_density
    rng = np.random.default_rng(int(seed))
    if name == "gaussian":
        return _oracle_noise(v_net, v_t, lnd, rng)
    if name == "tails":
        return _oracle_noise(v_net, v_t, lnd, rng, shape=number)
    pull = pgd_shift(positions.double(), n, box, 1.0, *INFALL_BAND).to(v_net.dtype)
    return _oracle_noise(v_net + number * u * pull, v_t, lnd, rng)


def kurtosis_by_density(lnd: torch.Tensor, v: torch.Tensor) -> np.ndarray:
    """``<v^4> / <v^2>^2`` of the velocity components, the three pooled and about zero (not their mean), per bin
    of :data:`KURTOSIS_EDGES` (NaN where empty).

    Parameters
    ----------
    lnd : torch.Tensor
        ``(N,)`` ``ln(1 + delta)`` at the particles.
    v : torch.Tensor
        ``(N, 3)`` velocities, any unit (the ratio has none).
    """
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
        lnd = log_density_at_particles(g.positions, n, box).double()  # one density for every form
        for form in FORMS:
            v = form_velocities(form, v_net, v_t, g.positions, n, box, u, seed, log_density=lnd)
            _, p0, p2 = multipoles(g.positions, v.float(), cosmo, zz, n, box)
            errs[form][0].append((p0 / p0_t - 1)[sel])
            errs[form][1].append(((p2 - p2_t) / p0_t)[sel])
            if form == "gaussian":
                kurt.append([kurtosis_by_density(lnd, w) for w in (v_t, v_net, v)])
        log(f"{rec['sim_id']} z = {zz:g}")
    if k is None:
        raise ValueError(f"no finished simulation of {suite} at z = {z:g}")
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
