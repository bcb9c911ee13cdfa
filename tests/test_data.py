"""Tests of the training-data path (emulator.training.trainingset, emulator.training.datamodule) against
independent truths: numpy's
wrap-around indexing, hand-encoded index fields, the known synthetic residual of the fixture, the particle
picture of the cube symmetries, and hand-computed style normalisation."""

from __future__ import annotations

import pickle
import shutil
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

import emulator.training.crops as data_mod
from emulator.core.lpt import lagrangian_grid, particles_to_vector_field, vector_field_to_particles
from emulator.core.mesh import paint
from emulator.model.style import normalise_style
from emulator.training.crops import CropDataset, read_periodic_crop
from emulator.training.datamodule import FieldDataModule, UnpaddedDistributedSampler
from emulator.training.trainingset import TrainingSetInfo
from emulator.training.symmetry import SYMMETRIES, apply_symmetry, symmetry_matrix

try:
    from helpers_trainingset import GAMMA, PRIOR_HIGH, PRIOR_LOW, residual_map, write_index_training_set
except ImportError:  # pragma: no cover
    from tests.helpers_trainingset import GAMMA, PRIOR_HIGH, PRIOR_LOW, residual_map, write_index_training_set


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def index_set(tmp_path_factory):
    return write_index_training_set(tmp_path_factory.mktemp("index_set") / "index.h5")


def _np_crop(arr: np.ndarray, start, size) -> np.ndarray:
    out = arr
    for ax, s in zip((-3, -2, -1), start):
        out = np.take(out, np.arange(s, s + size), axis=ax, mode="wrap")
    return out


# ---------------------------------------------------------------------------------------------------------------
# read_periodic_crop
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, size",
    [((0, 0, 0), 4), ((5, 9, 2), 6), ((-3, 7, 11), 8), ((9, -13, 30), 12), ((-20, 3, 1), 25), ((2, 2, 2), 12)],
)
def test_read_periodic_crop_matches_numpy_wrap(tmp_path, start, size):
    rng = np.random.default_rng(0)
    arr = rng.standard_normal((2, 3, 12, 12, 12)).astype(np.float32)
    want = _np_crop(arr, start, size)
    assert np.array_equal(read_periodic_crop(arr, start, size), want)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        dset = f.create_dataset("x", data=arr[0], chunks=(3, 4, 4, 4))
        got = read_periodic_crop(dset, start, size)
    assert got.shape == (3, size, size, size) and got.dtype == np.float32
    assert np.array_equal(got, want[0])
    assert np.array_equal(read_periodic_crop(arr[0, 0], start, size), want[0, 0])  # scalar mesh, no lead axes


