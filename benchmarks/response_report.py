"""Report and figure of :mod:`benchmarks.response` (from its JSON-converted results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .frontier import quiet_minor_ticks
from .report_model import pgd_words

__all__ = ["write_response_report"]

LABELS = {"generator": "generator", "2lpt": "2LPT", "za": "ZA", "pm6": "PM 6 steps, 2x", "pm12": "PM 12 steps, 2x",
          "pm20_3x": "PM 20 steps, 3x", "halofit": "halofit (CAMB)", "linear": "linear theory", "truth": "truth"}
STYLE = {"truth": ("k", "-", 2.2), "generator": ("C3", "-", 1.6), "2lpt": ("C0", ":", 1.2), "pm6": ("C1", "--", 1.0),
         "pm12": ("C2", "--", 1.2), "pm20_3x": ("C4", "--", 1.0), "halofit": ("0.5", "-.", 1.2),
         "linear": ("0.7", ":", 1.0)}


def _table(block: dict, params: list[str]) -> str:
    head = "| method | " + " | ".join(f"d ln P / d {p}" for p in params) + " |"
    lines = [head, "|" + "---|" * (len(params) + 1)]
    for name, per in block["summary"].items():
        cells = [f"{per[p]['max_abs_diff']:.3g} ({100 * per[p]['relative']:.0f}%)" for p in params]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(res: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    zs = list(res["redshifts"])
    params = list(res["redshifts"][zs[0]]["steps"])
    fig, axes = plt.subplots(len(zs), len(params), figsize=(3.2 * len(params), 2.6 * len(zs)), squeeze=False,
                             sharex=True)
    for i, z in enumerate(zs):
        block = res["redshifts"][z]
        k = np.asarray(block["k"])
        sel = k <= block["kmax"] * (1 + 1e-9)
        for j, p in enumerate(params):
            ax = axes[i][j]
            for name in ["linear", "halofit", *[c for c in res["contenders"]], "truth"]:
                if name not in block["response"]:
                    continue
                color, ls, lw = STYLE.get(name, ("C5", "-", 1.0))
                ax.plot(k[sel], np.asarray(block["response"][name][p])[sel], color=color, ls=ls, lw=lw,
                        label=LABELS.get(name, name))
            ax.set_xscale("log")
            quiet_minor_ticks(ax)
            ax.set_title(f"d ln P / d {p}, z = {z}", fontsize=9)
            if i == len(zs) - 1:
                ax.set_xlabel("k [h/Mpc]")
    handles, labels = axes[0][0].get_legend_handles_labels()  # one legend below the panels: it hides no curve
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.045, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_response_report(res: dict, out_dir: str | Path) -> Path:
    """Write ``report.md`` and ``response.png`` under ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    _figure(res, out_dir / "response.png")
    hw, model = res["hardware"], res.get("model") or {}
    first = next(iter(res["redshifts"].values()))
    params = list(first["steps"])
    lines = [
        "# Parameter response: d ln P(k) / d θ against the converged truth", "",
        f"{res['created']} · suite `{res['suite']}` (centre {first['centre']}, one seed, ± steps "
        + ", ".join(f"{p} {d:g}" for p, d in first["steps"].items()) + f") · wall time {res['wall_seconds']:.0f} s",
        "",
        f"Hardware: {hw['cpu_model']} ({hw['cpu_count']} CPUs, {hw['torch_threads']} torch threads); torch "
        f"{res['versions']['torch']}, code {res['versions']['code']}. Model: `{model.get('name')}` "
        f"(sha256 `{str(model.get('sha256', ''))[:16]}…`){pgd_words(model)}.", "",
        "Each cell: max over k ≤ k_Nyq/2 of |R_method − R_truth|, R = d ln P / d θ by central differences on "
        "the same phases, and in brackets that as a percentage of max |R_truth|. Linear theory and halofit "
        "(CAMB) are analytic references, not simulations.", "",
    ]
    lines += [f"{line[:1].upper()}{line[1:]}; the wall time is this start's.\n" for line in res.get("resumed") or []]
    for z, block in res["redshifts"].items():
        lines += [f"## z = {z} (k ≤ {block['kmax']:.3g} h/Mpc)", "", _table(block, params), ""]
    lines += ["![response](response.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
