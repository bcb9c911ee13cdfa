"""``report.md`` and its figures (matplotlib, Agg) from a JSON-converted results dict and the density slabs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .frontier import frontier_figure, frontier_table, quiet_minor_ticks

__all__ = ["write_report", "summary_table"]

COLORS = {"truth": "k", "generator": "C3", "2lpt": "C0", "za": "C2", "pm_few": "C1", "lognormal": "C4"}
LABELS = {"generator": "generator", "2lpt": "2LPT", "za": "ZA", "pm_few": "PM few steps", "lognormal": "lognormal",
          "truth": "truth (PM)", "pm": "truth PM"}


_PM_COLORS = ("C5", "C6", "C7", "C8", "C9", "0.45")


def _pm(res) -> dict:
    return ((res or {}).get("setup") or {}).get("pm_contenders") or {}


def _label(res, name: str) -> str:
    """Display name; a named PM contender shows its steps and force mesh."""
    pm = _pm(res).get(name)
    if pm is not None:
        return f"PM {pm['steps']} steps, {pm.get('force_factor', 2)}x mesh"
    return LABELS.get(name, name)


def _color(res, name: str) -> str:
    if name in COLORS:
        return COLORS[name]
    names = list(_pm(res))
    return _PM_COLORS[names.index(name) % len(_PM_COLORS)] if name in names else "0.4"


def _a(x) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], dtype=float) if x is not None else np.array([])


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


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def _per_k_figure(res, key, ylabel, path, band=None, logy=False, transform=None):
    """One panel per contender, one line per cosmology (named in a shared legend)."""
    import matplotlib.pyplot as plt

    st = res["setup"]
    names = [n for n in res["contenders"] if any(key in e["contenders"][n]["compare"] for e in res["per_cosmology"])]
    if not names:
        return None
    ncol = min(4, len(names))
    nrow = -(-len(names) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol + 1.8, 2.7 * nrow + 0.4), sharex=True, sharey=True,
                             squeeze=False)
    cmap = plt.get_cmap("tab10" if len(res["per_cosmology"]) <= 10 else "viridis")
    for ax, name in zip(axes.flat, names):
        if band is not None:
            ax.axhspan(band[0], band[1], color="0.88")
        for i, e in enumerate(res["per_cosmology"]):
            c = e["contenders"][name]["compare"]
            if key not in c:
                continue
            y = _a(c[key])
            y = transform(y) if transform else y
            k = _a(e["truth"]["k"]) if key != "xi_ratio" else _a(e["truth"]["rsep"])
            colour = cmap(i % 10) if len(res["per_cosmology"]) <= 10 else cmap(i / max(1, len(res["per_cosmology"]) - 1))
            ax.plot(k, y, color=colour, lw=1.0, label=e.get("label") or f"cosmology {i}")
        if key != "xi_ratio":
            ax.axvline(st["summary_kmax"], color="0.5", ls="--", lw=0.8)
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        quiet_minor_ticks(ax)
        ax.set_title(_label(res, name), fontsize=9, color=_color(res, name))
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("k [h/Mpc]" if key != "xi_ratio" else "r [Mpc/h]", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False, title="truth cosmology",
               title_fontsize=7)
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / (3.3 * ncol + 1.8), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _bispectrum_figure(res, path):
    import matplotlib.pyplot as plt

    st, e = res["setup"], res["per_cosmology"][0]
    kf = st["k_fundamental"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    a1.plot(_a(st["k_equilateral"]) / kf, _a(e["truth"]["q_eq"]), "k-o", label="truth")
    a2.plot(_a(st["thetas"]) / np.pi, _a(e["truth"]["q_iso"]), "k-o", label="truth")
    for name in res["contenders"]:
        m = e["contenders"][name]["measured"]
        a1.plot(_a(st["k_equilateral"]) / kf, _a(m["q_eq"]), "-o", ms=3, color=_color(res, name), label=_label(res, name))
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
            ax.plot(x, _a(e["contenders"][name]["measured"]["pdf"][j]), color=_color(res, name), label=_label(res, name))
        ax.set(xlabel="1 + delta", ylabel="PDF", title=f"Gaussian R = {radius:.3g} Mpc/h", yscale="log")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def _halo_figure(res, path):
    """Mass function ratio and halo P(k) ratio to the truth, every cosmology (thin) and their mean (thick);
    a contender without halos is listed, not drawn at an arbitrary floor."""
    import matplotlib.pyplot as plt

    per = [e for e in res["per_cosmology"] if "mass_centres" in (e["truth"].get("halos") or {})]
    if not per:
        return None
    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(13, 3.9))
    th = per[0]["truth"]["halos"]
    a0.loglog(_a(th["mass_centres"]), _a(th["dndlog10m"]), "k-o", ms=3, label=f"truth ({per[0].get('label', '')})")
    none = []
    for name in res["contenders"]:
        ratios, pks = [], []
        for e in per:
            h, t = e["contenders"][name]["measured"].get("halos") or {}, e["truth"]["halos"]
            if "mass_centres" in h and np.nansum(_a(h["dndlog10m"])) > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratios.append(_a(h["dndlog10m"]) / _a(t["dndlog10m"]))
            c = e["contenders"][name]["compare"]
            if "halo_pk_ratio" in c:
                pks.append(_a(c["halo_pk_ratio"]))
        if not ratios or np.nanmean(ratios) < 0.1:  # (almost) no halos: their halo P(k) is shot noise
            none.append(_label(res, name))
            continue
        h0 = per[0]["contenders"][name]["measured"]["halos"]
        a0.loglog(_a(h0["mass_centres"]), np.where(_a(h0["dndlog10m"]) > 0, _a(h0["dndlog10m"]), np.nan), "-",
                  color=_color(res, name), lw=1)
        m = _a(th["mass_centres"])
        for r in ratios:
            a1.plot(m, r, color=_color(res, name), lw=0.5, alpha=0.35)
        a1.plot(m, np.nanmean(ratios, 0), "-o", ms=3, color=_color(res, name), lw=1.6, label=_label(res, name))
        if pks:
            edges = _a(res["setup"].get("halo_edges", []))
            x = np.arange(len(pks[0])) if edges.size == 0 else np.sqrt(edges[1:] * edges[:-1])
            a2.plot(x, np.nanmean(pks, 0), "-o", ms=3, color=_color(res, name), lw=1.6)
    a0.set(xlabel="M [Msun/h]", ylabel="dn/dlog10 M [(h/Mpc)^3]", title="first cosmology")
    a1.set(xscale="log", xlabel="M [Msun/h]", ylabel="n(M) / n_truth(M)", title="all cosmologies (mean thick)")
    a1.axhline(1, color="0.5", lw=0.8)
    a2.set(xlabel="k [h/Mpc]", ylabel="P_halo / P_halo,truth", title="mean over cosmologies")
    a2.axhline(1, color="0.5", lw=0.8)
    for ax in (a0, a1):
        quiet_minor_ticks(ax)
    a1.legend(fontsize=7, title=("< 10% of the halos: " + ", ".join(none)) if none else None, title_fontsize=7)
    return _save(fig, path)


def _covariance_figure(res, path):
    import matplotlib.pyplot as plt

    cov = res["covariance"]
    names = [n for n in res["contenders"]]
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


def write_report(res: dict, slices: dict, out_dir: str | Path) -> Path:
    """Write ``report.md`` and ``figures/*.png`` under ``out_dir``; ``res`` is the JSON-converted results."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    figdir = out_dir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figs = {
        "P(k) ratio": _per_k_figure(res, "pk_ratio", "P / P_truth", figdir / "pk_ratio.png", band=(0.99, 1.01)),
        "Cross-correlation": _per_k_figure(res, "r", "1 - r(k)", figdir / "rk.png", logy=True,
                                           transform=lambda y: np.clip(1 - y, 1e-7, None)),
        "Correlation function ratio": _per_k_figure(res, "xi_ratio", "xi / xi_truth", figdir / "xi_ratio.png",
                                                    band=(0.99, 1.01)),
        "Reduced bispectrum": _bispectrum_figure(res, figdir / "bispectrum.png"),
        "Density PDF": _pdf_figure(res, figdir / "pdf.png"),
        "Halos": _halo_figure(res, figdir / "halos.png"),
        "Redshift-space monopole": _per_k_figure(res, "p0_ratio", "P0 / P0_truth", figdir / "p0_ratio.png",
                                                 band=(0.99, 1.01)),
        "Redshift-space quadrupole": _per_k_figure(res, "dp2_over_p0", "(P2 - P2_truth) / P0_truth",
                                                   figdir / "dp2.png", band=(-0.01, 0.01)),
        "Covariance": _covariance_figure(res, figdir / "covariance.png"),
        "Density slices": _slices_figure(slices, figdir / "slices.png"),
        "Speed and memory": _speed_figure(res, figdir / "speed.png"),
        "Cost-accuracy frontier": frontier_figure(res, figdir / "frontier.png", _label, _color),
    }
    st, hw, model = res["setup"], res["hardware"], res.get("model") or {}
    lines = [
        f"# Benchmark report: tier `{res['tier']}`", "",
        f"{res['created']} · {st['ngrid']}^3 particles in {st['box_size']:g} Mpc/h · z = {st['redshift']:g} · "
        f"{len(res['per_cosmology'])} cosmologies · truth: {st['truth_source']} (PM, {st['simulation']}) · "
        f"wall time {res['wall_seconds']:.0f} s", "",
        f"Hardware: {hw['cpu_model']} ({hw['cpu_count']} CPUs, {hw['torch_threads']} torch threads), device "
        f"`{hw['device']}`{' ' + hw['gpu_name'] if 'gpu_name' in hw else ''}; torch {res['versions']['torch']}, "
        f"code {res['versions']['code']}.", "",
        f"Model: `{model.get('name')}` ({model.get('path')}, sha256 `{model.get('sha256', '')[:16]}…`, cell "
        f"{model.get('cell_size')} Mpc/h).", "",
        "## Summary", "",
        f"Worst case over cosmologies, for k ≤ {st['summary_kmax']:.3g} h/Mpc (k_Nyq/2 of the particle grid "
        f"unless configured); dQ over all equilateral and isosceles triangles; PDF L1 = ∫|p − p_truth| d(1+δ); "
        f"covariance over {len(res['covariance']['seeds'])} realizations (mean |Var_c/Var_t − 1| over bins; "
        f"Frobenius norm of the correlation-matrix difference; sampling noise of a variance ≈ "
        f"{res['covariance']['noise_floor_diag']:.2f}). Time per mock from the isolated speed runs at "
        f"{(res['config']['speed'] or {}).get('ngrid')}^3 when measured.", "",
        summary_table(res), "",
        "### Cost and accuracy (the generator is worth running where no cheaper PM setting is more accurate)", "",
        frontier_table(res, _label), "",
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
