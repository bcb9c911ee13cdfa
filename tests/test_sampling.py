"""The training stream (emulator.training.sampling): per-epoch shards that partition the crops, one seed per drawn
crop, draws independent of worker processes and distinct on DDP ranks, and mid-epoch resume that yields exactly
the batches the uninterrupted loader would have yielded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emulator.training.crops import CropDataset
from emulator.training.sampling import ResumableCropSampler, ResumableDataLoader
from emulator.training.trainingset import TrainingSetInfo

try:
    from helpers_trainingset import write_index_training_set
except ImportError:  # pragma: no cover
    from tests.helpers_trainingset import write_index_training_set

REPO = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).resolve().parent / "helpers_fit.py"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def index_set(tmp_path_factory):
    return write_index_training_set(tmp_path_factory.mktemp("index_set") / "index.h5")


@pytest.mark.parametrize("size, world", [(12, 1), (12, 2), (7, 3), (5, 4)])
def test_shards_cover_every_index_and_reshuffle_each_epoch(size, world):
    orders = []
    for epoch in (0, 1):
        keys = []
        for rank in range(world):
            s = ResumableCropSampler(range(size), world, rank, seed=5)
            s.set_epoch(epoch)
            keys.append(list(s))
            assert len(keys[-1]) == len(s) == -(-size // world)
        flat = [i for shard in keys for i, _ in shard]
        assert set(flat) == set(range(size)) and len(flat) == world * -(-size // world)  # padded by repetition
        seeds = [sd for shard in keys for _, sd in shard]
        assert len(set(seeds)) == len(seeds)  # every drawn crop has its own seed, padding repeats included
        orders.append(keys)
    assert orders[0] != orders[1]
    again = ResumableCropSampler(range(size), world, 0, seed=5)
    assert list(again) == orders[0][0]  # a pure function of (seed, epoch, rank)


def _batches(loader):
    return [(b["index"].clone(), b["input"].clone(), b["lpt"].clone()) for b in loader]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(all(torch.equal(x, y) for x, y in zip(p, q)) for p, q in zip(a, b))


def _loader(ds, workers=0, seed=3, **kw):
    return ResumableDataLoader(ds, sampler=ResumableCropSampler(ds, 1, 0, seed), batch_size=2, num_workers=workers,
                               **kw)


def test_draws_do_not_depend_on_worker_processes(index_set):
    ds = CropDataset(TrainingSetInfo.read(index_set), "train", crop=8, halo=2, random_crops=True,
                     crops_per_sample=4, augment=True)
    serial = _batches(_loader(ds))
    torch.manual_seed(123)  # the global generator plays no part
    assert _same(_batches(_loader(ds, workers=2, multiprocessing_context="fork")), serial)
    assert not _same(_batches(_loader(ds, seed=4)), serial)


def test_resume_mid_epoch_yields_the_remaining_batches(index_set):
    ds = CropDataset(TrainingSetInfo.read(index_set), "train", crop=8, halo=2, random_crops=True,
                     crops_per_sample=4, augment=True)
    full = _loader(ds)
    full.sampler.set_epoch(1)
    want = _batches(full)
    assert len(want) == 4
    first = _loader(ds)
    first.sampler.set_epoch(1)
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    assert state == {"seed": 3, "epoch": 1, "batches": 3}
    resumed = _loader(ds, seed=99)  # seed and position come from the state
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    resumed.sampler.set_epoch(1)  # what Lightning does before the epoch
    assert _same(_batches(resumed), want[3:])
    resumed.sampler.set_epoch(2)  # the skip applied once: the next epoch is whole
    assert len(_batches(resumed)) == 4
    # a position at the end of an epoch (as Lightning counts it) resumes at the start of the next one
    done = _loader(ds, epoch_batches=lambda: 3)
    done.load_state_dict({"seed": 3, "epoch": 1, "batches": 3})
    assert done.state_dict() == {"seed": 3, "epoch": 2, "batches": 0}


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_ranks_draw_different_crops(tmp_path):
    """All simulations of the index set hold the same fields, so two ranks that drew the same origins and
    symmetries would hold identical crops (as with one global seed per rank and num_workers=0)."""
    data = write_index_training_set(tmp_path / "index.h5")
    out = tmp_path / "draws"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(HELPER), "ddp-draws", "--data", str(data), "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert len(r0["lpt"]) == len(r1["lpt"]) == 2
    idx0, idx1 = torch.cat(r0["index"]).tolist(), torch.cat(r1["index"]).tolist()
    assert not set(idx0) & set(idx1) and len(set(idx0 + idx1)) == 8  # the ranks share the epoch's 8 crops
    crops0, crops1 = torch.cat(r0["lpt"]), torch.cat(r1["lpt"])
    assert not any(torch.equal(a, b) for a in crops0 for b in crops1)
