"""Tracer catalogs from generated particles: particles, FoF halos, HOD galaxies, biased tracers; RSD; cut-sky.

Columns (units: Mpc/h, km/s, Msun/h)
-------------------------------------
* ``particles``: ``Position`` (N, 3), ``Velocity`` (N, 3).
* ``halos``: ``HaloID`` (int64), ``Position`` (centre of mass), ``Velocity`` (mean), ``Mass`` (FoF mass:
  ``round(Length x f(Length, z))`` particle masses with the model's halo-mass calibration ``f``, ``Length`` x
  particle mass without one, see :mod:`emulator.mocks.halo_mass`), ``Radius`` and ``Length`` (member particles).
  ``HaloID`` is the halo's rank in the FoF catalogue of the realization, 0 for the most massive (ties by lowest
  member particle index): it depends only on the particles and ``linking_length``, so it is the same whatever
  ``min_members`` and ``min_mass`` cut the tail. ``Radius`` is the comoving ``R_200m = (3 M / (4 pi 200 Omega_m
  rho_crit))^(1/3)`` in Mpc/h of the FoF mass taken as ``M_200m`` (:func:`emulator.mocks.nfw.r200m`; FoF at b = 0.2
  gives masses close to ``M_200m``), the radius the HOD satellites are placed in; it is not measured from the
  particles.
* ``galaxies``: ``Position``, ``Velocity``, ``Central`` (bool: FITS logical ``L``, the h5py boolean enum in
  HDF5) and ``HaloIndex``, the ``HaloID`` of the host halo (the same halo in the ``halos`` catalog of the same
  seed and FoF/model options).
* ``biased``: ``Position``, ``Velocity``.
* with ``rsd_axis``: ``RSDPosition``; with ``cutsky``: the survey columns of :mod:`emulator.mocks.survey`
  (sky coordinates, the box columns above, ``ID``, ``NZ``, weights, ``STATUS``; galaxies also ``HaloMass``).

Reproducibility
---------------
Every random draw is seeded from the realization seed through ``numpy.random.SeedSequence([seed, k])`` (``k``
fixed per stage: 1 particle subsampling, 2 HOD, 3 biased tracers, 4 randoms, 5 the survey selection); the HOD
and randoms seeds can be set on their own (``hod_seed``, ``randoms_seed``), e.g. for many HOD draws on one
density field. One ``(parameters, seed, options, model)`` gives the same catalog bit for bit when run again
with the same torch build, on the same kind of CPU, with the same number of torch threads
(``torch.get_num_threads()``). Across thread counts the network and FFT reductions round differently: particle
positions then differ at float32 rounding level (measured up to ~1.2e-7 of the box side, two units in the last
place of the coordinate, e.g. 1.5e-5 Mpc/h at 128 Mpc/h) and velocities by ~1e-6 of the largest speed; catalogs
built from them (FoF halos, galaxies, biased tracers) are then equal except where such a difference moves a
particle pair across the linking length or a tracer across a cell edge. To reproduce a catalog exactly, fix
the thread count (the recorded references of the tests use one thread).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.cosmology import particle_mass_from_cosmology
from .halo_mass import calibrated_friends_of_friends, calibration_attr, raw_min_members, usable_calibration
from .hod import HODParams, get_preset, populate_halos
from .massfunction import check_hod_resolution, unresolved_fraction
from .nfw import r200m
from .rsd import redshift_space_positions
from ..core import mesh
from ..core.mesh import paint
from ..model.emulate import GeneratedFields
from ..model.halo_calibration import HaloMassCalibration
from ..model.pgd_correction import PGDCorrection, pgd_digest

__all__ = ["TRACERS", "MockOptions", "make_catalogs", "check_tracer_count", "halo_tracer_columns", "add_rsd",
           "biased_columns", "finish_catalogs", "halo_calibration", "applied_pgd", "applied_vdisp", "fof_min_members"]

TRACERS = ("particles", "halos", "galaxies", "biased")


def _seed(seed: int, stage: int) -> int:
    return int(np.random.SeedSequence([seed, stage]).generate_state(1)[0])


@dataclass
class MockOptions:
    """What to put in a mock catalog.

    Parameters
    ----------
    tracer : {"particles", "halos", "galaxies", "biased"}
    number_density : float, optional
        Target number density in (Mpc/h)^-3: subsampling for ``particles`` (default: all), required for
        ``biased``; at most the particle density (:func:`check_tracer_count`).
    linking_length : float
        FoF linking length in units of the mean interparticle separation.
    min_members : int
        Minimum halo mass in particle masses: FoF groups of at least that many particles, or with the model's
        halo-mass calibration, of calibrated mass at least that many particle masses.
    min_mass : float, optional
        Minimum halo mass, Msun/h.
    hod : str or dict
        Zheng07 preset name (default ``lrg_desi_like``; e.g. ``zheng07_mr20``) or the five parameters ``logMmin,
        sigma_logM, logM0, logM1, alpha``.
    hod_seed, randoms_seed : int, optional
        Seeds of the HOD draws and of the randoms (default: derived from the realization seed).
    calibrate_halo_masses : bool
        Apply the model's halo-mass calibration (``<model>.halo_mass.json``, :mod:`emulator.mocks.halo_mass`) to
        FoF masses, when it has one for ``linking_length`` (default); False: ``Length`` x particle mass.
    pgd : bool
        Apply the model's PGD sharpening of the particles (``<model>.pgd.json``, :mod:`emulator.model.pgd_correction`)
        when it has one (default); False: the network's particles as they are.
    velocity_dispersion : bool
        Add the model's small-scale velocity dispersion (``<model>.vdisp.json``,
        :mod:`emulator.model.velocity_dispersion`) to the particles of ``particles`` and ``biased`` catalogs when it
        has one (default); False: the network's velocities. Halo and galaxy catalogs never get it: a halo's
        velocity is its members' mean, which independent draws would only blur (by sigma / sqrt(members)), and
        satellites get their own dispersion (:mod:`emulator.mocks.hod`).
    force_hod : bool
        Populate even when more than half of the HOD's galaxies live in unresolved halos
        (:func:`emulator.mocks.massfunction.check_hod_resolution`).
    bias : dict
        Biased-tracer model: ``{"model": "linear"|"quadratic"|"exponential", "b1": ..., "b2": ...}``.
    rsd_axis : {"x", "y", "z"} or None
        Adds the column ``RSDPosition`` (redshift space along that axis, wrapped periodically).
    cutsky : dict or None
        ``{"redshift_range": [zmin, zmax], "observer": [x, y, z] (Mpc/h, default box centre), "footprint": None,
        an RA/Dec rectangle, a HEALPix map or polygons (:mod:`emulator.mocks.mask`), "nz": path of a target n(z)
        table, "randoms_factor": 20, "n_random_files": 1, "fkp_p0": 1e4, ...}``
        (:data:`emulator.mocks.survey.SURVEY_DEFAULTS`): a survey catalog with randoms.
    """

    tracer: str = "particles"
    number_density: float | None = None
    linking_length: float = 0.2
    min_members: int = 20
    min_mass: float | None = None
    calibrate_halo_masses: bool = True
    pgd: bool = True
    velocity_dispersion: bool = True
    hod: Any = "lrg_desi_like"
    hod_seed: int | None = None
    randoms_seed: int | None = None
    force_hod: bool = False
    bias: dict = field(default_factory=lambda: {"model": "linear", "b1": 1.5})
    rsd_axis: str | None = None
    cutsky: dict | None = None

    def __post_init__(self) -> None:
        if self.tracer not in TRACERS:
            raise ValueError(f"tracer must be one of {TRACERS}, got {self.tracer!r}")
        if self.number_density is not None and not (math.isfinite(self.number_density) and self.number_density > 0):
            raise ValueError(f"number_density must be positive (Mpc/h)^-3, got {self.number_density}")
        if self.tracer == "biased" and self.number_density is None:
            raise ValueError("tracer 'biased' needs number_density in (Mpc/h)^-3")
        if not self.linking_length > 0:
            raise ValueError(f"linking_length must be positive, got {self.linking_length}")
        if self.min_members < 2:
            raise ValueError(f"min_members must be >= 2, got {self.min_members}")
        if self.rsd_axis not in (None, "x", "y", "z"):
            raise ValueError(f"rsd_axis must be x, y, z or None, got {self.rsd_axis!r}")
        if self.cutsky is not None:
            zr = self.cutsky.get("redshift_range")
            if zr is None or len(zr) != 2 or not 0 <= zr[0] < zr[1]:
                raise ValueError(f"cutsky.redshift_range must be [zmin, zmax] with 0 <= zmin < zmax, got {zr!r}")
            from .survey import check_survey

            check_survey(self.cutsky)
        for name in ("hod_seed", "randoms_seed"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63):
                raise ValueError(f"{name} must be an integer in [0, 2^63), got {v!r}")
        self.hod_params()  # validate early

    def hod_params(self) -> HODParams:
        """The HOD parameters (preset name or mapping)."""
        return get_preset(self.hod) if isinstance(self.hod, str) else HODParams.from_mapping(self.hod)

    def to_attrs(self) -> str:
        """JSON string of the options, for provenance attrs."""
        return json.dumps(asdict(self), sort_keys=True)


def check_tracer_count(opts: MockOptions, ngrid: int, box_size: float) -> None:
    """Refuse a ``number_density`` above the particle density ``ngrid^3 / L^3`` (particle subsampling, biased
    tracers), before anything is computed.

    Subsampling cannot draw more particles than there are; biased tracers Poisson-sample the density of the
    particles painted on their own ``ngrid^3`` mesh, which resolves nothing finer than one particle per cell: more
    tracers than particles only add file size (and tracers spread uniformly inside cells), no information.

    Raises
    ------
    ValueError
        Naming ``number_density``, with the tracer count it asks for and the particle density and count.
    """
    if opts.number_density is None or opts.tracer not in ("particles", "biased"):
        return
    npart = int(ngrid) ** 3
    limit = npart / float(box_size) ** 3
    if opts.number_density > limit * (1 + 1e-12):
        want = opts.number_density * float(box_size) ** 3
        what = "particles" if opts.tracer == "particles" else "biased tracers"
        raise ValueError(f"number_density={opts.number_density:g} (Mpc/h)^-3 asks for {want:.3g} {what}, "
                         f"more than the {npart} particles ({ngrid}^3 in {float(box_size):g} Mpc/h, "
                         f"density {limit:.4g} (Mpc/h)^-3) they come from: use number_density <= {limit:.4g}")


def resolved_mass(opts: MockOptions, cosmology, box_size: float, ngrid: int) -> float:
    """Smallest halo mass the catalog holds, Msun/h: ``min_members`` x particle mass, or ``min_mass`` if larger."""
    pmass = particle_mass_from_cosmology(cosmology.Omega_m, box_size, int(ngrid) ** 3)
    return max(opts.min_members * pmass, opts.min_mass or 0.0)


def check_hod(opts: MockOptions, cosmology, redshift: float, box_size: float, ngrid: int) -> float | None:
    """For ``galaxies``: warn or refuse an HOD the resolution cannot hold (before anything is computed)."""
    if opts.tracer != "galaxies":
        return None
    return check_hod_resolution(opts.hod_params(), cosmology, redshift,
                                resolved_mass(opts, cosmology, box_size, ngrid), force=opts.force_hod)


def applied_pgd(opts: MockOptions, model) -> PGDCorrection | None:
    """The model's PGD sharpening when the options ask for it (``opts.pgd``), else None."""
    return model.pgd if opts.pgd else None


