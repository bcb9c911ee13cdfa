"""Pass/fail of each contender against the accuracy and cost targets of the generator (issue 11, section 3).

Every number is computed from a tier's ``results.json`` (per-cosmology comparisons and the speed runs), so an
old report can be re-judged without rerunning it. Thresholds are the config's ``targets`` (defaults in
:data:`benchmarks.config.DEFAULTS`). A target whose statistic a tier did not measure (no halos, no speed run)
reads "–" rather than pass.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import DEFAULTS

__all__ = ["target_values", "targets_table", "thresholds"]

#: (key, description with the threshold's place as {t}, "max": measured <= t passes / "min": measured >= t)
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("pk_worst", "worst abs(P/P_t − 1), k ≤ k_Nyq/2 ≤ {t}", "max"),
    ("pk_median", "median abs(P/P_t − 1), k ≤ k_Nyq/2 ≤ {t}", "max"),
    ("one_minus_r", "worst 1 − r(k), k ≤ k_Nyq/2 ≤ {t}", "max"),
    ("halo_count", "FoF count above the first mass-bin edge ≥ 40 particles ({n40}) within {t}", "max"),
    ("halo_bias", "large-scale halo bias √(P_hh/P_hh,t), 2 lowest k bins, within {t}", "max"),
    ("hmf", "mass function from 20 particles (bins with ≥ 10 truth halos) within {t}", "max"),
    ("bispectrum_eq", "equilateral Q(k), k ≤ k_Nyq/4, within {t}", "max"),
    ("speedup_vs_truth", "cheaper than the truth run by ≥ {t}×", "min"),
)


def thresholds(res: dict) -> dict[str, float]:
    """The targets a results dict is judged by: the defaults, updated by its config's ``targets``."""
    return {**DEFAULTS["targets"], **((res.get("config") or {}).get("targets") or {})}


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


def _halo_numbers(truth: dict, got: dict, min_particles: float) -> tuple[float, float, float] | None:
    """(|N(≥ edge)/N_t − 1|, |b/b_t − 1|, max |n(M)/n_t − 1| over populated bins), or None without halos."""
    counted = halo_count_ratio(truth, got, min_particles)
    if counted is None:
        return None
    count = abs(counted[0] - 1.0)
    pt, pc = np.asarray(truth.get("pk") or [np.nan] * 2, float), np.asarray(got.get("pk") or [np.nan] * 2, float)
    ratio_pk = np.mean(pc[:2]) / np.mean(pt[:2]) if np.mean(pt[:2]) > 0 else np.nan
    bias = abs(np.sqrt(ratio_pk) - 1.0) if ratio_pk > 0 else np.nan  # no bias from a negative (noise) P_hh
    populated = np.asarray(truth["counts"]) >= 10
    ratio = np.asarray(got["counts"], float)[populated] / np.asarray(truth["counts"], float)[populated]
    hmf = float(np.max(np.abs(ratio - 1.0))) if ratio.size else np.nan
    return count, float(bias), hmf


def target_values(res: dict, name: str, min_particles: float = 40.0) -> dict[str, float | None]:
    """The measured value of every target for contender ``name`` (worst case over cosmologies)."""
    st = res["setup"]
    kmax, n = float(st["summary_kmax"]), int(st["ngrid"])
    k_eq = np.asarray(res["config"]["statistics"]["bispectrum"]["equilateral"], float)  # units of k_f
    pk_dev, one_minus_r, halos, bisp = [], [], [], []
    for e in res["per_cosmology"]:
        c = e["contenders"].get(name)
        if c is None or not c.get("compare"):
            continue
        cmp = c["compare"]
        k = np.asarray(e["truth"]["k"], float)
        sel = (k > 0) & (k <= kmax * (1 + 1e-9))
        pk_dev.append(_abs_dev(cmp["pk_ratio"])[sel])
        one_minus_r.append(1.0 - np.asarray(cmp["r"], float)[sel])
        h = _halo_numbers(e["truth"].get("halos"), (c.get("measured") or {}).get("halos"), min_particles)
        if h is not None:
            halos.append(h)
        q_t = np.asarray(e["truth"].get("q_eq") or [], float)
        if cmp.get("dq_eq") is not None and q_t.size:
            low = k_eq[: q_t.size] <= n / 8.0 * (1 + 1e-9)  # k_Nyq / 4 = (n / 8) k_f
            bisp.append(np.abs(np.asarray(cmp["dq_eq"], float)[low]) / np.abs(q_t[low]))
    out: dict[str, float | None] = {key: None for key, _, _ in TARGETS}
    if pk_dev:
        allp = np.concatenate(pk_dev)
        out.update(pk_worst=float(allp.max()), pk_median=float(np.median(allp)),
                   one_minus_r=float(np.concatenate(one_minus_r).max()))
    if halos:
        arr = np.asarray(halos, float)
        out.update({key: float(np.nanmax(arr[:, i])) if np.isfinite(arr[:, i]).any() else None
                    for i, key in enumerate(("halo_count", "halo_bias", "hmf"))})
    if bisp and np.concatenate(bisp).size:
        out["bispectrum_eq"] = float(np.concatenate(bisp).max())
    speed = res.get("speed") or {}
    mine, truth_run = (speed.get(name) or {}).get("seconds_per_mock"), (speed.get("pm") or {}).get("seconds_per_mock")
    if mine and truth_run:
        out["speedup_vs_truth"] = float(truth_run) / float(mine)
    return out


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
    values = {name: target_values(res, name, min_particles) for name in names}
    lines = ["| target | " + " | ".join(label(res, nm) for nm in names) + " |", "|" + "---|" * (len(names) + 1)]
    for key, text, sense in TARGETS:
        t = float(targets[key])
        cells = []
        for nm in names:
            v = values[nm][key]
            if v is None or not np.isfinite(v):
                cells.append("–")
                continue
            ok = v <= t if sense == "max" else v >= t
            cells.append(f"{v:.3g} {'pass' if ok else 'FAIL'}")
        lines.append(f"| {text.format(t=f'{t:g}', n40=n40)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
