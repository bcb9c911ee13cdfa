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

__all__ = ["SampleInfo", "TrainingSetInfo"]


@dataclass(frozen=True)
class SampleInfo:
    """One (simulation, redshift) sample of a training set."""

    sim_id: str
    zgroup: str
    params: tuple[float, ...]
    redshift: float
    scale_factor: float
    velocity_unit: float  # 100 a E(a) f1(a): km/s per Mpc/h of displacement


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
        except OSError:
            raise ValueError(f"{path} is not an HDF5 file (expected a training set from data-prep build)") from None
        with f:
            if f.attrs.get("format") != "cosmo-emulator-trainingset":
                raise ValueError(f"{path} is not a cosmo-emulator training set (attr 'format' missing)")
            try:
                splits = {k: json.loads(f["splits"].attrs[k]) for k in ("train", "val", "test")}
                zs = [float(g.attrs["redshift"]) for s in f["sims"].values() for k, g in s.items() if k.startswith("z_")]
                ngrid, box_size = int(f.attrs["ngrid"]), float(f.attrs["box_size"])
                prior_low = tuple(float(x) for x in f.attrs["prior_low"])
                prior_high = tuple(float(x) for x in f.attrs["prior_high"])
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
                        )
                    )
        return out
