"""The cost-accuracy frontier: seconds per mock against accuracy for every contender of a benchmark run.

Accuracy is the worst case over the run's cosmologies (``summary`` of :mod:`benchmarks.run`): max |P/P_truth - 1|
and max (1 - r) for k up to the summary k, and max |n_halo/n_halo,truth - 1| over the mass bins that hold at least
10 truth halos (:func:`benchmarks.targets.target_values`; a sparse bin with no halo in a contender would read 100%
whatever its accuracy elsewhere). Cost is the isolated
speed measurement when there is one (fixed threads), else the in-run time. The PM contenders trace the frontier
a simulator offers; the generator is worth using where it lies below that line (the target of the generator
issue: beat every PM setting at its cost), which the figure draws and :func:`frontier_table` states.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .targets import target_values, thresholds

__all__ = ["frontier_rows", "frontier_table", "frontier_figure", "quiet_minor_ticks"]

METRICS = (("max_abs_pk_ratio_minus_1", "max |P/P_t − 1|"), ("max_one_minus_r", "max (1 − r)"),
           ("hmf_populated", "mass fn., max |n_h/n_h,t − 1| (bins ≥ 10 truth halos)"))
#: The target (benchmarks.targets, the config's ``targets``) drawn in each panel of the frontier figure.
TARGET_OF = {"max_abs_pk_ratio_minus_1": "pk_worst", "max_one_minus_r": "one_minus_r",
             "hmf_populated": "hmf"}


def is_pm(res: dict, name: str) -> bool:
    return name == "pm_few" or name in ((res.get("setup") or {}).get("pm_contenders") or {})


def quiet_minor_ticks(ax) -> None:
    """No labels on minor ticks of log axes spanning more than a decade (they overlap there:
    '3x10^-1 4x10^-1 6x10^-1'); call after the data are drawn."""
    from matplotlib.ticker import NullFormatter

    for axis, scale, lim in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()), (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        lo, hi = sorted(lim)
        if scale == "log" and lo > 0 and hi / lo > 10:  # within a decade the minor labels are the only ones
            axis.set_minor_formatter(NullFormatter())


def frontier_rows(res: dict) -> list[dict]:
    """One row per contender: seconds per mock, the three accuracy numbers, and whether it is a PM run."""
    rows = []
    for name, s in res["summary"].items():
        row = {"name": name, "seconds": s.get("seconds_per_mock"), "pm": is_pm(res, name),
               **{key: s.get(key) for key, _ in METRICS}}
        if res.get("per_cosmology"):  # the mass function over bins that hold halos (a sparse bin reads 100%)
            row["hmf_populated"] = target_values(res, name)["hmf"]
        rows.append(row)
    return rows


def _beats_pm(rows: list[dict], row: dict, key: str) -> bool | None:
    """True when no PM contender is both at most as costly and more accurate than ``row`` in ``key``."""
    if row["seconds"] is None or row[key] is None:
        return None
    rivals = [r for r in rows if r["pm"] and r["seconds"] is not None and r[key] is not None
              and r["seconds"] <= row["seconds"]]
    return not any(r[key] < row[key] for r in rivals)


def frontier_table(res: dict, label: Callable[[dict, str], str]) -> str:
    """Markdown table: cost, accuracy and, for the generator, whether any cheaper PM run is more accurate."""
    rows = frontier_rows(res)
    titles = (t.replace("|", "\\|") for _, t in METRICS)  # a bare | inside a cell would split the markdown cell
    head = "| contender | s / mock | " + " | ".join(titles) + " | no cheaper PM is more accurate |"
    lines = [head, "|" + "---|" * (len(METRICS) + 3)]
    for r in sorted(rows, key=lambda r: (r["seconds"] is None, r["seconds"] or 0.0)):
        verdict = ""
        if not r["pm"]:
            v = [_beats_pm(rows, r, key) for key, _ in METRICS]
            verdict = ", ".join("–" if x is None else ("yes" if x else "no") for x in v)
        vals = " | ".join("–" if r[k] is None else f"{r[k]:.3g}" for k, _ in METRICS)
        sec = "–" if r["seconds"] is None else f"{r['seconds']:.3g}"
        lines.append(f"| {label(res, r['name'])} | {sec} | {vals} | {verdict} |")
    return "\n".join(lines)


def frontier_figure(res: dict, path: str | Path, label: Callable[[dict, str], str],
                    color: Callable[[dict, str], str]) -> str | None:
    """Three log-log panels (one per accuracy number) of accuracy against seconds per mock; returns the file
    name, or ``None`` when no contender has both numbers."""
    import matplotlib.pyplot as plt

    rows = [r for r in frontier_rows(res) if r["seconds"]]
    if not rows:
        return None
    targets = thresholds(res)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(12, 3.9))
    for ax, (key, title) in zip(axes, METRICS):
        pts = [r for r in rows if r[key] is not None and r[key] > 0]
        pm = sorted((r for r in pts if r["pm"]), key=lambda r: r["seconds"])
        if pm:  # the simulator's frontier: best accuracy reachable at or below each cost
            best = np.minimum.accumulate([r[key] for r in pm])
            ax.step([r["seconds"] for r in pm], best, where="post", color="0.6", lw=1, ls="--", label="PM frontier")
        for r in pts:
            ax.scatter(r["seconds"], r[key], color=color(res, r["name"]), marker="o" if r["pm"] else "*",
                       s=40 if r["pm"] else 110, zorder=3, label=label(res, r["name"]))
        truth = ((res.get("speed") or {}).get("pm") or {}).get("seconds_per_mock")
        if truth:
            ax.axvline(truth, color="k", lw=0.8, ls=":", label="truth recipe cost")
            ax.axvline(truth / targets["speedup_vs_truth"], color="C3", lw=0.8, ls=":",
                       label=f"target cost (truth / {targets['speedup_vs_truth']:g})")
        ax.axhline(targets[TARGET_OF[key]], color="C3", lw=0.8, ls="-.", label="accuracy target")
        ax.set(xscale="log", yscale="log", xlabel="seconds per mock", title=title)
        if not pts:
            ax.text(0.5, 0.5, "not measured\n(too few halos)", ha="center", va="center", transform=ax.transAxes,
                    fontsize=8, color="0.4")
        quiet_minor_ticks(ax)
    axes[0].set_ylabel("worst case over cosmologies and seeds")
    seen: dict = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path).name
