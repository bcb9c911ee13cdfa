"""Training data: periodic 3D crops of an HDF5 training set (format in ``docs/architecture.md``).

A sample is one simulation at one redshift. Each item of :class:`CropDataset` is a cubic crop of ``crop`` cells
(the output region) plus ``halo`` cells of periodic context on every side for the network input. Fields are
made dimensionless by the Lagrangian cell size ``L / n`` (Mpc/h):

* ``input``  (3, c+2h, c+2h, c+2h): base displacement / cell; with ``velocity_input`` (6, ...): then the base
  velocity in displacement units / cell, the tangent of :mod:`emulator.model.velocity_derivative`;
* ``lpt``    (6, c, c, c): base displacement / cell and base velocity in displacement units / cell;
* ``target`` (6, c, c, c): the N-body displacement and velocity in the same units, minus ``lpt``;

The base is 2LPT (``lpt_disp`` / ``lpt_vel``) or, in a training set built with a PM base
(:mod:`emulator.core.pm_base`), the few-step PM run (``base_disp`` / ``base_vel``); the item keeps the key ``lpt``.

where a velocity ``v`` (km/s) in displacement units is ``v / (100 a E(a) f1(a))`` (Mpc/h), so that in linear
theory it equals the displacement. ``style`` is the cosmology and redshift normalised to [-1, 1] over the
training prior recorded in the file; with ``velocity_input`` it is followed by its derivative with respect to
``ln D1`` (:func:`emulator.model.velocity_derivative.style_rate`), 12 entries in all.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ..model.style import normalise_style
from ..model.velocity_derivative import style_and_rate
from .symmetry import apply_symmetry, random_symmetry
from .trainingset import TrainingSetInfo

__all__ = ["read_periodic_crop", "CropDataset", "OUTPUT_VECTORS"]

OUTPUT_VECTORS = (0, 3)  # displacement and velocity: channel groups of 3 that rotate with the grid


def _axis_pieces(start: int, size: int, n: int) -> list[tuple[slice, slice]]:
    """Split the periodic index range [start, start+size) of an axis of length n into contiguous pieces."""
    pieces, done = [], 0
    pos = start % n
    while done < size:
        take = min(size - done, n - pos)
        pieces.append((slice(pos, pos + take), slice(done, done + take)))
        done += take
        pos = 0
    return pieces


def read_periodic_crop(dset, start: tuple[int, int, int], size: int) -> np.ndarray:
    """Read a periodic cubic crop of side ``size`` starting at ``start`` from the last three axes of ``dset``.

    Works on h5py datasets (reading only the needed hyperslabs) and numpy arrays; leading axes are kept.
    """
    n = dset.shape[-1]
    lead = tuple(dset.shape[:-3])
    out = np.empty(lead + (size, size, size), dtype=dset.dtype)
    ell = (slice(None),) * len(lead)
    for sx, dx in _axis_pieces(start[0], size, n):
        for sy, dy in _axis_pieces(start[1], size, n):
            for sz, dz in _axis_pieces(start[2], size, n):
                out[ell + (dx, dy, dz)] = dset[ell + (sx, sy, sz)]
    return out


class CropDataset(Dataset):
    """Periodic crops of one split of a training set, optionally augmented by the 48 cube symmetries.

    Parameters
    ----------
    info : TrainingSetInfo
        The training set.
    split : str
        ``train``, ``val`` or ``test``.
    crop : int
        Output crop side in cells (must divide ``ngrid`` when ``random_crops`` is False).
    halo : int
        Periodic context cells added on each side of the network input.
    random_crops : bool
        Random crop origins (training) or the deterministic tiling of each box (validation/test).
    crops_per_sample : int
        Random crops drawn per sample per epoch (ignored for deterministic tiling, which uses ``(n/crop)^3``).
    augment : bool
        Apply a random cube symmetry to each crop.
    velocity_input : bool
        Add the base velocity to the input and the style's rate to the style (the tangent of a derivative-velocity
        network, :mod:`emulator.model.velocity_derivative`).

    Notes
    -----
    An item is addressed by an integer ``index`` or by a key ``(index, seed)``. With a key (what
    :class:`emulator.training.sampling.ResumableCropSampler` yields), the random crop origin and the symmetry are
    drawn from a generator seeded by ``seed``, so the item is a pure function of the key; with a bare index they
    come from torch's global generator.
    """

    def __init__(
        self,
        info: TrainingSetInfo,
        split: str,
        *,
        crop: int,
        halo: int,
        random_crops: bool,
        crops_per_sample: int = 1,
        augment: bool = False,
        velocity_input: bool = False,
    ) -> None:
        n = info.ngrid
        if crop <= 0 or crop > n:
            raise ValueError(f"crop must be in [1, ngrid={n}], got {crop}")
        if halo < 0:
            raise ValueError(f"halo must be >= 0, got {halo}")
        if not random_crops and n % crop:
            raise ValueError(f"crop={crop} must divide ngrid={n} for deterministic tiling")
        if random_crops and (isinstance(crops_per_sample, bool) or not isinstance(crops_per_sample, int)
                             or crops_per_sample < 1):
            raise ValueError(f"crops_per_sample must be an integer >= 1, got {crops_per_sample!r}")
        self.info, self.split, self.crop, self.halo = info, split, crop, halo
        self.random_crops, self.augment, self.velocity_input = random_crops, augment, bool(velocity_input)
        self.samples = info.samples(split)
        if not self.samples:
            raise ValueError(f"training set {info.path} has no samples in split {split!r}")
        self.crops_per_sample = crops_per_sample if random_crops else (n // crop) ** 3
        self._file: h5py.File | None = None
        self._file_pid: int | None = None

    def __len__(self) -> int:
        return len(self.samples) * self.crops_per_sample

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # h5py handles must not be pickled into workers
        state["_file_pid"] = None
        return state

    def _h5(self) -> h5py.File:
        # Reopen in a forked worker: an HDF5 handle inherited across fork() must not be shared between processes.
        if self._file is None or self._file_pid != os.getpid():
            self._file = h5py.File(self.info.path, "r")
            self._file_pid = os.getpid()
        return self._file

    def _origin(self, index: int, generator: torch.Generator | None = None) -> tuple[int, int, int]:
        """Origin (cells) of the output crop: random (from ``generator``) or the tile ``index`` of its box."""
        n, c = self.info.ngrid, self.crop
        if self.random_crops:
            return tuple(int(v) for v in torch.randint(0, n, (3,), generator=generator))
        m = n // c
        j = index % self.crops_per_sample
        return (j // (m * m) * c, (j // m) % m * c, j % m * c)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        index = int(index)
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        sample = self.samples[index // self.crops_per_sample]
        grp = self._h5()["sims"][sample.sim_id][sample.zgroup]
        ox, oy, oz = self._origin(index, generator)
        c, h = self.crop, self.halo
        cell = self.info.cell
        base_disp, base_vel = (grp[name] for name in self.info.base_fields)
        corner = (ox - h, oy - h, oz - h)
        vu = sample.velocity_unit
        inp = read_periodic_crop(base_disp, corner, c + 2 * h) / cell
        if self.velocity_input:
            inp = np.concatenate([inp, read_periodic_crop(base_vel, corner, c + 2 * h) / (vu * cell)])
        centre = (ox, oy, oz)
        lpt = np.concatenate(
            [read_periodic_crop(base_disp, centre, c), read_periodic_crop(base_vel, centre, c) / vu]
        )
        nbody = np.concatenate(
            [read_periodic_crop(grp["disp"], centre, c), read_periodic_crop(grp["vel"], centre, c) / vu]
        )
        lpt = lpt / cell
        target = nbody / cell - lpt
        item = {
            "input": torch.from_numpy(np.ascontiguousarray(inp, dtype=np.float32)),
            "lpt": torch.from_numpy(np.ascontiguousarray(lpt, dtype=np.float32)),
            "target": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
        }
        if self.augment:
            g = random_symmetry(generator)
            inputs = OUTPUT_VECTORS if self.velocity_input else (0,)  # displacement (and velocity) rotate
            item["input"] = apply_symmetry(item["input"], g, vector_channels=inputs, periodic=False)
            for key in ("lpt", "target"):
                item[key] = apply_symmetry(item[key], g, vector_channels=OUTPUT_VECTORS, periodic=False)
        low, high = self.info.style_low, self.info.style_high
        style = (style_and_rate(sample.params, sample.redshift, sample.f1, low, high) if self.velocity_input
                 else normalise_style(sample.params, sample.redshift, low, high))
        item["style"] = torch.from_numpy(style.astype(np.float32))
        item["index"] = torch.tensor(index, dtype=torch.long)
        return item
