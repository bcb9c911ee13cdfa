"""``python -m benchmarks.frontier_compare --run LABEL=DIR [...] --out FIG.png``: several models on one frontier.

A design decision (which base, size or loss to train) is a choice on the cost-accuracy frontier, but each
benchmark report holds one model. This puts the graded contender (``generator``) of several reports of the same
truth on one figure and one table, beside the PM (and COLA) contenders of the reports that ran them, using the
frontier of :mod:`benchmarks.frontier` unchanged: seconds per mock against the worst P(k) error, the worst
decorrelation 1 - r and the worst mass-function error (k up to each report's summary k in h/Mpc).

Reports of different truths (suite, particle grid, box, redshift, recipe, cosmologies or seeds) are refused, as
by :mod:`benchmarks.compare_targets`. Seconds are each report's own isolated speed measurement: reports timed on
different CPUs are named in a warning, since their costs then do not compare to better than the hosts differ
(or than one host's load varies between runs: ~15%). ``--seconds NAME=S`` replaces a row's cost (a model's label
or a PM contender's name) by one measured elsewhere, e.g. all of them timed alternately in one process.

Usage::

    python -m benchmarks.frontier_compare --run "COLA-4 base=benchmarks/results/design_cpu/val_cola4_z0" \\
        --run "COLA-6 base=benchmarks/results/design_cpu/val_cola6_z0" --out frontier_base.png
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from .compare_targets import check_same_truth
from .frontier import frontier_figure, frontier_table, is_pm
from .report_figures import color as contender_color
from .report_figures import label as contender_label
from .results_file import load_results

__all__ = ["merge_reports", "set_seconds", "main"]

CONTENDER = "generator"
_MODEL_COLORS = ("C0", "C3", "C2", "C4", "navy", "darkred", "olive", "teal")  # none a PM colour


def merge_reports(runs: list[tuple[str, dict]]) -> dict:
    """One results dict holding every run's graded contender under its label, beside the PM contenders of the
    runs that have them (the first run that timed each PM setting gives it).

    ``runs`` is ``[(label, results), ...]``; raises a one-line ``ValueError`` when the truths differ, a label
    repeats or names a PM contender, or a run did not grade the contender.
    """
    labels = [lab for lab, _ in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels repeat: {labels}")
    check_same_truth([res for _, res in runs], labels, CONTENDER)
    merged = copy.deepcopy(runs[0][1])
    merged["summary"] = {}
    for e in merged["per_cosmology"]:
        e["contenders"] = {}
    pm_contenders: dict = {}
    for lab, res in runs:
        pms = [n for n in res["summary"] if is_pm(res, n)]
        pm_contenders.update({n: c for n, c in ((res["setup"].get("pm_contenders") or {}).items())
                              if n not in pm_contenders})
        for name, new in [(CONTENDER, lab)] + [(n, n) for n in pms if n not in merged["summary"]]:
            if new in merged["summary"]:
                raise ValueError(f"label {lab!r} is the name of a PM contender of another report")
            merged["summary"][new] = res["summary"][name]
            for e, src in zip(merged["per_cosmology"], res["per_cosmology"]):
                if name in src["contenders"]:
                    e["contenders"][new] = src["contenders"][name]
    merged["setup"]["pm_contenders"] = pm_contenders
    truth_cost = next(((res.get("speed") or {}).get("pm") for _, res in runs if (res.get("speed") or {}).get("pm")),
                      None)
    merged["speed"] = {"pm": truth_cost}  # the truth recipe's cost, where a report timed it
    return merged


def set_seconds(merged: dict, overrides: dict[str, float]) -> None:
    """Replace the seconds per mock of the named rows (in place); raises ``ValueError`` naming an unknown row."""
    for name, sec in overrides.items():
        if name not in merged["summary"]:
            raise ValueError(f"--seconds {name}: no such row (rows: {sorted(merged['summary'])})")
        if not sec > 0:
            raise ValueError(f"--seconds {name}={sec}: seconds per mock must be positive")
        merged["summary"][name] = {**merged["summary"][name], "seconds_per_mock": float(sec)}


def _seconds_flag(spec: str) -> tuple[str, float]:
    """``(NAME, S)`` of a ``--seconds NAME=S`` flag (split at the last ``=``: a label may hold one)."""
    name, _, sec = spec.rpartition("=")
    try:
        if name:
            return name, float(sec)
    except ValueError:
        pass
    raise ValueError(f"--seconds {spec!r}: expected NAME=S, S in seconds")


def _hosts(runs: list[tuple[str, dict]]) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    for lab, res in runs:
        hw = res.get("hardware") or {}
        hosts.setdefault(f"{hw.get('cpu_model', '?')} ({hw.get('torch_threads', '?')} threads)", []).append(lab)
    return hosts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.frontier_compare", description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="LABEL=DIR",
                   help="a model's label and its report directory (or results.json[.gz]); repeat per model")
    p.add_argument("--out", required=True, help="figure file (PNG); the table goes to standard output")
    p.add_argument("--seconds", action="append", default=[], metavar="NAME=S",
                   help="replace a row's seconds per mock (a model's label or a PM contender's name, e.g. pm12) "
                        "by S, measured elsewhere; repeat per row")
    args = p.parse_args(argv)
    try:
        runs = []
        for spec in args.run:
            lab, sep, path = spec.partition("=")
            if not sep or not lab or not path:
                raise ValueError(f"--run {spec!r}: expected LABEL=DIR")
            runs.append((lab, load_results(path)))
        merged = merge_reports(runs)
        overrides = dict(_seconds_flag(spec) for spec in args.seconds)
        set_seconds(merged, overrides)
        if not Path(args.out).parent.is_dir():
            raise ValueError(f"--out {args.out}: folder {Path(args.out).parent} does not exist")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    models = {lab: _MODEL_COLORS[i % len(_MODEL_COLORS)] for i, (lab, _) in enumerate(runs)}

    def label(res: dict, name: str) -> str:
        return name if name in models else contender_label(res, name)

    def color(res: dict, name: str) -> str:
        return models.get(name) or contender_color(res, name)

    hosts = _hosts(runs)
    if len(hosts) > 1 and not set(merged["summary"]) <= set(overrides):
        print("warning: the reports were timed on different hosts, costs compare only roughly: "
              + "; ".join(f"{h}: {', '.join(labs)}" for h, labs in hosts.items()), file=sys.stderr)
    print(frontier_table(merged, label))
    frontier_figure(merged, args.out, label, color)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