def applied_vdisp(opts: MockOptions, model):
    """The model's velocity dispersion when the options ask for it (``opts.velocity_dispersion``) for a particle
    tracer (``particles``, ``biased``), else None."""
    return model.vdisp if opts.velocity_dispersion and opts.tracer in ("particles", "biased") else None


def halo_calibration(opts: MockOptions, model) -> HaloMassCalibration | None:
    """The ``model``'s halo-mass calibration when the options ask for it, it holds for their linking length and it
    was fitted on particles of the PGD sharpening applied (:func:`applied_pgd`; none with ``pgd=False``), else
    None (with a warning for another sharpening)."""
    cal = usable_calibration(model.halo_calibration, opts.linking_length, opts.calibrate_halo_masses)
    pgd_sha256 = pgd_digest(applied_pgd(opts, model))
    if cal is not None and cal.pgd_sha256 != pgd_sha256:
        warnings.warn(f"the model's halo-mass calibration was fitted on particles of PGD {cal.pgd_sha256[:16]}, these "
                      f"have {pgd_sha256[:16]} (--no-pgd?): FoF masses stay uncalibrated", stacklevel=2)
        return None
    return cal


def fof_min_members(opts: MockOptions, calibration: HaloMassCalibration | None, redshift: float) -> int:
    """The FoF member cut that finds every halo of at least ``min_members`` calibrated particle masses
    (``calibration``: the result of :func:`halo_calibration`)."""
    return raw_min_members(calibration, opts.min_members, redshift)


