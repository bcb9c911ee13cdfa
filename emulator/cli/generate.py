"""``emulator generate``: mock catalogs from the embedded (or a given) model."""

from __future__ import annotations

import argparse
import json

from ..core.cosmology import PARAMETER_NAMES

__all__ = ["add_arguments", "run"]

_FLAGS = {"Omega_m": "--omega-m", "Omega_b": "--omega-b", "h": "--h", "n_s": "--n-s", "sigma8": "--sigma8"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``emulator generate``."""
    c = p.add_argument_group("cosmology (a preset, optionally overridden, or all five values)")
    c.add_argument("--preset", default=None, help="planck18 or quijote")
    for name, flag in _FLAGS.items():
        c.add_argument(flag, dest=name, type=float, default=None, help=f"{name} (dimensionless)")
    g = p.add_argument_group("realizations")
    g.add_argument("--redshift", type=float, default=0.0, help="snapshot redshift")
    g.add_argument("--box-size", type=float, default=128.0, help="box side in Mpc/h (multiple of the model cell)")
    g.add_argument("--n-realizations", type=int, default=1, help="number of mocks")
    g.add_argument("--seed", type=int, default=1, help="seed of the first mock; mock i uses seed + i")
    t = p.add_argument_group("tracers")
    t.add_argument("--tracer", default="particles", choices=["particles", "halos", "galaxies", "biased"])
    t.add_argument("--number-density", type=float, default=None,
                   help="(Mpc/h)^-3: particle subsampling, or the biased-tracer density")
    t.add_argument("--linking-length", type=float, default=0.2, help="FoF b, in mean interparticle separations")
    t.add_argument("--min-members", type=int, default=20, help="minimum FoF group size, particles")
    t.add_argument("--min-mass", type=float, default=None, help="minimum halo mass, Msun/h")
    t.add_argument("--hod", default="zheng07_mr20",
                   help="Zheng07 preset name or JSON {logMmin, sigma_logM, logM0, logM1, alpha} (log10 Msun/h)")
    t.add_argument("--bias", default='{"model": "linear", "b1": 1.5}',
                   help='biased tracers: JSON {"model": linear|quadratic|exponential, "b1": .., "b2": ..}')
    t.add_argument("--rsd-axis", choices=["x", "y", "z"], default=None, help="add RSDPosition along this axis")
    s = p.add_argument_group("cut-sky (enabled by --cutsky-zrange)")
    s.add_argument("--cutsky-zrange", type=float, nargs=2, default=None, metavar=("ZMIN", "ZMAX"))
    s.add_argument("--observer", type=float, nargs=3, default=None, help="observer position, Mpc/h (default centre)")
    s.add_argument("--footprint-ra", type=float, nargs=2, default=None, help="RA range, degrees")
    s.add_argument("--footprint-dec", type=float, nargs=2, default=None, help="Dec range, degrees")
    s.add_argument("--randoms-factor", type=float, default=10.0, help="randoms per data object")
    o = p.add_argument_group("output and execution")
    o.add_argument("--out", default="mocks", help="output folder; files mock_<seed>.hdf5|.fits")
    o.add_argument("--format", choices=["hdf5", "fits"], default="hdf5")
    o.add_argument("--model", default=None, help="model file (default: the embedded model)")
    o.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    o.add_argument("--tile", type=int, default=None, help="network tile size in cells (memory control)")
    o.add_argument("--allow-extrapolation", action="store_true",
                   help="permit parameters outside the model's hull (a warning goes into the attrs)")


def _cosmology(args: argparse.Namespace):
    from ..core.cosmology import Cosmology, get_preset

    given = {k: getattr(args, k) for k in PARAMETER_NAMES if getattr(args, k) is not None}
    if args.preset:
        return Cosmology.from_mapping({**get_preset(args.preset).to_dict(), **given})
    missing = [_FLAGS[k] for k in PARAMETER_NAMES if k not in given]
    if missing:
        raise ValueError(f"give --preset or all five parameters; missing {' '.join(missing)}")
    return Cosmology.from_mapping(given)


def run(args: argparse.Namespace) -> int:
    """Generate the mocks and print the files written."""
    from ..mocks.api import generate_mocks

    try:
        hod = json.loads(args.hod) if args.hod.strip().startswith("{") else args.hod
        bias = json.loads(args.bias)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--hod/--bias must be valid JSON: {exc.msg}") from None
    cutsky = None
    if args.cutsky_zrange:
        fp = None
        if args.footprint_ra or args.footprint_dec:
            fp = {"ra": args.footprint_ra or [0.0, 360.0], "dec": args.footprint_dec or [-90.0, 90.0]}
        cutsky = {"redshift_range": args.cutsky_zrange, "observer": args.observer, "footprint": fp,
                  "randoms_factor": args.randoms_factor}
    paths = generate_mocks(
        _cosmology(args), redshift=args.redshift, box_size=args.box_size, n_realizations=args.n_realizations,
        base_seed=args.seed, out_dir=args.out, format=args.format, model=args.model, device=args.device,
        allow_extrapolation=args.allow_extrapolation, tile=args.tile, tracer=args.tracer,
        number_density=args.number_density, linking_length=args.linking_length, min_members=args.min_members,
        min_mass=args.min_mass, hod=hod, bias=bias, rsd_axis=args.rsd_axis, cutsky=cutsky,
    )
    for p in paths:
        print(p)
    return 0
