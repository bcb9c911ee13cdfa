"""LightningDataModule over an HDF5 training set (see :mod:`emulator.training.trainingset`)."""

from __future__ import annotations

from typing import Any, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from .crops import CropDataset
from .sampling import ResumableCropSampler, ResumableDataLoader
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

    The training order and every crop's origin and symmetry are a pure function of ``seed`` (see
    :mod:`emulator.training.sampling`): independent of ``num_workers``, distinct on every DDP rank, and resumable
    mid-epoch. The position in that stream is saved in checkpoints (by the loader and, as ``state_dict``, by this
    module: Lightning 2.6 does not restore a loader it built before the checkpoint was loaded, which it does to
    estimate the schedule length when ``max_epochs`` is finite).

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
    velocity_input : bool
        Items carry the base velocity in ``input`` and the style's rate in ``style`` (what a model with
        ``velocity: derivative`` reads; linked to ``model.velocity`` by ``emulator fit``, not set by hand).
    seed : int or None
        Base seed of the training order and augmentation draws; None draws one from torch's global generator
        (seeded by ``seed_everything``) when the training loader is first built, taken from rank 0 under DDP.
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
        seed: int | None = None,
        velocity_input: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.info: TrainingSetInfo | None = None
        self._train_loader: ResumableDataLoader | None = None
        self._pending_state: dict[str, int] | None = None

    def read_info(self) -> TrainingSetInfo:
        """The training set's metadata (read once); errors are one line naming the file and ``data.path``."""
        if self.info is None:
            try:
                self.info = TrainingSetInfo.read(self.hparams.path)
            except (ValueError, FileNotFoundError) as exc:
                raise type(exc)(f"{exc} (data.path)") from None
        return self.info

    @property
    def style_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of the style vector: the training prior of the five parameters and the redshift range."""
        info = self.read_info()
        return info.style_low, info.style_high

    @property
    def cell_size(self) -> float:
        """Lagrangian cell size in Mpc/h."""
        return self.read_info().cell

    def setup(self, stage: str | None = None) -> None:
        info = self.read_info()
        hp = self.hparams
        val_crop = hp.val_crop or hp.crop
        if stage in (None, "fit", "validate", "test") and (val_crop <= 0 or info.ngrid % val_crop):
            raise ValueError(f"val_crop={val_crop} must divide the training set's ngrid={info.ngrid} (data.val_crop)")
        if stage in (None, "fit"):
            self.train_set = CropDataset(
                info, "train", crop=hp.crop, halo=hp.halo, random_crops=True,
                crops_per_sample=hp.crops_per_sample, augment=hp.augment, velocity_input=hp.velocity_input,
            )
        if stage in (None, "fit", "validate"):
            self.val_set = CropDataset(info, "val", crop=val_crop, halo=hp.halo, random_crops=False,
                                       velocity_input=hp.velocity_input)
        if stage in (None, "test"):
            self.test_set = CropDataset(info, "test", crop=val_crop, halo=hp.halo, random_crops=False,
                                        velocity_input=hp.velocity_input)

    def _eval_loader(self, dataset) -> DataLoader:
        sampler = None
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
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
            shuffle=False,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def _base_seed(self) -> int:
        seed = self.hparams.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)))
            trainer = self.trainer
            if trainer is not None and trainer.world_size > 1:
                seed = int(trainer.strategy.broadcast(seed, src=0))
        return int(seed)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        seed = self._train_loader.sampler.seed if self._train_loader is not None else self._base_seed()
        workers = self.hparams.num_workers
        loader = ResumableDataLoader(
            self.train_set,
            sampler=ResumableCropSampler(self.train_set, world, rank, seed),
            epoch_batches=(lambda: trainer.num_training_batches) if trainer is not None else None,
            batch_size=self.hparams.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=False,
        )
        if self._pending_state:
            loader.load_state_dict(self._pending_state)
            self._pending_state = None
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """Position of the training stream (see the class docstring); empty before training."""
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training stream where the checkpoint left it."""
        state = state_dict.get("train_loader")
        if state and self._train_loader is not None:
            self._train_loader.load_state_dict(state)
        elif state:
            self._pending_state = dict(state)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
