"""``report.md`` and its figures (matplotlib, Agg) from a JSON-converted results dict and the density slabs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .frontier import is_pm, frontier_figure, frontier_table
from .metrics import cosmology_groups
from .targets import targets_table, thresholds
from .report_figures import LABELS, halo_figure, per_k_figure
from .report_figures import as_array as _a
from .report_figures import color as _color
from .report_figures import label as _label
from .report_figures import save as _save
from .report_model import generator_words

__all__ = ["write_report", "summary_table"]

def _fmt(v, spec=".3g") -> str:
    return "–" if v is None else format(v, spec)


def summary_table(res: dict) -> str:
    """Markdown table of the headline numbers per contender."""
    head = ("| contender | max abs(P/P_t - 1) | ensemble max abs(<P>/<P_t> - 1) | max (1 - r) | max abs(dQ) | PDF L1 | "
            "max abs(P0/P0_t - 1) | cov diag rel. err | corr Frobenius | s / mock | speed-up vs PM |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for name, s in res["summary"].items():
        lines.append(
            f"| {_label(res, name)} | {_fmt(s['max_abs_pk_ratio_minus_1'])} | "
            f"{_fmt(s['max_abs_mean_pk_ratio_minus_1'])} | {_fmt(s['max_one_minus_r'])} | "
            f"{_fmt(s['max_abs_dQ'])} | {_fmt(s['max_pdf_l1'])} | {_fmt(s['max_abs_p0_ratio_minus_1'])} | "
            f"{_fmt(s['cov_diag_mean_abs_rel_err'])} | {_fmt(s['corr_frobenius'])} | {_fmt(s['seconds_per_mock'])} | "
            f"{_fmt(s['speedup_vs_pm'])} |")
    pm = (res.get("speed") or {}).get("pm", {})
    if "seconds_per_mock" in pm:
        sim = res["setup"]["simulation"]
        recipe = f"{sim.get('steps')} steps" + (f", refine {sim['refine']}" if sim.get("refine", 1) != 1 else "")
        lines.append(f"| {LABELS['pm']} ({recipe}) | 0 | 0 | 0 | 0 | 0 | 0 | "
                     f"0 | 0 | {_fmt(pm['seconds_per_mock'])} | 1 |")
    return "\n".join(lines)


def galaxy_table(res: dict) -> str | None:
    """HOD galaxies in redshift space: worst multipole differences per contender, with the truth's own error."""
    rows = [(n, s) for n, s in res["summary"].items() if s.get("max_abs_gal_p0_ratio") is not None]
    if not rows:
        return None
    kmax = res["setup"]["summary_kmax"]
    compared = [e["contenders"][rows[0][0]]["compare"] for e in res["per_cosmology"]]  # the truth's errors
    best = [np.asarray(_a(c["gal_sigma_over_p0"]))[:, np.asarray(_a(c["gal_k"])) <= kmax].min(axis=1)
            for c in compared if "gal_k" in c]  # per cosmology, the best bin of each multipole
    err = np.median(best, axis=0)
    ng = [e["truth"]["galaxies"]["n_galaxies"] for e in res["per_cosmology"] if e["truth"].get("galaxies")]
    lines = [f"HOD `{res['config']['statistics']['galaxies']['hod']}` on each method's FoF halos (same HOD seed), "
             f"{min(ng)}–{max(ng)} truth galaxies per box; "
             f"worst case over cosmologies and seeds for k ≤ {kmax:.3g} h/Mpc. "
             f"The truth's own Gaussian error in its best-measured bin (median over cosmologies): σ(P0)/P0 = "
             f"{err[0]:.2f}, σ(P2)/P0 = {err[1]:.2f}, σ(P4)/P0 = {err[2]:.2f}: differences below these are noise.", "",
             "| contender | max abs(P0/P0_t - 1) | max abs(P2 - P2_t)/P0_t | max abs(P4 - P4_t)/P0_t | "
             "seed scatter of P0/P0_t |", "|---|---|---|---|---|"]
    for name, s in rows:
        lines.append(f"| {_label(res, name)} | {_fmt(s['max_abs_gal_p0_ratio'])} | "
                     f"{_fmt(s['max_abs_gal_dp2_over_p0'])} | {_fmt(s['max_abs_gal_dp4_over_p0'])} | "
                     f"{_fmt(s.get('gal_p0_ratio_seed_scatter'))} |")
    return "\n".join(lines)


