"""Tracer catalogs from generated particles: particles, FoF halos, HOD galaxies, biased tracers; RSD; cut-sky.

Every random draw is seeded from the realization seed through ``numpy.random.SeedSequence([seed, k])`` (``k``
fixed per stage), so one ``(parameters, seed, options)`` gives one catalog, bit for bit on the CPU.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.cosmology import particle_mass_from_cosmology
from .fof import friends_of_friends
from .hod import HODParams, get_preset, populate_halos
from .rsd import redshift_space_positions
from ..core.mesh import paint
from ..model.emulate import GeneratedFields

__all__ = ["TRACERS", "MockOptions", "make_catalogs"]

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
        ``biased``.
    linking_length : float
        FoF linking length in units of the mean interparticle separation.
    min_members : int
        Minimum FoF group size (particles).
    min_mass : float, optional
        Minimum halo mass, Msun/h.
    hod : str or dict
        Zheng07 preset name (e.g. ``zheng07_mr20``) or the five parameters ``logMmin, sigma_logM, logM0, logM1,
        alpha``.
    bias : dict
        Biased-tracer model: ``{"model": "linear"|"quadratic"|"exponential", "b1": ..., "b2": ...}``.
    rsd_axis : {"x", "y", "z"} or None
        Adds the column ``RSDPosition`` (redshift space along that axis, wrapped periodically).
    cutsky : dict or None
        ``{"redshift_range": [zmin, zmax], "observer": [x, y, z] (Mpc/h, default box centre), "footprint":
        {"ra": [lo, hi], "dec": [lo, hi]} (degrees) or None, "randoms_factor": 10}``: adds RA/DEC/Z data and a
        random catalog.
    """

    tracer: str = "particles"
    number_density: float | None = None
    linking_length: float = 0.2
    min_members: int = 20
    min_mass: float | None = None
    hod: Any = "zheng07_mr20"
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
        self.hod_params()  # validate early

    def hod_params(self) -> HODParams:
        """The HOD parameters (preset name or mapping)."""
        return get_preset(self.hod) if isinstance(self.hod, str) else HODParams.from_mapping(self.hod)

    def to_attrs(self) -> str:
        """JSON string of the options, for provenance attrs."""
        return json.dumps(asdict(self), sort_keys=True)


def _halos(f: GeneratedFields, pos: np.ndarray, vel: np.ndarray, opts: MockOptions):
    mass = particle_mass_from_cosmology(f.cosmology.Omega_m, f.box_size, f.ngrid**3)
    halos = friends_of_friends(pos.astype(np.float64), f.box_size, opts.linking_length, opts.min_members,
                               particle_mass=mass, velocities=vel)
    return halos, mass


def _tracer_columns(f: GeneratedFields, opts: MockOptions, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """The tracer columns as numpy arrays: the particles leave torch here, once (biased tracers are made from
    painted meshes by the torch core and converted at the end)."""
    box, attrs = f.box_size, {}
    if opts.tracer in ("particles", "halos", "galaxies"):
        pos, vel = f.positions.cpu().numpy(), f.velocities.cpu().numpy()
    if opts.tracer == "particles":
        if opts.number_density is not None:
            n_want = int(round(opts.number_density * box**3))
            if n_want > len(pos):
                raise ValueError(f"number_density {opts.number_density} exceeds the particle density "
                                 f"{len(pos) / box**3:.4g}")
            keep = np.sort(np.random.default_rng(_seed(seed, 1)).choice(len(pos), n_want, replace=False))
            pos, vel = pos[keep], vel[keep]
        attrs["particle_mass"] = particle_mass_from_cosmology(f.cosmology.Omega_m, box, f.ngrid**3)
        return {"Position": pos, "Velocity": vel}, attrs
    if opts.tracer in ("halos", "galaxies"):
        halos, pmass = _halos(f, pos, vel, opts)
        keep = np.ones(len(halos.mass), dtype=bool) if opts.min_mass is None else halos.mass >= opts.min_mass
        attrs.update(particle_mass=pmass, min_halo_mass=float(opts.min_members * pmass))
        if opts.tracer == "halos":
            return {"Position": halos.position[keep], "Velocity": halos.velocity[keep], "Mass": halos.mass[keep],
                    "Length": halos.n_members[keep]}, attrs
        sub = {"position": halos.position[keep], "velocity": halos.velocity[keep], "mass": halos.mass[keep]}
        gal = populate_halos(sub, opts.hod_params(), _seed(seed, 2), cosmology=f.cosmology, redshift=f.redshift,
                             box_size=box)
        return {"Position": gal.position, "Velocity": gal.velocity, "Central": gal.is_central.astype(np.int8),
                "HaloIndex": gal.halo_index}, attrs
    from .biased import biased_tracers

    n = f.ngrid
    counts = paint(f.positions, n, box)
    momentum = torch.stack([paint(f.positions, n, box, mass=f.velocities[:, i]) for i in range(3)])
    vmesh = torch.where(counts > 0, momentum / counts.clamp_min(1e-12), torch.zeros_like(momentum))
    bias = dict(opts.bias)
    model = bias.pop("model", "linear")
    pos, vel = biased_tracers(counts - 1.0, box, opts.number_density, model, _seed(seed, 3) % 2**31,
                              velocity_mesh=vmesh, bias_params=bias)
    return {"Position": pos.cpu().numpy(), "Velocity": vel.cpu().numpy()}, attrs


def make_catalogs(f: GeneratedFields, opts: MockOptions) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Build the catalogs of one realization: ``({"data": columns[, "randoms": columns]}, attrs)``."""
    cols, attrs = _tracer_columns(f, opts, f.seed)
    if opts.rsd_axis is not None:
        cols["RSDPosition"] = redshift_space_positions(
            cols["Position"], cols["Velocity"], f.redshift, f.cosmology, f.box_size, los=opts.rsd_axis
        )
        attrs["rsd_axis"] = opts.rsd_axis
    catalogs = {"data": cols}
    if opts.cutsky is not None:
        from .cutsky import box_to_sky, random_catalog

        cs = opts.cutsky
        zr = tuple(float(z) for z in cs["redshift_range"])
        sky = box_to_sky(cols["Position"], cols["Velocity"], f.box_size, f.cosmology, zr,
                         observer=cs.get("observer"), footprint=cs.get("footprint"), rsd=cs.get("rsd", True),
                         snapshot_redshift=f.redshift)
        data = {k: np.asarray(v) for k, v in sky.items()}
        rand = random_catalog(redshift_range=zr, cosmology=f.cosmology, footprint=cs.get("footprint"),
                              density_factor=float(cs.get("randoms_factor", 10)), n_data=len(data["RA"]),
                              seed=_seed(f.seed, 4) % 2**31)
        catalogs = {"data": data, "randoms": {k: np.asarray(v) for k, v in rand.items()}}
        attrs.update({f"cutsky_{k}": v for k, v in sky.attrs.items() if isinstance(v, (int, float, str))})
    return catalogs, attrs
