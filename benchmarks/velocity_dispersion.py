"""Fit and grade a model's small-scale velocity dispersion (:mod:`emulator.model.velocity_dispersion`) on a suite.

For every finished simulation of a suite and requested redshift this runs the generator on the simulation's
cosmology and seed (with the model's PGD sharpening, as generation makes the particles; without the dispersion),
matches its particles to the truth's by id, and bins the mean square velocity components of both by the density at
the generator's particle (:func:`emulator.core.velocity_noise.log_density_at_particles`). The dispersion to add is
what makes the two equal bin by bin, ``sigma^2 = <v_t^2> - <v_gen^2>`` per component: where the generator's bulk
flows are right, exactly the internal (finger-of-God) motion it lacks. (The residual ``v_t - v_gen`` is the
wrong measure: it is anticorrelated with ``v_gen``, the network's velocities not being the conditional mean, and
adding its variance leaves ``hybrid_cola4``'s velocities 15% too hot at z = 0 and its monopole 14% low at
k_Nyq / 2.) ``--fit FILE`` fits, per redshift and density bin, ``ln(sigma / u) = c + sum_p s_p (theta_p -
pivot_p)`` over the snapshots where ``sigma^2 > 0`` by least squares (``u = 100 a E f`` km/s per Mpc/h,
``theta`` the ``--parameters``, ``Omega_m`` and ``sigma8`` by default). Fit on a training suite only.
``--grade`` reports on any suite (the held-out test suite) what the dispersion is for: the redshift-space
monopole and quadrupole of the particles (line of sight z, CIC, interlaced, bins of one fundamental mode) against
the truth's, worst and median ``|P0/P0_t - 1|`` and ``|P2 - P2_t| / P0_t`` for ``k <= kmax_fraction k_Nyq``,
without and with the dispersion (``--vdisp FILE``: a candidate file's instead of the model's), and the ratio of
the velocity variance to the truth's.

Usage::

    python -m benchmarks.velocity_dispersion --model hybrid_cola4 --suite configs/suite_converged.yaml \\
        --redshifts 0 0.5 1 2 --fit emulator/models/hybrid_cola4.vdisp.json
    python -m benchmarks.velocity_dispersion --model hybrid_cola4 --suite configs/suite_converged_test.yaml --grade
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from emulator.core.checks import check_box_size
from emulator.core.cosmology import PARAMETER_NAMES
from emulator.core.multipoles import power_multipoles_k
from emulator.core.provenance import code_version
from emulator.core.spectra import k_edges
from emulator.core.velocity_noise import add_velocity_noise, binned_second_moments, log_density_at_particles
from emulator.mocks.rsd import redshift_space_positions
from emulator.model.emulate import emulate_fields
from emulator.model.pgd_correction import pgd_digest
from emulator.model.velocity_dispersion import VelocityDispersion, read_vdisp_file, vdisp_path, velocity_scale

from .contenders import resolve_model
from .env import write_json
from .least_squares import linear_fit
from .metrics import overdensity_k
from .suite_truth import (add_fit_grade_arguments, add_suite_arguments, check_fit_grade, finished_snapshots,
                          write_fitted)

__all__ = ["DEFAULT_EDGES", "HOT_LOG_SIGMA", "collect_snapshots", "fit_vdisp", "multipoles", "grade", "main"]

DEFAULT_EDGES = np.arange(-2.0, 5.51, 0.25)  # ln(1 + delta) at the particle; the end bins take what lies beyond
MIN_COUNT = 100  # particles a snapshot needs in a bin to enter its fit
HOT_LOG_SIGMA = -4.5  # ln(sigma / u) of a bin where the generator is as hot as the truth: ~0.5 km/s, no dispersion


def multipoles(positions: torch.Tensor, velocities: torch.Tensor, cosmology, redshift: float, n: int,
               box: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(k, P0, P2)`` in redshift space along z (the benchmark's estimator; h/Mpc and (Mpc/h)^3)."""
    s = redshift_space_positions(positions, velocities, redshift, cosmology, box, los="z")
    poles = power_multipoles_k(overdensity_k(s, n, box), box, n, ells=(0, 2), los="z", kedges=k_edges(n, box))
    return poles.k.numpy(), poles.poles[0].numpy(), poles.poles[1].numpy()