def halo_tracer_columns(halos, opts: MockOptions, cosmology, redshift: float, box: float, ngrid: int, seed: int,
                        aux: dict, calibration: HaloMassCalibration | None = None
                        ) -> tuple[dict[str, np.ndarray], dict]:
    """The ``halos`` or ``galaxies`` columns from a FoF catalogue (:class:`~emulator.mocks.fof.Halos`, whole box)
    already calibrated with ``calibration`` (the result of :func:`halo_calibration`, recorded in the attrs) and
    cut at ``min_members`` particle masses: :func:`~emulator.mocks.halo_mass.calibrated_friends_of_friends`, or
    :func:`~emulator.mocks.fof_slabs.slab_friends_of_friends` with :func:`fof_min_members` members followed by
    :func:`~emulator.mocks.halo_mass.calibrate_halos`; ``aux`` receives the cut-sky-only column ``HaloMass`` of
    galaxies."""
    pmass = halos.particle_mass
    attrs: dict[str, Any] = {"halo_mass_calibration": calibration_attr(calibration)}
    keep = np.ones(len(halos.mass), dtype=bool) if opts.min_mass is None else halos.mass >= opts.min_mass
    attrs.update(particle_mass=pmass, min_halo_mass=float(opts.min_members * pmass))
    halo_id = np.flatnonzero(keep).astype(np.int64)  # FoF rank (mass descending): see the module docstring
    if opts.tracer == "halos":
        mass = halos.mass[keep]
        return {"HaloID": halo_id, "Position": halos.position[keep], "Velocity": halos.velocity[keep],
                "Mass": mass, "Radius": r200m(mass, cosmology.Omega_m), "Length": halos.n_members[keep]}, attrs
    sub = {"position": halos.position[keep], "velocity": halos.velocity[keep], "mass": halos.mass[keep]}
    hod_seed = _seed(seed, 2) if opts.hod_seed is None else int(opts.hod_seed)
    attrs.update(hod_seed=hod_seed, hod_unresolved_fraction=unresolved_fraction(
        opts.hod_params(), cosmology, redshift, resolved_mass(opts, cosmology, box, ngrid)))
    gal = populate_halos(sub, opts.hod_params(), hod_seed, cosmology=cosmology, redshift=redshift, box_size=box)
    aux["HaloMass"] = sub["mass"][gal.halo_index]
    return {"Position": gal.position, "Velocity": gal.velocity, "Central": gal.is_central.astype(bool),
            "HaloIndex": halo_id[gal.halo_index]}, attrs


