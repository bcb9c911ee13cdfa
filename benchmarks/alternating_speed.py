"""``python -m benchmarks.alternating_speed --report DIR --model LABEL=PATH [...] --pm NAME [...]``: costs that compare.

A report's speed section times one method per run in a fresh process; on one host two such runs of the same model
differ by ~15% (load, frequency), as much as one model differs from the next. This times every model and PM
setting in ONE process, one mock of each in turn per round (so drifts of the host hit all alike), on the report's
truth settings (particle grid, box in Mpc/h, redshift, first cosmology, simulation recipe and PM contenders), and
prints the median seconds per mock with the ``--seconds`` flags of :mod:`benchmarks.frontier_compare`. A
model's mock is its particles and velocities as ``emulator generate`` makes them (PGD and dispersion files
applied where the model has them), as the benchmark's ``generator`` contender times it.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

__all__ = ["time_alternating", "main"]


def time_alternating(runs: dict[str, tuple[str, dict]], cosmology, redshift: float, box_size: float, ngrid: int,
                     repeats: int, seed: int = 1000) -> dict[str, list[float]]:
    """Seconds per mock of each run, ``repeats`` rounds after one warm-up mock each.

    ``runs`` maps a label to ``(contender name, make_contender keywords)`` (the keywords of
    :func:`benchmarks.speed.contender_kwargs`, whose set-up is not timed); ``cosmology`` is an
    :class:`emulator.core.cosmology.Cosmology`, ``box_size`` in Mpc/h, ``ngrid`` particles per side. Returns
    ``{label: [seconds]}``, one per round, in the order timed.
    """
    from .contenders import make_contender

    def mock(label: str, s: int) -> float:
        name, kw = runs[label]
        return make_contender(name, cosmology, redshift, box_size, ngrid, s, **kw).seconds

    for label in runs:
        mock(label, seed - 1)  # warm-up
    times: dict[str, list[float]] = {label: [] for label in runs}
    for r in range(repeats):
        for label in runs:
            times[label].append(mock(label, seed + r))
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.alternating_speed", description=__doc__.split("\n")[0])
    p.add_argument("--report", required=True, help="a benchmark report (directory) whose truth settings to use")
    p.add_argument("--model", action="append", default=[], metavar="LABEL=PATH",
                   help="a model file (or embedded name) and its label; repeat per model")
    p.add_argument("--pm", nargs="*", default=[], help="PM contenders of the report to time (pm_few or names "
                   "of its pm_contenders, e.g. pm6 pm12)")
    p.add_argument("--repeats", type=int, default=7, help="rounds (median reported; default 7)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the reports)")
    p.add_argument("--redshift", type=float, default=None, help="redshift (default: the report's)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        from emulator.core.cosmology import Cosmology

        from .results_file import load_results
        from .speed import contender_kwargs

        if args.repeats < 1:
            raise ValueError(f"--repeats {args.repeats}: must be >= 1")
        res = load_results(args.report)
        setup = res["setup"]
        cosmology = Cosmology(**res["per_cosmology"][0]["cosmology"])  # the report's first (centre) cosmology
        z = float(setup["redshift"] if args.redshift is None else args.redshift)
        pms = setup.get("pm_contenders") or {}
        base = {"ngrid": setup["ngrid"], "box_size": setup["box_size"], "redshift": z, "pm": pms,
                "simulation": setup.get("simulation") or {}, "pm_steps": setup.get("pm_few_steps", 4)}
        specs: dict[str, dict] = {}
        for spec in args.model:
            label, sep, path = spec.partition("=")
            if not sep or not label or not path:
                raise ValueError(f"--model {spec!r}: expected LABEL=PATH")
            specs[label] = {**base, "method": "generator", "model_path": path}
        for name in args.pm:
            if name != "pm_few" and name not in pms:
                raise ValueError(f"--pm {name}: not a PM contender of {args.report} (has pm_few, {sorted(pms)})")
            specs[name] = {**base, "method": name}
        if not specs:
            raise ValueError("nothing to time: give --model and/or --pm")
        device = torch.device("cpu")
        runs = {label: (sp["method"], contender_kwargs(sp, cosmology, device)) for label, sp in specs.items()}
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    times = time_alternating(runs, cosmology, z, float(setup["box_size"]), int(setup["ngrid"]), args.repeats)
    print("| run | median s / mock | fastest | all |\n|---|---|---|---|")
    for label, t in times.items():
        print(f"| {label} | {statistics.median(t):.3f} | {min(t):.3f} | {' '.join(f'{x:.3f}' for x in t)} |")
    print("frontier_compare flags: " + " ".join(f'--seconds "{label}={statistics.median(t):.3f}"'
                                                for label, t in times.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