def collect_snapshots(suite: str | Path, model, redshifts, *, edges=DEFAULT_EDGES, keep: bool = False,
                      log=print) -> list[dict]:
    """Per finished simulation and redshift: ``sim_id, redshift, cosmology, seed, n, box``, the velocity unit ``u``
    (km/s per Mpc/h), and per bin of ``edges`` the particle ``counts`` and the mean square velocity component of
    the truth and of the generator, ``msq_truth``, ``msq_gen`` (in units of ``u^2``). With ``keep``, also the
    truth's multipoles (``k, p0_truth, p2_truth``), its velocity variance, and the generator's ``positions``,
    ``velocities`` (km/s) for :func:`grade`."""
    out = []
    for cfg, rec, cosmo, z, snap in finished_snapshots(suite, redshifts, log):
        n, box, seed = int(cfg.ngrid), check_box_size(cfg.box_size), int(rec["seed"])
        gen = emulate_fields(cosmo, z, box, seed, model=model, ngrid=n, allow_extrapolation=True,
                             keep_displacement=False, velocity_dispersion=False)
        order = np.argsort(np.asarray(snap.ids), kind="stable")  # Lagrangian C order, as the generator's
        v_t = torch.as_tensor(np.asarray(snap.velocities)[order], dtype=torch.float32)
        u = velocity_scale(cosmo, z)
        lnd = log_density_at_particles(gen.positions, n, box)
        counts, sum_t = binned_second_moments(lnd, v_t, edges)
        sum_g = binned_second_moments(lnd, gen.velocities, edges)[1]
        row = {"sim_id": rec["sim_id"], "redshift": z, "cosmology": cosmo, "seed": seed, "n": n, "box": box,
               "u": u, "counts": counts, "msq_truth": sum_t / np.maximum(counts, 1) / u**2,
               "msq_gen": sum_g / np.maximum(counts, 1) / u**2}
        if keep:
            x_t = torch.as_tensor(np.asarray(snap.positions)[order], dtype=torch.float32)
            row["k"], row["p0_truth"], row["p2_truth"] = multipoles(x_t, v_t, cosmo, z, n, box)
            row.update(var_truth=float(v_t.double().var(dim=0).sum()), positions=gen.positions,
                       velocities=gen.velocities)
        out.append(row)
        log(f"{rec['sim_id']} z = {z:g}")
    return out