def _design_line(res: dict) -> str:
    """``N cosmologies × S seeds`` (``× S1–S2 seeds`` when uneven; ``N cosmologies`` for one seed each)."""
    sizes = [len(g) for g in cosmology_groups(res["per_cosmology"])]
    lo, hi = min(sizes), max(sizes)
    return f"{len(sizes)} cosmologies" + ("" if hi == 1 else f" × {lo} seeds" if lo == hi else f" × {lo}–{hi} seeds")


def _seed_mean_worst(res: dict, name: str) -> float | None:
    """Worst, over cosmologies with >= 2 seeds and k <= summary_kmax, abs(mean over seeds of P/P_t - 1): the
    contender's error with most of the realization noise averaged out."""
    per, kmax, vals = res["per_cosmology"], res["setup"]["summary_kmax"], []
    for g in cosmology_groups(per):
        ratios = [_a(per[i]["contenders"][name]["compare"].get("pk_ratio")) for i in g]
        if len(g) < 2 or any(r.size == 0 for r in ratios):
            continue
        k, mean = _a(per[g[0]]["truth"]["k"]), np.mean(ratios, axis=0)
        keep = (k <= kmax) & np.isfinite(mean)
        if keep.any():
            vals.append(float(np.abs(mean[keep] - 1).max()))
    return max(vals) if vals else None


def seed_table(res: dict) -> str | None:
    """Per contender: the worst P/P_t over every realization, the worst of the seed mean and the seed scatter."""
    if max(len(g) for g in cosmology_groups(res["per_cosmology"])) < 2:
        return None
    lines = ["| contender | max abs(P/P_t - 1), every seed | max abs(mean over seeds of P/P_t - 1) | "
             "seed scatter of P/P_t |", "|---|---|---|---|"]
    for name, s in res["summary"].items():
        lines.append(f"| {_label(res, name)} | {_fmt(s['max_abs_pk_ratio_minus_1'])} | "
                     f"{_fmt(_seed_mean_worst(res, name))} | {_fmt(s.get('pk_ratio_seed_scatter'))} |")
    return "\n".join(lines)


def speed_table(res: dict) -> str:
    """Markdown table of time and peak memory per mock, with ratios to 2LPT and to the truth's PM."""
    sp = {k: v for k, v in (res.get("speed") or {}).items() if "seconds_per_mock" in v}
    if not sp:
        return "(speed not measured)"
    t2, tpm = sp.get("2lpt", {}).get("seconds_per_mock"), sp.get("pm", {}).get("seconds_per_mock")
    lines = ["| method | s / mock (median) | fastest | peak RSS [MiB] | baseline RSS [MiB] | peak CUDA [MiB] | "
             "time / 2LPT | PM time / time |", "|---|---|---|---|---|---|---|---|"]
    for name, v in sp.items():
        t = v["seconds_per_mock"]
        lines.append(f"| {_label(res, name)} | {t:.3g} | {_fmt(v.get('fastest_seconds'))} | "
                     f"{_fmt(v.get('peak_rss_mb'), '.0f')} | {_fmt(v.get('baseline_rss_mb'), '.0f')} | "
                     f"{_fmt(v.get('peak_cuda_mb'), '.0f')} | {_fmt(t / t2 if t2 else None)} | "
                     f"{_fmt(tpm / t if tpm else None)} |")
    for name, v in (res.get("speed") or {}).items():
        if "error" in v:
            lines.append(f"| {_label(res, name)} | failed: {v['error']} | | | | | | |")
    return "\n".join(lines)


