"""``emulator generate``: mock catalogs from the embedded (or a given) model."""

from __future__ import annotations

import argparse
import json
import sys

from ..core.cosmology import PARAMETER_NAMES

__all__ = ["add_arguments", "run"]

_FLAGS = {"Omega_m": "--omega-m", "Omega_b": "--omega-b", "h": "--h", "n_s": "--n-s", "sigma8": "--sigma8"}


def _no_default(text: str) -> str:
    """Help text that states its own default: ``%(default).0s`` prints nothing but stops argparse's
    ArgumentDefaultsHelpFormatter from appending "(default: None)"."""
    return text + "%(default).0s"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``emulator generate``."""
    c = p.add_argument_group("cosmology (a preset, optionally overridden, or all five values)")
    c.add_argument("--preset", default=None, help=_no_default("planck18 or quijote (default: none; then give all "
                                                              "five parameters)"))
    for name, flag in _FLAGS.items():
        c.add_argument(flag, dest=name, type=float, default=None, help=_no_default(f"{name} (dimensionless)"))
    g = p.add_argument_group("realizations")
    g.add_argument("--redshift", type=float, default=0.0, help="snapshot redshift (>= 0, in the model's range)")
    g.add_argument("--box-size", type=float, default=128.0, help="box side in Mpc/h (multiple of the model cell)")
    g.add_argument("--n-realizations", type=int, default=1, help="number of mocks")
    g.add_argument("--seed", type=int, default=1,
                   help="seed of the first mock; mock i uses seed + i; seeds are integers in [0, 2^64 - 1] (the "
                        "range of the white-noise generator, torch.Generator.manual_seed)")
    t = p.add_argument_group("tracers")
    t.add_argument("--tracer", default="particles", choices=["particles", "halos", "galaxies", "biased"],
                   help="what the catalog holds: particles (Position Mpc/h, Velocity km/s); halos (FoF: HaloID, "
                        "Position, Velocity, Mass Msun/h, Radius = R_200m Mpc/h, Length); galaxies (Zheng07 HOD "
                        "in those halos: Central, HaloIndex = host HaloID); biased (Poisson tracers of a biased "
                        "density, needs --number-density)")
    t.add_argument("--number-density", type=float, default=None,
                   help=_no_default("(Mpc/h)^-3: particle subsampling (default: all particles), or the "
                                    "biased-tracer density (required); at most the particle density"))
    t.add_argument("--linking-length", type=float, default=0.2, help="FoF b, in mean interparticle separations")
    t.add_argument("--min-members", type=int, default=20,
                   help="minimum halo mass in particle masses (FoF members, or calibrated mass: see "
                        "--raw-halo-masses)")
    t.add_argument("--raw-halo-masses", action="store_true",
                   help="halo Mass = FoF members x particle mass, Msun/h (default: calibrated by the model's "
                        "halo-mass calibration onto the converged simulations' masses, when it has one)")
    t.add_argument("--no-pgd", action="store_true",
                   help="keep the network's particles as they are (default: the model's PGD sharpening, a "
                        "short-range pull towards density peaks fitted to restore the converged simulations' "
                        "small-scale power, when it has one)")
    t.add_argument("--no-velocity-dispersion", action="store_true",
                   help="keep the network's velocities as they are (default: add the model's small-scale velocity "
                        "dispersion, a Gaussian in km/s whose rms follows the density at each particle, measured "
                        "against the converged simulations, when it has one)")
    t.add_argument("--min-mass", type=float, default=None,
                   help=_no_default("minimum halo mass, Msun/h (default: no cut beyond --min-members)"))
    t.add_argument("--hod", default="lrg_desi_like",
                   help="Zheng07 preset name (lrg_desi_like, zheng07_mr18 ... zheng07_mr22) or JSON {logMmin, "
                        "sigma_logM, logM0, logM1, alpha} (log10 Msun/h)")
    t.add_argument("--hod-seed", type=int, default=None,
                   help=_no_default("seed of the HOD draws (default: derived from the realization seed)"))
    t.add_argument("--force-hod", action="store_true",
                   help="populate even if more than 50%% of the HOD's galaxies (Tinker08 halos) are in halos below "
                        "the resolved mass, min-members x particle mass (above 5%% a warning prints the fraction)")
    t.add_argument("--bias", default='{"model": "linear", "b1": 1.5}',
                   help='biased tracers: JSON {"model": linear|quadratic|exponential, "b1": .., "b2": ..}')
    t.add_argument("--rsd-axis", choices=["x", "y", "z"], default=None,
                   help=_no_default("add RSDPosition (Mpc/h), redshift space along this axis (default: none)"))
    s = p.add_argument_group("cut-sky (enabled by --cutsky-zrange)")
    s.add_argument("--cutsky-zrange", type=float, nargs=2, default=None, metavar=("ZMIN", "ZMAX"),
                   help=_no_default("make a cut-sky catalog (RA, DEC in degrees, Z) with randoms, keeping observed "
                                    "redshifts in [ZMIN, ZMAX) (dimensionless, 0 <= ZMIN < ZMAX) around the "
                                    "observer (default: none, a periodic box)"))
    s.add_argument("--observer", type=float, nargs=3, default=None,
                   help=_no_default("observer position, Mpc/h (default: the box centre)"))
    s.add_argument("--footprint-ra", type=float, nargs=2, default=None,
                   help=_no_default("RA range, degrees (default: full sky)"))
    s.add_argument("--footprint-dec", type=float, nargs=2, default=None,
                   help=_no_default("Dec range, degrees (default: full sky)"))
    s.add_argument("--footprint-mask", default=None,
                   help=_no_default("HEALPix FITS map (any nside, RING or NEST; binary or fractional completeness: "
                                    "an object is kept with probability = completeness) (default: none)"))
    s.add_argument("--footprint-polygons", default=None,
                   help=_no_default("JSON file: a list of convex RA/Dec polygons [[[ra, dec], ...], ...] in "
                                    "degrees, rendered at HEALPix nside 512 (default: none)"))
    s.add_argument("--nz-file", default=None,
                   help=_no_default("target n(z): two columns z, n in (h/Mpc)^3, applied by downsampling; fails "
                                    "where the mock is too sparse (default: none, the mock's own n(z))"))
    s.add_argument("--nz-dz", type=float, default=0.01, help="redshift bin width of n(z) (NZ, nz.txt)")
    s.add_argument("--fkp-p0", type=float, default=1.0e4, help="P0 of WEIGHT_FKP = 1/(1 + NZ P0), (Mpc/h)^3")
    s.add_argument("--randoms-factor", type=float, default=20.0, help="randoms per data object, per random file")
    s.add_argument("--n-random-files", type=int, default=1,
                   help="independent random files mock_<seed>_randoms_<k> (0: randoms inside the mock file)")
    s.add_argument("--randoms-z", choices=["shuffle", "nz", "volume"], default=None,
                   help=_no_default("random redshifts: shuffled from the data, drawn from the target n(z), or "
                                    "uniform in volume (default: shuffle with --nz-file, else volume)"))
    s.add_argument("--lightcone", action="store_true",
                   help="evolve along the line of sight: generate the realization at a ladder of redshifts (steps "
                        "<= 0.05 spanning the range +- 0.01: ceil((ZMAX - ZMIN + 0.02) / 0.05) + 1 snapshots); "
                        "particles cross the light cone interpolated between snapshots, halos and galaxies come "
                        "from the snapshot nearest each shell")
    s.add_argument("--lightcone-zladder", type=float, nargs="+", default=None, metavar="Z",
                   help=_no_default("the ladder redshifts instead (implies --lightcone; must cover the range)"))
    s.add_argument("--randoms-seed", type=int, default=None,
                   help=_no_default("seed of the randoms (default: derived from the realization seed)"))
    o = p.add_argument_group("output and execution")
    o.add_argument("--out", default="mocks", help="output folder (created; must be writable); files "
                                                  "mock_<seed>.hdf5|.fits")
    o.add_argument("--format", choices=["hdf5", "fits"], default="hdf5", help="catalog file format")
    o.add_argument("--overwrite", action="store_true",
                   help="replace mock files already in --out; without it, a file with the same parameters is kept "
                        "and one with other parameters stops the run")
    o.add_argument("--model", default=None, help=_no_default(
        "model file, or the name of an embedded model: hybrid_cola4 (a network over COLA with 4 steps at 2 Mpc/h, "
        "~1 s per 64^3 mock, whole box in memory), hybrid_pm4 (the same network over 4 FastPM steps, less "
        "accurate), hybrid_pm4_1mpc (that at 1 Mpc/h particle spacing) or default (the 2LPT-based 2 Mpc/h model: "
        "less accurate, 0.25 s, streamed under a memory cap); if not given: the embedded model at the spacing the "
        "tracer needs: hybrid_cola4 at 2 Mpc/h (the 2LPT-based model when a memory cap is set that hybrid_cola4 "
        "cannot meet held whole), or hybrid_pm4_1mpc when galaxies of the HOD or halos of the minimum mass need it "
        "and no memory cap is set (a line on stderr says so)"))
    o.add_argument("--resolution", type=float, default=None, metavar="MPC",
                   help=_no_default("particle spacing of the embedded model to use, Mpc/h: 2 or 1 (hybrid_pm4_1mpc: "
                                    "8x the particles of a box, halos from ~2e12 Msun/h) (default: from the tracer)"))
    o.add_argument("--device", default="cpu", help="torch device: cpu or cuda (cuda:<index>)")
    o.add_argument("--tile", type=int, default=None,
                   help=_no_default("network tile size in cells, for memory (default: whole box up to 128^3, else "
                                    "the fewest tiles of at most 128, balanced: 96 at 192^3; a --max-memory run: "
                                    "slabs of at most 64)"))
    o.add_argument("--max-memory", type=float, default=None, metavar="GB",
                   help=_no_default("memory cap per process in GB (1e9 bytes): a mock estimated above it is made "
                                    "slab by slab through scratch files in --out, the same particles, halos "
                                    "and tracers as held whole with the same --tile (to float32 rounding when "
                                    "the linear-theory FFTs must also go to disk) "
                                    "(particles, halos, galaxies, biased; cut-sky of all but particles; "
                                    "not lightcones; the estimate is printed first; default: held whole)"))
    o.add_argument("--fof-overlap", type=float, default=None, metavar="MPC",
                   help=_no_default("overlap of the FoF slabs of a --max-memory mock, Mpc/h (default: 10 Mpc/h "
                                    "or 25 linking lengths; a slab where a group reaches its edge is linked again in "
                                    "parts with twice the overlap)"))
    o.add_argument("--allow-extrapolation", action="store_true",
                   help="permit parameters outside the model's hull (a warning goes into the attrs)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    survey_flags = {"--footprint-mask": args.footprint_mask, "--footprint-polygons": args.footprint_polygons,
                    "--nz-file": args.nz_file, "--lightcone": args.lightcone or args.lightcone_zladder}
    given = [flag for flag, value in survey_flags.items() if value]
    if given and not args.cutsky_zrange:
        raise ValueError(f"{' '.join(given)} need(s) --cutsky-zrange ZMIN ZMAX (a cut-sky catalog)")
    if args.cutsky_zrange:
        fp = None
        if args.footprint_ra or args.footprint_dec:
            fp = {"ra": args.footprint_ra or [0.0, 360.0], "dec": args.footprint_dec or [-90.0, 90.0]}
        if args.footprint_mask:
            fp = {"healpix": args.footprint_mask}
        elif args.footprint_polygons:
            try:
                with open(args.footprint_polygons) as fh:
                    fp = {"polygons": json.load(fh)}
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"--footprint-polygons {args.footprint_polygons!r}: {exc}") from None
        cutsky = {"redshift_range": args.cutsky_zrange, "observer": args.observer, "footprint": fp,
                  "randoms_factor": args.randoms_factor, "n_random_files": args.n_random_files,
                  "nz": args.nz_file, "nz_dz": args.nz_dz, "fkp_p0": args.fkp_p0, "randoms_z": args.randoms_z}
        if args.lightcone or args.lightcone_zladder:
            cutsky["lightcone"] = args.lightcone_zladder or True
    paths = generate_mocks(
        _cosmology(args), redshift=args.redshift, box_size=args.box_size, n_realizations=args.n_realizations,
        base_seed=args.seed, out_dir=args.out, format=args.format, model=args.model, device=args.device,
        allow_extrapolation=args.allow_extrapolation, tile=args.tile, progress=not args.no_progress,
        overwrite=args.overwrite, tracer=args.tracer, number_density=args.number_density,
        linking_length=args.linking_length, min_members=args.min_members, min_mass=args.min_mass, hod=hod,
        calibrate_halo_masses=not args.raw_halo_masses, pgd=not args.no_pgd,
        velocity_dispersion=not args.no_velocity_dispersion,
        bias=bias, rsd_axis=args.rsd_axis, cutsky=cutsky, hod_seed=args.hod_seed, force_hod=args.force_hod,
        randoms_seed=args.randoms_seed, max_memory=args.max_memory, fof_overlap=args.fof_overlap,
        resolution=args.resolution, on_choice=lambda line: print(line, file=sys.stderr),
        log=(lambda line: print(line, file=sys.stderr)) if args.max_memory is not None else None,
    )
    kept = set(paths.skipped)
    from ..core.distributed import rank_world

    for p in paths if rank_world()[0] == 0 else ():  # torchrun: rank 0 lists every rank's files
        print(f"{p}  (already there with the same parameters: kept)" if p in kept else p)
    return 0
