"""Parameter response of the matter power spectrum: ``d ln P(k) / d theta`` of each method against the truth.

What inference needs from a mock generator is the right *derivative* of its statistics with respect to each
parameter, not only the right value at one point. The truth is a suite with the centre of the hull and a plus and
a minus step in each parameter, all on the same phases (``configs/suite_converged_response.yaml``: the candidate
converged recipe, seed 50000), so cosmic variance cancels in the central difference

    R_theta(k) = [ln P(k; theta + d) - ln P(k; theta - d)] / (2 d).

Each contender (the generator, 2LPT, named PM settings of the standard tier) is run on the same cosmologies and
seed; CAMB's linear theory and halofit give the analytic responses for scale. The summary per parameter and
redshift is ``max_k |R_c - R_t|`` over k <= k_Nyq / 2 and the same divided by ``max_k |R_t|``.

Usage::

    python -m benchmarks.response [--model PATH] [--out DIR] [--redshifts 0 0.5 1]

Writes ``DIR/results.json``, ``DIR/report.md`` and ``DIR/response.png`` (default ``runs/benchmarks/response``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emulator.core.cosmology import PARAMETER_NAMES
from emulator.core.fourier import nyquist
from emulator.core.power import linear_power, nonlinear_power
from emulator.core.stats import k_edges, power_spectrum_k

from .config import load_config, pm_settings, resolve_repo_path
from .contenders import make_contender, resolve_model
from .env import hardware, jsonify, repo_relative, resolve_device, utc_now, versions, write_json
from .metrics import mock_delta_k
from .suite_truth import suite_recipe, suite_truth

__all__ = ["response_curves", "run_response", "main"]

SUITE = "configs/suite_converged_response.yaml"
CONTENDERS = ("generator", "2lpt", "pm6", "pm12", "pm20_3x")


def _pairs(cosmologies: dict[str, dict]) -> dict[str, tuple[str, str, float]]:
    """``parameter -> (plus label, minus label, step)`` from the suite's ``<param>_plus`` / ``_minus`` entries."""
    out = {}
    for p in PARAMETER_NAMES:
        plus, minus = f"{p}_plus", f"{p}_minus"
        if plus in cosmologies and minus in cosmologies:
            d = 0.5 * (cosmologies[plus][p] - cosmologies[minus][p])
            if not d > 0:
                raise ValueError(f"{SUITE}: {plus} must have the larger {p} (got step {d})")
            out[p] = (plus, minus, d)
    if not out:
        raise ValueError("the response suite has no <parameter>_plus / <parameter>_minus pair")
    return out


def response_curves(pk: dict[str, np.ndarray], pairs: dict[str, tuple[str, str, float]]) -> dict[str, np.ndarray]:
    """Central differences ``d ln P / d theta`` per parameter from ``label -> P(k)``."""
    return {p: (np.log(pk[plus]) - np.log(pk[minus])) / (2.0 * d) for p, (plus, minus, d) in pairs.items()}


def run_response(*, suite: str = SUITE, redshifts=(0.0, 0.5, 1.0), model: str | None = None,
                 out: str | Path = "runs/benchmarks/response", contenders=CONTENDERS, device: str = "cpu",
                 log=None) -> dict:
    """Measure every response at every redshift; write results, report and figure; return the results."""
    log = log or (lambda msg: print(f"[response {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    cfg = load_config("standard")  # statistics, PM settings and threads of the standard tier
    torch.set_num_threads(int(cfg["threads"] or 1))
    dev = resolve_device(device)
    mdl, minfo = resolve_model(model or cfg["model"]["path"], device=dev) if "generator" in contenders else (None, None)
    model_info = minfo and {k: (repo_relative(v) if k == "path" else v) for k, v in minfo.items() if k != "note"}
    res: dict = {"schema": "cosmo-emulator-response", "created": utc_now(), "suite": suite, "hardware": hardware(dev),
                 "versions": versions(), "model": model_info,
                 "contenders": list(contenders), "redshifts": {}}
    for z in redshifts:
        truths, scfg, notes = suite_truth(resolve_repo_path(suite), float(z), device=dev, log=log)
        n, box = scfg.ngrid, scfg.box_size
        kedges, knyq = k_edges(n, box), nyquist(n, box)  # the standard tier's P(k) bins
        cosmos = {t.label: t.cosmology.to_dict() for t in truths}
        pairs = _pairs(cosmos)
        pk: dict[str, dict[str, np.ndarray]] = {"truth": {}}
        k = None
        for t in truths:
            ps = power_spectrum_k(mock_delta_k(t, cfg["statistics"]), box, n, kedges=kedges)
            k = ps.k.cpu().numpy()
            pk["truth"][t.label] = ps.power.cpu().numpy()
            for name in contenders:
                mock = make_contender(name, t.cosmology, float(z), box, n, t.seed, model=mdl,
                                      simulation=suite_recipe(scfg), pm=pm_settings(cfg, name), device=dev)
                ps = power_spectrum_k(mock_delta_k(mock, cfg["statistics"]), box, n, kedges=kedges)
                pk.setdefault(name, {})[t.label] = ps.power.cpu().numpy()
            for name, fn in (("linear", linear_power), ("halofit", nonlinear_power)):
                pk.setdefault(name, {})[t.label] = np.asarray(fn(t.cosmology, k, float(z)), dtype=np.float64)
            log(f"z = {z:g}: {t.label} done")
        kmax = 0.5 * knyq
        sel = k <= kmax * (1 + 1e-9)
        curves = {name: response_curves(p, pairs) for name, p in pk.items()}
        summary = {}
        for name in curves:
            if name == "truth":
                continue
            summary[name] = {}
            for p in pairs:
                diff = np.abs(curves[name][p][sel] - curves["truth"][p][sel])
                scale = np.abs(curves["truth"][p][sel]).max()
                summary[name][p] = {"max_abs_diff": float(diff.max()), "relative": float(diff.max() / scale)}
        res["redshifts"][f"{float(z):g}"] = {
            "k": k, "kmax": kmax, "steps": {p: d for p, (_, _, d) in pairs.items()}, "notes": notes,
            "response": curves, "summary": summary, "centre": cosmos.get("centre"),
        }
    res["wall_seconds"] = time.perf_counter() - t0
    res = jsonify(res)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", res)
    from .response_report import write_response_report

    write_response_report(res, out)
    log(f"done in {res['wall_seconds']:.0f} s: {out / 'report.md'}")
    return res


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks.response``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.response", description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default=SUITE, help="response suite YAML (centre and +/- steps, one seed)")
    parser.add_argument("--model", help="model file or embedded model name (default: the standard tier's, "
                                             "configs/benchmarks/standard.yaml: the 2LPT-based `default`; the "
                                             "default model of `emulator generate` is hybrid_pm4)")
    parser.add_argument("--out", default="runs/benchmarks/response", help="output folder")
    parser.add_argument("--redshifts", type=float, nargs="+", default=[0.0, 0.5, 1.0],
                        help="redshifts (each must be an output of the suite)")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS),
                        help="generator, 2lpt, za and the standard tier's named PM settings")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    try:
        run_response(suite=args.suite, redshifts=args.redshifts, model=args.model, out=args.out,
                     contenders=args.contenders, device=args.device)
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.response: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
