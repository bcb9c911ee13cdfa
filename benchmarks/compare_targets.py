"""``python -m benchmarks.compare_targets REPORT [REPORT ...]``: models judged by the same targets, side by side.

An adoption decision (a candidate model against the shipped default) reads the Targets tables of two reports of
the same truth. This puts them in one table: one row per target of :data:`benchmarks.targets.TARGETS`, one
column per report, each cell the graded contender's value (``--contender``, default ``generator``) and pass/FAIL
against the first report's thresholds, and a last row counting the targets passed. Every value is
:func:`benchmarks.targets.target_values` of the report's ``results.json`` (or ``results.json.gz``), the numbers
of its own Targets table. Reports that graded different truths (suite, particle grid, box, redshift, recipe, or
cosmologies and seeds) are refused: their numbers do not compare.

Usage::

    python -m benchmarks.compare_targets benchmarks/results/hybrid_cola4_standard \\
        benchmarks/results/design_cpu/test_w12_z0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .results_file import load_results
from .targets import TARGETS, judge, target_values, thresholds

__all__ = ["load_results", "truth_identity", "check_same_truth", "compare_table", "main"]


def truth_identity(res: dict) -> dict:
    """What a report was graded against: particle grid, box (Mpc/h), redshift, truth source, suite and recipe,
    and its (label, seed) realizations in order."""
    st = res["setup"]
    return {"ngrid": st.get("ngrid"), "box_size": st.get("box_size"), "redshift": st.get("redshift"),
            "truth_source": st.get("truth_source"), "suite": (res["config"].get("truth") or {}).get("suite"),
            "recipe": st.get("simulation"),
            "realizations": [(e.get("label"), e.get("seed")) for e in res["per_cosmology"]]}


def _label(res: dict, where: str) -> str:
    model = res.get("model") or {}
    return f"`{model.get('name') or Path(str(model.get('path', '?'))).stem}` ({where})"


def check_same_truth(results: list[dict], wheres: list[str], contender: str = "generator") -> None:
    """Raise a one-line ``ValueError`` unless every report graded the first one's truth (:func:`truth_identity`)
    and has ``contender``; ``wheres`` names the reports in the message."""
    if not results:
        raise ValueError("no reports to compare")
    ref = truth_identity(results[0])
    for res, where in zip(results[1:], wheres[1:]):
        ident = truth_identity(res)
        bad = [k for k in ref if ident[k] != ref[k]]
        if bad:
            raise ValueError(f"{where} graded another truth than {wheres[0]}: {bad[0]} differs "
                             f"({ident[bad[0]]!r:.80} against {ref[bad[0]]!r:.80})")
    for res, where in zip(results, wheres):
        if contender not in (res.get("summary") or {}):
            raise ValueError(f"{where}: no contender {contender!r} (has {sorted(res.get('summary') or {})})")


def compare_table(results: list[dict], wheres: list[str], contender: str = "generator") -> str:
    """Markdown table of ``contender``'s target values in each of ``results`` (one column each, headed by the
    model's name and ``wheres``), judged by the first report's thresholds, with a last row of passes.

    Raises ``ValueError`` when the reports graded different truths or one lacks the contender.
    """
    check_same_truth(results, wheres, contender)
    limits = thresholds(results[0])
    values = [target_values(res, contender) for res in results]
    lines = ["| target | " + " | ".join(_label(r, w) for r, w in zip(results, wheres)) + " |",
             "|" + "---|" * (len(results) + 1)]
    passed = [0] * len(results)
    for key, text, sense in TARGETS:
        t = float(limits.get(key, np.nan))  # thresholds() gives the "per cosmology" rows theirs too
        cells = []
        for i, v in enumerate(values):
            cell, ok = judge(v.get(key), t, sense)
            passed[i] += bool(ok)
            cells.append(cell)
        row = text.format(t=f"{t:g}", n40="edge as in each report", hmf_range="mass range as in each report")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("| targets passed | " + " | ".join(str(n) for n in passed) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks.compare_targets``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_targets", description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", help="report directories (or results.json[.gz] files) of one truth")
    parser.add_argument("--contender", default="generator", help="the graded contender (default: generator)")
    args = parser.parse_args(argv)
    try:
        results = [load_results(p) for p in args.reports]
        print(compare_table(results, list(args.reports), args.contender))
    except ValueError as exc:
        print(f"benchmarks.compare_targets: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