def _bispectrum_figure(res, path):
    import matplotlib.pyplot as plt

    st, e = res["setup"], res["per_cosmology"][0]
    kf = st["k_fundamental"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    a1.plot(_a(st["k_equilateral"]) / kf, _a(e["truth"]["q_eq"]), "k-o", label="truth")
    a2.plot(_a(st["thetas"]) / np.pi, _a(e["truth"]["q_iso"]), "k-o", label="truth")
    for name in res["contenders"]:
        m = e["contenders"][name]["measured"]
        a1.plot(_a(st["k_equilateral"]) / kf, _a(m["q_eq"]), "-o", ms=3,
                color=_color(res, name), label=_label(res, name))
        a2.plot(_a(st["thetas"]) / np.pi, _a(m["q_iso"]), "-o", ms=3, color=_color(res, name))
    a1.set(xlabel="k / k_f (equilateral)", ylabel="Q")
    a2.set(xlabel=f"theta / pi (k1 = k2 = {st['k_isosceles'] / kf:g} k_f)", ylabel="Q")
    a1.legend(fontsize=8)
    return _save(fig, path)


def _pdf_figure(res, path):
    import matplotlib.pyplot as plt

    st, e = res["setup"], res["per_cosmology"][0]
    radii = st["smoothing_radii"]
    fig, axes = plt.subplots(1, len(radii), figsize=(4.5 * len(radii), 3.8), squeeze=False)
    for j, (ax, radius) in enumerate(zip(axes[0], radii)):
        edges = _a(e["pdf_edges"][j])
        x = 0.5 * (edges[1:] + edges[:-1])
        ax.plot(x, _a(e["truth"]["pdf"][j]), "k-", lw=2, label="truth")
        for name in res["contenders"]:
            ax.plot(x, _a(e["contenders"][name]["measured"]["pdf"][j]),
                    color=_color(res, name), label=_label(res, name))
        ax.set(xlabel="1 + delta", ylabel="PDF", title=f"Gaussian R = {radius:.3g} Mpc/h", yscale="log")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def _speed_threads(res) -> str:
    """``; timings with N thread(s)`` from the speed results (each method's process records its own)."""
    threads = sorted({v["threads"] for v in (res.get("speed") or {}).values() if "threads" in v})
    return f"; timings with {', '.join(map(str, threads))} thread(s)" if threads else ""


def _covariance_words(cov: dict | None) -> str:
    if cov is None:
        return "covariance not measured at this redshift (covariance.redshifts; see the notes)"
    return (f"covariance over {len(cov['seeds'])} realizations (mean |Var_c/Var_t − 1| over bins; Frobenius norm of "
            f"the correlation-matrix difference; sampling noise of a variance ≈ {cov['noise_floor_diag']:.2f})")


def _covariance_figure(res, path):
    import matplotlib.pyplot as plt

    cov = res["covariance"]
    if cov is None:  # not measured at this redshift (covariance.redshifts)
        return None
    names = [n for n in res["contenders"] if n in cov["contenders"]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
    other = "generator" if "generator" in names else names[0]
    for ax, (title, corr) in zip(axes[:2], [("truth", cov["truth"]["corr"]), (_label(res, other),
                                                                              cov["contenders"][other]["corr"])]):
        im = ax.imshow(np.array(corr, dtype=float), vmin=-1, vmax=1, cmap="RdBu_r", origin="lower")
        ax.set_title(f"P(k) correlation: {title}")
        ax.set_xlabel("k bin")
    fig.colorbar(im, ax=axes[:2], shrink=0.8)
    k = _a(cov["k"])
    for name in names:
        axes[2].plot(k, _a(cov["contenders"][name]["diag_rel_err"]), "-o", ms=3, color=_color(res, name),
                     label=_label(res, name))
    axes[2].axhspan(-cov["noise_floor_diag"], cov["noise_floor_diag"], color="0.9", label="sampling noise")
    axes[2].set(xscale="log", xlabel="k [h/Mpc]", ylabel="Var_c / Var_truth - 1")
    axes[2].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _slices_figure(slices, path):
    import matplotlib.pyplot as plt

    names = [n for n in ("truth", "generator", "2lpt", "lognormal") if n in slices]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        img = np.log10(np.clip(1.0 + np.asarray(slices[name]), 1e-2, None))
        ax.imshow(img.T, origin="lower", cmap="magma", vmin=-1, vmax=1.3)
        ax.set_title(LABELS[name])
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def _speed_figure(res, path):
    import matplotlib.pyplot as plt

    sp = {k: v for k, v in (res.get("speed") or {}).items() if "seconds_per_mock" in v}
    if not sp:
        return None
    names = list(sp)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    a1.bar(range(len(names)), [sp[n]["seconds_per_mock"] for n in names], color=[_color(res, n) for n in names])
    a1.set(yscale="log", ylabel="seconds per mock")
    peak = [(sp[n].get("peak_rss_mb") or 0) - (sp[n].get("baseline_rss_mb") or 0) for n in names]
    a2.bar(range(len(names)), peak, color=[_color(res, n) for n in names])
    a2.set(ylabel="peak RSS above baseline [MiB]")
    for ax in (a1, a2):
        ax.set_xticks(range(len(names)), [_label(res, n) for n in names], rotation=30, fontsize=8)
    return _save(fig, path)


def targets_section(res: dict) -> str:
    """The report's Targets table: the generator and the PM contenders (:func:`benchmarks.targets.targets_table`)."""
    return targets_table(res, thresholds(res), _label, [n for n in res["summary"] if n == "generator" or is_pm(res, n)])


def write_report(res: dict, slices: dict, out_dir: str | Path) -> Path:
    """Write ``report.md`` and ``figures/*.png`` under ``out_dir``; ``res`` is the JSON-converted results."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    figdir = out_dir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figs = {
        "P(k) ratio": per_k_figure(res, "pk_ratio", "P / P_truth", figdir / "pk_ratio.png", band=(0.99, 1.01)),
        "Cross-correlation": per_k_figure(res, "r", "1 - r(k)", figdir / "rk.png", logy=True,
                                           transform=lambda y: np.clip(1 - y, 1e-7, None)),
        "Correlation function ratio": per_k_figure(res, "xi_ratio", "xi / xi_truth", figdir / "xi_ratio.png",
                                                    band=(0.99, 1.01)),
        "Reduced bispectrum": _bispectrum_figure(res, figdir / "bispectrum.png"),
        "Density PDF": _pdf_figure(res, figdir / "pdf.png"),
        "Halos": halo_figure(res, figdir / "halos.png"),
        "Redshift-space monopole": per_k_figure(res, "p0_ratio", "P0 / P0_truth", figdir / "p0_ratio.png",
                                                 band=(0.99, 1.01)),
        "Redshift-space quadrupole": per_k_figure(res, "dp2_over_p0", "(P2 - P2_truth) / P0_truth",
                                                   figdir / "dp2.png", band=(-0.01, 0.01)),
        "HOD galaxies: monopole": per_k_figure(res, "gal_p0_ratio", "P0 / P0_truth (galaxies)",
                                               figdir / "gal_p0.png", band=(0.95, 1.05), xkey="gal_k"),
        "HOD galaxies: quadrupole": per_k_figure(res, "gal_dp2_over_p0", "(P2 - P2_truth) / P0_truth (galaxies)",
                                                 figdir / "gal_dp2.png", band=(-0.05, 0.05), xkey="gal_k"),
        "HOD galaxies: hexadecapole": per_k_figure(res, "gal_dp4_over_p0", "(P4 - P4_truth) / P0_truth (galaxies)",
                                                   figdir / "gal_dp4.png", band=(-0.05, 0.05), xkey="gal_k"),
        "Covariance": _covariance_figure(res, figdir / "covariance.png"),
        "Density slices": _slices_figure(slices, figdir / "slices.png"),
        "Speed and memory": _speed_figure(res, figdir / "speed.png"),
        "Cost-accuracy frontier": frontier_figure(res, figdir / "frontier.png", _label, _color),
    }
    st, hw, model = res["setup"], res["hardware"], res.get("model") or {}
    lines = [
        f"# Benchmark report: tier `{res['tier']}`", "",
        f"{res['created']} · {st['ngrid']}^3 particles in {st['box_size']:g} Mpc/h · z = {st['redshift']:g} · "
        f"{_design_line(res)} · truth: {st['truth_source']} (PM, {st['simulation']}) · "
        f"wall time {res['wall_seconds']:.0f} s", "",
        f"Hardware: {hw['cpu_model']} ({hw['cpu_count']} CPUs, {hw['torch_threads']} torch threads"
        f"{_speed_threads(res)}), device "
        f"`{hw['device']}`{' ' + hw['gpu_name'] if 'gpu_name' in hw else ''}; torch {res['versions']['torch']}, "
        f"code {res['versions']['code']}.", "",
        f"Model: `{model.get('name')}` ({model.get('path')}, sha256 `{model.get('sha256', '')[:16]}…`, cell "
        f"{model.get('cell_size')} Mpc/h){generator_words(model)}.", "",
        "## Summary", "",
        f"Worst case over cosmologies and seeds, for k ≤ {st['summary_kmax']:.3g} h/Mpc (k_Nyq/2 of the particle "
        f"grid unless configured); dQ over all equilateral and isosceles triangles; PDF L1 = ∫|p − p_truth| d(1+δ); "
        f"{_covariance_words(res['covariance'])}. Time per mock from the isolated speed runs at "
        f"{(res['config']['speed'] or {}).get('ngrid')}^3 when measured.", "",
        summary_table(res), "",
    ]
    seeds = seed_table(res)
    if seeds:
        lines += [
            "### Realization noise (each contender runs on the truth's seeds)", "",
            "A worst case over many realizations grows with their number. Beside it: the worst of the seed-averaged "
            "ratio (the contender's error with most realization noise averaged out) and the seed scatter, the "
            "largest standard deviation over cosmologies and k of the ratio between a cosmology's seeds (two "
            "seeds: one degree of freedom, so a rough scale of the noise, not an error bar).", "",
            seeds, ""]
    lines += [
        "### Cost and accuracy (the generator is worth running where no cheaper PM setting is more accurate)", "",
        frontier_table(res, _label), "",
        "### Targets (issue 11, section 3: the generator against the converged truth; PM settings for scale)", "",
        targets_section(res), "",
    ]
    gal = galaxy_table(res)
    if gal:
        lines += ["### HOD galaxies in redshift space (monopole, quadrupole, hexadecapole)", "", gal, ""]
    lines += [
        f"### Speed and memory per mock ({(res['config']['speed'] or {}).get('ngrid')}^3 particles, same cell)", "",
        speed_table(res), "",
    ]
    notes = list(res.get("notes") or [])
    for e in res["per_cosmology"]:
        notes += e.get("notes") or []
        for name, c in e["contenders"].items():
            notes += c.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in dict.fromkeys(notes)] + [""]
    lines += [
        "## Method", "",
        "All contenders use the truth's white noise (same seed and grid). Particles are CIC-painted on the particle "
        "grid with interlacing and compensation; the lognormal field (target: the truth's measured P(k) divided by "
        "the seed's binned white-noise power; for the covariance ensemble the truth's ensemble mean) is compared as a "
        "density mesh, without Poisson sampling. r(k) = Re<δ_t δ_c*>/√(P_t P_c). Q is the reduced bispectrum of the "
        "FFT shell estimator (shells of width dk, all sides below 2/3 k_Nyq); PDFs are of the Gaussian-smoothed "
        "1+δ with bins from the truth; halos are FoF (b = 0.2) with ≥ min_members particles and are skipped when the "
        "truth has too few; redshift space moves particles along z by v_z (1+z)/(100 E(z)). The covariance compares "
        "N realizations of each method on the same N seeds as the truth ensemble.", "",
        "Speed: each method runs in a fresh process (unless speed.isolate is false): set-up (imports, CAMB table, "
        "model) is excluded; after one warm-up mock, `repeats` mocks with new seeds are timed and their median is "
        "reported (the fastest too). Peak RSS is the process's VmHWM, reset after set-up where the kernel allows; "
        "the baseline is the resident set after set-up. A mock is particles with velocities, or the lognormal "
        "density mesh (its target: CAMB halofit at the redshift).", "",
    ]
    for title, name in figs.items():
        if name:
            lines += [f"## {title}", "", f"![{title}](figures/{name})", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
