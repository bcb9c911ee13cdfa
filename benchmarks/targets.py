"""Pass/fail of each contender against the accuracy and cost targets of the generator (issue 11, section 3).

Every number is computed from a tier's ``results.json`` (per-cosmology comparisons and the speed runs), so an
old report can be re-judged without rerunning it. Thresholds are the config's ``targets`` (defaults in
:data:`benchmarks.config.DEFAULTS`). A target whose statistic a tier did not measure (no halos, no speed run)
reads "–" rather than pass.

Halo targets come twice. The per-realization rows are the worst case over cosmologies and seeds, and in a
(128 Mpc/h)^3 box a high-mass bin holds 10-20 halos, so one box's mass function is noise-dominated (a few halos
crossing a bin edge move it by 20-40%). The "per cosmology" rows take each test cosmology's seeds together, the
error a user of many mocks of one cosmology sees, and report the worst cosmology (summing over cosmologies
instead would let errors of opposite sign cancel): the FoF count above the >= 40-particle edge summed over the
seeds, the mean over the seeds of the signed halo-bias error, and the mass function summed over the seeds in
bins whose summed truth count is at least :data:`POOLED_MIN_HALOS` (so that the truth's own Poisson error,
<= 5%, is at most half the 10% target; the row names the mass range this leaves). Mass bins are summed by index:
each realization's bins are log-spaced from 20 particles to its heaviest truth halo, so a bin's summed ratio is
the truth-count-weighted mean of its seeds' ratios, over slightly different masses. Both kinds use the same
thresholds.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import DEFAULTS
from .metrics import cosmology_groups

__all__ = ["POOLED_MIN_HALOS", "POOLED_OF", "cosmology_halos", "judge", "snapshot_deviations", "target_values",
           "targets_table", "thresholds"]

#: Smallest truth count of a mass bin, summed over a cosmology's seeds, in the "per cosmology" mass function.
POOLED_MIN_HALOS = 400
#: The "per cosmology" halo targets and the per-realization target whose threshold each uses.
POOLED_OF = {"halo_count_cosmo": "halo_count", "halo_bias_cosmo": "halo_bias", "hmf_cosmo": "hmf"}

#: (key, description with the threshold's place as {t}, "max": measured <= t passes / "min": measured >= t)
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("pk_worst", "worst abs(P/P_t − 1), k ≤ k_Nyq/2 ≤ {t}", "max"),
    ("pk_median", "median abs(P/P_t − 1), k ≤ k_Nyq/2 ≤ {t}", "max"),
    ("one_minus_r", "worst 1 − r(k), k ≤ k_Nyq/2 ≤ {t}", "max"),
    ("halo_count", "FoF count above the first mass-bin edge ≥ 40 particles ({n40}) within {t}", "max"),
    ("halo_bias", "large-scale halo bias √(P_hh/P_hh,t), 2 lowest k bins, within {t}", "max"),
    ("hmf", "mass function from 20 particles (bins with ≥ 10 truth halos) within {t}", "max"),
    ("halo_count_cosmo", "FoF count above that edge, each cosmology's seeds together: worst abs(ΣN/ΣN_t − 1) "
                         "within {t}", "max"),
    ("halo_bias_cosmo", "halo bias, each cosmology's seeds averaged: worst abs(mean √(P_hh/P_hh,t) − 1) within {t}",
     "max"),
    ("hmf_cosmo", f"mass function, each cosmology's seeds together (bins with ≥ {POOLED_MIN_HALOS} truth halos: "
                  "{hmf_range}) within {t}", "max"),
    ("bispectrum_eq", "equilateral Q(k), k ≤ k_Nyq/4, within {t}", "max"),
    ("speedup_vs_truth", "cheaper than the truth run by ≥ {t}×", "min"),
)


def thresholds(res: dict) -> dict[str, float]:
    """The targets a results dict is judged by: the defaults, updated by its config's ``targets``; a "per
    cosmology" halo target has its per-realization counterpart's threshold (one number per statistic)."""
    return _with_pooled({**DEFAULTS["targets"], **((res.get("config") or {}).get("targets") or {})})