def add_rsd(cols: dict, attrs: dict, opts: MockOptions, redshift: float, cosmology, box: float) -> None:
    """Add ``RSDPosition`` (and the ``rsd_axis`` attr) when ``opts.rsd_axis`` is set."""
    if opts.rsd_axis is not None:
        cols["RSDPosition"] = redshift_space_positions(cols["Position"], cols["Velocity"], redshift, cosmology, box,
                                                       los=opts.rsd_axis)
        attrs["rsd_axis"] = opts.rsd_axis


def _tracer_columns(f: GeneratedFields, opts: MockOptions, seed: int, aux: dict,
                    calibration: HaloMassCalibration | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The tracer columns as numpy arrays: the particles leave torch here, once (biased tracers are made from
    painted meshes by the torch core and converted at the end). ``aux`` receives columns for cut-sky files only
    (galaxies: ``HaloMass``); ``calibration``: the model's halo-mass calibration (halos and galaxies)."""
    box, attrs = f.box_size, {}
    check_tracer_count(opts, f.ngrid, box)
    if opts.tracer in ("particles", "halos", "galaxies"):
        pos, vel = f.positions.cpu().numpy(), f.velocities.cpu().numpy()
    if opts.tracer == "particles":
        if opts.number_density is not None:
            n_want = min(int(round(opts.number_density * box**3)), len(pos))
            keep = np.sort(np.random.default_rng(_seed(seed, 1)).choice(len(pos), n_want, replace=False))
            pos, vel = pos[keep], vel[keep]
        attrs["particle_mass"] = particle_mass_from_cosmology(f.cosmology.Omega_m, box, f.ngrid**3)
        return {"Position": pos, "Velocity": vel}, attrs
    if opts.tracer in ("halos", "galaxies"):
        cal = usable_calibration(calibration, opts.linking_length, opts.calibrate_halo_masses)  # resolved by caller
        halos = calibrated_friends_of_friends(
            pos, box, opts.linking_length, opts.min_members, cal, f.redshift, velocities=vel,
            particle_mass=particle_mass_from_cosmology(f.cosmology.Omega_m, box, f.ngrid**3))
        return halo_tracer_columns(halos, opts, f.cosmology, f.redshift, box, f.ngrid, seed, aux, cal)
    n, chunk = f.ngrid, mesh.PAINT_CHUNK  # the batches of the streamed path (emulator.mocks.largebox)
    counts = paint(f.positions, n, box, chunk_size=chunk)
    momentum = torch.stack([paint(f.positions, n, box, mass=f.velocities[:, i], chunk_size=chunk) for i in range(3)])
    return biased_columns(counts, momentum, opts, seed, box), attrs


def biased_columns(counts: torch.Tensor, momentum: torch.Tensor, opts: MockOptions, seed: int, box: float
                   ) -> dict[str, np.ndarray]:
    """Biased tracers (``Position`` Mpc/h, ``Velocity`` km/s) from the CIC-painted particle number ``counts``
    ``(n, n, n)`` and momentum ``(3, n, n, n)`` (km/s per particle) on the particle grid; both are overwritten
    in place (with ``delta`` and the mean velocity) rather than copied. The tracers are those of the meshes'
    bits: painting on another device (CUDA's atomic adds) can change them."""
    from .biased import biased_tracers

    occupied = counts > 0
    momentum.div_(counts.clamp_min(1e-12)).masked_fill_(~occupied, 0.0)  # mean velocity; 0 in empty cells
    del occupied
    bias = dict(opts.bias)
    model = bias.pop("model", "linear")
    pos, vel = biased_tracers(counts.sub_(1.0), box, opts.number_density, model, _seed(seed, 3) % 2**31,
                              velocity_mesh=momentum, bias_params=bias)
    return {"Position": pos.cpu().numpy(), "Velocity": vel.cpu().numpy()}


def make_catalogs(f: GeneratedFields, opts: MockOptions, calibration: HaloMassCalibration | None = None
                  ) -> tuple[dict[str, Any], dict]:
    """Build the catalogs of one realization: ``({"data": columns[, ...]}, attrs)``; with ``cutsky`` the survey
    catalogs of :func:`emulator.mocks.survey_files.survey_outputs` (companion files included). ``calibration``:
    the model's halo-mass calibration (``model.halo_calibration``), applied as ``opts`` say."""
    aux: dict[str, np.ndarray] = {}
    cols, attrs = _tracer_columns(f, opts, f.seed, aux, calibration)
    return finish_catalogs(cols, attrs, aux, f, opts)


def finish_catalogs(cols: dict, attrs: dict, aux: dict, f, opts: MockOptions) -> tuple[dict[str, Any], dict]:
    """The catalogs of one realization from its tracer columns: RSD, then with ``cutsky`` the survey catalogs.

    ``f`` is any :class:`~emulator.model.emulate.Realization` (its cosmology, redshift, box and seed are used);
    ``aux`` holds the columns meant for cut-sky files only (galaxies: ``HaloMass``).
    """
    add_rsd(cols, attrs, opts, f.redshift, f.cosmology, f.box_size)
    if opts.cutsky is None:
        return {"data": cols}, attrs
    from .survey_files import survey_outputs

    seeds = {"SEED_IC": int(f.seed), "SEED_SEL": _seed(f.seed, 5) % 2**31,
             "SEED_RAN": _seed(f.seed, 4) % 2**31 if opts.randoms_seed is None else int(opts.randoms_seed)}
    if "hod_seed" in attrs:
        seeds["SEED_HOD"] = attrs["hod_seed"]
    catalogs, extra = survey_outputs(cols, aux, f, opts.cutsky, seeds)
    attrs.update(extra)
    return catalogs, attrs