def fit_vdisp(snaps: list[dict], sha256: str, *, edges=DEFAULT_EDGES, parameters=("Omega_m", "sigma8"),
              min_count: int = MIN_COUNT, source: dict | None = None, log=print) -> VelocityDispersion:
    """:class:`VelocityDispersion` fitted per redshift and bin (see the module's text).

    At each redshift a bin is *populated* when half its snapshots, and more than ``len(parameters) + 2``, hold
    ``min_count`` particles in it. It is fitted on the populated snapshots where ``<v_t^2> > <v_gen^2>`` when these
    are again half the redshift's snapshots and more than ``len(parameters) + 2``; otherwise the generator is as hot
    as the truth there and the bin gets no dispersion (``ln(sigma / u)`` at :data:`HOT_LOG_SIGMA`, no slopes). A
    bin populated at some redshift is a node. Where it is not populated at a redshift, it takes that redshift's
    nearest populated bin's values beyond the populated range (as if the table ended there), and the linear
    interpolation of its populated neighbours inside it. The source lists these bins per redshift
    (``bins_generator_hotter``, ``bins_held_from_nearest``, ``bins_interpolated``); it counts the (snapshot, bin)
    pairs left out because the generator was hotter (``bins_left_out_generator_hotter``), and records the
    residual scatter of ``ln sigma`` about the fit (and about the bin's mean, without slopes), weighted by the
    bins' particle counts."""
    edges = np.asarray(edges, dtype=np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])
    zs = sorted({s["redshift"] for s in snaps})
    theta = {p: np.array([float(getattr(s["cosmology"], p)) for s in snaps]) for p in parameters}
    flat = [p for p, v in theta.items() if np.ptp(v) == 0]
    if flat:
        raise ValueError(f"parameter(s) {flat} take one value in every snapshot: no slope can be fitted")
    pivot = {p: round(float(v.mean()), 5) for p, v in theta.items()}
    ranges = {p: (float(v.min()), float(v.max())) for p, v in theta.items()}
    coef = np.full((len(zs), centres.size, 1 + len(parameters)), np.nan)
    scatter = {}
    for iz, z in enumerate(zs):
        idx = [i for i, s in enumerate(snaps) if s["redshift"] == z]
        enough = lambda group: len(group) > len(parameters) + 2 and 2 * len(group) >= len(idx)  # noqa: E731
        res2 = res2_flat = wsum = 0.0
        cold, hot = 0, []
        for b in range(centres.size):
            full = [i for i in idx if snaps[i]["counts"][b] >= min_count]
            use = [i for i in full if snaps[i]["msq_truth"][b] > snaps[i]["msq_gen"][b]]
            cold += len(full) - len(use)
            if not enough(full):  # sparse bin: noisy slopes
                continue
            if not enough(use):
                coef[iz, b] = [HOT_LOG_SIGMA] + [0.0] * len(parameters)
                hot.append(round(float(centres[b]), 3))
                continue
            y = 0.5 * np.log([snaps[i]["msq_truth"][b] - snaps[i]["msq_gen"][b] for i in use])
            cols = [theta[p][use] - pivot[p] for p in parameters]
            c, _ = linear_fit(cols, y)
            coef[iz, b] = c
            w = float(sum(snaps[i]["counts"][b] for i in use))
            res2 += w * np.mean((y - c[0] - sum(cj * x for cj, x in zip(c[1:], cols))) ** 2)
            res2_flat += w * np.var(y)
            wsum += w
        if wsum == 0:
            raise ValueError(f"no density bin with >= {min_count} particles in enough snapshots at z = {z:g}")
        scatter[f"{z:g}"] = {"snapshots": len(idx), "rms_ln_sigma_residual": round(float(np.sqrt(res2 / wsum)), 5),
                             "rms_ln_sigma_without_slopes": round(float(np.sqrt(res2_flat / wsum)), 5),
                             "bins_left_out_generator_hotter": cold, **({"bins_generator_hotter": hot} if hot else {})}
        log(f"z = {z:g}: {len(idx)} snapshots, rms of ln sigma about the fit {scatter[f'{z:g}']}")
    nodes = np.any(np.isfinite(coef[..., 0]), axis=0)
    if nodes.sum() < 2:
        raise ValueError(f"too few density bins with >= {min_count} particles in enough snapshots")
    for iz in range(len(zs)):  # bins populated at other redshifts only: held beyond this one's, interpolated inside
        have = np.flatnonzero(np.isfinite(coef[iz, :, 0]))  # never empty (checked above)
        for b in np.flatnonzero(nodes & ~np.isfinite(coef[iz, :, 0])):
            if b < have[0] or b > have[-1]:
                coef[iz, b] = coef[iz, have[0] if b < have[0] else have[-1]]
                key = "bins_held_from_nearest"
            else:
                lo, hi = have[have < b][-1], have[have > b][0]
                coef[iz, b] = coef[iz, lo] + (b - lo) / (hi - lo) * (coef[iz, hi] - coef[iz, lo])
                key = "bins_interpolated"
            scatter[f"{zs[iz]:g}"].setdefault(key, []).append(round(float(centres[b]), 3))
    src = {"made_by": "python -m benchmarks.velocity_dispersion", "code_version": code_version(),
           "density": "CIC on the particle grid at the generator's particle (PGD applied), read out with CIC",
           "min_count": min_count, "fit": scatter, **(source or {})}
    return VelocityDispersion(sha256=sha256, redshifts=np.array(zs), log_density=centres[nodes],
                              log_sigma=coef[:, nodes, 0], parameters=tuple(parameters), slopes=coef[:, nodes, 1:],
                              pivot=pivot, ranges=ranges, source=src)


