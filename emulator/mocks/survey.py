"""Survey-ready cut-sky catalogs: footprint completeness, target n(z), weights, ids, randoms and header keys.

Input is a sky catalog (:func:`emulator.mocks.cutsky.box_to_sky` or :mod:`emulator.mocks.lightcone`) plus the box
tracer columns it came from. Units: RA, DEC degrees; distances Mpc/h; NZ (h/Mpc)^3; P0 (Mpc/h)^3; masses Msun/h.

Data columns
------------
``RA, DEC, Z`` (observed, with RSD), ``Z_COSMO``, ``DISTANCE = chi(Z)``, ``DISTANCE_COSMO = chi(Z_COSMO)`` (the
convention of :data:`~emulator.mocks.cutsky.DISTANCE_CONVENTION`, same for randoms), ``VLOS`` (km/s), ``INDEX``
(row in the box catalog of the same seed and options), ``REPLICA`` (box replica), ``ID`` (unique:
``INDEX + N_box * code(REPLICA)``, ``code`` = the replica offsets + 512 packed in 10 bits each, plus
``SNAPSHOT << 30`` in a shell lightcone), the box tracer
columns (halos: ``HaloID, Mass, Radius, Length``; galaxies: ``Central``, ``HaloIndex`` = host ``HaloID``,
``HaloMass`` = host FoF mass), then ``NZ`` (the target n(z) at ``Z``, or the measured n(z) without a target),
``WEIGHT`` (1: completeness is applied by subsampling), ``WEIGHT_FKP = 1 / (1 + NZ P0)``, ``STATUS`` (bits:
1 in footprint, 2 kept by completeness, 4 kept by n(z); every written row has 7, or 3 without a target) and
``SEL_RANDOM``, the uniform random in [0, 1) of the selection: kept iff ``SEL_RANDOM < completeness x
n_target(Z) / n_mock``.

Randoms
-------
``round(randoms_factor x N_data)`` points per file, ``n_random_files`` independent files (random file ``k`` uses
seed ``randoms_seed`` for ``k = 0`` and ``SeedSequence([randoms_seed, k])`` after), positions drawn with density
proportional to the completeness (:meth:`~emulator.mocks.mask.Footprint.sample`), redshifts ``shuffle`` (drawn
from the data's ``Z`` with replacement, default with a target n(z)), ``nz`` (from ``n_target(z) dV/dz``) or
``volume`` (uniform in volume, the default without a target). Same survey columns as the data (``Z_COSMO = Z``,
``DISTANCE_COSMO = DISTANCE``, ``ID`` the row); their own attrs (seed, index, method).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .catalog import Catalog
from .cutsky import DISTANCE_CONVENTION, random_catalog
from .distance import DistanceRedshift
from .mask import Footprint, load_footprint
from .nz import TargetNZ, bin_edges, format_nz, nz_table, read_nz, sample_redshifts, selection_probability

__all__ = ["SURVEY_DEFAULTS", "check_survey", "select_survey", "make_randoms", "survey_keys"]

#: Defaults of the survey options (``MockOptions.cutsky`` keys beside ``redshift_range``/``observer``/``footprint``).
SURVEY_DEFAULTS = {"randoms_factor": 20.0, "n_random_files": 1, "nz": None, "nz_dz": 0.01, "fkp_p0": 1.0e4,
                   "randoms_z": None, "rsd": True}
STATUS_FOOTPRINT, STATUS_COMPLETENESS, STATUS_NZ = 1, 2, 4
_SURVEY_COLUMNS = ("NZ", "WEIGHT", "WEIGHT_FKP", "STATUS", "SEL_RANDOM")


def check_survey(cs: Mapping[str, Any]) -> tuple[Footprint, TargetNZ | None]:
    """Validate the survey options up front; return the footprint and the target n(z) (or ``None``)."""
    extra = set(cs) - set(SURVEY_DEFAULTS) - {"redshift_range", "observer", "footprint", "lightcone"}
    if extra:
        raise ValueError(f"unknown cutsky options {sorted(extra)}")
    opt = {**SURVEY_DEFAULTS, **cs}
    fp = load_footprint(opt.get("footprint"))
    nz = opt["nz"]
    target = None if nz is None else (nz if isinstance(nz, TargetNZ) else read_nz(nz))
    if not (math.isfinite(float(opt["randoms_factor"])) and float(opt["randoms_factor"]) > 0):
        raise ValueError(f"randoms_factor must be positive, got {opt['randoms_factor']!r}")
    k = opt["n_random_files"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"n_random_files must be an integer >= 0 (0: randoms inside the mock file), got {k!r}")
    if not (math.isfinite(float(opt["fkp_p0"])) and float(opt["fkp_p0"]) >= 0):
        raise ValueError(f"fkp_p0 must be >= 0 (Mpc/h)^3, got {opt['fkp_p0']!r}")
    if opt["randoms_z"] not in (None, "shuffle", "nz", "volume") or (opt["randoms_z"] == "nz" and target is None):
        raise ValueError(f"randoms_z must be shuffle, nz (needs a target n(z)) or volume, got {opt['randoms_z']!r}")
    bin_edges(0.0, 1.0, float(opt["nz_dz"]))
    return fp, target


def _ids(index: np.ndarray, replica: np.ndarray, n_box: int, snapshot: np.ndarray | None = None) -> np.ndarray:
    """Unique int64 IDs ``index + n_box * code``; a packing that cannot hold the input is refused, not wrapped."""
    replica = np.asarray(replica, dtype=np.int64)
    if replica.size and (replica.min() < -512 or replica.max() > 511):
        raise ValueError(f"ID packing: box replica offsets must lie in [-512, 511], got [{replica.min()}, "
                         f"{replica.max()}] (a cone deeper than 511 boxes)")
    code = ((replica[:, 0] + 512) << 20) | ((replica[:, 1] + 512) << 10) | (replica[:, 2] + 512)
    top = (1 << 30) - 1
    if snapshot is not None:  # lightcone shells: one box catalog per ladder snapshot
        snapshot = np.asarray(snapshot, dtype=np.int64)
        code = code + (snapshot << 30)
        top += (int(snapshot.max()) << 30) if snapshot.size else 0
    if int(n_box) * (top + 1) - 1 > np.iinfo(np.int64).max:  # exact (Python integers): the largest ID
        raise ValueError(f"ID packing would overflow int64: {n_box} objects per box x {top + 1} replica/snapshot "
                         "codes; use fewer objects per box (smaller box or sparser tracer) or fewer ladder snapshots")
    return np.asarray(index, dtype=np.int64) + np.int64(n_box) * code


def _nz_function(target, data_z, edges, table, fp):
    if target is not None:
        return target
    rows = nz_table(data_z, edges, table, fp.effective_fraction)
    return lambda z: rows[np.clip(np.searchsorted(edges, z, side="right") - 1, 0, len(rows) - 1), 3]


def select_survey(sky: Mapping[str, np.ndarray], box_columns: Mapping[str, np.ndarray], n_box: int, cs, cosmology,
                  selection_seed: int, checked=None) -> tuple[Catalog, Any, str]:
    """Apply completeness and n(z) to a sky catalog; return ``(data, nz_function, nz.txt text)``.

    ``sky`` holds the columns of :func:`~emulator.mocks.cutsky.box_to_sky` (``INDEX`` into ``box_columns``,
    which contribute every column except ``Position``, ``Velocity``, ``RSDPosition``). ``checked``: the
    ``(footprint, target)`` of :func:`check_survey` if already loaded (a large map is then read once).
    """
    opt = {**SURVEY_DEFAULTS, **cs}
    fp, target = checked or check_survey(cs)
    z0, z1 = (float(v) for v in opt["redshift_range"])
    table = DistanceRedshift(cosmology, z1)
    data = {k: np.asarray(v) for k, v in sky.items()}
    index = data["INDEX"]
    data["ID"] = _ids(index, data["REPLICA"], n_box, data.get("SNAPSHOT"))
    for k, v in box_columns.items():
        if k not in ("Position", "Velocity", "RSDPosition"):
            data[k] = np.asarray(v)[index]
    u = np.random.default_rng(selection_seed).random(len(index))
    comp = fp.completeness(data["RA"], data["DEC"])
    edges = bin_edges(z0, z1, float(opt["nz_dz"]))
    keep_prob = comp.copy()
    status = np.where(comp > 0, STATUS_FOOTPRINT, 0) | np.where(u < comp, STATUS_COMPLETENESS, 0)
    if target is not None:
        inside = comp > 0
        prob = np.zeros(len(index))
        prob[inside] = selection_probability(data["Z"][inside], target, edges, table, fp.sky_fraction)
        keep_prob *= prob
        status |= np.where(u < keep_prob, STATUS_NZ, 0)
    keep = u < keep_prob
    data = {k: v[keep] for k, v in data.items()}
    nzf = _nz_function(target, data["Z"], edges, table, fp)
    p0 = float(opt["fkp_p0"])
    data["NZ"] = np.asarray(nzf(data["Z"]), dtype=np.float64)
    data["WEIGHT"] = np.ones(keep.sum())
    data["WEIGHT_FKP"] = 1.0 / (1.0 + data["NZ"] * p0)
    data["STATUS"] = status[keep].astype(np.int32)
    data["SEL_RANDOM"] = u[keep]
    rows = nz_table(data["Z"], edges, table, fp.effective_fraction)
    text = format_nz(rows, f"n(z) of the data, observed Z; footprint {fp.describe()}; effective sky fraction "
                           f"{fp.effective_fraction:.8g}\nn = N / V_shell, V_shell completeness-weighted; target: "
                           f"{'none' if target is None else target.source}")
    return Catalog(data), nzf, text


def make_randoms(k: int, n: int, data_z: np.ndarray, nzf, cs, cosmology, randoms_seed: int,
                 checked=None) -> Catalog:
    """Random file ``k`` (see the module docstring) with ``n`` points (``checked`` as in :func:`select_survey`)."""
    opt = {**SURVEY_DEFAULTS, **cs}
    fp, target = checked or check_survey(cs)
    z0, z1 = (float(v) for v in opt["redshift_range"])
    method = opt["randoms_z"] or ("volume" if target is None else "shuffle")
    seed = int(randoms_seed) if k == 0 else int(np.random.SeedSequence([int(randoms_seed), k]).generate_state(1)[0])
    if fp.kind in ("full", "rect") and method in ("volume", "shuffle"):  # the historical draw order and values
        cat = random_catalog(n, redshift_range=(z0, z1), cosmology=cosmology, footprint=fp.rect,
                             nz=data_z if method == "shuffle" else None, seed=seed)
        ra, dec, z, chi = cat["RA"], cat["DEC"], cat["Z"], cat["DISTANCE"]
        rng = np.random.default_rng([seed, 1])
    else:
        rng = np.random.default_rng(seed)
        table = DistanceRedshift(cosmology, z1)
        ra, dec = fp.sample(n, rng)
        if method == "nz":
            z = sample_redshifts(n, target, z0, z1, table, rng)
        elif method == "shuffle":
            if data_z.size == 0:
                raise ValueError("shuffled random redshifts need data: the data catalog is empty")
            z = data_z[rng.integers(0, data_z.size, n)]
        else:
            c0, c1 = float(table.distance(z0)), float(table.distance(z1))
            z = table.redshift(np.cbrt(c0**3 + (c1**3 - c0**3) * rng.random(n)))
        chi = table.distance(z)
    nz = np.asarray(nzf(z), dtype=np.float64)
    cols = {"RA": ra, "DEC": dec, "Z": z, "Z_COSMO": z, "DISTANCE": chi, "DISTANCE_COSMO": chi,
            "ID": np.arange(n, dtype=np.int64), "NZ": nz, "WEIGHT": np.ones(n),
            "WEIGHT_FKP": 1.0 / (1.0 + nz * float(opt["fkp_p0"])),
            "STATUS": np.full(n, STATUS_FOOTPRINT | STATUS_COMPLETENESS | (STATUS_NZ if target is not None else 0),
                              dtype=np.int32),
            "SEL_RANDOM": rng.random(n)}
    attrs = {"catalog_type": "randoms", "RANINDEX": int(k), "SEED_RAN": seed, "RANZMETH": method,
             "RANFACT": float(opt["randoms_factor"]), "DISTCONV": DISTANCE_CONVENTION,
             "FOOTPRNT": fp.describe(), "NZSOURCE": "measured" if target is None else target.source}
    return Catalog(cols, attrs=attrs)


def survey_keys(cs, fp: Footprint, target: TargetNZ | None, sky_attrs: Mapping[str, Any], seeds: Mapping[str, int],
                cosmology) -> dict[str, Any]:
    """Header keys (FITS-standard 8-character names, the same in HDF5 attrs) of a survey file."""
    opt = {**SURVEY_DEFAULTS, **cs}
    obs = sky_attrs.get("observer", [float("nan")] * 3)
    keys = {"OMEGA_M": cosmology.Omega_m, "OMEGA_B": cosmology.Omega_b, "HUBBLE": cosmology.h, "N_S": cosmology.n_s,
            "SIGMA8": cosmology.sigma8, "OBS_X": float(obs[0]), "OBS_Y": float(obs[1]), "OBS_Z": float(obs[2]),
            "ZMIN": float(opt["redshift_range"][0]), "ZMAX": float(opt["redshift_range"][1]),
            "FOOTPRNT": fp.describe(), "FSKY": fp.sky_fraction, "FSKYEFF": fp.effective_fraction,
            "AREA": fp.area_deg2, "NZSOURCE": "measured (no target)" if target is None else target.source,
            "FKP_P0": float(opt["fkp_p0"]), "NZ_DZ": float(opt["nz_dz"]), "RANFACT": float(opt["randoms_factor"]),
            "NRANFILE": int(opt["n_random_files"]), "DISTCONV": DISTANCE_CONVENTION,
            "NREPLIC": int(sky_attrs.get("n_replicas", 0)), "LIGHTCON": str(sky_attrs.get("lightcone", "")),
            "RSD": bool(opt["rsd"])}
    if "redshift" in sky_attrs:
        keys["ZSNAP"] = float(sky_attrs["redshift"])
    if "zladder" in sky_attrs:
        keys["ZLADDER"] = " ".join(f"{z:g}" for z in sky_attrs["zladder"])
    keys.update({k: int(v) for k, v in seeds.items()})
    return keys
