"""``emulator demo``: the main job. Generate a handful of mocks with the embedded model and plot their P(k).

Writes ``<out>/mocks/mock_<seed>.hdf5`` (particle catalogs, plus a halo catalog for the first seed),
``<out>/pk.png`` (mean emulated P(k) with its scatter, the 2LPT P(k) from the same seeds, CAMB linear and
halofit) and ``<out>/pk.json`` (every number in the plot, timings, model checksum).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used, so that ``emulator --help`` stays fast
    import torch

__all__ = ["run_demo", "add_arguments", "run", "particle_power"]


def particle_power(positions: torch.Tensor, box_size: float, nmesh: int):
    """P(k) of particles: CIC, interlaced, window-compensated; returns (k, P, modes) as numpy arrays."""
    from ..core.stats import power_spectrum_k
    from ..core.window import particle_overdensity_k

    pk = power_spectrum_k(particle_overdensity_k(positions, nmesh, box_size, window="cic"), box_size, nmesh)
    return pk.k.cpu().numpy(), pk.power.cpu().numpy(), pk.modes.cpu().numpy()


def run_demo(
    out_dir: str | Path,
    *,
    preset: str = "planck18",
    n_realizations: int = 4,
    base_seed: int = 1,
    box_size: float = 128.0,
    redshift: float = 0.0,
    device: str = "cpu",
    model: str | None = None,
) -> dict:
    """Generate ``n_realizations`` particle mocks (and halos for the first) and write the P(k) figure.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    preset : str
        Cosmology preset (must lie in the model's hull).
    box_size : float
        Box side in Mpc/h (a multiple of the model's cell size).
    redshift : float
        Snapshot redshift (within the model's range).
    """
    from ..mocks.api import generate_mocks
    from ..mocks.io import read_catalog
    from ..core.cosmology import get_preset
    from ..core.fourier import nyquist
    from ..core.power import linear_power, nonlinear_power
    from ..model.emulate import emulate_fields
    from ..model.portable import load_model
    import torch

    cosmo = get_preset(preset)
    m = load_model(model, device=device)
    out = Path(out_dir)
    seeds = list(range(base_seed, base_seed + n_realizations))
    t0 = time.perf_counter()
    paths = generate_mocks(cosmo, redshift=redshift, box_size=box_size, seeds=seeds, out_dir=out / "mocks",
                           model=m, device=device, tracer="particles", overwrite=True)  # the demo's own scratch
    t_gen = (time.perf_counter() - t0) / len(seeds)
    halo_path = generate_mocks(cosmo, redshift=redshift, box_size=box_size, seeds=[seeds[0]],
                               out_dir=out / "mocks" / "halos", model=m, device=device, tracer="halos",
                               progress=False, overwrite=True)[0]
    n_halos = len(read_catalog(halo_path, "data")["Mass"])
    ngrid = int(read_catalog(paths[0], "data").attrs["Nmesh"])
    emu, lpt = [], []
    for seed, path in zip(seeds, paths):
        pos = torch.from_numpy(read_catalog(path, "data")["Position"])
        k, p, modes = particle_power(pos, box_size, ngrid)
        emu.append(p)
        f = emulate_fields(cosmo, redshift, box_size, seed, method="2lpt", ngrid=ngrid, device=device)
        lpt.append(particle_power(f.positions, box_size, ngrid)[1])
    emu, lpt = np.array(emu), np.array(lpt)
    summary = {
        "cosmology": cosmo.to_dict(), "preset": preset, "redshift": redshift, "box_size_mpc_h": box_size,
        "ngrid": ngrid, "seeds": seeds, "model": m.name, "model_sha256": m.sha256,
        "seconds_per_mock": t_gen, "n_halos_first_mock": n_halos,
        "k_h_mpc": k.tolist(), "modes": modes.tolist(),
        "pk_emulator_mean": emu.mean(0).tolist(),
        "pk_emulator_std": emu.std(0, ddof=1).tolist() if len(seeds) > 1 else None,
        "pk_2lpt_mean": lpt.mean(0).tolist(),
        "pk_linear": linear_power(cosmo, k, z=redshift).tolist(),
        "pk_halofit": nonlinear_power(cosmo, k, z=redshift).tolist(),
        "k_nyquist": nyquist(ngrid, box_size), "catalogs": [str(p) for p in paths] + [str(halo_path)],
    }
    _plot(out / "pk.png", summary)
    tmp = out / "pk.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out / "pk.json")
    return summary


def _plot(path: Path, s: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.array(s["k_h_mpc"])
    emu, lpt = np.array(s["pk_emulator_mean"]), np.array(s["pk_2lpt_mean"])
    lin, hf = np.array(s["pk_linear"]), np.array(s["pk_halofit"])
    std = np.array(s["pk_emulator_std"]) if s["pk_emulator_std"] else np.zeros_like(emu)
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    ax.fill_between(k, emu - std, emu + std, color="C0", alpha=0.3, lw=0)
    ax.loglog(k, emu, "C0-", label=f"emulator, mean of {len(s['seeds'])} mocks (±1σ)")
    ax.loglog(k, lpt, "C1--", label="2LPT, same seeds")
    ax.loglog(k, lin, "k:", label="linear (CAMB)")
    ax.loglog(k, hf, "k-", lw=0.8, label="halofit (CAMB)")
    ax.set_ylabel(r"$P(k)$ [$(h^{-1}\mathrm{Mpc})^3$]")
    c = s["cosmology"]
    ax.set_title(f"{s['model']}: z={s['redshift']:g}, L={s['box_size_mpc_h']:g} Mpc/h, {s['ngrid']}$^3$, "
                 f"$\\Omega_m$={c['Omega_m']:.3f}, $\\sigma_8$={c['sigma8']:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    axr.semilogx(k, emu / hf, "C0-")
    axr.semilogx(k, lpt / hf, "C1--")
    axr.axhline(1.0, color="k", lw=0.8)
    axr.axvline(s["k_nyquist"] / 2, color="0.6", ls=":", lw=0.8)
    axr.set_ylabel("ratio to halofit")
    axr.set_xlabel(r"$k$ [$h\,\mathrm{Mpc}^{-1}$]  (dotted: $k_\mathrm{Nyq}/2$)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``emulator demo``."""
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--preset", default="planck18", help="cosmology preset: planck18 or quijote")
    parser.add_argument("--n-realizations", type=int, default=4, help="number of mocks")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first mock")
    parser.add_argument("--box-size", type=float, default=128.0, help="box side in Mpc/h")
    parser.add_argument("--redshift", type=float, default=0.0, help="snapshot redshift")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--model", default=None, help="model file (default: the embedded model)")


def run(args: argparse.Namespace) -> int:
    """Run ``emulator demo`` from parsed arguments."""
    s = run_demo(args.out, preset=args.preset, n_realizations=args.n_realizations, base_seed=args.seed,
                 box_size=args.box_size, redshift=args.redshift, device=args.device, model=args.model)
    print(f"{len(s['seeds'])} mocks ({s['seconds_per_mock']:.2f} s each) and {s['n_halos_first_mock']} halos in "
          f"{Path(args.out) / 'mocks'}; P(k) figure {Path(args.out) / 'pk.png'}")
    return 0