def _with_pooled(t: dict[str, float]) -> dict[str, float]:
    return {**t, **{key: t[per] for key, per in POOLED_OF.items()}}


def _first_edge_at_least(halos: dict, min_particles: float) -> tuple[np.ndarray, int]:
    """Mass-bin edges in particles and the index of the first one at or above ``min_particles``."""
    edges = np.asarray(halos["mass_edges"]) / float(halos["particle_mass"])
    return edges, int(np.searchsorted(edges, min_particles * (1 - 1e-9)))


def _abs_dev(values) -> np.ndarray:
    return np.abs(np.asarray(values, dtype=float) - 1.0)


def halo_count_ratio(truth: dict, got: dict, min_particles: float) -> tuple[float, float] | None:
    """``(N/N_t, edge)``: the FoF count ratio above the first mass-bin edge at or above ``min_particles``, and
    that edge in particles (the ratio NaN when the truth has no halo there); None without halos or such an edge."""
    if not truth or not got or "counts" not in truth or "counts" not in got:
        return None
    edges, j = _first_edge_at_least(truth, min_particles)
    if j >= len(edges) - 1:
        return None
    nt, nc = float(np.sum(truth["counts"][j:])), float(np.sum(got["counts"][j:]))
    return (nc / nt if nt > 0 else np.nan), float(edges[j])


def _halo_numbers(truth: dict, got: dict, min_particles: float) -> dict | None:
    """One realization's halo comparison, or None without halos: ``count`` (N(≥ edge)/N_t − 1, with ``n``,
    ``n_t`` the two counts), ``bias`` (√(P_hh/P_hh,t) − 1 over the 2 lowest k bins; NaN from a non-positive,
    noise P_hh), ``hmf`` (max |n(M)/n_t − 1| over bins with ≥ 10 truth halos) and the per-bin ``counts``,
    ``counts_t``."""
    counted = halo_count_ratio(truth, got, min_particles)
    if counted is None:
        return None
    j = _first_edge_at_least(truth, min_particles)[1]
    pt, pc = np.asarray(truth.get("pk") or [np.nan] * 2, float), np.asarray(got.get("pk") or [np.nan] * 2, float)
    ratio_pk = np.mean(pc[:2]) / np.mean(pt[:2]) if np.mean(pt[:2]) > 0 else np.nan
    nt, nc = np.asarray(truth["counts"], float), np.asarray(got["counts"], float)
    populated = nt >= 10
    ratio = nc[populated] / nt[populated]
    return {"count": counted[0] - 1.0, "n": float(nc[j:].sum()), "n_t": float(nt[j:].sum()),
            "bias": float(np.sqrt(ratio_pk) - 1.0) if ratio_pk > 0 else np.nan,
            "hmf": float(np.max(np.abs(ratio - 1.0))) if ratio.size else np.nan, "counts": nc, "counts_t": nt}


def _nanmax_abs(values) -> float | None:
    """max |v| over the values that are neither None nor NaN, or None when there is none."""
    arr = np.abs(np.asarray([np.nan if v is None else v for v in values], float))
    return float(np.nanmax(arr)) if np.isfinite(arr).any() else None


def _pooled_bins(counts_t: list) -> tuple[int, np.ndarray]:
    """``(nbins, bins)``: the mass bins (by index) that every seed of a cosmology has, and those among them whose
    truth count summed over the seeds is at least :data:`POOLED_MIN_HALOS`."""
    nbins = min(len(c) for c in counts_t)
    want = np.sum([np.asarray(c[:nbins], float) for c in counts_t], axis=0)
    return nbins, np.flatnonzero(want >= POOLED_MIN_HALOS)


