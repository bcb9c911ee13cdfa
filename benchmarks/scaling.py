"""``python -m benchmarks.scaling``: time and peak memory per mock against particle number, at fixed threads.

For every ``ngrid`` of ``configs/benchmarks/scaling.yaml`` (``ngrid^3`` particles in a box of ``ngrid x cell``
Mpc/h, the model's resolution) and every method (``generator``, ``network``, ``2lpt``, ``pm_few``;
see :mod:`benchmarks.speed`), one fresh subprocess sets up, makes a warm-up mock and ``repeats`` timed mocks with the
torch thread count fixed by the config. Reported per (method, ngrid): the median and the fastest wall time per
mock (s), the peak resident memory of the mocks (MB, ``VmHWM`` after a reset, minus the set-up's resident set, and
the absolute peak), microseconds per particle and mocks per hour per core (``3600 / (median x threads)``).
A method whose cost at some ``ngrid`` would exceed ``max_seconds`` (extrapolated as ``N log N`` from the previous
size) is skipped there and recorded as such, so a CPU run stays bounded.

Outputs in ``out_dir``: ``scaling.json`` (with the environment: CPU, threads, torch version, commit),
``scaling.md`` (the table) and ``scaling.png`` (time and memory per mock against particles, log-log).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import yaml

__all__ = ["DEFAULT_CONFIG", "load_config", "run_scaling", "scaling_table", "main"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "benchmarks" / "scaling.yaml"
_KEYS = {"ngrids", "methods", "cell", "redshift", "cosmology", "repeats", "threads", "pm_steps", "simulation",
         "max_seconds", "device", "out_dir", "model"}


def load_config(path: str | Path = DEFAULT_CONFIG) -> dict:
    """Read and check the YAML config (one-line ``ValueError`` naming the file and the key)."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"scaling config {path}: {exc}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"scaling config {path}: expected a mapping")
    unknown, missing = set(cfg) - _KEYS, _KEYS - {"model"} - set(cfg)
    if unknown or missing:
        raise ValueError(f"scaling config {path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    if int(cfg["repeats"]) < 3:
        raise ValueError(f"scaling config {path}: repeats must be >= 3 (a median of at least three), "
                         f"got {cfg['repeats']}")
    if not cfg.get("threads") or int(cfg["threads"]) < 1:
        raise ValueError(f"scaling config {path}: threads must be a fixed positive integer")
    return cfg


def _predicted(prev: dict | None, n: int) -> float:
    if not prev or "median_seconds" not in prev:
        return 0.0
    n0 = prev["ngrid"]
    return prev["median_seconds"] * (n / n0) ** 3 * math.log(n**3) / math.log(n0**3)


def run_scaling(cfg: dict, *, log=print) -> dict:
    """Measure every (method, ngrid) of ``cfg``; return ``{"rows": [...], "environment": {...}}``."""
    from emulator.core.cosmology import Cosmology, get_preset
    from emulator.model.portable import DEFAULT_MODEL_PATH

    from .env import hardware, resolve_device, versions
    from .speed import measure_speed

    cosmo = get_preset(cfg["cosmology"]) if isinstance(cfg["cosmology"], str) else \
        Cosmology.from_mapping(cfg["cosmology"])
    model_path = str(cfg.get("model") or DEFAULT_MODEL_PATH)
    rows, last = [], {}
    for n in [int(v) for v in cfg["ngrids"]]:
        for method in cfg["methods"]:
            guess = _predicted(last.get(method), n)
            if guess > float(cfg["max_seconds"]):
                log(f"scaling: skip {method} at {n}^3 (predicted {guess:.0f} s per mock > max_seconds)")
                rows.append({"method": method, "ngrid": n, "skipped": f"predicted {guess:.0f} s per mock"})
                continue
            res = measure_speed([method], ngrid=n, box_size=n * float(cfg["cell"]), redshift=float(cfg["redshift"]),
                                cosmology=cosmo, model_path=model_path, simulation=dict(cfg["simulation"]),
                                pm_steps=int(cfg["pm_steps"]), repeats=int(cfg["repeats"]), device=cfg["device"],
                                threads=int(cfg["threads"]), isolate=True, log=log)[method]
            res = {"method": method, "ngrid": n, **res}
            if "median_seconds" in res:
                med = res["median_seconds"]
                res["us_per_particle"] = 1e6 * med / n**3
                res["mocks_per_hour_per_core"] = 3600.0 / (med * int(cfg["threads"]))
                res["mock_rss_mb"] = res["peak_rss_mb"] - res["baseline_rss_mb"]
                last[method] = res
                log(f"scaling: {method} {n}^3: {med:.2f} s, peak {res['peak_rss_mb']:.0f} MB")
            rows.append(res)
    env = {**hardware(resolve_device(cfg["device"])), **versions(), "threads": int(cfg["threads"])}
    return {"config": cfg, "rows": rows, "environment": env}


def scaling_table(result: dict) -> str:
    """Markdown table of :func:`run_scaling`'s rows."""
    head = ("| method | particles | s/mock (median) | s/mock (fastest) | µs/particle | mocks/hour/core | "
            "peak RSS MiB | mocks' RSS MiB |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "median_seconds" not in r:
            lines.append(f"| {r['method']} | {r['ngrid']}³ | {r.get('skipped') or r.get('error')} | | | | | |")
            continue
        lines.append(f"| {r['method']} | {r['ngrid']}³ | {r['median_seconds']:.3g} | {r['fastest_seconds']:.3g} | "
                     f"{r['us_per_particle']:.3g} | {r['mocks_per_hour_per_core']:.3g} | {r['peak_rss_mb']:.0f} | "
                     f"{r['mock_rss_mb']:.0f} |")
    net = {r["ngrid"]: r for r in result["rows"] if r["method"] == "network" and "median_seconds" in r}
    gen = {r["ngrid"]: r for r in result["rows"] if r["method"] == "generator" and "median_seconds" in r}
    ratios = [f"{n}³ {gen[n]['median_seconds'] / net[n]['median_seconds']:.2f}x" for n in sorted(set(net) & set(gen))]
    if ratios:
        lines.append("")
        lines.append("Generator mock against its network's periodic whole-box pass (the unpadded cost; issue 14's "
                     "target is <= 1.5x at 128³ and 256³): " + ", ".join(ratios) + ".")
    env = result["environment"]
    lines.append("")
    lines.append(f"{env.get('cpu_model', '?')}, torch threads {env['threads']}, torch {env.get('torch', '?')}, "
                 f"commit {env.get('code', '?')}; median of {result['config']['repeats']} after a warm-up.")
    return "\n".join(lines) + "\n"


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for method in result["config"]["methods"]:
        rows = [r for r in result["rows"] if r["method"] == method and "median_seconds" in r]
        if not rows:
            continue
        npart = [r["ngrid"] ** 3 for r in rows]
        axes[0].loglog(npart, [r["median_seconds"] for r in rows], "o-", label=method)
        axes[1].loglog(npart, [max(r["peak_rss_mb"], 1.0) for r in rows], "o-", label=method)
    axes[0].set(xlabel="particles per mock", ylabel="seconds per mock (median)",
                title=f"{result['environment']['threads']} thread(s)")
    axes[1].set(xlabel="particles per mock", ylabel="peak resident memory (MiB)")
    for ax in axes:
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.scaling [--config F] [--out-dir D] [--ngrids 64 128]``."""
    from emulator.core.allocator import keep_freed_memory

    keep_freed_memory()  # as the emulator and data-prep commands do (emulator.core.allocator)
    from .env import write_json

    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default %(default)s)")
    p.add_argument("--out-dir", default=None, help="override the config's out_dir")
    p.add_argument("--ngrids", type=int, nargs="+", default=None, help="override the particle grids (per side)")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out_dir:
        cfg["out_dir"] = args.out_dir
    if args.ngrids:
        cfg["ngrids"] = args.ngrids
    out = Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    result = run_scaling(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    write_json(out / "scaling.json", result)
    text = scaling_table(result)
    (out / "scaling.md").write_text(text)
    _plot(result, out / "scaling.png")
    print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