# ---------------------------------------------------------------------------------------------------------------
# Deterministic tiling, halo, units
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crop, halo", [(8, 3), (4, 0), (16, 5)])
def test_val_tiling_covers_every_cell_once_with_periodic_halo(index_set, crop, halo):
    info = TrainingSetInfo.read(index_set)
    n = info.ngrid
    ds = CropDataset(info, "val", crop=crop, halo=halo, random_crops=False)
    n_samples = len(info.samples("val"))
    assert n_samples == 2 and len(ds) == n_samples * (n // crop) ** 3
    counts = np.zeros((n_samples, n, n, n), dtype=int)
    ar = np.arange(-halo, crop + halo)
    for j in range(len(ds)):
        item = ds[j]
        assert int(item["index"]) == j
        idx = item["lpt"][:3].numpy()  # the index file stores lpt_disp = grid index * cell
        assert np.array_equal(idx, np.round(idx)) and idx.min() >= 0 and idx.max() < n
        s = j // (n // crop) ** 3
        i0, j0, k0 = (int(v) for v in idx[:, 0, 0, 0])
        counts[s][np.ix_(np.arange(i0, i0 + crop) % n, np.arange(j0, j0 + crop) % n, np.arange(k0, k0 + crop) % n)] += 1
        # input with halo: the periodic continuation of the same grid, index (origin - halo + t) mod n per axis
        inp = item["input"].numpy()
        assert inp.shape == (3, crop + 2 * halo, crop + 2 * halo, crop + 2 * halo)
        assert np.array_equal(inp[0, :, 0, 0], (i0 + ar) % n)
        assert np.array_equal(inp[1, 0, :, 0], (j0 + ar) % n)
        assert np.array_equal(inp[2, 0, 0, :], (k0 + ar) % n)
        assert np.array_equal(inp[:, halo:halo + crop, halo:halo + crop, halo:halo + crop], idx)
        # disp = lpt_disp + cell/2 and velocity = (a+1) cells in displacement units (see the index file)
        tgt = item["target"].numpy()
        assert np.allclose(tgt[:3], 0.5, atol=1e-5)
        assert np.allclose(tgt[3:], np.arange(1, 4)[:, None, None, None], atol=1e-5)
        assert np.allclose(item["lpt"][3:].numpy(), 0.0)
    assert np.array_equal(counts, np.ones_like(counts))


def test_target_is_nbody_minus_lpt_in_cell_units(synthetic_training_set):
    """Hand values from the file, and the residual the fixture put in (independent of the builder)."""
    info = TrainingSetInfo.read(synthetic_training_set)
    n, cell, c = info.ngrid, info.cell, 8
    ds = CropDataset(info, "val", crop=c, halo=2, random_crops=False)
    tiles = (n // c) ** 3
    with h5py.File(synthetic_training_set, "r") as f:
        for sample_no, j in [(0, 0), (1, 5), (2, tiles - 1)]:
            s = ds.samples[sample_no]
            g = f["sims"][s.sim_id][s.zgroup]
            a, e, f1 = (float(g.attrs[k]) for k in ("scale_factor", "E", "f1"))
            vu = 100.0 * a * e * f1  # km/s per Mpc/h
            lpt_d = g["lpt_disp"][()].astype(np.float64)
            hand_d = (g["disp"][()] - lpt_d) / cell
            hand_v = (g["vel"][()] - g["lpt_vel"][()].astype(np.float64)) / vu / cell
            item = ds[sample_no * tiles + j]
            # locate the tile in the box by its 2LPT displacement (unique for a Gaussian field)
            origins = [(x, y, z) for x in range(0, n, c) for y in range(0, n, c) for z in range(0, n, c)]
            errs = [np.abs(_np_crop(lpt_d / cell, o, c) - item["lpt"][:3].numpy()).max() for o in origins]
            o = origins[int(np.argmin(errs))]
            assert min(errs) < 1e-5 and sorted(errs)[1] > 1e-2
            tgt = item["target"].numpy()
            assert np.allclose(tgt[:3], _np_crop(hand_d, o, c), atol=1e-5)
            assert np.allclose(tgt[3:], _np_crop(hand_v, o, c), atol=1e-5)
            assert np.allclose(item["lpt"][3:].numpy(), _np_crop(g["lpt_vel"][()] / vu / cell, o, c), atol=1e-5)
            # the synthetic truth: R(p) for the displacement, GAMMA R(p) for the velocity (displacement units)
            r = _np_crop(residual_map(torch.from_numpy(lpt_d / cell)).numpy(), o, c)
            assert np.abs(r).max() > 0.3
            assert np.allclose(tgt[:3], r, atol=2e-4)
            assert np.allclose(tgt[3:], GAMMA * r, atol=4e-4)


def test_style_normalisation_maps_prior_to_unit_interval(synthetic_training_set):
    low, high = np.array([*PRIOR_LOW, 0.0]), np.array([*PRIOR_HIGH, 1.0])
    assert np.allclose(normalise_style(PRIOR_LOW, 0.0, low, high), -1.0)
    assert np.allclose(normalise_style(PRIOR_HIGH, 1.0, low, high), 1.0)
    assert np.allclose(normalise_style((low[:5] + high[:5]) / 2, 0.5, low, high), 0.0)
    flat = normalise_style(PRIOR_LOW, 0.3, low, np.array([*PRIOR_HIGH, 0.0]))  # degenerate redshift range
    assert np.allclose(flat[:5], -1.0) and flat[5] == 0.0
    info = TrainingSetInfo.read(synthetic_training_set)
    assert info.redshift_range == (0.0, 1.0)
    assert np.allclose(info.style_low, low) and np.allclose(info.style_high, high)
    ds = CropDataset(info, "train", crop=8, halo=0, random_crops=False)
    with h5py.File(synthetic_training_set, "r") as f:
        for k in (0, 9, len(ds) - 1):
            s = ds.samples[k // ds.crops_per_sample]
            attrs = f["sims"][s.sim_id].attrs
            x = [float(attrs[p]) for p in ("Omega_m", "Omega_b", "h", "n_s", "sigma8")]
            z = float(f["sims"][s.sim_id][s.zgroup].attrs["redshift"])
            hand = [2 * (v - lo) / (hi - lo) - 1 for v, lo, hi in zip(x + [z], low, high)]
            assert np.allclose(ds[k]["style"].numpy(), hand, atol=1e-6)


def test_dataset_pickles_after_use_and_forked_workers_agree(synthetic_training_set):
    info = TrainingSetInfo.read(synthetic_training_set)
    ds = CropDataset(info, "val", crop=8, halo=4, random_crops=False)
    first = ds[3]  # opens the HDF5 file
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    again = clone[3]
    for key in first:
        assert torch.equal(first[key], again[key])
    serial = [ds[j]["target"] for j in range(len(ds))]
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="fork")
    parallel = torch.cat([b["target"] for b in loader])
    assert torch.equal(parallel, torch.stack(serial))


# ---------------------------------------------------------------------------------------------------------------
# Symmetry augmentation is a symmetry of the data
# ---------------------------------------------------------------------------------------------------------------

SOME_SYMMETRIES = [0, 1, 7, 10, 21, 35, 47]  # identity, single flip, all flips, permutations with flips


def _transformed_copy(src, dst, g: int) -> None:
    """Copy the training set with every box transformed by the exact periodic lattice action of ``g``."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        for sim in f["sims"].values():
            for key, grp in sim.items():
                if not key.startswith("z_"):
                    continue
                for name in ("lpt_disp", "lpt_vel", "disp", "vel"):
                    x = torch.from_numpy(grp[name][()])
                    grp[name][...] = apply_symmetry(x, g, vector_channels=(0,), periodic=True).numpy()


@pytest.mark.parametrize("g", SOME_SYMMETRIES)
def test_augmented_crop_equals_crop_of_transformed_box(synthetic_training_set, tmp_path, monkeypatch, g):
    """Crop then apply g (periodic=False, as in the data path) == apply g to the box (periodic=True) then crop at
    the transformed origin: per output axis a (input axis perm[a]), o'_a = o_perm[a], or -o_perm[a] - c + 1 when
    reflected (the crop's last cell maps to the new first cell under i -> -i mod n)."""
    n, c, h = 16, 6, 5  # c + 2h > n: the halo wraps around the box
    other = tmp_path / "transformed.h5"
    _transformed_copy(synthetic_training_set, other, g)
    perm, flips = SYMMETRIES[g]
    origin = (3, 10, 14)
    new_origin = tuple((-origin[perm[a]] - c + 1) % n if flips[a] else origin[perm[a]] for a in range(3))

    monkeypatch.setattr(data_mod, "random_symmetry", lambda generator=None: g)
    aug = CropDataset(TrainingSetInfo.read(synthetic_training_set), "val", crop=c, halo=h, random_crops=True,
                      augment=True)
    ref = CropDataset(TrainingSetInfo.read(other), "val", crop=c, halo=h, random_crops=True, augment=False)
    monkeypatch.setattr(aug, "_origin", lambda index, generator=None: origin)
    monkeypatch.setattr(ref, "_origin", lambda index, generator=None: new_origin)
    for j in range(len(aug)):
        a, b = aug[j], ref[j]
        for key in ("input", "lpt", "target", "style"):
            assert torch.equal(a[key], b[key]), key
    plain = CropDataset(TrainingSetInfo.read(synthetic_training_set), "val", crop=c, halo=h, random_crops=True)
    monkeypatch.setattr(plain, "_origin", lambda index, generator=None: origin)
    assert torch.equal(plain[0]["target"], aug[0]["target"]) == (g == 0)  # the check is not vacuous


@pytest.mark.parametrize("g", SOME_SYMMETRIES)
def test_transformed_particles_have_transformed_displacement(synthetic_training_set, g):
    """Move the particles themselves by R (mod L): the displacement and velocity of the particle now at q' are
    R psi and R v, i.e. apply_symmetry(periodic=True) of the fields, and the painted density transforms as a
    scalar."""
    info = TrainingSetInfo.read(synthetic_training_set)
    n, box, cell = info.ngrid, info.box_size, info.cell
    s = info.samples("train")[2]
    with h5py.File(synthetic_training_set, "r") as f:
        grp = f["sims"][s.sim_id][s.zgroup]
        psi = torch.from_numpy(grp["disp"][()].astype(np.float64))
        vel = torch.from_numpy(grp["vel"][()].astype(np.float64))
    r = torch.tensor(symmetry_matrix(g), dtype=torch.float64)
    q = lagrangian_grid(n, box, dtype=torch.float64)
    x = q + vector_field_to_particles(psi)
    q_new = torch.remainder(q @ r.T, box)
    x_new = torch.remainder(x @ r.T, box)
    d_new = x_new - q_new
    d_new = d_new - box * torch.round(d_new / box)
    slot = torch.round(q_new / cell).long() % n
    order = (slot[:, 0] * n + slot[:, 1]) * n + slot[:, 2]
    assert torch.equal(torch.sort(order).values, torch.arange(n**3))  # lattice maps onto itself
    field_d = torch.empty(n**3, 3, dtype=torch.float64)
    field_v = torch.empty(n**3, 3, dtype=torch.float64)
    field_d[order] = d_new
    field_v[order] = vel.flatten(1).T @ r.T
    assert torch.allclose(particles_to_vector_field(field_d, n), apply_symmetry(psi, g, vector_channels=(0,)),
                          atol=1e-9)
    assert torch.allclose(particles_to_vector_field(field_v, n), apply_symmetry(vel, g, vector_channels=(0,)),
                          atol=1e-9)
    rho = paint(x, n, box)
    assert torch.allclose(paint(x_new, n, box), apply_symmetry(rho, g, vector_channels=()), atol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Sampler and bad inputs
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, world", [(5, 2), (3, 2), (7, 3), (4, 4)])
def test_unpadded_sampler_partitions_indices(size, world):
    shards = [list(UnpaddedDistributedSampler(range(size), world, r)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(size))
    assert [len(UnpaddedDistributedSampler(range(size), world, r)) for r in range(world)] == [len(s) for s in shards]
    assert isinstance(UnpaddedDistributedSampler(range(size), world, 0), DistributedSampler)
    padded = [i for r in range(world) for i in DistributedSampler(range(size), world, r, shuffle=False)]
    assert (len(padded) > size) == (size % world != 0)  # what the plain sampler would double count


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


def test_bad_inputs_raise_one_line_errors(index_set, tmp_path):
    info = TrainingSetInfo.read(index_set)
    for kwargs, word in [
        (dict(crop=17, halo=2, random_crops=True), "crop"),
        (dict(crop=0, halo=2, random_crops=True), "crop"),
        (dict(crop=6, halo=2, random_crops=False), "crop"),
        (dict(crop=8, halo=-1, random_crops=False), "halo"),
        (dict(crop=8, halo=2, random_crops=True, crops_per_sample=0), "crops_per_sample"),
    ]:
        with pytest.raises(ValueError) as exc:
            CropDataset(info, "train", **kwargs)
        assert word in _one_line(exc)
    with pytest.raises(ValueError) as exc:
        CropDataset(info, "training", crop=8, halo=2, random_crops=False)
    assert "split" in _one_line(exc)
    with pytest.raises(FileNotFoundError) as exc:
        TrainingSetInfo.read(tmp_path / "missing.h5")
    assert "missing.h5" in _one_line(exc)
    text = tmp_path / "not_hdf5.h5"
    text.write_text("hello")
    with pytest.raises(ValueError) as exc:
        TrainingSetInfo.read(text)
    assert "not_hdf5.h5" in _one_line(exc)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ValueError) as exc:
        TrainingSetInfo.read(other)
    assert "other.h5" in _one_line(exc)
    # through the DataModule: val crop must divide ngrid; crop may not exceed it
    for kwargs, word in [(dict(crop=8, val_crop=12), "val_crop"), (dict(crop=32), "crop")]:
        dm = FieldDataModule(str(index_set), halo=2, **kwargs)
        with pytest.raises(ValueError) as exc:
            dm.setup("fit")
        assert word in _one_line(exc)


def test_fewer_validation_crops_than_processes_is_an_error(index_set):
    """Each DDP process must get at least one validation crop, or the metric sync would hang."""
    dm = FieldDataModule(str(index_set), crop=8, halo=2, val_crop=16)
    dm.setup("fit")
    assert len(dm.val_set) == 2
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    assert [int(b["index"][0]) for b in dm.val_dataloader()] == [1]
    dm.trainer = SimpleNamespace(world_size=3, global_rank=0)
    with pytest.raises(ValueError) as exc:
        dm.val_dataloader()
    assert "val_crop" in _one_line(exc)
