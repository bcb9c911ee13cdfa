"""``python -m benchmarks.model_card MODEL RESULTS_DIR [...]``: an embedded model's card of measured accuracy.

A model card (``emulator/models/<MODEL>.card.json``, beside the model file) records what committed benchmark
reports measured for a model whose file carries no ``validation`` metadata, so that ``emulator info`` can show
it (:mod:`emulator.model.card`) without changing the model's bytes. Each report's ``results.json`` must have
graded this very file (its ``model.sha256``), else nothing is written. The numbers are those of the report:
the worst P(k) error and decorrelation are the summary's stored values, the other targets are computed by
:func:`benchmarks.targets.target_values`, the function that writes the report's "Targets" table from the same
``results.json``; the two sources are checked against each other.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from emulator.core.atomic import atomic_open
from emulator.core.provenance import sha256_file, utc_now
from emulator.model.card import CARD_FORMAT, card_path
from emulator.model.header import MODELS_DIR
from emulator.model.pgd_correction import pgd_from_attr

from .metrics import cosmology_groups
from .results_file import load_results
from .targets import TARGETS, cosmology_halos, halo_count_ratio, snapshot_deviations, target_values, thresholds

__all__ = ["DEFINITIONS", "card_entry", "build_card", "write_card", "main"]

REPO = Path(__file__).resolve().parents[1]
CONTENDER = "generator"  # the benchmark's name for the graded model
HALO_MIN_PARTICLES = 40.0  # FoF count cut of the targets: the first mass-bin edge at or above 40 particles

#: What each number of an entry means (stored in the card). Wavenumbers in h/Mpc, lengths in Mpc/h; every
#: accuracy number is dimensionless, a worst case over all cosmologies and seeds of the report's test suite.
DEFINITIONS = {
    "k_min, k_max": "k range of the P(k) and r(k) numbers in h/Mpc: first bin centre to k_max = k_Nyq/2",
    "worst_abs_dP_over_P": "max |P/P_t - 1| over k <= k_max, cosmologies and seeds (P_t: the truth)",
    "median_abs_dP_over_P": "median of |P/P_t - 1| over the same (cosmology, seed, k) bins",
    "worst_one_minus_r": "max 1 - r(k), r the cross-correlation coefficient with the truth, k <= k_max",
    "halo_count_ratio_min, halo_count_ratio_max": "range of N/N_t, FoF (b = 0.2) halos above the first "
                                                  "mass-bin edge >= 40 particles (edge in halo_count_cut_particles)",
    "halo_count_worst_abs_ratio_minus_1": "max |N/N_t - 1| of the same counts",
    "halo_bias_worst": "max |sqrt(P_hh/P_hh,t) - 1| over the 2 lowest k bins of the halo power",
    "mass_function_worst": "max |n(M)/n_t(M) - 1| over mass bins from 20 particles with >= 10 truth halos",
    "halo_count_ratio_cosmo": "range over the test cosmologies of sum N / sum N_t, the FoF counts above the "
                              ">= 40-particle edge summed over each cosmology's seeds",
    "halo_bias_cosmo": "range over the test cosmologies of the mean over its seeds of sqrt(P_hh/P_hh,t) - 1 "
                       "(signed; 2 lowest k bins)",
    "mass_function_cosmo_worst": "max over cosmologies and mass bins i (by index, from 20 particles) with >= 400 "
                                 "truth halos in the cosmology's seeds of |sum N_i / sum N_t,i - 1|",
    "halo_masses": "the generator's FoF masses as graded: calibrated (the model's halo-mass calibration, as "
                   "emulator generate writes them) or raw (members x particle mass: a report made before it)",
    "particles": "the generator's particles as graded: 'PGD alpha=A' (sharpened by the model's PGD file at the "
                 "entry's redshift, as emulator generate makes them) or 'network' (none applied)",
    "bispectrum_eq_worst": "max |Q - Q_t|/|Q_t|, equilateral triangles with k <= k_Nyq/4",
    "targets": "the report's Targets table: value, threshold and pass (None: not measured)",
    "cosmologies": "per graded cosmology (its parameters), the worst |P/P_t - 1| and 1 - r over its seeds and "
                   "k <= k_max: where in the hull the errors are (emulator generate warns near a corner from them)",
}


def _get(d: dict, keys: str, where: str):
    """``d[k1][k2]...`` for dotted ``keys``; a missing key is a one-line ``ValueError`` naming ``where``."""
    for key in keys.split("."):
        if not isinstance(d, dict) or key not in d or d[key] is None:
            raise ValueError(f"{where}: results.json has no {keys!r}")
        d = d[key]
    return d


def _recipe_label(sim: dict) -> str:
    """E.g. ``PM 40 steps from z = 12, force mesh 2x, 2 simulated particles per axis per output particle``
    (``COLA ...`` for a suite run with ``integrator: cola``)."""
    kind = "COLA" if sim.get("integrator") == "cola" else "PM"
    return (f"{kind} {sim['steps']} steps from z = {float(sim['z_init']):g}, force mesh {sim['force_factor']}x, "
            f"{sim.get('refine', 1)} simulated particles per axis per output particle")


def _halo_count_ratios(res: dict) -> tuple[list[float], list[float]]:
    """N/N_t above the first mass-bin edge >= 40 particles, and that edge in particles, per snapshot (as
    :func:`benchmarks.targets.target_values` selects them)."""
    ratios, cuts = [], []
    for e in res["per_cosmology"]:
        got = ((e["contenders"].get(CONTENDER) or {}).get("measured") or {}).get("halos")
        counted = halo_count_ratio(e["truth"].get("halos"), got, HALO_MIN_PARTICLES)
        if counted is not None and not math.isnan(counted[0]):
            ratios.append(counted[0])
            cuts.append(counted[1])
    return ratios, cuts


def card_entry(folder: str | Path, sha256: str) -> dict:
    """One card entry from the report in ``folder`` (its ``results.json`` or ``results.json.gz``), which must
    have graded the model file of SHA-256 ``sha256``; raises a one-line ``ValueError`` naming the folder
    otherwise or when a number is missing."""
    folder = Path(folder).resolve()
    where = str(folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder)
    try:
        res = load_results(folder)
    except ValueError as exc:
        raise ValueError(f"{where}: no readable results ({exc})") from None
    graded = _get(res, "model.sha256", where)
    if graded != sha256:
        raise ValueError(f"{where}: graded another model file ({_get(res, 'model.path', where)}, sha256 "
                         f"{graded[:16]}...), not this one (sha256 {sha256[:16]}...)")
    st, summary = _get(res, "setup", where), _get(res, f"summary.{CONTENDER}", where)
    for key in ("redshift", "ngrid", "box_size", "summary_kmax", "k_nyquist", "n_cosmologies",
                "seeds_per_cosmology", "simulation"):
        _get(res, f"setup.{key}", where)
    values = target_values(res, CONTENDER, HALO_MIN_PARTICLES)
    for key, stored in (("pk_worst", "max_abs_pk_ratio_minus_1"), ("one_minus_r", "max_one_minus_r")):
        value = _get(res, f"summary.{CONTENDER}.{stored}", where)
        if values[key] is None or not math.isclose(values[key], value, rel_tol=1e-12):
            raise ValueError(f"{where}: the Targets' {key} ({values[key]}) disagrees with summary.{stored}")
    for key in ("pk_median", "halo_count", "halo_bias", "hmf"):
        if values[key] is None:
            raise ValueError(f"{where}: results.json does not measure the target {key!r}")
    ratios, cuts = _halo_count_ratios(res)
    if not ratios or not math.isclose(max(abs(r - 1) for r in ratios), values["halo_count"], rel_tol=1e-12):
        raise ValueError(f"{where}: the FoF count ratios disagree with the Targets' halo_count")
    limits = thresholds(res)
    targets = {}
    for key, _, sense in TARGETS:
        v, t = values[key], float(limits[key])
        targets[key] = {"value": v, "threshold": t, "sense": "<=" if sense == "max" else ">=",
                        "pass": None if v is None else bool(v <= t if sense == "max" else v >= t)}
    per_cosmo = cosmology_halos(res, CONTENDER, HALO_MIN_PARTICLES)
    k = np.asarray(_get(res["per_cosmology"][0], "truth.k", where), float)  # non-empty: target values exist
    sim = st["simulation"]
    return {
        "report": where, "report_created": res.get("created"), "tier": res.get("tier"), "contender": CONTENDER,
        "redshift": float(st["redshift"]), "ngrid": int(st["ngrid"]), "box_size": float(st["box_size"]),
        "k_min": float(k[k > 0].min()), "k_max": float(st["summary_kmax"]), "k_nyquist": float(st["k_nyquist"]),
        "n_cosmologies": int(st["n_cosmologies"]), "seeds_per_cosmology": int(st["seeds_per_cosmology"]),
        "n_snapshots": len(res["per_cosmology"]),
        "truth": {"suite": (res.get("config") or {}).get("truth", {}).get("suite"), "source": st.get("truth_source"),
                  "recipe": sim, "recipe_label": _recipe_label(sim)},
        "worst_abs_dP_over_P": float(summary["max_abs_pk_ratio_minus_1"]),
        "median_abs_dP_over_P": values["pk_median"],
        "worst_one_minus_r": float(summary["max_one_minus_r"]),
        "halo_count_ratio_min": min(ratios), "halo_count_ratio_max": max(ratios),
        "halo_count_worst_abs_ratio_minus_1": values["halo_count"],
        "halo_count_cut_particles": [min(cuts), max(cuts)],
        "halo_bias_worst": values["halo_bias"], "mass_function_worst": values["hmf"],
        "halo_count_ratio_cosmo": _range(c["count_ratio"] for c in per_cosmo),
        "halo_bias_cosmo": _range(c["bias_mean"] for c in per_cosmo),
        "mass_function_cosmo_worst": values["hmf_cosmo"],
        "bispectrum_eq_worst": values["bispectrum_eq"], "targets": targets,
        # the table its halos were graded with (benchmarks.run records none where it does not hold for the FoF b)
        "halo_masses": "raw" if (res.get("model") or {}).get("halo_calibration", "none") == "none" else "calibrated",
        "particles": _particles(res),
        "cosmologies": _per_cosmology_accuracy(res),
    }


def _per_cosmology_accuracy(res: dict) -> list[dict]:
    """Each graded cosmology's parameters with its worst ``|P/P_t - 1|`` and ``1 - r`` over its seeds (k <= k_max)."""
    snaps = list(snapshot_deviations(res, CONTENDER))
    return [{**snaps[idx[0]][0]["cosmology"],
             "worst_abs_dP_over_P": max(float(snaps[i][2].max()) for i in idx),
             "worst_one_minus_r": max(float(snaps[i][3].max()) for i in idx)}
            for idx in cosmology_groups([s[0] for s in snaps])]