def _errors(s: dict, velocities: torch.Tensor, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, p0, p2 = multipoles(s["positions"], velocities, s["cosmology"], s["redshift"], s["n"], s["box"])
    return (p0 / s["p0_truth"] - 1)[sel], ((p2 - s["p2_truth"]) / s["p0_truth"])[sel]


def grade(snaps: list[dict], vdisp: VelocityDispersion | None, *, kmax_fraction: float = 0.5) -> dict:
    """Per redshift, without and with ``vdisp``: worst and median ``|P0/P0_t - 1|`` and ``|P2 - P2_t| / P0_t`` for
    ``k <= kmax_fraction k_Nyq``, the mean ``P0/P0_t - 1`` in the last bin there, and the mean ratio of the
    velocity variance to the truth's (``snaps`` from :func:`collect_snapshots` with ``keep``)."""
    out = {}
    for z in sorted({s["redshift"] for s in snaps}):
        at = [s for s in snaps if s["redshift"] == z]
        cells = {"snapshots": len(at)}
        for name in ("without", "with") if vdisp is not None else ("without",):
            e0, e2, var = [], [], []
            for s in at:
                sel = s["k"] <= kmax_fraction * np.pi * s["n"] / s["box"] + 1e-9
                v = s["velocities"]
                if name == "with":
                    v = add_velocity_noise(s["positions"], v.clone(), s["n"], s["box"], vdisp.log_density,
                                           vdisp.sigma_at(z, s["cosmology"]), s["seed"])
                a, b = _errors(s, v, sel)
                e0.append(a)
                e2.append(b)
                var.append(float(v.double().var(dim=0).sum()) / s["var_truth"])
            e0, e2 = np.array(e0), np.array(e2)
            cells[name] = {"p0_worst": float(np.abs(e0).max()), "p0_median": float(np.median(np.abs(e0))),
                           "p0_mean_at_kmax": float(e0[:, -1].mean()), "p2_worst": float(np.abs(e2).max()),
                           "p2_median": float(np.median(np.abs(e2))), "velocity_variance_ratio": float(np.mean(var))}
        out[f"{z:g}"] = cells
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks.velocity_dispersion``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.velocity_dispersion",
                                     description=__doc__.split("\n")[0])
    add_suite_arguments(parser)
    add_fit_grade_arguments(parser, "velocity-dispersion", "vdisp", "fit the dispersion table on the suite, write "
                            "it here", "grade the multipoles up to this fraction of k_Nyq (default 0.5)")
    parser.add_argument("--parameters", nargs="*", default=["Omega_m", "sigma8"],
                        help="--fit: cosmological parameters with a slope in ln sigma (none: one table)")
    args = parser.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        check_fit_grade(args, "vdisp")
        bad = [p for p in args.parameters if p not in PARAMETER_NAMES]
        if bad:
            raise ValueError(f"--parameters: unknown {bad}; known: {list(PARAMETER_NAMES)}")
        model, _ = resolve_model(args.model, device=torch.device("cpu"))
        vdisp = model.vdisp
        if args.vdisp:
            vdisp = read_vdisp_file(args.vdisp)
            if vdisp.sha256 != model.sha256:
                raise ValueError(f"{args.vdisp} was fitted for model sha256 {vdisp.sha256[:16]}, not {args.model}'s")
        snaps = collect_snapshots(args.suite, model, args.redshifts, keep=args.grade, log=say)
        if args.fit:
            vdisp = fit_vdisp(snaps, model.sha256, parameters=tuple(args.parameters), log=say, source={
                "suite": str(args.suite), "model": Path(model.path).name, "pgd_sha256": pgd_digest(model.pgd),
                "command": "python -m benchmarks.velocity_dispersion " + shlex.join(
                    argv if argv is not None else sys.argv[1:])})
            write_fitted(vdisp, args.fit, vdisp_path(model.path), say)
        res = grade(snaps, vdisp, kmax_fraction=args.kmax_fraction) if args.grade else None
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.velocity_dispersion: error: {exc}", file=sys.stderr)
        return 2
    for z, cells in (res or {}).items():
        print(f"z = {z}: {cells['snapshots']} snapshots; " + "; ".join(
            f"{name}: P0 worst {c['p0_worst']:.4f}, median {c['p0_median']:.4f}, mean at kmax "
            f"{c['p0_mean_at_kmax']:+.4f}; dP2/P0 worst {c['p2_worst']:.4f}, median {c['p2_median']:.4f}; "
            f"var(v)/var_t {c['velocity_variance_ratio']:.3f}" for name, c in cells.items() if name != "snapshots"))
    if args.out and res is not None:
        write_json(Path(args.out), {"suite": str(args.suite), "model": args.model,
                                    "vdisp": vdisp and vdisp.to_dict(), "kmax_fraction_of_nyquist":
                                    args.kmax_fraction, "grade": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