def _pooled(seeds: list[dict]) -> dict:
    """One cosmology's halo numbers with its seeds together, signed: ``count_ratio`` ΣN/ΣN_t above each seed's
    ≥ 40-particle edge; ``bias_mean`` the mean of √(P_hh/P_hh,t) − 1 (NaN seeds left out); ``hmf_worst`` max
    |ΣN_i/ΣN_t,i − 1| over the bins of :func:`_pooled_bins` (None where no bin qualifies)."""
    n, n_t = sum(h["n"] for h in seeds), sum(h["n_t"] for h in seeds)
    bias = np.asarray([h["bias"] for h in seeds], float)
    nbins, sel = _pooled_bins([h["counts_t"] for h in seeds])
    got = np.sum([h["counts"][:nbins] for h in seeds], axis=0)[sel]
    want = np.sum([h["counts_t"][:nbins] for h in seeds], axis=0)[sel]
    return {"count_ratio": n / n_t if n_t > 0 else None,
            "bias_mean": float(np.nanmean(bias)) if np.isfinite(bias).any() else None,
            "hmf_worst": float(np.max(np.abs(got / want - 1.0))) if sel.size else None}


def _halo_targets(groups: list[list[dict]]) -> dict[str, float | None]:
    """Per-realization worst cases and the "per cosmology" worst cases of the halo targets."""
    halos = [h for g in groups for h in g]
    pooled = [_pooled(g) for g in groups]
    return {"halo_count": _nanmax_abs([h["count"] for h in halos]),
            "halo_bias": _nanmax_abs([h["bias"] for h in halos]), "hmf": _nanmax_abs([h["hmf"] for h in halos]),
            "halo_count_cosmo": _nanmax_abs([None if p["count_ratio"] is None else p["count_ratio"] - 1.0
                                             for p in pooled]),
            "halo_bias_cosmo": _nanmax_abs([p["bias_mean"] for p in pooled]),
            "hmf_cosmo": _nanmax_abs([p["hmf_worst"] for p in pooled])}


def _halo_groups(res: dict, name: str, min_particles: float) -> list[list[dict]]:
    """:func:`_halo_numbers` of every realization where contender ``name`` and the truth have halos, grouped by
    cosmology (its seeds)."""
    out = []
    for group in cosmology_groups(res["per_cosmology"]):
        seeds = []
        for i in group:
            e = res["per_cosmology"][i]
            c = e["contenders"].get(name)
            if c is None or not c.get("compare"):
                continue
            h = _halo_numbers(e["truth"].get("halos"), (c.get("measured") or {}).get("halos"), min_particles)
            if h is not None:
                seeds.append(h)
        if seeds:
            out.append(seeds)
    return out


def cosmology_halos(res: dict, name: str, min_particles: float = 40.0) -> list[dict]:
    """Contender ``name``'s halo numbers per test cosmology, its seeds together and signed (see
    :func:`_pooled`); empty without halos."""
    return [_pooled(g) for g in _halo_groups(res, name, min_particles)]


def snapshot_deviations(res: dict, name: str):
    """For each graded snapshot of contender ``name``: ``(per_cosmology entry, its compare dict, |P/P_t - 1|,
    1 - r)``, the last two over the bins with 0 < k <= k_Nyq/2 (the P(k) and r(k) targets' range)."""
    kmax = float(res["setup"]["summary_kmax"])
    for e in res["per_cosmology"]:
        c = e["contenders"].get(name)
        if c is None or not c.get("compare"):
            continue
        cmp = c["compare"]
        k = np.asarray(e["truth"]["k"], float)
        sel = (k > 0) & (k <= kmax * (1 + 1e-9))
        yield e, cmp, _abs_dev(cmp["pk_ratio"])[sel], 1.0 - np.asarray(cmp["r"], float)[sel]