def _range(values) -> list[float] | None:
    """``[min, max]`` of the values that are not None, or None."""
    v = [float(x) for x in values if x is not None]
    return [min(v), max(v)] if v else None


def _particles(res: dict) -> str:
    """'PGD alpha=A' where the run's generator was sharpened at its redshift ('A-B' over its cosmologies for a
    strength that follows sigma8), else 'network'."""
    applied = (res.get("model") or {}).get("pgd", "none")
    if applied in (None, "none"):
        return "network"
    pgd = pgd_from_attr(applied)
    z = float(res["setup"]["redshift"])
    alphas = [pgd.alpha_at(z, e["cosmology"]["sigma8"]) for e in res["per_cosmology"]]
    lo, hi = min(alphas), max(alphas)
    if hi <= 0:
        return "network"
    return f"PGD alpha={lo:.3g}" if hi == lo else f"PGD alpha={lo:.3g}-{hi:.3g} (with sigma8)"


def build_card(model: str, folders: list[str | Path]) -> dict:
    """The card of embedded model ``model`` (``emulator/models/<model>.pt``) from the reports in ``folders``."""
    path = MODELS_DIR / f"{model}.pt"
    if not path.is_file():
        raise ValueError(f"no embedded model {model!r} ({path} does not exist)")
    sha256 = sha256_file(path)
    entries = [card_entry(f, sha256) for f in folders]
    return {"format": CARD_FORMAT, "format_version": 1, "model": model, "sha256": sha256, "made": utc_now(),
            "made_by": "python -m benchmarks.model_card", "definitions": DEFINITIONS,
            "entries": sorted(entries, key=lambda e: (e["ngrid"], e["box_size"], e["redshift"], e["report"]))}


def write_card(card: dict) -> Path:
    """Write ``card`` atomically to ``emulator/models/<model>.card.json``; returns the path."""
    path = card_path(MODELS_DIR / f"{card['model']}.pt")
    with atomic_open(path, "w") as fh:
        fh.write(json.dumps(card, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.model_card",
        description="Write emulator/models/MODEL.card.json: the held-out accuracy that benchmark reports measured "
                    "for an embedded model (shown by `emulator info`). Every number is dimensionless (|P/P_t - 1|, "
                    "1 - r, |N/N_t - 1|, ...) and a worst case over the report's test cosmologies and seeds; "
                    "wavenumbers are in h/Mpc (k up to k_Nyq/2 of the particle grid), box sizes in Mpc/h.")
    p.add_argument("model", help="embedded model name: emulator/models/MODEL.pt")
    p.add_argument("results", nargs="+", help="benchmark report folders (with results.json) that graded this model "
                                              "file, e.g. benchmarks/results/hybrid_standard")
    args = p.parse_args(argv)
    try:
        path = write_card(build_card(args.model, args.results))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
