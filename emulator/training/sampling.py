"""Reproducible, resumable order and augmentation draws of the training crops.

The training stream is a pure function of a base seed: epoch ``e`` visits the crops in the order
``randperm(len(dataset))`` drawn from ``(seed, e)``, padded by repetition to a multiple of the number of
processes, and process ``r`` of ``W`` takes the positions ``r, r + W, ...`` of that order (as
:class:`torch.utils.data.DistributedSampler` does). The item at global position ``p`` carries its own seed
``(seed, e, p)``, from which :class:`emulator.training.crops.CropDataset` draws the crop origin and the cube
symmetry. Hence:

* every crop drawn in an epoch, on every process, has its own seed: no two DDP ranks share augmentation draws, and
  the draws do not depend on ``num_workers`` (they are not taken from a worker's or the main process's global RNG);
* the state needed to resume is three integers (seed, epoch, batches consumed in the epoch):
  :class:`ResumableDataLoader` implements ``state_dict``/``load_state_dict`` (Lightning saves it in checkpoints)
  and skips the consumed batches on resume, so a run resumed mid-epoch sees exactly the batches the uninterrupted
  run would have seen.

Guarantee (tested): a run resumed from a checkpoint written during an epoch (``every_n_train_steps``, or the last
one a killed run left) reproduces the uninterrupted run, bit for bit on a CPU with one thread. Lightning counts an
epoch cut short by the run's own stop (``max_steps``, ``max_time``) as done: a run resumed from the checkpoint
written at that stop starts the next epoch (reproducibly), without the rest of the cut one.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

__all__ = ["derive_seed", "ResumableCropSampler", "ResumableDataLoader"]


def derive_seed(*words: int) -> int:
    """A 63-bit seed mixed from non-negative integers (numpy ``SeedSequence``: stable across platforms)."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


class ResumableCropSampler(DistributedSampler):
    """Shuffled, padded shard of the training crops yielding ``(index, seed)`` keys; see the module docstring.

    Subclassing :class:`DistributedSampler` tells Lightning not to replace it under DDP; with one process it is
    an ordinary shuffling sampler.

    Parameters
    ----------
    dataset : Dataset
        The training crops (:class:`emulator.training.crops.CropDataset`).
    num_replicas, rank : int
        Number of processes and this process's rank.
    seed : int
        Base seed of the order and of the per-item augmentation seeds (>= 0).
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._skip: tuple[int, int] | None = None  # (epoch, items of this rank to skip once)

    def skip_once(self, epoch: int, items: int) -> None:
        """Skip the first ``items`` keys of this rank the next time epoch ``epoch`` is iterated (resume)."""
        self._skip = (int(epoch), int(items)) if items > 0 else None

    def __iter__(self) -> Iterator[tuple[int, int]]:
        n, epoch = len(self.dataset), self.epoch
        gen = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        order = torch.randperm(n, generator=gen).tolist()
        order = (order * math.ceil(self.total_size / n))[: self.total_size]
        positions = range(self.rank, self.total_size, self.num_replicas)
        start = self._skip[1] if self._skip is not None and self._skip[0] == epoch else 0
        self._skip = None
        for p in positions[start:]:
            yield order[p], derive_seed(self.seed, epoch, p)


class ResumableDataLoader(DataLoader):
    """A training DataLoader whose position in the stream can be saved and restored (Lightning ``_Stateful``).

    The state is ``{"seed", "epoch", "batches"}``: the next batch to draw is batch ``batches`` of epoch
    ``epoch``. ``epoch_batches`` (optional) returns the number of batches Lightning runs per epoch
    (``trainer.num_training_batches``, which honours ``limit_train_batches``), so that a checkpoint written at the
    end of an epoch resumes at the start of the next one.
    """

    def __init__(self, dataset: Dataset, *, sampler: ResumableCropSampler,
                 epoch_batches: Callable[[], float] | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.epoch_batches = epoch_batches
        self._epoch: int | None = None  # epoch being iterated
        self._consumed = 0  # batches of that epoch handed out, including skipped ones
        self._resume: tuple[int, int] | None = None

    def __iter__(self):
        # A generator: the sampler's epoch is read at the first batch, after Lightning's set_epoch.
        sampler = self.sampler
        epoch = sampler.epoch
        skip = self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0
        self._resume = None
        sampler.skip_once(epoch, skip * self.batch_size)
        self._epoch, self._consumed = epoch, skip
        for batch in super().__iter__():
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Seed, epoch and batches consumed: where the next batch comes from."""
        if self._resume is not None:  # restored but not iterated yet
            epoch, batches = self._resume
        else:
            epoch = self._epoch if self._epoch is not None else self.sampler.epoch
            batches = self._consumed if self._epoch is not None else 0
        if batches and self.epoch_batches is not None and batches >= self.epoch_batches():
            epoch, batches = epoch + 1, 0
        return {"seed": int(self.sampler.seed), "epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Continue the stream at the saved position (an empty state is ignored)."""
        if not state_dict:
            return
        self.sampler.seed = int(state_dict["seed"])
        self.sampler.set_epoch(int(state_dict["epoch"]))
        self._resume = (int(state_dict["epoch"]), int(state_dict["batches"]))
