"""Run a benchmark tier: truth, contenders, statistics, covariance, speed; write ``results.json`` and the report.

Usage::

    python -m benchmarks --tier smoke|standard|full [--config FILE] [--out DIR] [--model PATH] [--device DEV]
                         [--redshift Z] [--fresh]

Outputs in ``DIR`` (default ``runs/benchmarks/<tier>``): ``results.json`` (written atomically; every number with
its bins, plus tier, configuration, hardware, versions and the model's sha256), ``report.md`` with
``figures/*.png``, and ``slices.npz`` (the density slabs shown in the report). Finished pieces (each truth's
comparison, covariance realizations, timings) are kept in ``DIR/partial`` as they finish, so the same command
started again after a kill resumes where it stopped (:mod:`benchmarks.resume`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emulator.core.fourier import to_real
from emulator.core.power import LinearPower
from emulator.mocks.halo_mass import calibration_attr, usable_calibration

from emulator.core.locks import exclusive_lock

from .config import (TIERS, load_config, measures_covariance, model_scope, parse_cosmology, pm_settings,
                     resolve_repo_path, speed_threads)
from .contenders import make_contender, resolve_model
from .ensemble import covariance_ensemble
from .env import hardware, jsonify, repo_relative, resolve_device, utc_now, versions, write_json
from .lognormal import realization_factor
from .metrics import Binning, compare, cosmology_groups, make_binning, max_over, measure, seed_scatter
from .resume import PartialStore, common_fingerprint
from .speed import measure_speed
from .truth import simulate_truth, trainingset_truth

__all__ = ["run_tier", "main", "summarize"]

_PRIVATE = ("delta_k", "pdf_edges", "xi_mask", "notes")
SLICE_NAMES = ("truth", "generator", "2lpt", "lognormal")


def _public(m: dict) -> dict:
    out = {k: v for k, v in m.items() if k not in _PRIVATE}
    if out.get("halos"):
        out["halos"] = {k: v for k, v in out["halos"].items()}
    return out


def _slab(delta_k: torch.Tensor, n: int) -> np.ndarray:
    """Mean overdensity of the first ``max(1, n/16)`` planes along x, ``(n, n)``."""
    delta = to_real(delta_k, n)
    return delta[: max(1, n // 16)].mean(dim=0).cpu().numpy()


def _compare_one(truth, cfg, b: Binning, model, sim, device, slices: dict | None) -> dict:
    stats, n = cfg["statistics"], b.n
    tm = measure(truth, b, stats)
    c = truth.cosmology
    label = truth.label or f"Ωm {c.Omega_m:.3g}, σ8 {c.sigma8:.3g}"
    entry = {"label": label, "cosmology": c.to_dict(), "seed": truth.seed, "truth_seconds": truth.seconds,
             "truth": _public(tm), "pdf_edges": tm["pdf_edges"], "notes": truth.notes + tm["notes"],
             "contenders": {}}
    if slices is not None:
        slices["truth"] = _slab(tm["delta_k"], n)
    for name in cfg["contenders"]:
        target = None
        if name == "lognormal":
            factor = realization_factor(truth.seed, n, b.box_size, b.kedges, device=tm["pk"].device)
            target = (tm["k"], tm["pk"] / factor)
        mock = make_contender(name, truth.cosmology, truth.redshift, b.box_size, n, truth.seed, model=model,
                              simulation=sim, pm_steps=cfg["pm_few"]["steps"], target=target,
                              allow_extrapolation=cfg["model"]["allow_extrapolation"], device=device,
                              pm=pm_settings(cfg, name))
        m = measure(mock, b, stats, ref=tm)
        entry["contenders"][name] = {"seconds": mock.seconds, "notes": mock.notes + m["notes"],
                                     "measured": _public(m), "compare": compare(tm, m, b)}
        if slices is not None and name in SLICE_NAMES:
            slices[name] = _slab(m["delta_k"], n)
        del mock, m
    return entry


def summarize(per_cosmo: list[dict], cov: dict | None, speed: dict | None, b: Binning, cfg: dict) -> dict:
    """Headline numbers per contender (worst case over cosmologies and seeds; k up to ``summary_kmax * k_Nyq``)."""
    kmax = float(cfg["statistics"]["summary_kmax"]) * b.knyq
    groups = cosmology_groups(per_cosmo)  # the seeds of each cosmology
    out = {}
    for name in cfg["contenders"]:
        rows = [(e["truth"]["k"], e["contenders"][name]["compare"]) for e in per_cosmo]

        def scatter(key, xkey=None):  # worst realization noise of a comparison, over cosmologies with >= 2 seeds
            vals = [seed_scatter([rows[i][1][key] for i in g], rows[g[0]][1][xkey] if xkey else rows[g[0]][0], kmax)
                    for g in groups if all(key in rows[i][1] for i in g)]
            vals = [v for v in vals if v is not None and np.isfinite(v)]
            return max(vals) if vals else None

        def worst(fn):
            vals = [fn(k, c) for k, c in rows]
            vals = [v for v in vals if v is not None and np.isfinite(v)]
            return max(vals) if vals else None

        s = {
            "max_abs_pk_ratio_minus_1": worst(lambda k, c: max_over(c["pk_ratio"] - 1, k, kmax)),
            "max_one_minus_r": worst(lambda k, c: max_over(1 - c["r"], k, kmax)),
            "max_abs_dQ": worst(lambda k, c: max(max_over(c["dq_eq"]), max_over(c["dq_iso"]))),
            "max_pdf_l1": worst(lambda k, c: max(c["pdf_l1"])),
            "max_abs_p0_ratio_minus_1": worst(lambda k, c: max_over(c["p0_ratio"] - 1, k, kmax)
                                              if "p0_ratio" in c else None),
            "max_abs_dp2_over_p0": worst(lambda k, c: max_over(c["dp2_over_p0"], k, kmax)
                                         if "dp2_over_p0" in c else None),
            "max_abs_hmf_ratio_minus_1": worst(lambda k, c: max_over(c["hmf_ratio"] - 1)
                                               if "hmf_ratio" in c else None),
            **{f"max_abs_{key}": worst(lambda k, c, key=key, shift=shift: max_over(c[key] - shift, c["gal_k"], kmax)
                                       if key in c else None)
               for key, shift in (("gal_p0_ratio", 1.0), ("gal_dp2_over_p0", 0.0), ("gal_dp4_over_p0", 0.0))},
            "pk_ratio_seed_scatter": scatter("pk_ratio"), "gal_p0_ratio_seed_scatter": scatter("gal_p0_ratio", "gal_k"),
            "max_abs_mean_pk_ratio_minus_1": None, "cov_diag_mean_abs_rel_err": None, "corr_frobenius": None,
            "seconds_per_mock": float(np.mean([e["contenders"][name]["seconds"] for e in per_cosmo])),
            "seconds_source": "benchmark run", "speedup_vs_pm": None,
        }
        if cov is not None and name in cov["contenders"]:
            s["max_abs_mean_pk_ratio_minus_1"] = max_over(cov["contenders"][name]["mean_ratio"] - 1, cov["k"], kmax)
            s["cov_diag_mean_abs_rel_err"] = cov["contenders"][name]["diag_mean_abs_rel_err"]
            s["corr_frobenius"] = cov["contenders"][name]["corr_frobenius"]
        sp = (speed or {}).get(name, {})
        if "seconds_per_mock" in sp:
            s["seconds_per_mock"], s["seconds_source"] = sp["seconds_per_mock"], "speed (isolated)"
            pm = (speed or {}).get("pm", {})
            if "seconds_per_mock" in pm:
                s["speedup_vs_pm"] = pm["seconds_per_mock"] / sp["seconds_per_mock"]
        out[name] = s
    return out


def run_tier(tier: str, *, config=None, out=None, model=None, device=None, overrides=None, log=None,
             fresh: bool = False) -> dict:
    """Run one tier and write its outputs; returns the results dict (tensors, before JSON conversion).

    Finished pieces are kept in ``<out>/partial`` and reused by the next start of the same run
    (:mod:`benchmarks.resume`); ``fresh`` deletes them first. One run at a time per output folder: a second
    stops at once with a one-line error.
    """
    log = log or (lambda msg: print(f"[benchmarks {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True))
    cfg = load_config(tier, config, overrides)
    out_dir = Path(out) if out is not None else Path("runs") / "benchmarks" / tier
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / "benchmark.lock", f"another benchmark run is writing {out_dir}"):
        return _run(tier, cfg, out_dir, model, device, log, fresh)


def _speed(cfg: dict, store: PartialStore, ngrid: int, box: float, z: float, cosmo, model_path, sim: dict,
           pm_all: dict, dev, log) -> dict:
    """Timings of ``speed.methods`` at ``ngrid``^3 in ``box`` Mpc/h, one stored piece per method (errors are not
    stored, so a failed method is timed again at the next start)."""
    scfg, out = cfg["speed"], {}
    for method in scfg["methods"]:
        scope = {"speed": {k: v for k, v in scfg.items() if k not in ("methods", "enabled")}, "method": method,
                 "ngrid": ngrid, "box_size": box, "recipe": sim, "pm": pm_all, "pm_few": cfg["pm_few"],
                 "cosmology": cosmo.to_dict(), "threads": speed_threads(cfg)}
        got = store.get(f"speed_{method}", scope)
        if got is not None:
            log(f"speed: {method}: reused from {store.dir}")
            out[method] = got
            continue
        t0 = time.perf_counter()
        out.update(measure_speed([method], ngrid=ngrid, box_size=box, redshift=z, cosmology=cosmo,
                                 model_path=model_path, simulation=sim, pm_steps=cfg["pm_few"]["steps"],
                                 repeats=int(scfg["repeats"]), device=str(dev), pm=pm_all,
                                 threads=speed_threads(cfg), isolate=bool(scfg["isolate"]), log=log))
        if "error" not in out[method]:
            store.put(f"speed_{method}", scope, out[method], seconds=time.perf_counter() - t0)
    return out


def _run(tier: str, cfg: dict, out_dir: Path, model, device, log, fresh: bool) -> dict:
    t_start = time.perf_counter()
    dev = resolve_device(device if device is not None else cfg["device"])
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    notes: list[str] = []
    scfg = cfg["speed"]
    need_model = "generator" in cfg["contenders"] or (scfg["enabled"] and "generator" in scfg["methods"])
    mdl, minfo = (resolve_model(model or cfg["model"]["path"], device=dev)
                  if need_model else (None, None))
    if minfo and minfo["note"]:
        notes.append(minfo["note"])
    if minfo:  # the table the generator's halos are graded with: its model's, where it holds for the FoF b
        minfo["halo_calibration"] = calibration_attr(
            usable_calibration(mdl.halo_calibration, cfg["statistics"]["halos"]["linking_length"]))
    tcfg, z, sim = cfg["truth"], float(cfg["redshift"]), dict(cfg["truth"]["simulation"])
    source = tcfg["source"]
    if source == "trainingset":  # load_config checked that truth.path is an existing file
        truths, tnotes = trainingset_truth(tcfg["path"], tcfg["split"], z, tcfg["max_sims"], device=dev)
        notes += tnotes
        n, box = truths[0].ngrid, truths[0].box_size
        plan = [(t.cosmology, t.seed, t) for t in truths]
    elif source == "suite":
        from .suite_truth import suite_recipe, suite_truth

        truths, scfg_suite, tnotes = suite_truth(resolve_repo_path(tcfg["suite"]), z, ngrid=int(cfg["ngrid"]),
                                                 box_size=cfg["box_size"], device=dev, log=log,
                                                 processes=tcfg["processes"])
        notes += tnotes
        sim = suite_recipe(scfg_suite)
        n, box = scfg_suite.ngrid, scfg_suite.box_size
        plan = [(t.cosmology, t.seed, t) for t in truths]
    else:
        n = int(cfg["ngrid"])
        cell = mdl.cell_size if mdl is not None else float(cfg["model"]["fallback_cell_size"])
        box = float(cfg["box_size"]) if cfg["box_size"] else n * cell
        seeds = tcfg["seeds"]
        plan = [(parse_cosmology(c), int(seeds[i % len(seeds)]), None) for i, c in enumerate(tcfg["cosmologies"])]
    cov_sim = dict(cfg["covariance"]["simulation"] or sim)
    pm_all = {name: pm_settings(cfg, name) for name in cfg["pm"]}
    if mdl is not None and abs(box / n - mdl.cell_size) > 1e-6 * mdl.cell_size:
        raise ValueError(f"box_size/ngrid = {box / n:g} Mpc/h differs from the model's cell size {mdl.cell_size:g}")
    b = make_binning(n, box, cfg["statistics"], cfg["covariance"])
    log(f"tier {tier}: {n}^3 particles in {box:g} Mpc/h, z={z}, {len(plan)} cosmologies, device {dev}")
    store = PartialStore(out_dir, common_fingerprint(model_sha256=minfo and minfo["sha256"], device=dev,
                                                     setup={"ngrid": n, "box_size": box, "redshift": z,
                                                            "halo_calibration": minfo and minfo["halo_calibration"],
                                                            "pgd": minfo and minfo["pgd"],
                                                            "velocity_dispersion": minfo and minfo.get(
                                                                "velocity_dispersion")}),
                         log, fresh=fresh)
    per_cosmo, slices = [], {}
    for i, (cosmo, seed, given) in enumerate(plan):
        scope = {"config": {**{k: cfg[k] for k in ("contenders", "pm_few", "pm_base", "pm", "statistics", "threads")},
                            "model": model_scope(cfg)}, "recipe": sim, "cosmology": cosmo.to_dict(), "seed": seed,
                 "truth_file": given.source if given is not None else [], "slices": i == 0}
        piece = store.get(f"cosmology_{i:03d}", scope)
        if piece is not None:
            log(f"cosmology {i + 1}/{len(plan)}: {cosmo}, seed {seed}: reused from {store.dir}")
            per_cosmo.append(piece["entry"])
            slices.update({k: v.numpy() for k, v in piece["slices"].items()})
            continue
        t0 = time.perf_counter()
        LinearPower(cosmo)  # CAMB once per cosmology, outside every timing
        log(f"cosmology {i + 1}/{len(plan)}: {cosmo}, seed {seed}")
        truth = given or simulate_truth(cosmo, seed, n, box, z, sim, device=dev)
        own = {} if i == 0 else None
        per_cosmo.append(_compare_one(truth, cfg, b, mdl, sim, dev, own))
        slices.update(own or {})
        store.put(f"cosmology_{i:03d}", scope, {"entry": per_cosmo[-1], "slices": {
            k: torch.from_numpy(v) for k, v in (own or {}).items()}}, seconds=time.perf_counter() - t0)
        del truth
    ci = int(cfg["covariance"]["cosmology"])
    if not 0 <= ci < len(plan):
        raise ValueError(f"covariance.cosmology={ci} is not an index of the {len(plan)} cosmologies")
    cov = None
    if measures_covariance(cfg):
        log(f"covariance: {cfg['covariance']['realizations']} realizations at cosmology {ci}")
        cov = covariance_ensemble(cfg, b, plan[ci][0], mdl, cov_sim, dev, log, store)
    else:
        notes.append(f"covariance: not measured at z = {z:g} (covariance.redshifts = "
                     f"{cfg['covariance']['redshifts']}): see the run at {cfg['covariance']['redshifts'][0]:g}")
    speed = None
    if scfg["enabled"]:
        ns = int(scfg["ngrid"])
        speed = _speed(cfg, store, ns, ns * (mdl.cell_size if mdl is not None else box / n), z, plan[0][0],
                       minfo["path"] if minfo else None, sim, pm_all, dev, log)
    resumed_note = store.note()
    if resumed_note:
        notes.append(resumed_note)
    results = {
        "schema": "cosmo-emulator-benchmark", "schema_version": 1, "tier": tier, "created": utc_now(),
        "config": {**cfg, "config_file": repo_relative(cfg.get("config_file"))}, "hardware": hardware(dev),
        "versions": versions(), "model": minfo and {**minfo, "path": repo_relative(minfo["path"])},
        "setup": {"ngrid": n, "box_size": box, "redshift": z, "k_fundamental": b.kf, "k_nyquist": b.knyq,
                  "summary_kmax": float(cfg["statistics"]["summary_kmax"]) * b.knyq, "kedges": b.kedges,
                  "k_equilateral": b.k_eq, "k_isosceles": b.k_iso, "thetas": b.thetas, "dk": b.dk,
                  "halo_edges": b.halo_edges, "smoothing_radii": list(b.radii), "truth_source": source,
                  "simulation": sim, "covariance_simulation": cov_sim,
                  "n_cosmologies": len(cosmology_groups(per_cosmo)),
                  "seeds_per_cosmology": min(len(g) for g in cosmology_groups(per_cosmo)),
                  "pm_few_steps": int(cfg["pm_few"]["steps"]),
                  "pm_contenders": pm_all},
        "contenders": list(cfg["contenders"]),
        "summary": summarize(per_cosmo, cov, speed, b, cfg),
        "per_cosmology": per_cosmo, "covariance": cov, "speed": speed, "notes": notes,
    }
    results["wall_seconds"] = time.perf_counter() - t_start  # this start's
    results["resumed"] = store.summary()  # pieces reused from earlier starts: count, their seconds, commits
    write_json(out_dir / "results.json", results)
    np.savez(out_dir / "slices.npz", **slices)
    if cfg["report"]["figures"]:
        from .report import write_report

        write_report(jsonify(results), slices, out_dir)
    log(f"done in {results['wall_seconds']:.1f} s: {out_dir / 'results.json'}, {out_dir / 'report.md'}")
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks``)."""
    from emulator.core.allocator import keep_freed_memory

    keep_freed_memory()  # as the emulator and data-prep commands do (emulator.core.allocator)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--tier", required=True, help=f"one of {', '.join(TIERS)}")
    parser.add_argument("--config", help="YAML file replacing configs/benchmarks/<tier>.yaml")
    parser.add_argument("--out", help="output folder (default runs/benchmarks/<tier>)")
    parser.add_argument("--model", help="model file (default: the embedded model)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the config's)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete the pieces that earlier starts of this run kept in <out>/partial, and start over")
    parser.add_argument("--redshift", type=float, default=None,
                        help="redshift of truth and contenders (default: the config's; a suite truth must hold it)")
    args = parser.parse_args(argv)
    if args.tier not in TIERS:
        parser.error(f"--tier must be one of {', '.join(TIERS)}, got {args.tier!r}")
    try:
        overrides = {"redshift": args.redshift} if args.redshift is not None else None
        run_tier(args.tier, config=args.config, out=args.out, model=args.model, device=args.device,
                 overrides=overrides, fresh=args.fresh)
    except (ValueError, OSError) as exc:  # OSError: a missing file, a busy lock (FileExistsError), a full disk
        print(f"benchmarks: error: {exc}", file=sys.stderr)
        return 2
    return 0
