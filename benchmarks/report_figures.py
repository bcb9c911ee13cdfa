"""Shared figure helpers of the benchmark report: contender colours and labels, the per-k panels (one per
contender, one line per named cosmology) and the halo figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .frontier import quiet_minor_ticks
from .metrics import cosmology_groups

__all__ = ["COLORS", "LABELS", "as_array", "label", "color", "per_k_figure", "halo_figure", "save"]

COLORS = {"truth": "k", "generator": "C3", "2lpt": "C0", "za": "C2", "pm_few": "C1", "lognormal": "C4"}
LABELS = {"generator": "generator", "2lpt": "2LPT", "za": "ZA", "pm_few": "PM few steps", "lognormal": "lognormal",
          "truth": "truth (PM)", "pm": "truth PM"}


_PM_COLORS = ("C5", "C6", "C7", "C8", "C9", "0.45")
_SEED_STYLES = ("-", "--", ":", "-.")


def _pm(res) -> dict:
    return ((res or {}).get("setup") or {}).get("pm_contenders") or {}


def label(res, name: str) -> str:
    """Display name; a named PM (or COLA) contender shows its steps and force mesh."""
    pm = _pm(res).get(name)
    if pm is not None:
        kind = "COLA" if pm.get("integrator") == "cola" else "PM"
        return f"{kind} {pm['steps']} steps, {pm.get('force_factor', 2)}x mesh"
    return LABELS.get(name, name)


def color(res, name: str) -> str:
    if name in COLORS:
        return COLORS[name]
    names = list(_pm(res))
    return _PM_COLORS[names.index(name) % len(_PM_COLORS)] if name in names else "0.4"


def as_array(x) -> np.ndarray:
    """A JSON list (``None`` for missing) as a float array with NaN."""
    return np.array([np.nan if v is None else v for v in x], dtype=float) if x is not None else np.array([])


def save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def per_k_figure(res, key, ylabel, path, band=None, logy=False, transform=None, xkey=None):
    """One panel per contender, one colour per cosmology (named in a shared legend) and one line style per seed;
    ``xkey``: the comparison entry holding the bins' k (default: the truth's P(k) bins). Each panel has its own
    y range, so one contender far off does not flatten the others."""
    import matplotlib.pyplot as plt

    st = res["setup"]
    names = [n for n in res["contenders"] if any(key in e["contenders"][n]["compare"] for e in res["per_cosmology"])]
    if not names:
        return None
    ncol = min(4, len(names))
    nrow = -(-len(names) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol + 1.8, 2.7 * nrow + 0.4), sharex=True, sharey=False,
                             squeeze=False)
    per = res["per_cosmology"]
    groups = cosmology_groups(per)  # colour per cosmology, line style per seed
    style = {i: (gi, si) for gi, g in enumerate(groups) for si, i in enumerate(g)}
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "viridis")
    for ax, name in zip(axes.flat, names):
        if band is not None:
            ax.axhspan(band[0], band[1], color="0.88")
        for i, e in enumerate(per):
            c = e["contenders"][name]["compare"]
            if key not in c:
                continue
            y = as_array(c[key])
            y = transform(y) if transform else y
            k = as_array(c[xkey] if xkey else e["truth"]["k"] if key != "xi_ratio" else e["truth"]["rsep"])
            gi, si = style[i]
            colour = cmap(gi % 10) if len(groups) <= 10 else cmap(gi / max(1, len(groups) - 1))
            ax.plot(k, y, color=colour, lw=1.0, ls=_SEED_STYLES[si % len(_SEED_STYLES)],
                    label=(e.get("label") or f"cosmology {gi}") if si == 0 else "_nolegend_")
        if key != "xi_ratio":
            ax.axvline(st["summary_kmax"], color="0.5", ls="--", lw=0.8)
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        quiet_minor_ticks(ax)
        ax.set_title(label(res, name), fontsize=9, color=color(res, name))
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("k [h/Mpc]" if key != "xi_ratio" else "r [Mpc/h]", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    seeds = max(len(g) for g in groups)
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False, title_fontsize=7,
               title="truth cosmology" + ("\n(solid, dashed, dotted:\nfirst, second, third seed)" if seeds > 1 else ""))
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / (3.3 * ncol + 1.8), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def halo_figure(res, path):
    """Mass function ratio and halo P(k) ratio to the truth, every cosmology (thin) and their mean (thick);
    a contender without halos is listed, not drawn at an arbitrary floor."""
    import matplotlib.pyplot as plt

    per = [e for e in res["per_cosmology"] if "mass_centres" in (e["truth"].get("halos") or {})]
    if not per:
        return None
    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(13, 3.9))
    th = per[0]["truth"]["halos"]
    a0.loglog(as_array(th["mass_centres"]), as_array(th["dndlog10m"]), "k-o", ms=3,
              label=f"truth ({per[0].get('label', '')})")
    none = []
    for name in res["contenders"]:
        ratios, pks = [], []
        for e in per:
            h, t = e["contenders"][name]["measured"].get("halos") or {}, e["truth"]["halos"]
            if "mass_centres" in h and np.nansum(as_array(h["dndlog10m"])) > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratios.append(as_array(h["dndlog10m"]) / as_array(t["dndlog10m"]))
            c = e["contenders"][name]["compare"]
            if "halo_pk_ratio" in c:
                pks.append(as_array(c["halo_pk_ratio"]))
        if not ratios or np.nanmean(ratios) < 0.1:  # (almost) no halos: their halo P(k) is shot noise
            none.append(label(res, name))
            continue
        h0 = per[0]["contenders"][name]["measured"]["halos"]
        dn0 = as_array(h0["dndlog10m"])
        a0.loglog(as_array(h0["mass_centres"]), np.where(dn0 > 0, dn0, np.nan), "-",
                  color=color(res, name), lw=1)
        m = as_array(th["mass_centres"])
        for r in ratios:
            a1.plot(m, r, color=color(res, name), lw=0.5, alpha=0.35)
        a1.plot(m, np.nanmean(ratios, 0), "-o", ms=3, color=color(res, name), lw=1.6, label=label(res, name))
        if pks:
            edges = as_array(res["setup"].get("halo_edges", []))
            x = np.arange(len(pks[0])) if edges.size == 0 else np.sqrt(edges[1:] * edges[:-1])
            a2.plot(x, np.nanmean(pks, 0), "-o", ms=3, color=color(res, name), lw=1.6)
    a0.set(xlabel="M [Msun/h]", ylabel="dn/dlog10 M [(h/Mpc)^3]", title="first cosmology")
    a1.set(xscale="log", xlabel="M [Msun/h]", ylabel="n(M) / n_truth(M)", title="all cosmologies (mean thick)")
    a1.axhline(1, color="0.5", lw=0.8)
    a2.set(xlabel="k [h/Mpc]", ylabel="P_halo / P_halo,truth", title="mean over cosmologies")
    a2.axhline(1, color="0.5", lw=0.8)
    for ax in (a0, a1):
        quiet_minor_ticks(ax)
    a1.legend(fontsize=7, title=("< 10% of the halos: " + ", ".join(none)) if none else None, title_fontsize=7)
    return save(fig, path)
