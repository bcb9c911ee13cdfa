"""``python -m benchmarks.truth_recipe``: the simulator's training truth against EuclidEmulator2 and halofit.

For every (cosmology, recipe, seed) of ``configs/benchmarks/truth_recipe.yaml`` it runs the paired-fixed pair
(fixed-amplitude white noise of the seed, and the same with phases shifted by pi) with
:func:`data_prep.simulate.run_simulation`, measures ``delta_k`` of the output particles (the coarse lattice: a
refined run keeps every ``refine``-th particle per axis) on a CIC, interlaced, window-compensated mesh, and
reports at each ``k_i`` the mean over modes with ``|k - k_i| <= shell_halfwidth k_f`` of
``P_pair(k) / P_ref(|k|)`` (``P_pair`` the mean of the pair; the reference evaluated mode by mode, so the shell's
width biases nothing). References: EuclidEmulator2's boost times the CAMB linear P of
:func:`emulator.core.power.linear_power` (``A_s`` from ``sigma8`` as CAMB gives it, massless neutrinos), and CAMB
halofit (:func:`emulator.core.power.nonlinear_power`). Results go to one JSON per (cosmology, recipe, seed) under
``out_dir``; existing ones are reused (resume, or split the work: ``--cosmologies``, ``--recipes``, ``--seeds``).
The table gives the mean over seeds and its standard error: a single paired-fixed pair in a 128 Mpc/h box
scatters by 2.4-3.7% (1 sigma) in ``P/P_EE2`` at k = 0.3-0.8 h/Mpc, so one seed cannot validate a recipe to 2%.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from emulator.core.atomic import atomic_open

__all__ = ["ee2_power", "main", "pair_ratios", "run_entry", "summarize", "table"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "benchmarks" / "truth_recipe.yaml"


def ee2_power(cosmo, k: np.ndarray, redshifts) -> dict[float, np.ndarray]:
    """EuclidEmulator2 ``P(k, z)`` in (Mpc/h)^3: its boost times the CAMB linear P (``sigma8`` normalisation).

    Raises ``ValueError`` (EE2's) when the cosmology or its ``A_s`` is outside EE2's range.
    """
    import contextlib
    import io

    import euclidemu2

    from emulator.core.power import _linear_table, linear_power

    a_s = float(_linear_table(cosmo.key()).a_s)
    pars = {"Omega_m": cosmo.Omega_m, "Omega_b": cosmo.Omega_b, "h": cosmo.h, "n_s": cosmo.n_s, "A_s": a_s,
            "m_nu": 0.0, "w0_fld": -1.0, "wa_fld": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # EE2 prints extrapolation notices
        kk, boost = euclidemu2.PyEuclidEmulator().get_boost(pars, list(redshifts), k)
    return {float(z): np.asarray(boost[i]) * linear_power(cosmo, k, z) for i, z in enumerate(redshifts)}


def _mode_k(n: int, box: float) -> np.ndarray:
    from emulator.core.fourier import k_magnitude

    return k_magnitude(n, box).to("cpu").double().numpy()


def pair_ratios(states: list, cosmo, cfg: dict) -> dict[str, dict[str, list[float]]]:
    """``{z: {"ee2": [...], "halofit": [...]}}``: shell means of ``P_pair / P_ref`` at ``cfg["k"]``."""
    import torch

    from emulator.core.power import nonlinear_power
    from emulator.core.window import particle_overdensity_k

    box, nmesh = float(cfg["box_size"]), int(cfg["mesh_factor"]) * int(cfg["ngrid"])
    kmode = _mode_k(nmesh, box)
    kf = 2.0 * np.pi / box
    targets = [float(k) for k in cfg["k"]]
    shells = [(np.abs(kmode - kt) <= float(cfg["shell_halfwidth"]) * kf) & (kmode > 0) for kt in targets]
    kin = np.unique(np.concatenate([kmode[s] for s in shells]))
    zs = [float(z) for z in cfg["redshifts"]]
    try:
        ee2 = ee2_power(cosmo, kin, zs)
    except (ValueError, AssertionError) as exc:  # outside EE2's range: report halofit only
        print(f"EuclidEmulator2 not used for {cosmo.to_dict()}: {str(exc).strip().splitlines()[-1]}", file=sys.stderr)
        ee2 = None
    out = {}
    for iz, z in enumerate(zs):
        pk = 0.0
        for pair in states:
            dk = particle_overdensity_k(pair[iz].positions.to(torch.float64), nmesh, box, window="cic", interlace=True)
            pk = pk + dk.abs().square().numpy() * box**3 / nmesh**6 / len(states)
        refs = {"halofit": nonlinear_power(cosmo, kin, z)}
        if ee2 is not None:
            refs["ee2"] = ee2[z]
        row = {}
        for name, ref in refs.items():
            row[name] = [float(np.mean(pk[s] / np.interp(kmode[s], kin, ref))) for s in shells]
        out[f"{z:g}"] = row
    return out


def run_entry(cosmo_dict: dict, recipe: dict, cfg: dict, seed: int) -> dict:
    """Run the paired-fixed pair of one (cosmology, recipe, seed); return ratios, wall time per run and the inputs."""
    from data_prep.simulate import run_simulation
    from emulator.core.cosmology import Cosmology

    cosmo = Cosmology.from_mapping(cosmo_dict)
    zs = [float(z) for z in cfg["redshifts"]]
    states, walls = [], []
    for invert in (False, True):
        t0 = time.perf_counter()
        res = run_simulation(cosmo, int(seed), int(cfg["ngrid"]), float(cfg["box_size"]),
                             output_redshifts=zs, fixed_amplitude=True, invert_phase=invert, **recipe)
        walls.append(time.perf_counter() - t0)
        states.append(res.outputs)
    return {"cosmology": cosmo.to_dict(), "recipe": recipe, "seed": int(seed), "ngrid": int(cfg["ngrid"]),
            "box_size": float(cfg["box_size"]), "k": [float(k) for k in cfg["k"]], "wall_seconds": walls,
            "ratios": pair_ratios(states, cosmo, cfg)}


def summarize(runs: list[dict]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """``{z: {ref: (mean, standard error)}}`` over the seeds of one (cosmology, recipe); error 0 for one seed."""
    out: dict = {}
    for z in runs[0]["ratios"]:
        out[z] = {}
        for ref in runs[0]["ratios"][z]:
            vals = np.array([r["ratios"][z][ref] for r in runs if ref in r["ratios"].get(z, {})])
            sem = vals.std(axis=0, ddof=1) / math.sqrt(len(vals)) if len(vals) > 1 else np.zeros(vals.shape[1])
            out[z][ref] = (vals.mean(axis=0).tolist(), sem.tolist())
    return out


def table(results: dict[tuple[str, str], list[dict]], cfg: dict) -> str:
    """Markdown table: mean over seeds (± standard error) of P/P_EE2 and P/P_halofit per cosmology, recipe, z."""
    ks = [float(k) for k in cfg["k"]]
    head = "| cosmology | recipe | seeds | s/run | z | " + " | ".join(f"EE2 k={k:g}" for k in ks) + " | " + \
        " | ".join(f"HF k={k:g}" for k in ks) + " |"
    lines = [head, "|" + "---|" * (5 + 2 * len(ks))]

    def cells(pair):
        if pair is None:
            return " | ".join("-" for _ in ks)
        return " | ".join(f"{m:.3f}±{e:.3f}" if e else f"{m:.3f}" for m, e in zip(*pair))

    for (cname, rname), runs in results.items():
        wall = float(np.median([w for r in runs for w in r["wall_seconds"]]))
        for z, row in summarize(runs).items():
            lines.append(f"| {cname} | {rname} | {len(runs)} | {wall:.0f} | {z} | {cells(row.get('ee2'))} | "
                         f"{cells(row['halofit'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from emulator.core.allocator import keep_freed_memory

    keep_freed_memory()  # as the emulator and data-prep commands do (emulator.core.allocator)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.truth_recipe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="study YAML (default %(default)s)")
    parser.add_argument("--out-dir", default=None, help="override the config's out_dir")
    parser.add_argument("--cosmologies", nargs="+", default=None, help="run only these cosmology names")
    parser.add_argument("--recipes", nargs="+", default=None, help="run only these recipe names")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="run only these seeds of the config")
    parser.add_argument("--table-only", action="store_true", help="print the table of the results found; run nothing")
    args = parser.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())
    out = Path(args.out_dir or cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg["threads"]))
    seeds = [int(s) for s in (args.seeds or cfg["seeds"])]
    for name in (args.cosmologies or []) + (args.recipes or []):
        if name not in cfg["cosmologies"] and name not in cfg["recipes"]:
            parser.error(f"unknown cosmology or recipe {name!r} (config {args.config})")
    results: dict[tuple[str, str], list[dict]] = {}
    for cname, cdict in cfg["cosmologies"].items():
        for rname, recipe in cfg["recipes"].items():
            wanted = (args.cosmologies is None or cname in args.cosmologies) and \
                (args.recipes is None or rname in args.recipes)
            for seed in seeds:
                path = out / f"{cname}__{rname}__s{seed}.json"
                if not path.is_file() and wanted and not args.table_only:
                    res = run_entry(cdict, recipe, cfg, seed)
                    with atomic_open(path, "w") as fh:
                        json.dump(res, fh, indent=1)
                    print(f"{cname} {rname} seed {seed}: {np.median(res['wall_seconds']):.0f} s/run", flush=True)
                if path.is_file():
                    res = json.loads(path.read_text())
                    same = all(abs(res["cosmology"][k] - float(v)) < 1e-12 for k, v in cdict.items())
                    if same and res["recipe"] == recipe and res["seed"] == seed:
                        results.setdefault((cname, rname), []).append(res)
    print(table(results, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
