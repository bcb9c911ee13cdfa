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
Each (redshift, cosmology)'s spectra are kept in ``DIR/partial`` as they finish, so a killed run resumes where it
stopped (``--fresh`` starts over).
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
from .resume import PartialStore, common_fingerprint, source_fingerprint
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


def _powers(t, contenders, z: float, box: float, n: int, kedges, cfg: dict, mdl, recipe: dict,
            dev) -> dict[str, np.ndarray]:
    """``k`` and P(k) of the truth ``t``, of each contender on its cosmology and seed, and of linear theory and
    halofit (Mpc/h units)."""
    ps = power_spectrum_k(mock_delta_k(t, cfg["statistics"]), box, n, kedges=kedges)
    k = ps.k.cpu().numpy()
    out = {"k": k, "truth": ps.power.cpu().numpy()}
    for name in contenders:
        mock = make_contender(name, t.cosmology, z, box, n, t.seed, model=mdl, simulation=recipe,
                              pm=pm_settings(cfg, name), device=dev)
        out[name] = power_spectrum_k(mock_delta_k(mock, cfg["statistics"]), box, n, kedges=kedges).power.cpu().numpy()
    for name, fn in (("linear", linear_power), ("halofit", nonlinear_power)):
        out[name] = np.asarray(fn(t.cosmology, k, z), dtype=np.float64)
    return out


def run_response(*, suite: str = SUITE, redshifts=(0.0, 0.5, 1.0), model: str | None = None,
                 out: str | Path = "runs/benchmarks/response", contenders=CONTENDERS, device: str = "cpu",
                 fresh: bool = False, log=None) -> dict:
    """Measure every response at every redshift; write results, report and figure; return the results.

    Each (redshift, cosmology)'s power spectra are kept in ``<out>/partial`` as they finish and reused by the next
    start with the same inputs (:class:`benchmarks.resume.PartialStore`), so a killed run resumes; ``fresh``
    deletes them first.
    """
    log = log or (lambda msg: print(f"[response {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    cfg = load_config("standard")  # statistics, PM settings and threads of the standard tier
    if cfg["threads"]:  # null: torch's default, every core (as the standard tier's accuracy phases)
        torch.set_num_threads(int(cfg["threads"]))
    dev = resolve_device(device)
    mdl, minfo = resolve_model(model or cfg["model"]["path"], device=dev) if "generator" in contenders else (None, None)
    model_info = minfo and {k: (repo_relative(v) if k == "path" else v) for k, v in minfo.items() if k != "note"}
    res: dict = {"schema": "cosmo-emulator-response", "created": utc_now(), "suite": suite, "hardware": hardware(dev),
                 "versions": versions(), "model": model_info,
                 "contenders": list(contenders), "redshifts": {}}
    out = Path(out)
    store: PartialStore | None = None
    own_code = source_fingerprint(("benchmarks/response.py",))  # this module's part of a piece, in its scope only
    for z in redshifts:
        truths, scfg, notes = suite_truth(resolve_repo_path(suite), float(z), device=dev, log=log)
        n, box = scfg.ngrid, scfg.box_size
        kedges, knyq = k_edges(n, box), nyquist(n, box)  # the standard tier's P(k) bins
        cosmos = {t.label: t.cosmology.to_dict() for t in truths}
        pairs = _pairs(cosmos)
        if store is None:  # one store for the run (the suite fixes particles and box); the redshift is in the scope
            store = PartialStore(out, common_fingerprint(model_sha256=minfo and minfo["sha256"], device=dev,
                                                         setup={"ngrid": n, "box_size": box,
                                                                "pgd": minfo and minfo["pgd"]}), log, fresh=fresh)
        recipe = suite_recipe(scfg)
        pk: dict[str, dict[str, np.ndarray]] = {}
        for t in truths:
            scope = {"code": own_code, "redshift": float(z), "contenders": list(contenders),
                     "pm": {c: pm_settings(cfg, c) for c in contenders},
                     "statistics": cfg["statistics"], "recipe": recipe, "label": t.label,
                     "cosmology": t.cosmology.to_dict(), "seed": t.seed, "truth_file": t.source}
            key = f"response_z{float(z):g}_{t.label}"
            piece = store.get(key, scope)
            if piece is None:
                t1 = time.perf_counter()
                piece = {name: torch.as_tensor(p) for name, p in
                         _powers(t, contenders, float(z), box, n, kedges, cfg, mdl, recipe, dev).items()}
                store.put(key, scope, piece, time.perf_counter() - t1)
                log(f"z = {z:g}: {t.label} done")
            else:
                log(f"z = {z:g}: {t.label} reused from {store.dir}")
            for name, p in piece.items():
                pk.setdefault(name, {})[t.label] = p.numpy()
        k = pk.pop("k")[truths[0].label]
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
    if store is not None and store.note():
        res["resumed"] = [store.note()]
    res = jsonify(res)
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
                                             "default model of `emulator generate` is hybrid_cola4)")
    parser.add_argument("--out", default="runs/benchmarks/response", help="output folder")
    parser.add_argument("--redshifts", type=float, nargs="+", default=[0.0, 0.5, 1.0],
                        help="redshifts (each must be an output of the suite)")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS),
                        help="generator, 2lpt, za and the standard tier's named PM settings")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--fresh", action="store_true",
                        help="delete the pieces that earlier starts of this run kept in <out>/partial, and start over")
    args = parser.parse_args(argv)
    try:
        run_response(suite=args.suite, redshifts=args.redshifts, model=args.model, out=args.out,
                     contenders=args.contenders, device=args.device, fresh=args.fresh)
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmarks.response: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
