"""Training-set files (format in ``docs/architecture.md``): file-level metadata and the list of samples.

A sample is one simulation at one redshift. :class:`TrainingSetInfo` reads what a training set holds (grid, box,
training prior, redshift range, splits) once, picklably; :meth:`TrainingSetInfo.samples` lists the samples of a
split. Reading crops of the fields is :mod:`emulator.training.crops`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..core.cosmology import PARAMETER_NAMES
from ..core.base_recipe import LPT_BASE, BaseRecipe

__all__ = ["SampleInfo", "TrainingSetInfo"]


_BUILD = "build a training set with data-prep build"


def _unreadable(path: str, exc: OSError) -> str:
    """One line saying what a file h5py cannot open is: a truncated HDF5 file, a Gadget-2 snapshot, FITS, ..."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        what = "a truncated HDF5 file" if "truncated" in reason else "a damaged HDF5 file"
        return f"{path} is {what} ({reason}): copy it again or rebuild it with data-prep build"
    markers = {int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")}
    if 256 in markers or (8 in markers and head[4:8].isalpha()):
        return f"{path} looks like a Gadget-2 binary snapshot, not a training set: {_BUILD}"
    if head.startswith(b"SIMPLE  ="):
        return f"{path} is a FITS file (a mock catalog?), not a training set: {_BUILD}"
    return f"{path} is not an HDF5 file (expected a training set from data-prep build)"


def _not_a_training_set(path: str, f: h5py.File) -> str:
    """One line saying what an HDF5 file that is not a training set is."""
    if "catalog_format" in f.attrs:
        return f"{path} is a mock catalog (emulator generate), not a training set: {_BUILD}"
    if "Header" in f and any(k.startswith("PartType") for k in f):
        return f"{path} looks like a Gadget/Arepo/SWIFT HDF5 snapshot, not a training set: {_BUILD}"
    return f"{path} is not a cosmo-emulator training set (attr 'format' missing)"


@dataclass(frozen=True)
class SampleInfo:
    """One (simulation, redshift) sample of a training set."""

    sim_id: str
    zgroup: str
    params: tuple[float, ...]
    redshift: float
    scale_factor: float
    velocity_unit: float  # 100 a E(a) f1(a): km/s per Mpc/h of displacement
    f1: float = 1.0  # linear growth rate dln D1 / dln a at the redshift


@dataclass(frozen=True)
class TrainingSetInfo:
    """Metadata of a training set file (read once, picklable)."""

    path: str
    ngrid: int
    box_size: float
    prior_low: tuple[float, ...]
    prior_high: tuple[float, ...]
    redshift_range: tuple[float, float]
    splits: dict[str, list[str]]
    base: BaseRecipe = LPT_BASE

    @property
    def base_fields(self) -> tuple[str, str]:
        """Datasets of the base displacement (Mpc/h) and velocity (km/s) the generator corrects."""
        return ("lpt_disp", "lpt_vel") if self.base.is_lpt else ("base_disp", "base_vel")

    @property
    def cell(self) -> float:
        """Lagrangian cell size in Mpc/h."""
        return self.box_size / self.ngrid

    @property
    def style_low(self) -> np.ndarray:
        """Lower bounds of the style vector (five parameters, then redshift)."""
        return np.array([*self.prior_low, self.redshift_range[0]], dtype=np.float64)

    @property
    def style_high(self) -> np.ndarray:
        """Upper bounds of the style vector (five parameters, then redshift)."""
        return np.array([*self.prior_high, self.redshift_range[1]], dtype=np.float64)

    @classmethod
    def read(cls, path: str | Path) -> "TrainingSetInfo":
        """Read the file-level metadata; raise ``ValueError`` naming the file if it is not a training set."""
        path = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"training set {path} does not exist")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(_unreadable(path, exc)) from None
        with f:
            if f.attrs.get("format") != "cosmo-emulator-trainingset":
                raise ValueError(_not_a_training_set(path, f))
            try:
                splits = {k: json.loads(f["splits"].attrs[k]) for k in ("train", "val", "test")}
                zs = [float(g.attrs["redshift"]) for s in f["sims"].values()
                      for k, g in s.items() if k.startswith("z_")]
                ngrid, box_size = int(f.attrs["ngrid"]), float(f.attrs["box_size"])
                prior_low = tuple(float(x) for x in f.attrs["prior_low"])
                prior_high = tuple(float(x) for x in f.attrs["prior_high"])
                base = BaseRecipe.from_dict(f.attrs.get("base"), where=f"{path}: attribute 'base'")
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}: incomplete training set ({str(exc).splitlines()[0]})") from None
            if not zs:
                raise ValueError(f"{path}: training set holds no simulation outputs (no z_* groups)")
            return cls(
                path=path,
                ngrid=ngrid,
                box_size=box_size,
                prior_low=prior_low,
                prior_high=prior_high,
                redshift_range=(min(zs), max(zs)),
                splits=splits,
                base=base,
            )

    def samples(self, split: str) -> list[SampleInfo]:
        """All (simulation, redshift) samples of a split, in a deterministic order."""
        if split not in self.splits:
            raise ValueError(f"split must be one of train, val, test; got {split!r}")
        out = []
        with h5py.File(self.path, "r") as f:
            for sim_id in sorted(self.splits[split]):
                sim = f["sims"][sim_id]
                params = tuple(float(sim.attrs[k]) for k in PARAMETER_NAMES)
                for zkey in sorted(k for k in sim if k.startswith("z_")):
                    a = sim[zkey].attrs
                    out.append(
                        SampleInfo(
                            sim_id=sim_id,
                            zgroup=zkey,
                            params=params,
                            redshift=float(a["redshift"]),
                            scale_factor=float(a["scale_factor"]),
                            velocity_unit=100.0 * float(a["scale_factor"]) * float(a["E"]) * float(a["f1"]),
                            f1=float(a["f1"]),
                        )
                    )
        return out
