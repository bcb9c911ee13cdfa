"""``python -m benchmarks.largebox``: a large box made within a memory cap (``emulator generate --max-memory``).

Two measurements, in this process, at a fixed torch thread count, with the 2LPT-based embedded model ``default``
(the one a memory-capped run streams: a PM base needs the whole box):

1. **Identity** (``--check-ngrid``, default 128): one mock made held whole and one streamed (same seed, same
   network tile) must be the same catalog, column by column, bit for bit.
2. **Scale** (``--ngrid``, default 512: 512^3 particles in 1024 Mpc/h at the model's 2 Mpc/h): one streamed mock
   under ``--max-memory`` (default 8 GB; below ~6.4 GB at 512^3 the linear stage goes out of core). The identity
   check also measures how far particles made with the linear stage out of core lie from those made with its
   meshes held (float32 rounding: reported, not graded). Recorded: the plan and its estimate, the wall time, the
   absolute peak resident memory of the process (``VmHWM``: Python, torch and the model included, nothing
   subtracted), the halo count and the mass function, and what holding the box whole would need by the same
   estimate.

Outputs in ``--out``: ``results.json`` (with the environment: CPU, threads, torch version, commit) and
``largebox.md`` (the table, pass or fail against the cap).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["run_largebox", "largebox_table", "main"]


def _mock(out: Path, n: int, cell: float, args, **kw) -> tuple[Path, float, list[str]]:
    from emulator.mocks.api import generate_mocks

    lines: list[str] = []
    t0 = time.perf_counter()
    path = generate_mocks("planck18", redshift=args.redshift, box_size=n * cell, seeds=[args.seed], out_dir=out,
                          tracer=args.tracer, min_members=args.min_members, progress=not args.no_progress,
                          log=lines.append, **kw)[0]
    return path, time.perf_counter() - t0, lines


def _out_of_core_check(model, n: int, cell: float, seed: int, redshift: float, tmp: Path, block: int = 16) -> dict:
    """Particles streamed with the linear stage out of core (blocks of ``block`` planes) against those with its
    meshes held: the largest differences of position (periodic, Mpc/h) and velocity (km/s), and the rms velocity."""
    import h5py

    from emulator.core.cosmology import get_preset
    from emulator.model.streaming import stream_fields

    cosmo, out = get_preset("planck18"), {}
    for name, lb in (("held", None), ("disk", block)):
        with h5py.File(tmp / f"ooc_{name}.h5", "w") as fh:
            t0 = time.perf_counter()
            stream_fields(cosmo, redshift, n * cell, seed, fh, tmp / f"ooc_{name}.scratch", model=model, tile=64,
                          linear_block=lb)
            out[name] = (fh["Position"][...], fh["Velocity"][...], time.perf_counter() - t0)
    box = n * cell
    dx = np.abs(out["held"][0] - out["disk"][0])
    dx = np.minimum(dx, box - dx)
    return {"block": block, "max_dpos_mpc_h": float(dx.max()), "median_dpos_mpc_h": float(np.median(dx)),
            "max_dvel_km_s": float(np.abs(out["held"][1] - out["disk"][1]).max()),
            "rms_vel_km_s": float(out["held"][1].std()), "seconds_held": out["held"][2],
            "seconds_disk": out["disk"][2]}


def run_largebox(args: argparse.Namespace, log=print) -> dict:
    """Run both measurements; return the results dictionary."""
    import torch

    from emulator.mocks.io import read_catalog
    from emulator.mocks.largebox import GB, in_memory_estimate
    from emulator.model.header import LPT_MODEL
    from emulator.model.portable import load_model

    from .env import hardware, rss_mb, versions

    torch.set_num_threads(args.threads)
    model = load_model(LPT_MODEL)
    cell = float(model.cell_size)
    res: dict = {"environment": {**hardware(torch.device("cpu")), **versions(), "threads": args.threads},
                 "tracer": args.tracer, "min_members": args.min_members, "seed": args.seed,
                 "redshift": args.redshift, "cosmology": "planck18"}
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        if args.check_ngrid:
            n = args.check_ngrid
            whole, t_whole, _ = _mock(Path(tmp) / "whole", n, cell, args, tile=64)
            # just below the held-whole estimate: forces streaming (in slabs of 64 planes at 128^3)
            cap = in_memory_estimate(n, halo=int(model.net.halo), multiple=max(2, int(model.net.size_multiple)),
                                     tile=64, velocity=model.velocity) / GB - 0.005
            part, t_part, lines = _mock(Path(tmp) / "streamed", n, cell, args, tile=64, max_memory=cap)
            a, b = read_catalog(whole, "data"), read_catalog(part, "data")
            same = list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
            res["identity"] = {"ngrid": n, "identical": bool(same), "rows": a.size, "seconds_whole": t_whole,
                               "seconds_streamed": t_part, "plan": lines[0]}
            log(f"largebox: {n}^3 streamed vs held whole: identical={same} ({a.size} rows)")
            res["identity"]["out_of_core"] = _out_of_core_check(model, n, cell, args.seed, args.redshift, Path(tmp))
            log(f"largebox: {n}^3 out-of-core linear stage: {res['identity']['out_of_core']}")
        n = args.ngrid
        path, secs, lines = _mock(Path(tmp) / "large", n, cell, args, max_memory=args.max_memory)
        peak = rss_mb("VmHWM")
        cat = read_catalog(path, "data")
        mass = np.asarray(cat["Mass"]) if "Mass" in cat else np.zeros(0)
        edges = 10.0 ** np.arange(12.5, 16.01, 0.5)
        volume = (n * cell) ** 3
        res["large"] = {
            "ngrid": n, "box_size": n * cell, "particles": n**3, "max_memory_gb": args.max_memory, "plan": lines[0],
            "seconds": secs, "peak_rss_gb": None if peak is None else peak * 2**20 / 1e9, "rows": cat.size,
            "estimate_gb": float(cat.attrs.get("memory_estimate_gb", np.nan)),
            "fof_slabs": cat.attrs.get("fof_slabs"), "stream_tile": cat.attrs.get("stream_tile"),
            "linear_block": cat.attrs.get("linear_block"),
            "mass_function": {"edges": edges.tolist(),
                              "dn_dlog10m": (np.histogram(mass, edges)[0] / volume / 0.5).tolist()},
        }
        log(f"largebox: {n}^3 in {secs:.0f} s, peak {res['large']['peak_rss_gb']} GB, {cat.size} rows")
    return res


def largebox_table(res: dict) -> str:
    """The markdown report."""
    big = res["large"]
    ok = big["peak_rss_gb"] is not None and big["peak_rss_gb"] <= big["max_memory_gb"]
    env = res["environment"]
    lines = ["# Large box within a memory cap", "",
             f"`python -m benchmarks.largebox --ngrid {big['ngrid']} --max-memory {big['max_memory_gb']:g}`: "
             f"{env.get('cpu_model', '?')}, {res['environment']['threads']} torch threads, torch "
             f"{env.get('torch', '?')}, code {env.get('code', '?')}.", "",
             "| quantity | value |", "|---|---|",
             f"| particles | {big['ngrid']}^3 = {big['particles']:.3g} in {big['box_size']:g} Mpc/h |",
             f"| tracer | {res['tracer']} (FoF b = 0.2, >= {res['min_members']} particles), z = {res['redshift']} |",
             f"| wall time | {big['seconds']:.0f} s |",
             f"| peak resident memory (whole process) | {big['peak_rss_gb']:.2f} GB |",
             f"| plan estimate | {big['estimate_gb']:.2f} GB |",
             f"| cap | {big['max_memory_gb']:g} GB: **{'pass' if ok else 'FAIL'}** |",
             f"| linear stage | {_linear(big.get('linear_block'))} |",
             f"| catalog rows | {big['rows']} |", "", f"Plan: {big['plan']}", ""]
    if "identity" in res:
        ident = res["identity"]
        lines += [f"Identity check at {ident['ngrid']}^3: the streamed catalog equals the one held whole column by "
                  f"column bit for bit: **{ident['identical']}** ({ident['rows']} rows; {ident['seconds_whole']:.1f} s "
                  f"held whole, {ident['seconds_streamed']:.1f} s streamed).", ""]
        if "out_of_core" in ident:
            o = ident["out_of_core"]
            lines += [f"Out-of-core linear stage at {ident['ngrid']}^3 (FFTs on disk in blocks of {o['block']} "
                      f"planes, then the same network slabs): particles differ from those made with the linear "
                      f"meshes held by at most {o['max_dpos_mpc_h']:.2g} Mpc/h in position (median "
                      f"{o['median_dpos_mpc_h']:.2g}) and {o['max_dvel_km_s']:.2g} km/s in velocity (rms velocity "
                      f"{o['rms_vel_km_s']:.0f} km/s): float32 rounding of differently split FFTs, amplified by the "
                      f"network ({o['seconds_disk']:.1f} s against {o['seconds_held']:.1f} s).", ""]
    mf = big["mass_function"]
    lines += ["| M (Msun/h) | dn/dlog10 M ((Mpc/h)^-3) |", "|---|---|"]
    for lo, hi, v in zip(mf["edges"][:-1], mf["edges"][1:], mf["dn_dlog10m"]):
        lines.append(f"| {lo:.2e} - {hi:.2e} | {v:.3e} |")
    return "\n".join(lines) + "\n"


def _linear(block) -> str:
    return f"FFTs on disk in blocks of {block} planes" if block else "meshes held in memory"


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    from emulator.core.allocator import keep_freed_memory

    keep_freed_memory()
    from .env import write_json

    p = argparse.ArgumentParser(prog="python -m benchmarks.largebox", description=__doc__.split("\n\n")[0])
    p.add_argument("--ngrid", type=int, default=512, help="particles per side of the large box (default 512)")
    p.add_argument("--max-memory", type=float, default=8.0, help="memory cap, GB (default 8)")
    p.add_argument("--check-ngrid", type=int, default=128, help="particles per side of the identity check (0: skip)")
    p.add_argument("--tracer", default="halos", choices=["particles", "halos", "galaxies"])
    p.add_argument("--min-members", type=int, default=20, help="minimum FoF group size, particles")
    p.add_argument("--redshift", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--scratch", default=None, help="folder for the mocks and scratch files (default: system temp)")
    p.add_argument("--out", default="runs/benchmarks/largebox", help="report folder (default %(default)s)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    res = run_largebox(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", res)
    text = largebox_table(res)
    (out / "largebox.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
