"""LightningDataModule over an HDF5 training set (see :mod:`emulator.training.trainingset`)."""

from __future__ import annotations

from typing import Iterator

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from .crops import CropDataset
from .trainingset import TrainingSetInfo

__all__ = ["FieldDataModule", "UnpaddedDistributedSampler"]


class UnpaddedDistributedSampler(DistributedSampler):
    """Shards indices ``rank::world_size`` without padding, so no validation sample is counted twice.

    Subclassing :class:`DistributedSampler` tells Lightning not to wrap it again.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


class FieldDataModule(L.LightningDataModule):
    """Random augmented crops for training, the deterministic tiling of each box for validation and test.

    Parameters
    ----------
    path : str
        Training-set HDF5 file written by ``data-prep build``.
    crop : int
        Output crop side in Lagrangian cells for training.
    halo : int
        Periodic context cells on each side of the input; must be at least the network's ``halo``.
    val_crop : int or None
        Output crop side for validation/test tiles (must divide ``ngrid``); defaults to ``crop``.
    batch_size : int
        Crops per batch (per device under DDP).
    crops_per_sample : int
        Random training crops per (simulation, redshift) sample per epoch.
    augment : bool
        Random cube symmetries (48) on training crops, vectors rotated with the grid.
    num_workers : int
        DataLoader worker processes; each opens the HDF5 file lazily.
    """

    def __init__(
        self,
        path: str,
        crop: int = 32,
        halo: int = 8,
        val_crop: int | None = None,
        batch_size: int = 4,
        crops_per_sample: int = 4,
        augment: bool = True,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.info: TrainingSetInfo | None = None

    def _read_info(self) -> TrainingSetInfo:
        if self.info is None:
            self.info = TrainingSetInfo.read(self.hparams.path)
        return self.info

    @property
    def style_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the style vector: the training prior of the five parameters and the redshift range."""
        info = self._read_info()
        return info.style_low, info.style_high

    @property
    def cell_size(self) -> float:
        """Lagrangian cell size in Mpc/h."""
        return self._read_info().cell

    def setup(self, stage: str | None = None) -> None:
        info = self._read_info()
        hp = self.hparams
        val_crop = hp.val_crop or hp.crop
        if stage in (None, "fit", "validate", "test") and (val_crop <= 0 or info.ngrid % val_crop):
            raise ValueError(f"val_crop={val_crop} must divide the training set's ngrid={info.ngrid} (data.val_crop)")
        if stage in (None, "fit"):
            self.train_set = CropDataset(
                info, "train", crop=hp.crop, halo=hp.halo, random_crops=True,
                crops_per_sample=hp.crops_per_sample, augment=hp.augment,
            )
        if stage in (None, "fit", "validate"):
            self.val_set = CropDataset(info, "val", crop=val_crop, halo=hp.halo, random_crops=False)
        if stage in (None, "test"):
            self.test_set = CropDataset(info, "test", crop=val_crop, halo=hp.halo, random_crops=False)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        sampler = None
        trainer = self.trainer
        if not shuffle and trainer is not None and trainer.world_size > 1:
            if len(dataset) < trainer.world_size:
                # A process without a single crop would skip the epoch and hang the others in the metric sync.
                raise ValueError(
                    f"{len(dataset)} {dataset.split} crop(s) cannot feed {trainer.world_size} processes: "
                    f"lower data.val_crop or add {dataset.split} simulations"
                )
            sampler = UnpaddedDistributedSampler(dataset, trainer.world_size, trainer.global_rank)
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
