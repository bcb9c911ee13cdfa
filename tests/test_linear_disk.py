"""The out-of-core linear stage (FFTs on disk in blocks of planes) against the in-memory one."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from emulator.core.cosmology import get_preset
from emulator.core.fields import white_noise
from emulator.mocks.api import generate_mocks
from emulator.mocks.catalogs import MockOptions
from emulator.mocks.io import read_catalog
from emulator.mocks.largebox import BASELINE_BYTES, plan_memory
from emulator.model.linear_disk import (BYTES_PER_BLOCK_CELL, LARGEST_BLOCK, block_for_memory,
                                        linear_fields_out_of_core, noise_blocks)
from emulator.model.portable import load_model
from emulator.model.streaming import linear_fields_to_file, stream_fields

COSMO = get_preset("planck18")


@pytest.mark.parametrize("n, block", [(6, 4), (10, 4), (12, 8), (32, 12)])
def test_noise_blocks_are_the_white_noise_bit_for_bit(n, block):
    """Blocks drawn one after another from one generator equal the one draw of white_noise (n = 6, 10: n^2 is not a
    multiple of 16, so a block of planes must be a multiple of 4 planes to keep the stream)."""
    assert torch.equal(torch.cat([x for _, _, x in noise_blocks(3, n, block)]), white_noise(3, n, dtype=torch.float64))


def test_noise_blocks_of_other_sizes_would_change_the_stream_and_are_refused():
    gen = torch.Generator().manual_seed(3)  # blocks of 2 planes of 6^2: 72 values, not a multiple of 16
    pairs = torch.cat([torch.randn((2, 6, 6), dtype=torch.float64, generator=gen) for _ in range(3)])
    assert not torch.equal(pairs, white_noise(3, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="multiple of 4"):
        next(noise_blocks(3, 12, 6))
    for bad in (-4, 0, 6, 4.0):
        with pytest.raises(ValueError, match="linear_block must be"):
            linear_fields_out_of_core(COSMO, 0.0, 36.0, 1, 12, "2lpt", None, None, Path("unused.h5"), block=bad)
    assert not Path("unused.h5").exists()


@pytest.mark.parametrize("n, block, method, z", [(32, 12, "2lpt", 0.0), (30, 8, "2lpt", 1.0), (32, 4, "za", 0.5),
                                                 (8, 32, "2lpt", 0.0)])
def test_out_of_core_fields_equal_the_in_memory_ones(tmp_path, n, block, method, z):
    """Displacement and velocity fields from FFTs on disk (blocks that do not divide n; n = 30 is not a multiple of
    4; one block for the whole mesh) equal the in-memory ones to float32 rounding: the same noise, amplitudes,
    kernels and 2LPT source."""
    with h5py.File(tmp_path / "f.h5", "w") as f:
        held = [f.create_dataset(k, (3, n, n, n), "f4") for k in ("d", "v")]
        disk = [f.create_dataset(k + "2", (3, n, n, n), "f4") for k in ("d", "v")]
        linear_fields_to_file(COSMO, z, 3.0 * n, 7, n, method, *held, "cpu")
        linear_fields_out_of_core(COSMO, z, 3.0 * n, 7, n, method, *disk, tmp_path / "k.h5", block=block)
        for a, b in zip(held, disk):
            a, b = a[...], b[...]
            assert a.std() > 1.0 and np.abs(a - b).max() < 2e-5 * a.std()
    assert (tmp_path / "k.h5").exists()  # the caller's scratch, removed by the caller


def test_stream_fields_out_of_core_matches_and_leaves_no_scratch(tmp_path):
    model = load_model("default")  # streaming needs a 2LPT base
    out = {}
    for name, block in (("held", None), ("disk", 8)):
        with h5py.File(tmp_path / f"{name}.h5", "w") as fh:
            stream_fields(COSMO, 0.0, 96.0, 5, fh, tmp_path / f"{name}.scratch", model=model, tile=16,
                          linear_block=block)
            out[name] = fh["Position"][...], fh["Velocity"][...]
    dx = np.abs(out["held"][0] - out["disk"][0])
    assert np.minimum(dx, 96.0 - dx).max() < 1e-3 and np.abs(out["held"][1] - out["disk"][1]).max() < 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.h5", "held.h5"]


def test_plan_goes_out_of_core_when_the_linear_meshes_do_not_fit():
    opts = MockOptions(tracer="halos")
    held = plan_memory(opts, 512, 1024.0, halo=20, multiple=4, max_memory=8.0)
    assert held.linear_block is None and "FFTs on disk" not in held.describe()
    low = plan_memory(opts, 512, 1024.0, halo=20, multiple=4, max_memory=4.0)  # 44 B/particle = 5.9 GB: too much
    assert low.linear_block == LARGEST_BLOCK and low.peak <= 4e9
    assert f"FFTs on disk in blocks of {LARGEST_BLOCK} planes" in low.describe()
    assert low.stages["linear"] == pytest.approx(BASELINE_BYTES + BYTES_PER_BLOCK_CELL * LARGEST_BLOCK * 512**2)
    assert low.scratch_disk == pytest.approx((24.0 + 32.0) * 512**3)  # linear fields + Fourier meshes, at once
    big = plan_memory(opts, 1000, 2000.0, halo=20, multiple=4, max_memory=8.0)  # a 2 Gpc/h box at 2 Mpc/h
    assert big.peak <= 8e9 and big.linear_block % 4 == 0 and big.stages["linear"] <= 8e9
    with pytest.raises(ValueError, match="below the smallest estimate"):  # not even blocks of 4 planes fit
        plan_memory(opts, 1000, 2000.0, halo=20, multiple=4, max_memory=1.0)
    assert block_for_memory(1000, 1e6) == 4 and block_for_memory(16, 1e12) == 16


def test_generate_with_out_of_core_linear_stage(tmp_path, monkeypatch):
    """A streamed halo mock whose plan puts the linear stage on disk: its attrs say so, no scratch is left, and its
    halos are those of the mock held whole up to float32 rounding (same count within 1%, same total mass within
    1%)."""
    common = dict(redshift=0.0, box_size=128.0, seeds=[4], tile=32, progress=False, tracer="halos", min_members=10,
                  model="default")  # streaming needs a 2LPT base
    whole = generate_mocks("planck18", out_dir=tmp_path / "whole", **common)[0]
    monkeypatch.setattr("emulator.mocks.memory_model.IN_MEMORY_BYTES_PER_PARTICLE", 4e4)  # force streaming ...
    from emulator.model import streaming

    real = streaming.streaming_memory

    def held_meshes_too_large(*args, **kwargs):  # ... and the held linear meshes over the cap
        out = real(*args, **kwargs)
        block = args[4] if len(args) > 4 else kwargs.get("linear_block")
        return out if block is not None else {**out, "linear": 1e12}

    monkeypatch.setattr(streaming, "streaming_memory", held_meshes_too_large)
    lines: list[str] = []
    small = generate_mocks("planck18", out_dir=tmp_path / "streamed", max_memory=1.0, log=lines.append, **common)[0]
    assert "FFTs on disk" in lines[0]
    a, b = read_catalog(whole, "data"), read_catalog(small, "data")
    assert b.attrs["linear_block"] % 4 == 0 and b.attrs["streamed"]
    assert abs(b.size / a.size - 1) < 0.01 and abs(b["Mass"].sum() / a["Mass"].sum() - 1) < 0.01
    assert sorted(p.name for p in Path(small).parent.iterdir()) == [Path(small).name]