def target_values(res: dict, name: str, min_particles: float = 40.0) -> dict[str, float | None]:
    """The measured value of every target for contender ``name``: worst cases over the cosmologies and seeds (the
    "per cosmology" halo rows: over the cosmologies, each with its seeds together)."""
    n = int(res["setup"]["ngrid"])
    k_eq = np.asarray(res["config"]["statistics"]["bispectrum"]["equilateral"], float)  # units of k_f
    pk_dev, one_minus_r, bisp = [], [], []
    for e, cmp, dev, omr in snapshot_deviations(res, name):
        pk_dev.append(dev)
        one_minus_r.append(omr)
        q_t = np.asarray(e["truth"].get("q_eq") or [], float)
        if cmp.get("dq_eq") is not None and q_t.size:
            low = k_eq[: q_t.size] <= n / 8.0 * (1 + 1e-9)  # k_Nyq / 4 = (n / 8) k_f
            bisp.append(np.abs(np.asarray(cmp["dq_eq"], float)[low]) / np.abs(q_t[low]))
    out: dict[str, float | None] = {key: None for key, _, _ in TARGETS}
    if pk_dev:
        allp = np.concatenate(pk_dev)
        out.update(pk_worst=float(allp.max()), pk_median=float(np.median(allp)),
                   one_minus_r=float(np.concatenate(one_minus_r).max()))
    groups = _halo_groups(res, name, min_particles)
    if groups:
        out.update(_halo_targets(groups))
    if bisp and np.concatenate(bisp).size:
        out["bispectrum_eq"] = float(np.concatenate(bisp).max())
    speed = res.get("speed") or {}
    mine, truth_run = (speed.get(name) or {}).get("seconds_per_mock"), (speed.get("pm") or {}).get("seconds_per_mock")
    if mine and truth_run:
        out["speedup_vs_truth"] = float(truth_run) / float(mine)
    return out


def _hmf_range(res: dict) -> str:
    """The masses the "per cosmology" mass function covers, from the truth's counts alone (the bins of
    :func:`_pooled_bins` in each cosmology): "20 to X particles", X the upper edge of the last such bin, or
    "20 to X1–X2 particles" where X differs between cosmologies; "none" where no bin qualifies."""
    tops = []
    for group in cosmology_groups(res["per_cosmology"]):
        halos = [h for i in group if "counts" in (h := res["per_cosmology"][i]["truth"].get("halos") or {})]
        if halos:
            sel = _pooled_bins([h["counts"] for h in halos])[1]
            if sel.size:
                tops.append(max(_first_edge_at_least(h, 0)[0][sel[-1] + 1] for h in halos))
    if not tops:
        return "none"
    lo, hi = round(min(tops)), round(max(tops))
    return f"20 to {lo} particles" if lo == hi else f"20 to {lo}–{hi} particles"


def judge(value: float | None, threshold: float, sense: str) -> tuple[str, bool | None]:
    """``(cell, passed)`` of one measured target: the value to 3 digits and pass/FAIL against ``threshold``
    (``sense`` "max": passes at or below it, "min": at or above), or ``("–", None)`` when either is unmeasured."""
    if value is None or not np.isfinite(value) or not np.isfinite(threshold):
        return "–", None
    ok = value <= threshold if sense == "max" else value >= threshold
    return f"{value:.3g} {'pass' if ok else 'FAIL'}", bool(ok)


def targets_table(res: dict, targets: dict[str, float], label: Callable[[dict, str], str],
                  names: list[str] | None = None, min_particles: float = 40.0) -> str:
    """Markdown table: one row per target, one column per contender, each cell the value and pass/fail."""
    names = names or list(res["summary"])
    cuts = []  # the mass bins are set per cosmology: the cut differs between them
    for e in res["per_cosmology"]:
        h = e["truth"].get("halos") or {}
        if "mass_edges" in h:
            edges, j = _first_edge_at_least(h, min_particles)
            cuts.append(float(edges[min(j, len(edges) - 1)]))
    n40 = "no halos" if not cuts else (f"{min(cuts):.0f}" if round(min(cuts)) == round(max(cuts))
                                       else f"{min(cuts):.0f}–{max(cuts):.0f}") + " particles"
    targets, hmf_range = _with_pooled(targets), _hmf_range(res)
    values = {name: target_values(res, name, min_particles) for name in names}
    lines = ["| target | " + " | ".join(label(res, nm) for nm in names) + " |", "|" + "---|" * (len(names) + 1)]
    for key, text, sense in TARGETS:
        t = float(targets[key])
        cells = [judge(values[nm][key], t, sense)[0] for nm in names]
        lines.append(f"| {text.format(t=f'{t:g}', n40=n40, hmf_range=hmf_range)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
